// Package idempotency makes creating POSTs safe to retry: a request with an
// Idempotency-Key header runs once per caller and key; a repeat with the same
// body gets the first response replayed, a repeat with a different body gets
// 422, and a repeat while the first is still running gets 409. Stored
// responses are sealed with AES-GCM (they may hold a freshly issued API key)
// and expire after a TTL. It does not know which routes create things; the
// router applies it to those.
package idempotency

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Header is the request header carrying the key.
const Header = "Idempotency-Key"

// MaxKeyLen bounds the key.
const MaxKeyLen = 255

// Record is a stored request and, once finished, its response.
type Record struct {
	RequestHash [sha256.Size]byte
	Status      int // 0 while the first request is running
	ContentType string
	Body        []byte // sealed
}

// Store persists records.
type Store interface {
	// Begin inserts a running record for (subject, key) unless a record newer
	// than notBefore exists, in which case it returns that one and false.
	Begin(ctx context.Context, subject, key string, hash [sha256.Size]byte, now, notBefore time.Time) (Record, bool, error)
	// Complete stores the response of a running record.
	Complete(ctx context.Context, subject, key string, status int, contentType string, body []byte) error
	// Abort deletes a running record so the request can be retried.
	Abort(ctx context.Context, subject, key string) error
}

// Middleware applies idempotency keys.
type Middleware struct {
	store Store
	aead  cipher.AEAD
	// opens are the AEADs of the previous secrets, tried after aead so that
	// responses sealed before a secret rotation can still be replayed.
	opens  []cipher.AEAD
	ttl    time.Duration
	logger *slog.Logger
	now    func() time.Time
}

// New returns a Middleware whose stored responses are sealed with a key
// derived from secret and kept for ttl. Responses sealed under one of
// previous (the internal secret before a rotation) are still opened.
func New(store Store, secret []byte, previous [][]byte, ttl time.Duration, logger *slog.Logger, now func() time.Time) (*Middleware, error) {
	if store == nil || logger == nil || len(secret) == 0 {
		return nil, errors.New("new idempotency middleware: nil store, logger or secret")
	}
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	aead, err := newAEAD(secret)
	if err != nil {
		return nil, fmt.Errorf("new idempotency middleware: %w", err)
	}
	m := &Middleware{store: store, aead: aead, ttl: ttl, logger: logger, now: now}
	for _, p := range previous {
		if len(p) == 0 {
			continue
		}
		a, err := newAEAD(p)
		if err != nil {
			return nil, fmt.Errorf("new idempotency middleware: %w", err)
		}
		m.opens = append(m.opens, a)
	}
	return m, nil
}

func newAEAD(secret []byte) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("canopy gateway idempotency v1"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func validKey(k string) bool {
	if k == "" || len(k) > MaxKeyLen {
		return false
	}
	for _, r := range k {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Handler wraps a creating handler.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(Header)
		if key == "" {
			next.ServeHTTP(w, r)
			return
		}
		if !validKey(key) {
			httpx.WriteProblem(w, r, httpx.BadRequest("invalid Idempotency-Key header",
				httpx.FieldError{Field: Header, Reason: fmt.Sprintf("must be 1-%d printable ASCII characters", MaxKeyLen)}))
			return
		}
		p, ok := tenancy.PrincipalFrom(r.Context())
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusRequestEntityTooLarge, "request body too large"))
				return
			}
			httpx.WriteProblem(w, r, httpx.BadRequest("request body could not be read"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h := sha256.New()
		h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
		h.Write(body)
		var hash [sha256.Size]byte
		h.Sum(hash[:0])

		now := m.now().UTC()
		rec, created, err := m.store.Begin(r.Context(), p.Subject, key, hash, now, now.Add(-m.ttl))
		if err != nil {
			m.logger.ErrorContext(r.Context(), "begin idempotent request", "err", err)
			httpx.WriteError(w, r, err)
			return
		}
		if !created {
			m.replay(w, r, rec, hash)
			return
		}
		cw := &captureWriter{ResponseWriter: w}
		completed := false
		defer func() {
			if completed {
				return
			}
			// Panic or server error: let the client retry with the same key.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
			defer cancel()
			if err := m.store.Abort(ctx, p.Subject, key); err != nil {
				m.logger.ErrorContext(ctx, "abort idempotent request", "err", err)
			}
		}()
		next.ServeHTTP(cw, r)
		if cw.status == 0 {
			cw.status = http.StatusOK
		}
		if cw.status >= 500 {
			return
		}
		sealed, err := m.seal(cw.buf.Bytes())
		if err != nil {
			m.logger.ErrorContext(r.Context(), "seal idempotent response", "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		if err := m.store.Complete(ctx, p.Subject, key, cw.status, cw.Header().Get("Content-Type"), sealed); err != nil {
			m.logger.ErrorContext(ctx, "complete idempotent request", "err", err)
			return
		}
		completed = true
	})
}

func (m *Middleware) replay(w http.ResponseWriter, r *http.Request, rec Record, hash [sha256.Size]byte) {
	if !hmac.Equal(rec.RequestHash[:], hash[:]) {
		httpx.WriteProblem(w, r, httpx.Unprocessable("this Idempotency-Key was already used with a different request",
			httpx.FieldError{Field: Header, Reason: "reused with a different method, path or body"}))
		return
	}
	if rec.Status == 0 {
		w.Header().Set("Retry-After", "1")
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "a request with this Idempotency-Key is still being processed"))
		return
	}
	body, err := m.open(rec.Body)
	if err != nil {
		m.logger.ErrorContext(r.Context(), "open idempotent response", "err", err)
		httpx.WriteError(w, r, err)
		return
	}
	if rec.ContentType != "" {
		w.Header().Set("Content-Type", rec.ContentType)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Status)
	_, _ = w.Write(body)
}

func (m *Middleware) seal(plain []byte) ([]byte, error) {
	nonce := make([]byte, m.aead.NonceSize(), m.aead.NonceSize()+len(plain)+m.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return m.aead.Seal(nonce, nonce, plain, nil), nil
}

func (m *Middleware) open(sealed []byte) ([]byte, error) {
	n := m.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("open sealed response: too short")
	}
	plain, err := m.aead.Open(nil, sealed[:n], sealed[n:], nil)
	for _, a := range m.opens {
		if err == nil {
			break
		}
		plain, err = a.Open(nil, sealed[:n], sealed[n:], nil)
	}
	if err != nil {
		return nil, fmt.Errorf("open sealed response: %w", err)
	}
	return plain, nil
}

// captureWriter passes a response through and keeps a copy.
type captureWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.buf.Write(b)
	return c.ResponseWriter.Write(b)
}
