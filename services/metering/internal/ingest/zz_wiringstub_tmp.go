// Package ingest: THROWAWAY stub by helper "wiring" so that the service
// compiles before helper "usage" lands; deleted at integration.
package ingest

import (
	"context"
	"time"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// Config is a stub.
type Config struct{ Brokers []string }

// Publisher is a stub.
type Publisher struct{}

// New is a stub.
func New(cfg Config) (*Publisher, error) { return &Publisher{}, nil }

// Publish is a stub.
func (p *Publisher) Publish(ctx context.Context, evs []meter.Event, at time.Time) error { return nil }

// Close is a stub.
func (p *Publisher) Close() error { return nil }
