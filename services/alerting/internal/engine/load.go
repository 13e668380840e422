package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
)

// defaultGroupBy is a receiver's grouping when it names none.
var defaultGroupBy = []string{alert.LabelAlertName, alert.LabelInstance}

// load reads the state a restart resumes from and returns the dispatcher
// holding the current alerts, its notification log restored.
func (e *Engine) load(ctx context.Context) (*dispatch.Dispatcher, error) {
	now := e.now()
	alerts, err := e.st.LiveAlerts(ctx, now.Add(-e.cfg.ResolvedRetention))
	if err != nil {
		return nil, fmt.Errorf("live alerts: %w", err)
	}
	if err := e.reloadSilences(ctx); err != nil {
		return nil, err
	}
	recvs, err := e.st.ListReceivers(ctx, "", true)
	if err != nil {
		return nil, fmt.Errorf("receivers: %w", err)
	}
	ruleList, err := e.loadRules(ctx)
	if err != nil {
		return nil, err
	}
	// Claims of a previous engine are void: this one holds the lock.
	if err := e.st.ReleaseClaims(ctx); err != nil {
		return nil, err
	}
	nlog, err := e.st.NotificationLog(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("notification log: %w", err)
	}

	e.setReceivers(recvs)
	var ruleAlerts, notify []*alert.Alert
	e.alertsMu.Lock()
	for _, a := range alerts {
		fp := a.Fingerprint()
		e.alerts[fp] = a
		e.countState(nil, a)
		e.trackSource(fp, a)
		if a.Rule != "" && a.State != alert.StateResolved {
			ruleAlerts = append(ruleAlerts, a)
		}
		if a.State == alert.StateFiring || a.State == alert.StateResolved {
			notify = append(notify, a)
		}
	}
	e.alertsMu.Unlock()
	e.evalMu.Lock()
	e.eval = rules.NewEvaluator(ruleList, e.cfg.GeneratorURL)
	// Alerts carry the node's az and region, as its scrape targets do, so
	// on-call can route and silence by zone.
	e.eval.SetNodeLookup(func(nodeID string) (string, string, bool) {
		n, ok := e.reg.Lookup(nodeID)
		return n.AZ, n.Region, ok
	})
	e.eval.Restore(ruleAlerts)
	e.logInvalidRules(ctx)
	e.evalMu.Unlock()
	e.rebuildInhibitor(now)

	d := dispatch.New(muter{e})
	d.SetRoutes(e.routes(ctx, recvs), now)
	d.Restore(nlog)
	d.Put(now, notify...)
	e.log.InfoContext(ctx, "alerting state loaded", slog.Int("alerts", len(alerts)),
		slog.Int("receivers", len(recvs)), slog.Int("rules", len(ruleList)), slog.Int("log_entries", len(nlog)))
	return d, nil
}

// What to reload after an API change.
type What int

// Reload kinds.
const (
	ReloadReceivers What = iota
	ReloadSilences
	ReloadRules
)

// Reload re-reads receivers (routes), silences or rules from the store.
// Changes take effect for the next alerts and flushes; receivers' routes
// apply before any alert pushed after Reload returns.
func (e *Engine) Reload(ctx context.Context, what What) error {
	switch what {
	case ReloadReceivers:
		recvs, err := e.st.ListReceivers(ctx, "", true)
		if err != nil {
			return fmt.Errorf("reload receivers: %w", err)
		}
		e.setReceivers(recvs)
		routes := e.routes(ctx, recvs)
		e.loopMu.Lock()
		e.loopRoutes, e.routesDirty = routes, true
		e.loopMu.Unlock()
		wake(e.loopWake)
		return nil
	case ReloadSilences:
		return e.reloadSilences(ctx)
	case ReloadRules:
		ruleList, err := e.loadRules(ctx)
		if err != nil {
			return err
		}
		e.evalMu.Lock()
		defer e.evalMu.Unlock()
		if e.eval == nil { // not loaded yet: load reads them anyway
			return nil
		}
		e.eval.SetRules(ruleList)
		e.logInvalidRules(ctx)
		return nil
	}
	return fmt.Errorf("reload: unknown kind %d", what)
}

// logInvalidRules logs the rules the evaluator skipped (the API validates
// what it stores: these come from older versions or the rules file).
// evalMu is held.
func (e *Engine) logInvalidRules(ctx context.Context) {
	for _, err := range e.eval.Invalid() {
		e.log.WarnContext(ctx, "alerting rule skipped", slog.Any("err", err))
	}
}

// reloadSilences publishes the unexpired silences.
func (e *Engine) reloadSilences(ctx context.Context) error {
	sils, err := e.st.UnexpiredSilences(ctx, e.now())
	if err != nil {
		return fmt.Errorf("silences: %w", err)
	}
	e.silences.Store(&sils)
	return nil
}

// setReceivers publishes the receivers the delivery workers post to.
func (e *Engine) setReceivers(recvs []alertstore.Receiver) {
	m := make(map[string]alertstore.Receiver, len(recvs))
	for _, r := range recvs {
		m[r.ID] = r
	}
	e.receivers.Store(&m)
}

// loadRules returns the default rules followed by the stored ones (tenant
// rules and tenant overrides of defaults, which carry the default's id; the
// evaluator applies the overrides).
func (e *Engine) loadRules(ctx context.Context) ([]rules.Rule, error) {
	defs, err := rules.Defaults()
	if err != nil {
		return nil, fmt.Errorf("default rules: %w", err)
	}
	stored, err := e.st.ListRules(ctx, "", true)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	all := make([]rules.Rule, 0, len(defs)+len(stored))
	all = append(all, defs...)
	all = append(all, stored...)
	return all, nil
}

// routes turns receivers into dispatcher routes with their implicit
// matchers: a tenant's receiver sees only that tenant's alerts, a platform
// receiver without a tenant matcher only platform alerts. A receiver whose
// matchers do not parse is left out (and logged), not fatal: the others
// must keep working.
func (e *Engine) routes(ctx context.Context, recvs []alertstore.Receiver) []dispatch.Route {
	out := make([]dispatch.Route, 0, len(recvs))
	for _, r := range recvs {
		rt, err := route(r)
		if err != nil {
			e.log.ErrorContext(ctx, "receiver left out of routing", slog.String("receiver", r.ID), slog.Any("err", err))
			continue
		}
		out = append(out, rt)
	}
	return out
}

// route is one receiver's route.
func route(r alertstore.Receiver) (dispatch.Route, error) {
	var ms alert.Matchers
	hasTenant := false
	for _, s := range r.Matchers {
		parsed, err := alert.ParseMatchers(s)
		if err != nil {
			return dispatch.Route{}, fmt.Errorf("matcher %q: %w", s, err)
		}
		for _, m := range parsed {
			if m.Name == alert.LabelTenant {
				hasTenant = true
			}
		}
		ms = append(ms, parsed...)
	}
	switch {
	case r.Tenant != "":
		m, err := alert.NewMatcher(alert.MatchEqual, alert.LabelTenant, r.Tenant)
		if err != nil {
			return dispatch.Route{}, err
		}
		ms = append(alert.Matchers{m}, ms...)
	case !hasTenant:
		m, err := alert.NewMatcher(alert.MatchEqual, alert.LabelTenant, "")
		if err != nil {
			return dispatch.Route{}, err
		}
		ms = append(alert.Matchers{m}, ms...)
	}
	if r.ID == "" {
		return dispatch.Route{}, errors.New("receiver without id")
	}
	groupBy := r.GroupBy
	if len(groupBy) == 0 {
		groupBy = defaultGroupBy
	}
	return dispatch.Route{
		Receiver:     r.ID,
		ReceiverName: r.Name,
		Owner:        r.Tenant,
		Matchers:     ms,
		GroupBy:      groupBy,
		// Zero group_wait flushes at once (the API fills the 30s default);
		// zero intervals take the dispatcher's defaults.
		GroupWait:      r.GroupWait,
		GroupInterval:  r.GroupInterval,
		RepeatInterval: r.RepeatInterval,
		SendResolved:   r.SendResolved,
		Continue:       r.Continue,
	}, nil
}
