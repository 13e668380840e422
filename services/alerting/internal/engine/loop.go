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

// Flush store failures back off from flushRetryMin, doubling up to
// flushRetryMax; idleWait is the loop's wait with no group at all.
const (
	flushRetryMin = 500 * time.Millisecond
	flushRetryMax = 30 * time.Second
	idleWait      = time.Hour
	// minSpin keeps a dispatcher that reports itself due without flushing
	// anything from spinning the loop.
	minSpin = 5 * time.Millisecond
)

// dispatchLoop is the dispatcher's only user: it applies route changes and
// new alerts, and flushes due groups into stored notifications, until ctx
// ends (a flush under way finishes its store write first).
func (e *Engine) dispatchLoop(ctx context.Context, d *dispatch.Dispatcher) {
	timer := time.NewTimer(idleWait)
	defer timer.Stop()
	failures := 0
	for {
		now := e.now()
		e.takeHandOffs(d, now)
		wait := idleWait
		if at, ok := d.NextDue(); ok {
			wait = at.Sub(now)
			if wait <= 0 {
				if e.flush(ctx, d, now, &failures) == 0 {
					wait = minSpin
				} else {
					continue
				}
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.loopWake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
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

// flush stores the due notifications, all in one transaction, and commits
// them to the dispatcher; when the store fails the groups are due again
// after a backoff. It returns how many notifications were flushed.
func (e *Engine) flush(ctx context.Context, d *dispatch.Dispatcher, now time.Time, failures *int) int {
	ns := d.Flush(now)
	if len(ns) == 0 {
		return 0
	}
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
	err := e.st.StoreNotifications(sctx, ds, logs)
	cancel()
	if err != nil {
		*failures++
		backoff := min(flushRetryMin<<min(*failures-1, 10), flushRetryMax)
		e.log.WarnContext(ctx, "store notifications; groups retried", slog.Int("notifications", len(ns)),
			slog.Duration("backoff", backoff), slog.Any("err", err))
		for i := range ns {
			d.Requeue(ns[i], now.Add(backoff))
		}
		return len(ns)
	}
	*failures = 0
	for i := range ns {
		d.Commit(ns[i])
	}
	e.metrics.notifications.WithLabelValues("queued").Add(float64(len(ds)))
	wake(e.deliverWake)
	return len(ns)
}

// resolvedCopy is a resolved copy of a (pushes' EndsAt passing).
func resolvedCopy(a *alert.Alert) *alert.Alert {
	cp := *a
	cp.State = alert.StateResolved
	return &cp
}
