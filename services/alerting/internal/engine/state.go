package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
)

// storeTimeout bounds one store write of the state owner and the dispatch
// loop; the writes run detached from Run's context so that a stop lets the
// current one finish.
const storeTimeout = 30 * time.Second

// commitReq is one submission to the state owner: pushed alerts (push:
// their state follows from their times) or evaluator results (state set).
type commitReq struct {
	alerts []*alert.Alert
	push   bool
	at     time.Time
	done   chan error // nil: nobody waits (ticks)
}

// staged is one alert of a batch: the state before the batch and after.
type staged struct {
	fp  alert.Fingerprint
	old *alert.Alert
	cur *alert.Alert
}

// Push accepts alerts (from POST /api/v2/alerts; tenant labels already
// enforced by the API); it returns once they are stored. The engine takes
// ownership of the alerts (it fills StartsAt, UpdatedAt and State).
func (e *Engine) Push(ctx context.Context, alerts []*alert.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	select {
	case <-e.ready:
	default:
		return ErrStopped
	}
	return e.submit(ctx, &commitReq{alerts: alerts, push: true})
}

// submit hands r to the state owner and waits for its batch's commit.
func (e *Engine) submit(ctx context.Context, r *commitReq) error {
	r.at = time.Now()
	r.done = make(chan error, 1)
	select {
	case e.reqs <- r:
	case <-e.stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stopped:
		select {
		case err := <-r.done:
			return err
		default:
			return ErrStopped
		}
	}
}

// stateLoop owns the alert map: it group-commits submissions and runs the
// ticks, until ctx ends.
func (e *Engine) stateLoop(ctx context.Context) {
	defer close(e.stopped)
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	overlay := make(map[alert.Fingerprint]int)
	lastPrune := e.now()
	for {
		select {
		case <-ctx.Done():
			e.refuseQueued()
			return
		case r := <-e.reqs:
			batch := e.collect(ctx, r, linger)
			e.commit(ctx, batch, overlay)
		case <-tick.C:
			now := e.now()
			e.tick(ctx, now, overlay)
			if now.Sub(lastPrune) >= pruneEvery {
				e.pruneMemory(now)
				lastPrune = now
			}
		}
	}
}

// refuseQueued answers the submissions still queued at stop.
func (e *Engine) refuseQueued() {
	for {
		select {
		case r := <-e.reqs:
			if r.done != nil {
				r.done <- ErrStopped
			}
		default:
			return
		}
	}
}

// collect gathers the submissions queued behind a commit in progress and,
// when the first is a push, those arriving within BatchWait of it (pushes
// come concurrently; events come one at a time from the consumer, which
// waits for each commit, so lingering would only slow it), up to
// maxBatchAlerts.
func (e *Engine) collect(ctx context.Context, first *commitReq, linger *time.Timer) []*commitReq {
	batch := []*commitReq{first}
	n := len(first.alerts)
	deadline := first.at
	if first.push {
		deadline = deadline.Add(e.cfg.BatchWait)
	}
	for n < maxBatchAlerts {
		select {
		case r := <-e.reqs:
			batch = append(batch, r)
			n += len(r.alerts)
			continue
		default:
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		linger.Reset(wait)
		select {
		case r := <-e.reqs:
			linger.Stop()
			batch = append(batch, r)
			n += len(r.alerts)
			continue
		case <-linger.C:
		case <-ctx.Done():
			linger.Stop()
		}
		break
	}
	e.metrics.batchSize.Observe(float64(n))
	return batch
}

// commit merges a batch into the alert map, stores it with its transition
// events in one transaction and hands the notifiable alerts to the dispatch
// loop. A failed store leaves the map as it was: pushers get the error,
// evaluator results are carried to the next tick.
func (e *Engine) commit(ctx context.Context, batch []*commitReq, overlay map[alert.Fingerprint]int) {
	now := e.now()
	clear(overlay)
	var items []staged
	for _, r := range batch {
		for _, a := range r.alerts {
			items = e.stage(items, overlay, a, r.push, now)
		}
	}
	err := e.store(ctx, items, now)
	for _, r := range batch {
		if err != nil && !r.push {
			e.carry = append(e.carry, r.alerts...)
		}
		if r.done != nil {
			if r.push {
				r.done <- err
			} else {
				r.done <- nil // carried: the next tick retries
			}
		}
	}
}

// stage merges incoming a into the batch's items (overlay indexes them by
// fingerprint) and returns the items.
func (e *Engine) stage(items []staged, overlay map[alert.Fingerprint]int, a *alert.Alert, push bool, now time.Time) []staged {
	fp := a.Fingerprint()
	if a.StartsAt.IsZero() {
		a.StartsAt = now
	}
	a.UpdatedAt = now
	if push || a.State == "" {
		a.State = stateAt(a, now)
	}
	i, seen := overlay[fp]
	var prev *alert.Alert
	if seen {
		prev = items[i].cur
	} else {
		prev = e.alerts[fp]
	}
	cur := a
	if prev != nil {
		cur = prev.Merge(a) // a new alert: the map's are shared with readers

		if push {
			cur.State = stateAt(cur, now)
		} else {
			cur.State = a.State
		}
		if a.Rule != "" {
			cur.Rule, cur.Value, cur.Action = a.Rule, a.Value, a.Action
		}
	}
	if seen {
		items[i].cur = cur
		return items
	}
	overlay[fp] = len(items)
	return append(items, staged{fp: fp, old: prev, cur: cur})
}

// stateAt is a pushed alert's state from its times.
func stateAt(a *alert.Alert, now time.Time) alert.State {
	if a.Resolved(now) {
		return alert.StateResolved
	}
	return alert.StateFiring
}

// store writes the staged alerts and their transition events, then applies
// them to the map and hands them on.
func (e *Engine) store(ctx context.Context, items []staged, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	alerts := make([]*alert.Alert, len(items))
	var evs []eventbus.Event
	for i := range items {
		it := &items[i]
		alerts[i] = it.cur
		if typ, ok := transition(it.old, it.cur); ok {
			ev, err := transitionEvent(typ, it.fp, it.cur)
			if err != nil {
				return err
			}
			evs = append(evs, ev)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	err := e.st.UpsertAlerts(sctx, alerts, evs)
	cancel()
	if err != nil {
		e.log.WarnContext(ctx, "store alerts", slog.Int("alerts", len(alerts)), slog.Any("err", err))
		return fmt.Errorf("store alerts: %w", err)
	}
	e.apply(ctx, items, now)
	return nil
}

// transition reports the event type of old → cur: firing when the alert
// starts firing (from nothing, pending or resolved), resolved when a firing
// alert resolves. Pending is never announced.
func transition(old, cur *alert.Alert) (string, bool) {
	var was alert.State
	if old != nil {
		was = old.State
	}
	switch {
	case cur.State == alert.StateFiring && was != alert.StateFiring:
		return events.TypeAlertFiring, true
	case cur.State == alert.StateResolved && was == alert.StateFiring:
		return events.TypeAlertResolved, true
	}
	return "", false
}

// transitionEvent builds the outbox event of a transition, keyed by the
// fingerprint (so one alert's transitions stay in order).
func transitionEvent(typ string, fp alert.Fingerprint, a *alert.Alert) (eventbus.Event, error) {
	p := events.AlertTransition{
		Fingerprint:  fp.String(),
		TenantID:     a.Labels[alert.LabelTenant],
		Status:       string(alert.StatusFiring),
		Labels:       a.Labels,
		Annotations:  a.Annotations,
		StartsAt:     a.StartsAt,
		GeneratorURL: a.GeneratorURL,
		Rule:         a.Rule,
	}
	if typ == events.TypeAlertResolved {
		p.Status = string(alert.StatusResolved)
		end := a.EndsAt
		if end.IsZero() {
			end = a.UpdatedAt
		}
		p.EndsAt = &end
	}
	ev, err := eventbus.NewEvent(typ, events.SourceAlerting, p.Fingerprint, p)
	if err != nil {
		return ev, fmt.Errorf("alert %s event: %w", p.Fingerprint, err)
	}
	// Only a well-formed tenant id rides in the header (a platform push may
	// carry any tenant label).
	if p.TenantID != "" {
		if _, err := tenancy.Parse(p.TenantID); err == nil {
			ev.Tenant = p.TenantID
		}
	}
	return ev, nil
}

// apply makes stored items the current state: the map, the inhibition
// sources, the metrics, the dispatcher's input and remediation.
func (e *Engine) apply(ctx context.Context, items []staged, now time.Time) {
	e.alertsMu.Lock()
	for i := range items {
		e.alerts[items[i].fp] = items[i].cur
	}
	e.alertsMu.Unlock()

	puts := make([]*alert.Alert, 0, len(items))
	for i := range items {
		it := &items[i]
		e.countState(it.old, it.cur)
		e.trackSource(it.fp, it.cur)
		was := alert.State("")
		if it.old != nil {
			was = it.old.State
		}
		switch {
		case it.cur.State == alert.StateFiring:
			puts = append(puts, it.cur)
			if was != alert.StateFiring && it.cur.Action != "" {
				e.remediate(ctx, it.fp, it.cur, now)
			}
		case it.cur.State == alert.StateResolved && was == alert.StateFiring:
			puts = append(puts, it.cur)
		}
	}
	if e.inhibDirty {
		e.rebuildInhibitor(now)
	}
	if len(puts) > 0 {
		e.handOff(puts)
	}
}

// countState moves an alert between the by-state gauges.
func (e *Engine) countState(old, cur *alert.Alert) {
	if old != nil {
		if old.State == cur.State {
			return
		}
		e.metrics.alerts.WithLabelValues(string(old.State)).Dec()
	}
	e.metrics.alerts.WithLabelValues(string(cur.State)).Inc()
}

// handOff queues alerts for the dispatch loop and wakes it.
func (e *Engine) handOff(as []*alert.Alert) {
	e.loopMu.Lock()
	e.loopPuts = append(e.loopPuts, as...)
	e.loopMu.Unlock()
	wake(e.loopWake)
}

// wake signals ch without blocking (a pending signal is enough).
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// tick resolves what time resolves: the evaluator's one-off and stale
// alerts, pushed alerts whose EndsAt passed, and retries carried results.
func (e *Engine) tick(ctx context.Context, now time.Time, overlay map[alert.Fingerprint]int) {
	e.evalMu.Lock()
	out := copyAlerts(e.eval.Tick(now, e.cfg.StaleAfter))
	e.evalMu.Unlock()
	for _, a := range e.alerts {
		if a.State == alert.StateFiring && !a.EndsAt.IsZero() && !a.EndsAt.After(now) {
			out = append(out, resolvedCopy(a))
		}
	}
	if len(e.carry) > 0 {
		out = append(e.carry, out...)
		e.carry = nil
	}
	if len(e.inhibSources) > 0 {
		e.inhibDirty = true // sources resolve with time as well
	}
	if len(out) == 0 {
		if e.inhibDirty {
			e.rebuildInhibitor(now)
		}
		return
	}
	e.commit(ctx, []*commitReq{{alerts: out, at: now}}, overlay)
	if e.inhibDirty {
		e.rebuildInhibitor(now)
	}
}

// pruneMemory drops resolved alerts older than the retention from the map
// (the store prunes its rows in housekeeping).
func (e *Engine) pruneMemory(now time.Time) {
	before := now.Add(-e.cfg.ResolvedRetention)
	e.alertsMu.Lock()
	defer e.alertsMu.Unlock()
	for fp, a := range e.alerts {
		if a.State != alert.StateResolved {
			continue
		}
		end := a.EndsAt
		if end.IsZero() {
			end = a.UpdatedAt
		}
		if end.Before(before) {
			delete(e.alerts, fp)
			e.metrics.alerts.WithLabelValues(string(alert.StateResolved)).Dec()
		}
	}
}

// Groups lists the live aggregation groups (receiver, group key and
// labels, alerts, next flush), as the dispatch loop holds them;
// ErrStopped when the engine is not running.
func (e *Engine) Groups(ctx context.Context) ([]dispatch.GroupInfo, error) {
	select {
	case <-e.ready:
	default:
		return nil, ErrStopped
	}
	reply := make(chan []dispatch.GroupInfo, 1)
	select {
	case e.groupsReq <- reply:
	case <-e.stopped:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case gs := <-reply:
		return gs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
