package alert

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Inhibitor answers whether an alert is inhibited given the firing alerts.
// It is Alertmanager's inhibit.Inhibitor without the goroutine: the caller
// hands it the known alerts with Set. Safe for concurrent use.
type Inhibitor struct {
	rules []InhibitRule

	mu sync.RWMutex
	// sources holds, per rule, the source alerts by the values of the
	// rule's Equal labels, each bucket sorted by fingerprint so that the
	// inhibiting fingerprint reported is stable.
	sources []map[string][]source
}

// source is a candidate inhibiting alert.
type source struct {
	alert *Alert
	fp    Fingerprint
	// matchesTarget: the source also matches the rule's target side, so it
	// cannot inhibit targets that match both sides (Alertmanager's
	// excludeTwoSidedMatch).
	matchesTarget bool
}

// NewInhibitor builds an inhibitor over rules.
func NewInhibitor(rules []InhibitRule) *Inhibitor {
	return &Inhibitor{rules: slices.Clone(rules), sources: make([]map[string][]source, len(rules))}
}

// Set replaces the source alerts considered (the currently known alerts;
// resolved ones are ignored).
func (in *Inhibitor) Set(alerts []*Alert, now time.Time) {
	sources := make([]map[string][]source, len(in.rules))
	for i, r := range in.rules {
		byKey := map[string][]source{}
		for _, a := range alerts {
			if a == nil || a.Resolved(now) || a.State == StatePending || a.State == StateResolved {
				continue
			}
			if !r.Source.Matches(a.Labels) {
				continue
			}
			key := equalKey(r.Equal, a.Labels)
			byKey[key] = append(byKey[key], source{alert: a, fp: a.Fingerprint(), matchesTarget: r.Target.Matches(a.Labels)})
		}
		for _, b := range byKey {
			slices.SortFunc(b, func(x, y source) int {
				switch {
				case x.fp < y.fp:
					return -1
				case x.fp > y.fp:
					return 1
				}
				return 0
			})
		}
		sources[i] = byKey
	}
	in.mu.Lock()
	in.sources = sources
	in.mu.Unlock()
}

// Inhibited reports whether a is muted by a firing source alert (never by
// itself), and by which fingerprint.
//
// As in Alertmanager: a rule applies when a matches its target side; a
// source inhibits when it fires and has the same values (missing = "") of
// the Equal labels; when a matches the source side too, only sources that
// do not also match the target side count — so two alerts that both match
// both sides never inhibit each other.
func (in *Inhibitor) Inhibited(a *Alert, now time.Time) (Fingerprint, bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	var fp Fingerprint
	haveFP := false
	for i, r := range in.rules {
		if !r.Target.Matches(a.Labels) {
			continue
		}
		bucket := in.sources[i][equalKey(r.Equal, a.Labels)]
		if len(bucket) == 0 {
			continue
		}
		twoSided := r.Source.Matches(a.Labels)
		if !haveFP {
			fp, haveFP = a.Fingerprint(), true
		}
		for _, s := range bucket {
			if s.fp == fp || s.alert.Resolved(now) || (twoSided && s.matchesTarget) {
				continue
			}
			return s.fp, true
		}
	}
	return 0, false
}

// equalKey joins the values of the equal labels with the separator byte,
// which cannot occur in a label value.
func equalKey(names []string, ls LabelSet) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range names {
		b.WriteString(ls[n])
		b.WriteByte(separator)
	}
	return b.String()
}
