// Package audit records who changed what through the gateway: every mutating
// request (POST, PUT, PATCH, DELETE) by an authenticated caller becomes an
// Entry with the key (or another subject, e.g. "osb:<broker username>"),
// tenant, role, method, path, status and time. It does
// not decide authorization, speaks no HTTP (the httpapi package turns
// requests into entries) and stores entries only through the Store interface.
package audit

import (
	"context"
	"errors"
	"log/slog"
	"time"

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

// Recorder writes audit entries; the gateway's HTTP layer calls it after
// each mutating request.
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

// KeyIDOf returns the key id in a principal's subject ("apikey:<id>").
func KeyIDOf(p tenancy.Principal) string {
	const prefix = "apikey:"
	if len(p.Subject) > len(prefix) && p.Subject[:len(prefix)] == prefix {
		return p.Subject[len(prefix):]
	}
	return p.Subject
}

// Record writes e, stamped with the current time when it has none, and
// logs a failed write: by the time a request is recorded its response has
// gone out, so there is no caller left to return the error to. The write
// gets its own bounded context, detached from ctx's cancellation, so a
// client that hangs up still leaves its entry behind.
func (rec *Recorder) Record(ctx context.Context, e Entry) {
	if e.At.IsZero() {
		e.At = rec.now().UTC()
	}
	e.Path = truncate(e.Path, 1024)
	e.RequestID = truncate(e.RequestID, 128)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := rec.store.InsertAudit(ctx, e); err != nil {
		rec.logger.ErrorContext(ctx, "write audit entry", "err", err, "method", e.Method, "path", e.Path, "key_id", e.KeyID)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
