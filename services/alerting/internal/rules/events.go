package rules

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

const labelTargetInstance = "target_instance"

// payloadLabel maps a top-level payload field to an alert label.
type payloadLabel struct {
	field, label string
}

// payloadLabels are the payload fields (api/events) that become labels of
// event alerts, first match per label wins (a sync job's instance is its
// source instance).
var payloadLabels = []payloadLabel{
	{"tenant_id", alert.LabelTenant},
	{"instance_id", alert.LabelInstance},
	{"source_instance", alert.LabelInstance},
	{"target_instance", labelTargetInstance},
	{"node_id", alert.LabelNode},
	{"role", labelRole},
	{"engine", labelEngine},
	{"stream_id", "stream_id"},
	{"job_id", "job_id"},
	{"recovery_id", "recovery_id"},
	{"month", "month"},
	{"kind", "kind"},
	{"threshold_percent", "threshold"},
}

// identityLabels name one alert of a rule: a resolve_on event resolves the
// alert whose identity labels equal its own (node up ⇒ that node's down
// alert, caught_up ⇒ that stream's lagging alert). Role and engine are
// left out: a node's role may change between down and up.
var identityLabels = []string{alert.LabelTenant, alert.LabelInstance, labelTargetInstance, alert.LabelNode,
	"stream_id", "job_id", "recovery_id", "month", "kind", "threshold"}

// platformEvent fires and resolves the event rules ev triggers.
func (e *Evaluator) platformEvent(now time.Time, ev eventbus.Event) []*alert.Alert {
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(ev.Data, &payload); err != nil {
		return nil
	}
	fields := scalarFields(payload)
	labels := eventLabels(fields, ev.Tenant)
	e.addZone(labels, labels[alert.LabelNode])
	id := identity(labels)
	at := eventTime(ev, now)
	var out []*alert.Alert
	for _, r := range e.rulesFor(labels[alert.LabelTenant], KindEvent) {
		k := seriesKey{owner: r.owner, rule: r.ID, identity: id}
		if r.resolveOn[ev.Type] {
			if s, ok := e.series[k]; ok && !at.Before(s.alert.StartsAt) {
				out = append(out, e.resolveAt(k, at, now))
			}
		}
		if !r.on[ev.Type] || !matches(r.Match, fields) {
			continue
		}
		if _, ok := e.series[k]; ok {
			continue // already firing: a repeat or a redelivery
		}
		if r.ResolveAfter > 0 && !now.Before(at.Add(r.ResolveAfter)) {
			continue // a replayed one-off event older than its alert's life
		}
		s := &series{kind: KindEvent, alert: e.newAlert(r, labels, at)}
		s.alert.State, s.alert.Value, s.alert.UpdatedAt = alert.StateFiring, 1, now
		s.alert.Annotations = r.expandAnnotations(s.alert.Labels, fields, 1)
		e.series[k] = s
		cp := copyAlert(&s.alert)
		out = append(out, &cp)
	}
	return out
}

// scalarFields renders the payload's top-level strings, numbers and
// booleans as strings (objects, arrays and null are left out).
func scalarFields(payload map[string]json.RawMessage) map[string]string {
	out := make(map[string]string, len(payload))
	for k, raw := range payload {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		switch raw[0] {
		case '"':
			var s string
			if json.Unmarshal(raw, &s) == nil {
				out[k] = s
			}
		case '{', '[', 'n':
		default: // number, true, false: the JSON text is the string form
			out[k] = string(raw)
		}
	}
	return out
}

// eventLabels picks the alert labels out of the payload's fields; the
// envelope's tenant stands in when the payload names none.
func eventLabels(fields map[string]string, tenant string) alert.LabelSet {
	labels := make(alert.LabelSet, 8)
	for _, pl := range payloadLabels {
		if _, done := labels[pl.label]; done {
			continue
		}
		setNonEmpty(labels, pl.label, fields[pl.field])
	}
	if _, ok := labels[alert.LabelTenant]; !ok {
		setNonEmpty(labels, alert.LabelTenant, tenant)
	}
	return labels
}

// matches reports whether every match field has the wanted value (a
// missing field reads as "").
func matches(match map[string]string, fields map[string]string) bool {
	for k, want := range match {
		if fields[k] != want {
			return false
		}
	}
	return true
}

// eventTime is when the event happened, or now when it says nothing
// sensible (no time, or one in the future).
func eventTime(ev eventbus.Event, now time.Time) time.Time {
	if ev.Time.IsZero() || ev.Time.After(now) {
		return now
	}
	return ev.Time
}
