package tenancy

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Signer signs identity headers like Sign, but computes each principal's
// signature once per second and reuses it, so a proxy pays a map lookup per
// request instead of an HMAC. The headers it sets are exactly Sign's.
type Signer struct {
	secret []byte
	mu     sync.RWMutex
	cache  map[Principal]*signed
}

type signed struct {
	unix                          int64
	tenant, role, subject, ts, sg []string
}

// maxSignerEntries bounds the cache; it is cleared when it grows past this.
const maxSignerEntries = 100_000

// NewSigner returns a Signer for secret.
func NewSigner(secret []byte) *Signer {
	return &Signer{secret: append([]byte(nil), secret...), cache: map[Principal]*signed{}}
}

// Sign sets p's identity headers on h, signed at now (to the second).
// The header value slices are shared between requests: callers must not modify them.
func (s *Signer) Sign(h http.Header, p Principal, now time.Time) {
	unix := now.Unix()
	s.mu.RLock()
	e := s.cache[p]
	s.mu.RUnlock()
	if e == nil || e.unix != unix {
		ts := strconv.FormatInt(unix, 10)
		e = &signed{unix: unix, ts: []string{ts},
			sg: []string{signature(s.secret, string(p.Tenant), string(p.Role), p.Subject, ts)}}
		if p.Tenant != "" {
			e.tenant = []string{string(p.Tenant)}
		}
		if p.Role != "" {
			e.role = []string{string(p.Role)}
		}
		if p.Subject != "" {
			e.subject = []string{p.Subject}
		}
		s.mu.Lock()
		if len(s.cache) >= maxSignerEntries {
			clear(s.cache)
		}
		s.cache[p] = e
		s.mu.Unlock()
	}
	setValues(h, HTTPHeader, e.tenant)
	setValues(h, RoleHeader, e.role)
	setValues(h, SubjectHeader, e.subject)
	h[AuthTimeHeader] = e.ts
	h[SignatureHeader] = e.sg
}

func setValues(h http.Header, k string, v []string) {
	if v == nil {
		delete(h, k)
		return
	}
	h[k] = v
}
