// Package drill measures kill-primary drills the way a user of a database
// would see them: a writer that records every acknowledged write and finds
// the primary again after an error, a checker that counts moments when more
// than one node accepts writes, and the statistics over several drills
// (RTO, acknowledged writes lost, two-writable moments). The same code
// measures Canopy's failover and the peer (Redis Sentinel) in one run, so
// the figures compare like with like.
//
// It is test and benchmark tooling: it starts no Canopy service and knows
// nothing of Canopy's internals. The Sentinel harness (sentinel.go) starts
// and kills only processes it started itself.
package drill

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Locator finds the address (host:port) of the current primary: Sentinel's
// get-master-addr-by-name, or Canopy's GET /api/v1/instances/{id}.
type Locator interface {
	Primary(ctx context.Context) (string, error)
}

// Store is one engine's write path as the benchmark's application uses it.
type Store interface {
	// Write writes the record seq on the node at addr and returns nil only
	// when the write is acknowledged (Redis: SET and WAIT ≥ 1 replica;
	// MySQL: the INSERT committed).
	Write(ctx context.Context, addr string, seq int64) error
	// Missing returns those of seqs that the node at addr does not hold.
	Missing(ctx context.Context, addr string, seqs []int64) ([]int64, error)
	// Close releases the store's connections.
	Close() error
}

// Ack is one acknowledged write.
type Ack struct {
	Seq  int64
	At   time.Time
	Addr string
}

// Writer writes records 1, 2, 3, … every Interval to the primary its
// Locator names; after a failed write it waits RetryInterval, asks the
// Locator again and retries the next record there.
type Writer struct {
	store         Store
	locate        Locator
	interval      time.Duration
	retryInterval time.Duration
	// writeTimeout bounds one write, so a stuck connection is an error.
	writeTimeout time.Duration

	mu     sync.Mutex
	acks   []Ack
	errs   int
	lastEr error
	// seq is the next record to write; it is never reused, so a write that
	// failed without an acknowledgement is simply not counted.
	seq int64
}

// NewWriter returns a writer; interval is the pause between writes,
// retryInterval the pause between a failed write and the next look-up.
func NewWriter(store Store, locate Locator, interval, retryInterval, writeTimeout time.Duration) (*Writer, error) {
	if store == nil || locate == nil {
		return nil, errors.New("drill: a writer needs a store and a locator")
	}
	if interval <= 0 || retryInterval <= 0 || writeTimeout <= 0 {
		return nil, fmt.Errorf("drill: writer intervals must be positive (interval %s, retry %s, timeout %s)", interval, retryInterval, writeTimeout)
	}
	return &Writer{store: store, locate: locate, interval: interval, retryInterval: retryInterval, writeTimeout: writeTimeout, seq: 1}, nil
}

// Run writes until ctx ends; it returns ctx's error, or the locator's
// first error if no primary is known at the start.
func (w *Writer) Run(ctx context.Context) error {
	addr, err := w.locate.Primary(ctx)
	if err != nil {
		return fmt.Errorf("find the primary: %w", err)
	}
	next := time.Now()
	for {
		if err := sleepUntil(ctx, next); err != nil {
			return err
		}
		w.mu.Lock()
		seq := w.seq
		w.seq++
		w.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, w.writeTimeout)
		err := w.store.Write(wctx, addr, seq)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			w.mu.Lock()
			w.acks = append(w.acks, Ack{Seq: seq, At: time.Now(), Addr: addr})
			w.mu.Unlock()
			next = next.Add(w.interval)
			if now := time.Now(); next.Before(now) {
				next = now
			}
			continue
		}
		w.mu.Lock()
		w.errs++
		w.lastEr = err
		w.mu.Unlock()
		// The primary may have moved: ask again after a pause. A failed
		// look-up keeps the old address; the next failed write asks again.
		if err := sleepUntil(ctx, time.Now().Add(w.retryInterval)); err != nil {
			return err
		}
		if a, lerr := w.locate.Primary(ctx); lerr == nil && a != "" {
			addr = a
		}
		next = time.Now()
	}
}

// Acks returns a copy of the acknowledged writes so far, in order.
func (w *Writer) Acks() []Ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Ack(nil), w.acks...)
}

// Errors returns the number of failed writes and the last failure.
func (w *Writer) Errors() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs, w.lastEr
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
