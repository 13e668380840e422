package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// DefaultTTL is how long a key is remembered when Config.TTL is zero.
const DefaultTTL = 24 * time.Hour

// Record is a stored request and, once finished, its answer.
type Record struct {
	RequestHash Hash
	Status      int // 0 while the first request is running
	ContentType string
	Body        []byte // sealed
}

// Store is the storage port of Middleware; records are scoped by the
// caller's subject. Begin must be atomic per (subject, key): of concurrent
// first uses exactly one creates the record.
type Store interface {
	// Begin inserts a running record for (subject, key) unless a record newer
	// than notBefore exists, in which case it returns that one and false.
	Begin(ctx context.Context, subject, key string, hash Hash, now, notBefore time.Time) (Record, bool, error)
	// Complete stores the answer of a running record.
	Complete(ctx context.Context, subject, key string, status int, contentType string, body []byte) error
	// Abort deletes a running record so the request can be retried.
	Abort(ctx context.Context, subject, key string) error
}

// Config configures a Middleware.
type Config struct {
	// Store keeps the records; required.
	Store Store
	// Secret seals stored answers; required.
	Secret []byte
	// Previous are secrets before a rotation; answers sealed under them still open.
	Previous [][]byte
	// Label separates this use's sealing key from other uses of the secret; required.
	Label string
	// TTL is how long a key is remembered; DefaultTTL when zero.
	TTL time.Duration
	// Logger is required.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Middleware runs a request with an Idempotency-Key once per caller and
// key: a repeat gets the first answer replayed, 422 with another method,
// path or body, 409 while the first runs. An answer of 5xx (or a panic) is
// not kept, so a retry runs again. Requests without a key or a principal
// pass through.
type Middleware struct {
	cfg    Config
	sealer *sealer
}

// New returns a Middleware.
func New(cfg Config) (*Middleware, error) {
	if cfg.Store == nil || cfg.Logger == nil || len(cfg.Secret) == 0 || cfg.Label == "" {
		return nil, errors.New("new idempotency middleware: nil store or logger, empty secret or label")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	s, err := newSealer(cfg.Label, cfg.Secret, cfg.Previous)
	if err != nil {
		return nil, fmt.Errorf("new idempotency middleware: %w", err)
	}
	return &Middleware{cfg: cfg, sealer: s}, nil
}

// storeTimeout bounds writing the outcome after the client may have gone.
const storeTimeout = 5 * time.Second

// Handler wraps a creating handler.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := Key(r)
		if err != nil {
			WriteProblem(w, r, err)
			return
		}
		if key == "" {
			next.ServeHTTP(w, r)
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
		hash := HashRequest(r.Method, r.URL.Path, body)

		now := m.cfg.Now().UTC()
		rec, created, err := m.cfg.Store.Begin(r.Context(), p.Subject, key, hash, now, now.Add(-m.cfg.TTL))
		if err != nil {
			m.cfg.Logger.ErrorContext(r.Context(), "begin idempotent request", "err", err)
			httpx.WriteError(w, r, err)
			return
		}
		if !created {
			m.replay(w, r, rec, hash)
			return
		}
		m.run(w, r, next, p.Subject, key)
	})
}

// run serves the first request with a key and stores its answer.
func (m *Middleware) run(w http.ResponseWriter, r *http.Request, next http.Handler, subject, key string) {
	cw := &captureWriter{ResponseWriter: w}
	completed := false
	defer func() {
		if completed {
			return
		}
		// Panic or server error: let the client retry with the same key.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
		defer cancel()
		if err := m.cfg.Store.Abort(ctx, subject, key); err != nil {
			m.cfg.Logger.ErrorContext(ctx, "abort idempotent request", "err", err)
		}
	}()
	next.ServeHTTP(cw, r)
	if cw.status == 0 {
		cw.status = http.StatusOK
	}
	if cw.status >= 500 {
		return
	}
	sealed, err := m.sealer.seal(cw.buf.Bytes())
	if err != nil {
		m.cfg.Logger.ErrorContext(r.Context(), "seal idempotent response", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
	defer cancel()
	if err := m.cfg.Store.Complete(ctx, subject, key, cw.status, cw.Header().Get("Content-Type"), sealed); err != nil {
		m.cfg.Logger.ErrorContext(ctx, "complete idempotent request", "err", err)
		return
	}
	completed = true
}

func (m *Middleware) replay(w http.ResponseWriter, r *http.Request, rec Record, hash Hash) {
	if err := Verdict(rec.RequestHash[:], hash[:], rec.Status != 0); err != nil {
		WriteProblem(w, r, err)
		return
	}
	body, err := m.sealer.open(rec.Body)
	if err != nil {
		m.cfg.Logger.ErrorContext(r.Context(), "open idempotent response", "err", err)
		httpx.WriteError(w, r, err)
		return
	}
	WriteReplay(w, rec.Status, rec.ContentType, body)
}

// captureWriter passes an answer through and keeps a copy.
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
