package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/webhook"
)

const (
	// Flush store failures back off from flushRetryMin, doubling up to
	// flushRetryMax.
	flushRetryMin = 500 * time.Millisecond
	flushRetryMax = 30 * time.Second
	// idleWait is the loop's wait with no group at all.
	idleWait = time.Hour
	// minSpin keeps a dispatcher that reports itself due without flushing
	// anything from spinning the loop.
	minSpin = 5 * time.Millisecond
	// maxFlushing flushes are stored concurrently: building payloads and
	// the store's transaction overlap with the next flush (the database,
	// not the dispatcher, is what limits notifications per second).
	maxFlushing = 2
	// busyRetry is when a group flushed again while its previous
	// notification is still being stored is due again (it must not be
	// stored twice; once committed, the log tells whether it changed).
	busyRetry = 20 * time.Millisecond
)

// groupID identifies a group across flushes.
type groupID struct{ receiver, key string }

// flushDone is a stored (or failed) flush coming back to the loop.
type flushDone struct {
	ns         []dispatch.Notification
	deliveries int
	err        error
}

// dispatchLoop is the dispatcher's only user: it applies route changes and
// new alerts, flushes due groups and, once a flush's notifications are
// stored (by a storer goroutine, in one transaction), commits them. It runs
// until ctx ends, and then waits for the flushes being stored.
func (e *Engine) dispatchLoop(ctx context.Context, d *dispatch.Dispatcher) {
	l := &dispatchState{
		e: e, d: d,
		busy: make(map[groupID]struct{}),
		done: make(chan flushDone, maxFlushing),
	}
	timer := time.NewTimer(idleWait)
	defer timer.Stop()
	for {
		now := e.now()
		e.takeHandOffs(d, now)
		wait := idleWait
		if at, ok := d.NextDue(); ok {
			wait = at.Sub(now)
			if wait <= 0 && l.flushing < maxFlushing {
				if l.flush(ctx, now) {
					continue
				}
				wait = minSpin
			} else if wait <= 0 {
				wait = idleWait // a storer's result wakes the loop
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			for l.flushing > 0 {
				l.finish(ctx, <-l.done)
			}
			return
		case r := <-l.done:
			l.finish(ctx, r)
		case <-e.loopWake:
		case reply := <-e.groupsReq:
			reply <- d.Groups()
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// dispatchState is the dispatch loop's bookkeeping of flushes in flight.
type dispatchState struct {
	e        *Engine
	d        *dispatch.Dispatcher
	busy     map[groupID]struct{} // groups whose notification is being stored
	flushing int
	failures int
	done     chan flushDone
}

// flush takes the due notifications and hands them to a storer; it reports
// whether there were any.
func (l *dispatchState) flush(ctx context.Context, now time.Time) bool {
	ns := l.d.Flush(now)
	if len(ns) == 0 {
		return false
	}
	out := ns[:0:0]
	for _, n := range ns {
		id := groupID{n.Receiver, n.GroupKey}
		if _, ok := l.busy[id]; ok {
			l.d.Requeue(n, now.Add(busyRetry))
			continue
		}
		l.busy[id] = struct{}{}
		out = append(out, n)
	}
	if len(out) == 0 {
		return true
	}
	l.flushing++
	go func() { l.done <- l.e.storeFlush(ctx, out, now) }()
	return true
}

// finish commits a stored flush to the dispatcher, or makes its groups due
// again after a backoff when the store failed.
func (l *dispatchState) finish(ctx context.Context, r flushDone) {
	l.flushing--
	for _, n := range r.ns {
		delete(l.busy, groupID{n.Receiver, n.GroupKey})
	}
	if r.err != nil {
		l.failures++
		backoff := min(flushRetryMin<<min(l.failures-1, 10), flushRetryMax)
		l.e.log.WarnContext(ctx, "store notifications; groups retried", slog.Int("notifications", len(r.ns)),
			slog.Duration("backoff", backoff), slog.Any("err", r.err))
		at := l.e.now().Add(backoff)
		for _, n := range r.ns {
			l.d.Requeue(n, at)
		}
		return
	}
	l.failures = 0
	for _, n := range r.ns {
		l.d.Commit(n)
	}
	l.e.metrics.notifications.WithLabelValues("queued").Add(float64(r.deliveries))
}

// takeHandOffs applies the routes and alerts queued for the dispatcher.
func (e *Engine) takeHandOffs(d *dispatch.Dispatcher, now time.Time) {
	e.loopMu.Lock()
	puts := e.loopPuts
	e.loopPuts = nil
	routes, dirty := e.loopRoutes, e.routesDirty
	e.loopRoutes, e.routesDirty = nil, false
	e.loopMu.Unlock()
	if dirty {
		d.SetRoutes(routes, now)
	}
	if len(puts) > 0 {
		d.Put(now, puts...)
	}
}

// storeFlush builds the notifications' payloads and stores them with their
// log entries in one transaction (detached from ctx, so that a stop lets
// it finish), then wakes the delivery poller. It runs on a storer
// goroutine: Notifications carry copies of their alerts.
func (e *Engine) storeFlush(ctx context.Context, ns []dispatch.Notification, now time.Time) flushDone {
	ds := make([]alertstore.Delivery, 0, len(ns))
	logs := make([]dispatch.LogEntry, 0, len(ns))
	for i := range ns {
		n := &ns[i]
		logs = append(logs, n.Log)
		if n.LogOnly() { // only the log changes: nothing to deliver
			continue
		}
		body, err := json.Marshal(webhook.Build(*n, e.cfg.ExternalURL, e.cfg.MaxAlertsPerMessage))
		if err != nil { // plain maps and strings: unreachable
			e.log.ErrorContext(ctx, "encode notification", slog.String("group", n.GroupKey), slog.Any("err", err))
			continue
		}
		ds = append(ds, alertstore.Delivery{
			Receiver: n.Receiver, Owner: n.Owner, GroupKey: n.GroupKey, Payload: body,
			NextAt: now, CreatedAt: now,
		})
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := e.st.StoreNotifications(sctx, ds, logs); err != nil {
		return flushDone{ns: ns, err: err}
	}
	if len(ds) > 0 {
		wake(e.deliverWake)
	}
	return flushDone{ns: ns, deliveries: len(ds)}
}

// resolvedCopy is a resolved copy of a (pushes' EndsAt passing).
func resolvedCopy(a *alert.Alert) *alert.Alert {
	cp := *a
	cp.State = alert.StateResolved
	return &cp
}
