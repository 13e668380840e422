// Package rating: THROWAWAY stub by helper "wiring" so that the service
// compiles before helper "rating" lands; deleted at integration.
package rating

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/store"
)

// Config is the designed rating configuration.
type Config struct {
	Grace, JobsEvery time.Duration
	DefaultCurrency  string
	Now              func() time.Time
}

// Service is a stub.
type Service struct{}

// New is a stub.
func New(cfg Config, db *store.DB, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	return &Service{}, nil
}

// Run blocks until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
