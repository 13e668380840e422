// Package httpapi: THROWAWAY stub by helper "wiring" so that the service
// compiles before helper "usage" lands; deleted at integration.
package httpapi

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
)

// Publisher is a stub of the designed port (*ingest.Publisher fits).
type Publisher interface {
	Publish(ctx context.Context, evs []meter.Event, at time.Time) error
}

// Deps is a stub of httpapi.Deps.
type Deps struct {
	Usage    *usage.Store
	Ingest   Publisher
	Now      func() time.Time
	MaxBatch int
	MaxBody  int64
	Log      *slog.Logger
}

// API is a stub.
type API struct{}

// New is a stub.
func New(d Deps) (*API, error) { return &API{}, nil }

// Routes registers nothing.
func (a *API) Routes(r chi.Router) {}
