// Package httpapi serves metering's usage API behind the gateway's signed
// identity: the ingestion of usage CloudEvents (validated, tenant-checked
// and published to Kafka for the ledger, never written here), usage queries
// as JSON or CSV, late events, and meter definitions. Costs, invoices,
// budgets and prices are ratingapi's. It holds no state.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
)

// Publisher hands accepted usage events to the ledger; *ingest.Publisher
// fits. at is when the API received them.
type Publisher interface {
	Publish(ctx context.Context, evs []meter.Event, at time.Time) error
}

// Defaults of Deps.
const (
	DefaultMaxBatch = 1000
	DefaultMaxBody  = 1 << 20
)

// Deps is what the API needs.
type Deps struct {
	// Usage reads usage, meters, late events and instances' tenants.
	Usage *usage.Store
	// Ingest publishes accepted events.
	Ingest Publisher
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxBatch is the most events one request may carry (default 1000).
	MaxBatch int
	// MaxBody is the largest request body of POST /api/v1/usage/events
	// (default 1 MiB).
	MaxBody int64
	// Log receives what the answers do not say (publish failures); default
	// discards.
	Log *slog.Logger
}

// API serves the routes.
type API struct {
	usage    *usage.Store
	ingest   Publisher
	now      func() time.Time
	maxBatch int
	maxBody  int64
	log      *slog.Logger
}

// New returns the API.
func New(d Deps) (*API, error) {
	if d.Usage == nil || d.Ingest == nil {
		return nil, errors.New("metering httpapi: nil usage store or ingest publisher")
	}
	if d.MaxBatch < 0 || d.MaxBody < 0 {
		return nil, errors.New("metering httpapi: negative max batch or max body")
	}
	a := &API{usage: d.Usage, ingest: d.Ingest, now: d.Now, maxBatch: d.MaxBatch, maxBody: d.MaxBody, log: d.Log}
	if a.now == nil {
		a.now = time.Now
	}
	if a.maxBatch == 0 {
		a.maxBatch = DefaultMaxBatch
	}
	if a.maxBody == 0 {
		a.maxBody = DefaultMaxBody
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// Routes mounts the API on r (behind tenancy.Middleware).
func (a *API) Routes(r chi.Router) {
	r.Post("/api/v1/usage/events", a.postEvents)
	r.Get("/api/v1/usage", a.getUsage)
	r.Get("/api/v1/usage/late", a.getLate)
	r.Get("/api/v1/meters", a.listMeters)
	r.Get("/api/v1/meters/{slug}", a.getMeter)
	r.Post("/api/v1/meters", a.createMeter)
	r.Delete("/api/v1/meters/{slug}", a.deleteMeter)
}

// fieldErrors converts the domain's field errors; one about the request as
// a whole (no field: an empty or oversized batch) names "body".
func fieldErrors(fe meter.FieldErrors) []httpx.FieldError {
	out := make([]httpx.FieldError, len(fe))
	for i, f := range fe {
		field := f.Field
		if field == "" {
			field = "body"
		}
		out[i] = httpx.FieldError{Field: field, Reason: f.Detail}
	}
	return out
}

// internalError logs err and answers 500.
func (a *API) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.ErrorContext(r.Context(), what, "err", err, "path", r.URL.Path)
	httpx.WriteError(w, r, err)
}
