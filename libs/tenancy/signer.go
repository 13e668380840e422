package tenancy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// signatureVersion starts every signed string, so that a later scheme can
// never produce a string this one accepts.
const signatureVersion = "canopy-identity-v2"

// EmptyBodyHash is the SHA-256 of an empty body (GET, HEAD, DELETE without body).
var EmptyBodyHash = sha256.Sum256(nil)

// signed is everything one signature covers.
type signed struct {
	audience string
	method   string
	// target is the request target as sent on the wire: path and query
	// (url.URL.RequestURI, http.Request.RequestURI on the server).
	target   string
	bodyHash [sha256.Size]byte
	p        Principal
	ts       string
	nonce    string
}

// macPool reuses HMAC states and the buffer the signed string is built in,
// so a signature costs one HMAC and no per-request key setup.
type macPool struct{ pool sync.Pool }

type macState struct {
	mac hash.Hash
	buf []byte
}

func newMacPool(secret []byte) *macPool {
	key := append([]byte(nil), secret...)
	return &macPool{pool: sync.Pool{New: func() any {
		return &macState{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, 512)}
	}}}
}

// sum returns the HMAC of s. Fields are separated by '\n', which no header
// value, method or request target can contain (the body hash has a fixed
// length), so no field can shift another's boundary.
func (m *macPool) sum(s *signed) [sha256.Size]byte {
	st := m.pool.Get().(*macState)
	b := st.buf[:0]
	b = append(b, signatureVersion...)
	b = append(b, '\n')
	b = append(b, s.audience...)
	b = append(b, '\n')
	b = append(b, s.method...)
	b = append(b, '\n')
	b = append(b, s.target...)
	b = append(b, '\n')
	b = append(b, s.bodyHash[:]...)
	b = append(b, '\n')
	b = append(b, s.p.Tenant...)
	b = append(b, '\n')
	b = append(b, s.p.Role...)
	b = append(b, '\n')
	b = append(b, s.p.Subject...)
	b = append(b, '\n')
	b = append(b, s.ts...)
	b = append(b, '\n')
	b = append(b, s.nonce...)
	st.mac.Reset()
	st.mac.Write(b)
	var out [sha256.Size]byte
	st.mac.Sum(out[:0])
	if cap(b) <= 4096 { // do not keep a buffer grown by a huge target
		st.buf = b
	}
	m.pool.Put(st)
	return out
}

// Signer signs outgoing service requests with the current internal secret.
// Every signature is bound to one request (method, target, body hash), one
// audience (the receiving service) and a fresh nonce, and is valid for
// DefaultValidity; a Verifier refuses it on any other request or a second time.
// A Signer is safe for concurrent use.
type Signer struct {
	macs   *macPool
	prefix string
	seq    atomic.Uint64
	now    func() time.Time
}

// NewSigner returns a Signer for secret (the current internal secret).
func NewSigner(secret []byte) *Signer {
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails on supported platforms
	return &Signer{macs: newMacPool(secret), prefix: hex.EncodeToString(r[:]) + "-", now: time.Now}
}

// nonce is a random per-Signer prefix plus a counter: unique without a
// random read per request. It need not be secret, only never repeated.
func (s *Signer) nonce() string {
	var b [48]byte
	n := append(b[:0], s.prefix...)
	n = strconv.AppendUint(n, s.seq.Add(1), 36)
	return string(n)
}

// Sign sets p's identity headers on h for a request with method, target
// (path and query, as url.URL.RequestURI returns it) and body hash, meant for
// audience. It overwrites any identity headers already present.
func (s *Signer) Sign(h http.Header, method, target string, bodyHash [sha256.Size]byte, audience string, p Principal) {
	in := signed{audience: audience, method: method, target: target, bodyHash: bodyHash, p: p,
		ts: strconv.FormatInt(s.now().Unix(), 10), nonce: s.nonce()}
	sum := s.macs.sum(&in)
	var sig [2 * sha256.Size]byte
	hex.Encode(sig[:], sum[:])
	// One backing array for the six values: a proxy signs every request.
	v := [...]string{string(p.Tenant), string(p.Role), p.Subject, in.ts, in.nonce, string(sig[:])}
	vals := v[:]
	setValue(h, HTTPHeader, vals[0:1:1])
	setValue(h, RoleHeader, vals[1:2:2])
	setValue(h, SubjectHeader, vals[2:3:3])
	h[AuthTimeHeader] = vals[3:4:4]
	h[NonceHeader] = vals[4:5:5]
	h[SignatureHeader] = vals[5:6:6]
}

// SignRequest signs req, whose body is body (nil for none), for audience as p.
// Call it again before every attempt of a retried request.
func (s *Signer) SignRequest(req *http.Request, body []byte, audience string, p Principal) {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	bh := EmptyBodyHash
	if len(body) > 0 {
		bh = sha256.Sum256(body)
	}
	s.Sign(req.Header, req.Method, req.URL.RequestURI(), bh, audience, p)
}

// setValue sets a canonical header key without re-canonicalising it, and
// deletes it for an empty value.
func setValue(h http.Header, k string, v []string) {
	if v[0] == "" {
		delete(h, k)
		return
	}
	h[k] = v
}
