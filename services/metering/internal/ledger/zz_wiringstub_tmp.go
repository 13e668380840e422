// Package ledger: THROWAWAY stub by helper "wiring" so that the service
// compiles before helper "ledger" lands; deleted at integration.
package ledger

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/store"
)

// Config is the designed ledger configuration.
type Config struct {
	Brokers                                                                    []string
	Grace, BatchWait, AccrueEvery, SweepEvery, DedupRetention, MinuteRetention time.Duration
	BatchMax                                                                   int
	Now                                                                        func() time.Time
}

// Ledger is a stub.
type Ledger struct{}

// New is a stub.
func New(cfg Config, db *store.DB, log *slog.Logger, reg prometheus.Registerer) (*Ledger, error) {
	return &Ledger{}, nil
}

// Run blocks until ctx ends.
func (l *Ledger) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
