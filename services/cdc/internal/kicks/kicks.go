// Package kicks is the reconcile loop the cdc service's managers share (CDC
// streams and sync jobs): an id kicked by the API is reconciled at once,
// and every item is resynced at an interval, which repairs a missed kick.
package kicks

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Queue collects the kicked ids until the loop takes them.
type Queue struct {
	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{} // cap 1: pending is not empty
}

// New returns an empty Queue.
func New() *Queue { return &Queue{pending: map[string]bool{}, wake: make(chan struct{}, 1)} }

// Kick asks for id to be reconciled. It does not block; it may be called
// before Loop runs.
func (q *Queue) Kick(id string) {
	q.mu.Lock()
	q.pending[id] = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Loop runs resync at once and every interval, and reconcile for each
// kicked id, until ctx ends. A failed resync is logged (as what) and tried
// again at the next interval.
func (q *Queue) Loop(ctx context.Context, interval time.Duration, resync func(context.Context) error,
	reconcile func(context.Context, string), log *slog.Logger, what string) {
	if err := resync(ctx); err != nil && ctx.Err() == nil {
		log.Warn("load "+what+" failed; retrying at the next resync", "err", err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
			q.mu.Lock()
			ids := make([]string, 0, len(q.pending))
			for id := range q.pending {
				ids = append(ids, id)
			}
			clear(q.pending)
			q.mu.Unlock()
			for _, id := range ids {
				reconcile(ctx, id)
			}
		case <-t.C:
			if err := resync(ctx); err != nil && ctx.Err() == nil {
				log.Warn("resync "+what+" failed", "err", err)
			}
		}
	}
}
