// Package idempotencytest is the conformance suite every idempotency.Store
// passes, and an in-memory Store for tests of code built on the middleware.
// It is for tests only.
package idempotencytest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/idempotency"
)

// Run runs the conformance suite against stores made by newStore, one per case.
func Run(t *testing.T, newStore func(t *testing.T) idempotency.Store) {
	ctx := context.Background()
	// Whole seconds: SQL stores may keep no fraction.
	now := time.Unix(1_700_000_000, 0).UTC()
	hashA := idempotency.HashRequest("POST", "/a", []byte("a"))
	hashB := idempotency.HashRequest("POST", "/a", []byte("b"))
	old := now.Add(-time.Hour)

	t.Run("first use creates, a repeat reads the running record", func(t *testing.T) {
		s := newStore(t)
		rec, created := begin(t, s, "sub", "k", hashA, now, old)
		if !created || rec.RequestHash != hashA {
			t.Fatalf("first Begin = %+v, %v", rec, created)
		}
		rec, created = begin(t, s, "sub", "k", hashB, now, old)
		if created || rec.RequestHash != hashA || rec.Status != 0 {
			t.Fatalf("second Begin = %+v, %v; want the running record of the first", rec, created)
		}
	})
	t.Run("a completed record is read back whole", func(t *testing.T) {
		s := newStore(t)
		begin(t, s, "sub", "k", hashA, now, old)
		if err := s.Complete(ctx, "sub", "k", 201, "application/json", []byte("sealed")); err != nil {
			t.Fatal(err)
		}
		rec, created := begin(t, s, "sub", "k", hashA, now, old)
		if created || rec.Status != 201 || rec.ContentType != "application/json" || string(rec.Body) != "sealed" || rec.RequestHash != hashA {
			t.Fatalf("Begin after Complete = %+v, %v", rec, created)
		}
	})
	t.Run("abort frees a running key, not a completed one", func(t *testing.T) {
		s := newStore(t)
		begin(t, s, "sub", "run", hashA, now, old)
		if err := s.Abort(ctx, "sub", "run"); err != nil {
			t.Fatal(err)
		}
		if _, created := begin(t, s, "sub", "run", hashB, now, old); !created {
			t.Fatal("an aborted key was not free again")
		}
		begin(t, s, "sub", "done", hashA, now, old)
		if err := s.Complete(ctx, "sub", "done", 201, "", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Abort(ctx, "sub", "done"); err != nil {
			t.Fatal(err)
		}
		if rec, created := begin(t, s, "sub", "done", hashA, now, old); created || rec.Status != 201 {
			t.Fatalf("abort removed a completed record: %+v, %v", rec, created)
		}
	})
	t.Run("keys are per subject", func(t *testing.T) {
		s := newStore(t)
		begin(t, s, "alice", "k", hashA, now, old)
		if _, created := begin(t, s, "bob", "k", hashB, now, old); !created {
			t.Fatal("another subject's key blocked this one")
		}
	})
	t.Run("a record older than notBefore is forgotten", func(t *testing.T) {
		s := newStore(t)
		begin(t, s, "sub", "k", hashA, old.Add(-time.Minute), old.Add(-2*time.Minute))
		rec, created := begin(t, s, "sub", "k", hashB, now, old)
		if !created || rec.RequestHash != hashB {
			t.Fatalf("Begin after expiry = %+v, %v", rec, created)
		}
	})
	t.Run("of concurrent first uses exactly one creates", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		var creators atomic.Int64
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, created, err := s.Begin(ctx, "sub", "race", hashA, now, old)
				if err != nil {
					errs <- err
					return
				}
				if created {
					creators.Add(1)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := creators.Load(); n != 1 {
			t.Fatalf("%d concurrent Begins created the record", n)
		}
	})
}

func begin(t *testing.T, s idempotency.Store, subject, key string, h idempotency.Hash, now, notBefore time.Time) (idempotency.Record, bool) {
	t.Helper()
	rec, created, err := s.Begin(context.Background(), subject, key, h, now, notBefore)
	if err != nil {
		t.Fatalf("Begin(%s, %s): %v", subject, key, err)
	}
	return rec, created
}

// MemStore is an idempotency.Store in memory.
type MemStore struct {
	mu   sync.Mutex
	recs map[string]memRecord
}

type memRecord struct {
	idempotency.Record
	created time.Time
}

var _ idempotency.Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{recs: map[string]memRecord{}} }

func id(subject, key string) string { return fmt.Sprintf("%s\x00%s", subject, key) }

// Begin implements idempotency.Store.
func (s *MemStore) Begin(_ context.Context, subject, key string, hash idempotency.Hash, now, notBefore time.Time) (idempotency.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[id(subject, key)]; ok && !r.created.Before(notBefore) {
		return r.Record, false, nil
	}
	s.recs[id(subject, key)] = memRecord{Record: idempotency.Record{RequestHash: hash}, created: now}
	return idempotency.Record{RequestHash: hash}, true, nil
}

// Complete implements idempotency.Store.
func (s *MemStore) Complete(_ context.Context, subject, key string, status int, contentType string, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id(subject, key)]
	if !ok {
		return nil
	}
	r.Status, r.ContentType, r.Body = status, contentType, body
	s.recs[id(subject, key)] = r
	return nil
}

// Abort implements idempotency.Store.
func (s *MemStore) Abort(_ context.Context, subject, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[id(subject, key)]; ok && r.Status == 0 {
		delete(s.recs, id(subject, key))
	}
	return nil
}
