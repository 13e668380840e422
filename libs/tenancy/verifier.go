package tenancy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ErrUnauthenticated is returned by Verify for missing, stale, replayed or
// forged identity headers.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrReplayed is returned (wrapping ErrUnauthenticated) for a signature that
// was already accepted once.
var ErrReplayed = fmt.Errorf("%w: replayed signature", ErrUnauthenticated)

// ErrReplayCacheFull is returned when the replay cache holds
// VerifierConfig.ReplayCacheSize signatures of the current window: the
// verifier refuses rather than forget signatures that could still be replayed.
var ErrReplayCacheFull = errors.New("replay cache full")

// DefaultReplayCacheSize bounds the signatures a Verifier remembers per
// window (about 30 MB at most; 26k requests/s sustained per instance).
const DefaultReplayCacheSize = 1 << 20

// DefaultMaxBodyBytes bounds the body a Verifier reads to hash it; it matches
// libs/httpx's default body limit.
const DefaultMaxBodyBytes = 1 << 20

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Audience is the name of the verifying service; required.
	Audience string
	// Secrets are the accepted internal secrets, current first, then the
	// previous one during a rotation. Empty entries are ignored; at least one
	// is required.
	Secrets [][]byte
	// Validity is how long after signing a signature is accepted
	// (default DefaultValidity).
	Validity time.Duration
	// ClockSkew is the tolerated clock difference (default DefaultClockSkew).
	ClockSkew time.Duration
	// MaxBodyBytes bounds the body Middleware reads (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// ReplayCacheSize bounds the remembered signatures per window
	// (default DefaultReplayCacheSize).
	ReplayCacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verifier checks signed identity headers for one audience and refuses each
// signature after its first use. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	macs   []*macPool
	replay *replayCache
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Audience == "" {
		return nil, errors.New("new identity verifier: empty audience")
	}
	v := &Verifier{}
	for _, s := range cfg.Secrets {
		if len(s) > 0 {
			v.macs = append(v.macs, newMacPool(s))
		}
	}
	if len(v.macs) == 0 {
		return nil, errors.New("new identity verifier: no secret")
	}
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultValidity
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReplayCacheSize <= 0 {
		cfg.ReplayCacheSize = DefaultReplayCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Secrets = nil // the mac pools hold copies
	v.cfg = cfg
	// A signature is accepted from ts-skew to ts+validity+skew, and ts is at
	// most skew ahead of the verifier's clock; see replayCache.
	v.replay = newReplayCache(cfg.Validity+2*cfg.ClockSkew, cfg.ReplayCacheSize)
	return v, nil
}

// Verify checks the identity headers in h for a request with method, target
// (path and query as received, http.Request.RequestURI) and body hash, and
// returns the Principal. A signature is accepted once: Verify records it, and
// refuses it with ErrReplayed the next time within its validity.
func (v *Verifier) Verify(h http.Header, method, target string, bodyHash [sha256.Size]byte) (Principal, error) {
	sigHex, ts, nonce := h.Get(SignatureHeader), h.Get(AuthTimeHeader), h.Get(NonceHeader)
	if sigHex == "" || ts == "" || nonce == "" {
		return Principal{}, fmt.Errorf("%w: missing identity headers", ErrUnauthenticated)
	}
	var sig [sha256.Size]byte
	if len(sigHex) != 2*len(sig) {
		return Principal{}, fmt.Errorf("%w: malformed signature", ErrUnauthenticated)
	}
	if !decodeHex(sig[:], sigHex) {
		return Principal{}, fmt.Errorf("%w: malformed signature", ErrUnauthenticated)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: malformed auth time", ErrUnauthenticated)
	}
	now := v.cfg.Now()
	age := now.Sub(time.Unix(unix, 0))
	if age > v.cfg.Validity+v.cfg.ClockSkew || age < -v.cfg.ClockSkew {
		return Principal{}, fmt.Errorf("%w: signature expired or from the future", ErrUnauthenticated)
	}
	in := signed{audience: v.cfg.Audience, method: method, target: target, bodyHash: bodyHash,
		p:  Principal{Tenant: ID(h.Get(HTTPHeader)), Role: Role(h.Get(RoleHeader)), Subject: h.Get(SubjectHeader)},
		ts: ts, nonce: nonce}
	ok := false
	for _, m := range v.macs { // current secret first, then the previous one
		want := m.sum(&in)
		if hmac.Equal(want[:], sig[:]) {
			ok = true
			break
		}
	}
	if !ok {
		return Principal{}, fmt.Errorf("%w: bad signature", ErrUnauthenticated)
	}
	if err := in.p.Validate(); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	// Only genuine signatures reach the cache, so a forger cannot fill it.
	if err := v.replay.add(sig, now); err != nil {
		return Principal{}, err
	}
	return in.p, nil
}

// decodeHex decodes the hex string s into dst (len(s) == 2*len(dst)) without
// converting s to a byte slice first.
func decodeHex(dst []byte, s string) bool {
	for i := range dst {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Middleware verifies the identity headers on every request and puts the
// Principal (and its tenant) in the request context. It reads and hashes the
// body (at most MaxBodyBytes) and hands the handler an identical one.
// Requests without a valid, fresh, first-seen signature for this audience get
// a 401 application/problem+json.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bh := EmptyBodyHash
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			body, err := io.ReadAll(io.LimitReader(r.Body, v.cfg.MaxBodyBytes+1))
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe) || int64(len(body)) > v.cfg.MaxBodyBytes:
				writeProblem(w, r, http.StatusRequestEntityTooLarge, "request body too large")
				return
			case err != nil:
				writeProblem(w, r, http.StatusBadRequest, "could not read the request body")
				return
			}
			bh = sha256.Sum256(body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		target := r.RequestURI
		if target == "" { // a request built in process, not read from the wire
			target = r.URL.RequestURI()
		}
		p, err := v.Verify(r.Header, r.Method, target, bh)
		switch {
		case errors.Is(err, ErrReplayCacheFull):
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, http.StatusServiceUnavailable, "too many signed requests; try again shortly")
			return
		case err != nil:
			writeProblem(w, r, http.StatusUnauthorized, "missing or invalid service identity")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// Middleware returns a Verifier's Middleware for audience with the default
// settings, accepting signatures made with any of secrets (current first;
// empty ones are ignored). It panics without an audience or a secret, which
// is a wiring mistake that every service's config validation already rules out.
func Middleware(audience string, secrets ...[]byte) func(http.Handler) http.Handler {
	v, err := NewVerifier(VerifierConfig{Audience: audience, Secrets: secrets})
	if err != nil {
		panic(err)
	}
	return v.Middleware
}

// writeProblem writes a minimal RFC 9457 problem. It does not use libs/httpx
// so that httpx may depend on tenancy without a cycle.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type     string `json:"type"`
		Title    string `json:"title"`
		Status   int    `json:"status"`
		Detail   string `json:"detail"`
		Instance string `json:"instance,omitempty"`
	}{
		Type:     "about:blank",
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
	})
}
