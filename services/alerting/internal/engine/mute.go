package engine

import (
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
)

// inhibSnapshot is one generation of the inhibitor: rebuilt by the state
// owner when the source alerts change, read (concurrently) by the dispatch
// loop and the API.
type inhibSnapshot struct {
	in *alert.Inhibitor
}

func (s *inhibSnapshot) inhibited(a *alert.Alert, now time.Time) (alert.Fingerprint, bool) {
	if s.in == nil {
		return 0, false
	}
	return s.in.Inhibited(a, now)
}

// isSource reports whether a could inhibit others (matches a rule's
// source): only those alerts feed the inhibitor, which keeps its rebuilds
// small however many alerts there are.
func (e *Engine) isSource(a *alert.Alert) bool {
	for i := range e.cfg.InhibitRules {
		if e.cfg.InhibitRules[i].Source.Matches(a.Labels) {
			return true
		}
	}
	return false
}

// trackSource keeps the inhibition source set current (state owner only).
func (e *Engine) trackSource(fp alert.Fingerprint, a *alert.Alert) {
	if a.State == alert.StateFiring && e.isSource(a) {
		e.inhibSources[fp] = a
		e.inhibDirty = true
		return
	}
	if _, ok := e.inhibSources[fp]; ok {
		delete(e.inhibSources, fp)
		e.inhibDirty = true
	}
}

// rebuildInhibitor publishes a new inhibitor over the current sources.
func (e *Engine) rebuildInhibitor(now time.Time) {
	e.inhibDirty = false
	if len(e.inhibSources) == 0 {
		e.inhibitor.Store(&inhibSnapshot{})
		return
	}
	srcs := make([]*alert.Alert, 0, len(e.inhibSources))
	for _, a := range e.inhibSources {
		srcs = append(srcs, a)
	}
	in := alert.NewInhibitor(e.cfg.InhibitRules)
	in.Set(srcs, now)
	e.inhibitor.Store(&inhibSnapshot{in: in})
}

// silenceMutes reports whether s mutes a. A tenant's silence mutes only
// that tenant's alerts, whatever its matchers say.
func silenceMutes(s *alert.Silence, a *alert.Alert, now time.Time) bool {
	if s.Tenant != "" && a.Labels[alert.LabelTenant] != s.Tenant {
		return false
	}
	return s.Mutes(a.Labels, now)
}

// muter is the dispatcher's view of the muting state.
type muter struct{ e *Engine }

var _ dispatch.Muter = muter{}

// Muted implements dispatch.Muter: silenced or inhibited at now.
func (m muter) Muted(a *alert.Alert, now time.Time) bool {
	sils := *m.e.silences.Load()
	for i := range sils {
		if silenceMutes(&sils[i], a, now) {
			return true
		}
	}
	_, ok := m.e.inhibitor.Load().inhibited(a, now)
	return ok
}

// Muting tells who mutes an alert now: silence ids and inhibiting
// fingerprints (empty when none).
func (e *Engine) Muting(fp alert.Fingerprint) (silencedBy, inhibitedBy []string) {
	e.alertsMu.RLock()
	a := e.alerts[fp]
	e.alertsMu.RUnlock()
	if a == nil {
		return nil, nil
	}
	now := e.now()
	sils := *e.silences.Load()
	for i := range sils {
		if silenceMutes(&sils[i], a, now) {
			silencedBy = append(silencedBy, sils[i].ID)
		}
	}
	if src, ok := e.inhibitor.Load().inhibited(a, now); ok {
		inhibitedBy = append(inhibitedBy, src.String())
	}
	return silencedBy, inhibitedBy
}
