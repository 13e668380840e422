package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// BatchRepo is implemented by repositories that can make several decisions
// durable in one transaction (mysqlrepo). It returns one error per item, in
// order; an item's failure must not fail the others.
type BatchRepo interface {
	ReserveBatch(ctx context.Context, items []placement.Reservation) []error
}

// PlaceBatch places several new instances like Place, but reserves the
// decisions in one transaction when the repository supports it (one commit
// and log flush for the batch instead of one per placement). Decisions are
// made in order, each booked in memory before the next, exactly as
// consecutive Place calls would. Results are per request, in order, and one
// request's outcome never changes another's: refused and invalid requests,
// repeats of placed instances and a second request for the same instance go
// through Place on their own; a decision that went stale (another replica
// took the capacity) is retried on its own after re-reading its hosts.
func (s *PlacementEngine) PlaceBatch(ctx context.Context, reqs []placement.Request) ([]placement.Decision, []error) {
	return s.placeBatch(ctx, reqs, nil)
}

// placeBatch is PlaceBatch where reqCtx (when not nil) gives each request's
// own context: it carries the request's trace into its decided event and is
// the context of the request's own operations (refusals, retries).
func (s *PlacementEngine) placeBatch(ctx context.Context, reqs []placement.Request, reqCtx []context.Context) ([]placement.Decision, []error) {
	ctxOf := func(i int) context.Context {
		if reqCtx != nil {
			return reqCtx[i]
		}
		return ctx
	}
	out := make([]placement.Decision, len(reqs))
	errs := make([]error, len(reqs))
	br, ok := s.repo.(BatchRepo)
	if !ok || len(reqs) == 1 {
		for i, req := range reqs {
			out[i], errs[i] = s.Place(ctxOf(i), req)
		}
		return out, errs
	}
	alone := make([]bool, len(reqs))
	var items []placement.Reservation
	var idx []int
	inBatch := map[string]bool{}
	expires := s.now().Add(s.cfg.ReservationTTL)
	for i := range reqs {
		req := reqs[i]
		req.Kind = placement.KindNew
		if inBatch[req.InstanceID] {
			alone[i] = true // after the batch, so in order
			continue
		}
		d, err := s.decideAndBook(req)
		if err != nil {
			// Refusals (with their re-read), invalid requests and errors are
			// handled, recorded and announced by the single path.
			alone[i] = true
			continue
		}
		inBatch[req.InstanceID] = true
		carrier := propagation.MapCarrier{}
		otel.GetTextMapPropagator().Inject(ctxOf(i), carrier)
		items = append(items, placement.Reservation{Request: req, Decision: d, ExpiresAt: expires, TraceParent: carrier.Get("traceparent")})
		idx = append(idx, i)
	}
	var rerrs []error
	if len(items) > 0 {
		rerrs = br.ReserveBatch(ctx, items)
	}
	var staleHosts []string
	for k, it := range items {
		i, err := idx[k], rerrs[k]
		s.settle(it.Decision.InstanceID, it.Decision, err == nil)
		var se *placement.StaleError
		switch {
		case err == nil:
			s.decisions.WithLabelValues(string(placement.KindNew), "placed").Inc()
			out[i] = it.Decision
		case errors.As(err, &se):
			s.stale.Inc()
			staleHosts = append(staleHosts, se.Hosts...)
			alone[i] = true
		case errors.Is(err, placement.ErrAlreadyPlaced):
			// Placed before (a repeat), or by this batch when its commit's
			// outcome was unknown: re-read the hosts, as the in-memory
			// booking was just undone.
			for _, n := range it.Decision.Nodes {
				staleHosts = append(staleHosts, n.HostID)
			}
			rec, gerr := s.repo.GetPlacement(ctx, it.Decision.InstanceID)
			if gerr != nil {
				errs[i] = gerr
			} else {
				out[i] = decisionOf(rec)
			}
		case isRetryable(err):
			alone[i] = true
		default:
			s.decisions.WithLabelValues(string(placement.KindNew), "error").Inc()
			errs[i] = fmt.Errorf("reserve %s: %w", it.Decision.InstanceID, err)
		}
	}
	if len(staleHosts) > 0 {
		s.mu.Lock()
		s.staleSeen = true
		s.mu.Unlock()
		if err := s.refreshHosts(ctx, staleHosts); err != nil {
			// Place retries on its own view; a stale view costs a retry.
			s.logger.Warn("re-read hosts after a batch", "err", err)
		}
	}
	for i, req := range reqs {
		if alone[i] {
			out[i], errs[i] = s.Place(ctxOf(i), req)
		}
	}
	return out, errs
}

// BatcherConfig tunes a Batcher.
type BatcherConfig struct {
	// Window is how long the first request of a batch waits for others
	// (default 1ms, at most 2ms); the wait ends early once as many requests
	// are pending as the last batch had. Requests arriving while a batch
	// is being written wait for the next one anyway.
	Window time.Duration `yaml:"window" env:"WINDOW" default:"1ms"`
	// MaxBatch caps the placements written in one transaction (default 64).
	MaxBatch int `yaml:"max_batch" env:"MAX_BATCH" default:"64"`
	// Flushers is how many batches may be written at once (default 2).
	Flushers int `yaml:"flushers" env:"FLUSHERS" default:"2"`
	// Timeout bounds the writing of one batch (default 30s).
	Timeout time.Duration `yaml:"timeout" env:"TIMEOUT" default:"30s"`
}

func (c BatcherConfig) withDefaults() BatcherConfig {
	if c.Window <= 0 {
		c.Window = time.Millisecond
	}
	if c.Window > 2*time.Millisecond {
		c.Window = 2 * time.Millisecond
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 64
	}
	if c.Flushers <= 0 {
		c.Flushers = 2
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	return c
}

// Batcher coalesces concurrent Place calls (e.g. from several consumers of
// the placement topic) into PlaceBatch calls. The first pending request
// waits up to Window for others; up to Flushers batches are written at once
// (while one commits, the next gathers and writes, so their log flushes
// overlap). Requests are taken in arrival order. Two requests that are
// pending at the same time may end up in batches written concurrently, so a
// caller that needs one instance's requests handled in order sends the next
// only after the previous returned — as the consumer of a partition does
// (it hands over one record at a time, and an instance's requests share a
// partition through their key). A request for an instance already in the
// same batch is handled after the batch. A caller whose ctx ends stops
// waiting; its request may still be placed (Place is idempotent: a
// redelivered request gets the placement back).
type Batcher struct {
	s   *PlacementEngine
	cfg BatcherConfig

	mu        sync.Mutex
	pending   []*batchCall
	gathering bool // a flusher is waiting for its window
	running   int  // flushers started and not finished
	// last is the size of the last batch written: a gathering flusher
	// stops waiting once as many requests are pending (callers that each
	// send their next request when the last returned are all back).
	last int
	full chan struct{}
}

type batchCall struct {
	ctx  context.Context
	req  placement.Request
	d    placement.Decision
	err  error
	done chan struct{}
}

// NewBatcher returns a Batcher placing through s.
func NewBatcher(s *PlacementEngine, cfg BatcherConfig) *Batcher {
	return &Batcher{s: s, cfg: cfg.withDefaults(), full: make(chan struct{}, 1)}
}

// Place queues req for the next batch and waits for its result.
func (b *Batcher) Place(ctx context.Context, req placement.Request) (placement.Decision, error) {
	c := &batchCall{ctx: ctx, req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if len(b.pending) >= b.target() {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
	b.startLocked(b.cfg.Window)
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.d, c.err
	case <-ctx.Done():
		return placement.Decision{}, ctx.Err()
	}
}

// target is how many pending requests end the window early.
func (b *Batcher) target() int {
	return min(max(b.last, 2), b.cfg.MaxBatch)
}

// startLocked starts a flusher when requests wait, none is gathering and
// fewer than Flushers are running.
func (b *Batcher) startLocked(window time.Duration) {
	if len(b.pending) == 0 || b.gathering || b.running >= b.cfg.Flushers {
		return
	}
	b.gathering = true
	b.running++
	go b.flush(window)
}

// flush gathers one batch for up to window, writes it, and goes on while
// requests wait and no other flusher gathers them.
func (b *Batcher) flush(window time.Duration) {
	for {
		b.mu.Lock()
		ready := len(b.pending) >= b.target()
		b.mu.Unlock()
		if window > 0 && !ready {
			t := time.NewTimer(window)
			select {
			case <-t.C:
			case <-b.full:
			}
			t.Stop()
		}
		b.mu.Lock()
		n := min(len(b.pending), b.cfg.MaxBatch)
		batch := b.pending[:n:n]
		b.pending = append([]*batchCall(nil), b.pending[n:]...)
		b.gathering = false
		if n > 0 {
			b.last = n
		}
		if len(b.pending) >= b.target() {
			select {
			case b.full <- struct{}{}:
			default:
			}
		}
		b.startLocked(b.cfg.Window) // the next batch gathers while this one is written
		b.mu.Unlock()

		b.write(batch)

		b.mu.Lock()
		if len(b.pending) == 0 || b.gathering {
			b.running--
			b.mu.Unlock()
			return
		}
		// Requests waited for a flusher while this batch was written: take
		// them at once.
		b.gathering = true
		window = 0
		b.mu.Unlock()
	}
}

func (b *Batcher) write(batch []*batchCall) {
	if len(batch) == 0 {
		return
	}
	reqs := make([]placement.Request, len(batch))
	reqCtx := make([]context.Context, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
		// The caller may stop waiting; its request is still finished.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), b.cfg.Timeout)
		defer cancel()
		reqCtx[i] = rctx
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	var ds []placement.Decision
	var errs []error
	func() {
		defer func() {
			// Never leave callers waiting; the subscriber treats the error
			// as it would a panic of its handler.
			if r := recover(); r != nil {
				b.s.logger.Error("placement batch panicked", "panic", r)
				ds, errs = make([]placement.Decision, len(batch)), make([]error, len(batch))
				for i := range errs {
					errs[i] = fmt.Errorf("placement batch panicked: %v", r)
				}
			}
		}()
		ds, errs = b.s.placeBatch(ctx, reqs, reqCtx)
	}()
	for i, c := range batch {
		c.d, c.err = ds[i], errs[i]
		close(c.done)
	}
}
