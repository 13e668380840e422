// Package audit records who changed what through the gateway: every mutating
// request (POST, PUT, PATCH, DELETE) by an authenticated caller becomes an
// Entry with the key (or another subject, e.g. "osb:<broker username>"),
// tenant, role, method, path, status and time. It does
// not decide authorization and stores entries only through the Store interface.
package audit

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Entry is one audited request.
type Entry struct {
	ID        uint64
	At        time.Time
	KeyID     string     // the API key id, or the subject of a caller without one
	Tenant    tenancy.ID // the caller's tenant or, for a platform-admin, the tenant acted on
	Role      tenancy.Role
	Method    string
	Path      string
	Status    int
	RequestID string
}

// Store persists entries.
type Store interface {
	InsertAudit(ctx context.Context, e Entry) error
}

// Recorder is middleware that writes an Entry after each mutating request.
type Recorder struct {
	store  Store
	logger *slog.Logger
	now    func() time.Time
}

// NewRecorder returns a Recorder writing to store.
func NewRecorder(store Store, logger *slog.Logger, now func() time.Time) (*Recorder, error) {
	if store == nil || logger == nil {
		return nil, errors.New("new audit recorder: nil store or logger")
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{store: store, logger: logger, now: now}, nil
}

// TenantParam is the chi URL parameter naming the tenant a route acts on.
const TenantParam = "tenantID"

// KeyIDOf returns the key id in a principal's subject ("apikey:<id>").
func KeyIDOf(p tenancy.Principal) string {
	const prefix = "apikey:"
	if len(p.Subject) > len(prefix) && p.Subject[:len(prefix)] == prefix {
		return p.Subject[len(prefix):]
	}
	return p.Subject
}

// Middleware records mutating requests that carry a tenancy.Principal. The
// entry is written synchronously after the handler, so a request is never
// acknowledged to a later reader of the log before its entry exists; a
// failed write is logged, since the response has already gone out.
func (rec *Recorder) Middleware(next http.Handler) http.Handler {
	return rec.MiddlewareAs(func(r *http.Request) (tenancy.Principal, bool) { return tenancy.PrincipalFrom(r.Context()) })(next)
}

// MiddlewareAs is Middleware for requests whose caller is not in the
// context (the OSB API, authenticated by its upstream): who returns the
// principal to record, or false to record nothing.
func (rec *Recorder) MiddlewareAs(who func(*http.Request) (tenancy.Principal, bool)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return rec.record(who, next)
	}
}

func (rec *Recorder) record(who func(*http.Request) (tenancy.Principal, bool), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			next.ServeHTTP(w, r)
			return
		}
		p, ok := who(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		e := Entry{At: rec.now().UTC(), KeyID: KeyIDOf(p), Tenant: p.Tenant, Role: p.Role, Method: r.Method,
			Path: truncate(r.URL.Path, 1024), Status: status, RequestID: truncate(middleware.GetReqID(r.Context()), 128)}
		if e.Tenant == "" {
			if id, err := tenancy.Parse(chi.URLParam(r, TenantParam)); err == nil {
				e.Tenant = id
			}
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		if err := rec.store.InsertAudit(ctx, e); err != nil {
			rec.logger.ErrorContext(ctx, "write audit entry", "err", err, "method", e.Method, "path", e.Path, "key_id", e.KeyID)
		}
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
