// Package memstore is an in-memory topology.Store: leases with fencing
// tokens, recoveries, and the events a real store would put in its outbox,
// kept in a slice for tests to read. It is for tests and experiments, not
// for a service: nothing survives the process.
package memstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Event is one event the store emitted.
type Event struct {
	Type     string
	Recovery topology.Recovery
	// Rejoined is set for failover.node.rejoined.
	Rejoined *events.NodeRejoined
}

// Store is the in-memory topology.Store.
type Store struct {
	now func() time.Time

	mu         sync.Mutex
	leases     map[string]topology.Lease
	tokens     map[string]int64
	recoveries map[string][]topology.Recovery // per instance, in Begin order
	events     []Event
}

var _ topology.Store = (*Store)(nil)

// New returns an empty store; now is its clock (nil: time.Now).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, leases: map[string]topology.Lease{}, tokens: map[string]int64{}, recoveries: map[string][]topology.Recovery{}}
}

// Events returns a copy of every event emitted so far.
func (s *Store) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Acquire implements topology.Store.
func (s *Store) Acquire(ctx context.Context, instanceID, holder string, ttl time.Duration) (topology.Lease, error) {
	if err := ctx.Err(); err != nil {
		return topology.Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	cur, ok := s.leases[instanceID]
	switch {
	case ok && cur.Holder == holder && now.Before(cur.Expires):
		cur.Expires = now.Add(ttl)
		s.leases[instanceID] = cur
		return cur, nil
	case ok && now.Before(cur.Expires):
		return topology.Lease{}, fmt.Errorf("acquire %s: held by %s until %s: %w", instanceID, cur.Holder, cur.Expires.Format(time.RFC3339Nano), topology.ErrLeaseHeld)
	}
	s.tokens[instanceID]++
	l := topology.Lease{InstanceID: instanceID, Holder: holder, Token: s.tokens[instanceID], Expires: now.Add(ttl)}
	s.leases[instanceID] = l
	return l, nil
}

// Release implements topology.Store.
func (s *Store) Release(ctx context.Context, l topology.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.leases[l.InstanceID]; ok && cur.Token == l.Token && cur.Holder == l.Holder {
		delete(s.leases, l.InstanceID)
	}
	return nil
}

// current reports whether l is still the instance's lease: the token is
// the authority; an expired lease nobody took over is still current.
func (s *Store) current(l topology.Lease) bool {
	// A released lease is gone: its holder wrote its last Save before.
	cur, ok := s.leases[l.InstanceID]
	return ok && cur.Token == l.Token && cur.Holder == l.Holder
}

// Begin implements topology.Store.
func (s *Store) Begin(ctx context.Context, l topology.Lease, r topology.Recovery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.current(l) || r.InstanceID != l.InstanceID {
		return fmt.Errorf("begin recovery %s of %s with token %d: %w", r.ID, r.InstanceID, l.Token, topology.ErrFenced)
	}
	for _, x := range s.recoveries[r.InstanceID] {
		if x.ID == r.ID {
			return fmt.Errorf("begin recovery %s: already exists", r.ID)
		}
	}
	r.Token, r.Holder = l.Token, l.Holder
	if r.State == "" {
		r.State = topology.StateStarted
	}
	r = clone(r)
	s.recoveries[r.InstanceID] = append(s.recoveries[r.InstanceID], r)
	s.events = append(s.events, Event{Type: events.TypeFailoverStarted, Recovery: r})
	return nil
}

// Save implements topology.Store.
func (s *Store) Save(ctx context.Context, l topology.Lease, r topology.Recovery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.current(l) || r.InstanceID != l.InstanceID {
		return fmt.Errorf("save recovery %s of %s with token %d: %w", r.ID, r.InstanceID, l.Token, topology.ErrFenced)
	}
	rs := s.recoveries[r.InstanceID]
	for i, x := range rs {
		if x.ID != r.ID {
			continue
		}
		if x.State != topology.StateStarted {
			return fmt.Errorf("save recovery %s: already %s", r.ID, x.State)
		}
		r.Token, r.Holder = l.Token, l.Holder
		r.Acknowledged = x.Acknowledged
		r = clone(r)
		rs[i] = r
		switch r.State {
		case topology.StateCompleted:
			s.events = append(s.events, Event{Type: events.TypeFailoverCompleted, Recovery: r})
		case topology.StateFailed:
			s.events = append(s.events, Event{Type: events.TypeFailoverFailed, Recovery: r})
		}
		return nil
	}
	return fmt.Errorf("save recovery %s: %w", r.ID, topology.ErrNotFound)
}

// Get implements topology.Store.
func (s *Store) Get(ctx context.Context, instanceID, id string) (topology.Recovery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recoveries[instanceID] {
		if r.ID == id {
			return clone(r), nil
		}
	}
	return topology.Recovery{}, fmt.Errorf("recovery %s of %s: %w", id, instanceID, topology.ErrNotFound)
}

// Open implements topology.Store.
func (s *Store) Open(ctx context.Context, instanceID string) (topology.Recovery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.recoveries[instanceID]
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].State == topology.StateStarted {
			return clone(rs[i]), nil
		}
	}
	return topology.Recovery{}, fmt.Errorf("open recovery of %s: %w", instanceID, topology.ErrNotFound)
}

// LastAutomatic implements topology.Store.
func (s *Store) LastAutomatic(ctx context.Context, instanceID string) (topology.Recovery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *topology.Recovery
	for i, r := range s.recoveries[instanceID] {
		if r.Kind != topology.KindAutomatic || r.State != topology.StateCompleted || r.CompletedAt == nil {
			continue
		}
		if best == nil || !r.CompletedAt.Before(*best.CompletedAt) {
			best = &s.recoveries[instanceID][i]
		}
	}
	if best == nil {
		return topology.Recovery{}, fmt.Errorf("last automatic recovery of %s: %w", instanceID, topology.ErrNotFound)
	}
	return clone(*best), nil
}

// Acknowledge implements topology.Store.
func (s *Store) Acknowledge(ctx context.Context, instanceID, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.recoveries[instanceID] {
		if r.ID == id {
			s.recoveries[instanceID][i].Acknowledged = true
			return nil
		}
	}
	return fmt.Errorf("acknowledge recovery %s of %s: %w", id, instanceID, topology.ErrNotFound)
}

// Rejoined implements topology.Store.
func (s *Store) Rejoined(ctx context.Context, in topology.Instance, nodeID, primaryID string, rebuilt bool, lost []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, Event{Type: events.TypeNodeRejoined, Rejoined: &events.NodeRejoined{
		InstanceID: in.ID, TenantID: in.Tenant, NodeID: nodeID, Primary: primaryID,
		Rebuilt: rebuilt, LostTransactions: append([]string(nil), lost...), OccurredAt: s.now(),
	}})
	return nil
}

// clone copies the recovery's maps and slices so callers never share them
// with the store.
func clone(r topology.Recovery) topology.Recovery {
	if r.Roles != nil {
		m := make(map[string]topology.Role, len(r.Roles))
		for k, v := range r.Roles {
			m[k] = v
		}
		r.Roles = m
	}
	r.LostTransactions = append([]string(nil), r.LostTransactions...)
	return r
}
