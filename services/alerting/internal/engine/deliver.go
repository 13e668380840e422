package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/webhook"
)

// reasonReceiverDeleted dead-letters a delivery whose receiver is gone.
const reasonReceiverDeleted = "receiver deleted"

// result is one delivery attempt's outcome.
type result struct {
	d       alertstore.Delivery
	outcome webhook.Outcome
	err     error
	at      time.Time
}

// deliverer is the delivery side of one Run: a poller claiming due
// deliveries, workers posting them and a recorder storing the outcomes.
type deliverer struct {
	e       *Engine
	jobs    chan alertstore.Delivery
	results chan result

	// inflight holds the ids claimed and not yet recorded, so a claim that
	// returns them again (they are still due in the store) skips them.
	mu       sync.Mutex
	inflight map[int64]struct{}
}

// deliverLoop runs the poller, DeliveryWorkers workers and the recorder
// until ctx ends. Sends cut short by the stop are not recorded: those
// deliveries stay queued and are sent again (at least once).
func (e *Engine) deliverLoop(ctx context.Context) {
	w := &deliverer{
		e:        e,
		jobs:     make(chan alertstore.Delivery, e.cfg.DeliveryWorkers),
		results:  make(chan result, e.cfg.DeliveryWorkers),
		inflight: make(map[int64]struct{}),
	}
	var workers sync.WaitGroup
	for range e.cfg.DeliveryWorkers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			w.work(ctx)
		}()
	}
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		w.record(ctx)
	}()
	w.poll(ctx)
	close(w.jobs)
	workers.Wait()
	close(w.results)
	<-recorded
}

// poll claims due deliveries and hands them to the workers, woken after a
// flush stored new ones and otherwise every pollEvery (retries).
func (w *deliverer) poll(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.e.deliverWake:
		case <-timer.C:
		}
		for {
			n, full := w.claim(ctx)
			if ctx.Err() != nil {
				return
			}
			if !full || n == 0 {
				break
			}
		}
		timer.Reset(pollEvery)
	}
}

// claim hands the due deliveries not in flight to the workers; full says
// the store may hold more.
func (w *deliverer) claim(ctx context.Context) (int, bool) {
	w.mu.Lock()
	limit := 2*w.e.cfg.DeliveryWorkers + len(w.inflight)
	w.mu.Unlock()
	due, err := w.e.st.DueDeliveries(ctx, w.e.now(), limit)
	if err != nil {
		if ctx.Err() == nil {
			w.e.log.WarnContext(ctx, "claim deliveries", slog.Any("err", err))
		}
		return 0, false
	}
	n := 0
	for _, d := range due {
		w.mu.Lock()
		_, busy := w.inflight[d.ID]
		if !busy {
			w.inflight[d.ID] = struct{}{}
		}
		w.mu.Unlock()
		if busy {
			continue
		}
		select {
		case w.jobs <- d:
			n++
		case <-ctx.Done():
			return n, false
		}
	}
	return n, len(due) >= limit
}

// work posts deliveries until the jobs close.
func (w *deliverer) work(ctx context.Context) {
	for d := range w.jobs {
		if ctx.Err() != nil {
			continue // stopping: leave it queued
		}
		res := w.send(ctx, d)
		if ctx.Err() != nil && res.outcome != webhook.Delivered {
			continue // cut short by the stop, not the receiver's failure
		}
		w.results <- res
	}
}

// send posts one delivery to its receiver.
func (w *deliverer) send(ctx context.Context, d alertstore.Delivery) result {
	recvs := *w.e.receivers.Load()
	r, ok := recvs[d.Receiver]
	if !ok {
		return result{d: d, outcome: webhook.Reject, err: errors.New(reasonReceiverDeleted), at: w.e.now()}
	}
	outcome, err := w.e.send.Send(ctx, d.Receiver, r.URL, r.Secret, d.Payload)
	return result{d: d, outcome: outcome, err: err, at: w.e.now()}
}

// record stores outcomes: deliveries in batches (all results waiting at
// once), failures one by one with their next attempt or as dead letters.
// Results still arriving at the stop are stored with a detached context.
func (w *deliverer) record(ctx context.Context) {
	sctx := context.WithoutCancel(ctx)
	var ids, done []int64
	var batch []result
	for res := range w.results {
		ids, done = ids[:0], done[:0]
		batch = append(batch[:0], res)
	drain:
		for len(batch) < 1024 {
			select {
			case r, ok := <-w.results:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		var last time.Time
		for _, r := range batch {
			done = append(done, r.d.ID)
			if r.outcome == webhook.Delivered {
				ids = append(ids, r.d.ID)
				last = r.at
				continue
			}
			w.failed(sctx, r)
		}
		if len(ids) > 0 {
			w.delivered(sctx, ids, last, batch)
		}
		w.mu.Lock()
		for _, id := range done {
			delete(w.inflight, id)
		}
		w.mu.Unlock()
	}
}

// delivered marks ids sent; a failed write is logged and the deliveries
// are sent again later (at least once).
func (w *deliverer) delivered(ctx context.Context, ids []int64, at time.Time, batch []result) {
	wctx, cancel := context.WithTimeout(ctx, storeTimeout)
	err := w.e.st.Delivered(wctx, ids, at)
	cancel()
	if err != nil {
		w.e.log.WarnContext(ctx, "mark deliveries sent; they will be sent again", slog.Int("deliveries", len(ids)), slog.Any("err", err))
		return
	}
	w.e.metrics.notifications.WithLabelValues("sent").Add(float64(len(ids)))
	for _, r := range batch {
		if r.outcome == webhook.Delivered {
			w.e.metrics.latency.Observe(r.at.Sub(r.d.CreatedAt).Seconds())
		}
	}
}

// failed records a failed attempt: retried after webhook.Backoff, or a dead
// letter when the receiver refused it, the attempts are used up or the
// delivery is older than DeadAfter.
func (w *deliverer) failed(ctx context.Context, r result) {
	attempts := r.d.Attempts + 1
	reason := "failed"
	if r.err != nil {
		reason = r.err.Error()
	}
	dead := r.outcome == webhook.Reject || attempts >= w.e.cfg.MaxAttempts ||
		(!r.d.CreatedAt.IsZero() && r.at.Sub(r.d.CreatedAt) >= w.e.cfg.DeadAfter)
	next := r.at.Add(webhook.Backoff(attempts))
	if dead {
		next = r.at
	}
	wctx, cancel := context.WithTimeout(ctx, storeTimeout)
	err := w.e.st.Failed(wctx, r.d.ID, attempts, next, reason, dead)
	cancel()
	if err != nil {
		w.e.log.WarnContext(ctx, "record failed delivery", slog.Int64("delivery", r.d.ID), slog.Any("err", err))
		return
	}
	if dead {
		w.e.metrics.notifications.WithLabelValues("dead").Inc()
		w.e.log.WarnContext(ctx, "notification dead-lettered", slog.Int64("delivery", r.d.ID),
			slog.String("receiver", r.d.Receiver), slog.Int("attempts", attempts), slog.String("reason", reason))
		return
	}
	w.e.metrics.notifications.WithLabelValues("failed").Inc()
}
