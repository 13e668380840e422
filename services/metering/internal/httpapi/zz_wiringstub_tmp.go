// Package httpapi: THROWAWAY stub by helper "wiring" so that the service
// compiles before helper "usage" lands; deleted at integration.
package httpapi

import (
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/services/metering/internal/ingest"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
)

// Deps is a stub of the designed httpapi.Deps.
type Deps struct {
	Usage          *usage.Store
	Ingest         *ingest.Publisher
	MaxBatchEvents int
	Now            func() time.Time
}

// API is a stub.
type API struct{}

// New is a stub.
func New(d Deps) (*API, error) { return &API{}, nil }

// Routes registers nothing.
func (a *API) Routes(r chi.Router) {}
