// Package usage: THROWAWAY stub by helper "wiring" so that the service
// compiles before helper "usage" lands; deleted at integration.
package usage

import (
	"context"
	"time"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// Store is a stub.
type Store struct{}

// New is a stub.
func New(db *store.DB) (*Store, error) { return &Store{}, nil }

// EnsureBuiltins is a stub.
func (s *Store) EnsureBuiltins(ctx context.Context) error { return nil }

// Usage is a stub.
func (s *Store) Usage(ctx context.Context, q meter.Query) ([]meter.UsageRow, error) { return nil, nil }

// InstanceTenant is a stub.
func (s *Store) InstanceTenant(ctx context.Context, id string) (string, bool, error) {
	return "", false, nil
}

// LateEvent is a stub.
type LateEvent struct{}

// Late is a stub.
func (s *Store) Late(ctx context.Context, tenant string, from, to time.Time, limit int) ([]LateEvent, error) {
	return nil, nil
}
