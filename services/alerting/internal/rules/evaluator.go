package rules

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// Label names the evaluator sets besides alert's well-known ones.
const (
	labelRule   = "rule"
	labelRole   = "role"
	labelEngine = "engine"
	labelAZ     = "az"
	labelRegion = "region"
)

// defaultSeverity is the severity of a rule that names none.
const defaultSeverity = "warning"

// NodeLookup tells a node's zone and region, which neither samples nor
// health events carry (the engine wires nodes.Registry.Lookup in). ok
// false leaves the labels out.
type NodeLookup func(nodeID string) (az, region string, ok bool)

// compiled is a valid rule with its expression and templates parsed.
type compiled struct {
	Rule
	expr        expr
	annotations map[string]*template.Template
	on          map[string]bool
	resolveOn   map[string]bool
}

// override is a tenant's setting of a platform rule (stored as a rule with
// the platform rule's id and the tenant set).
type override struct {
	disabled, actionEnabled bool
}

// effective is a rule as it applies to one tenant's alerts.
type effective struct {
	*compiled
	owner         string // "" platform rule, else the tenant owning it
	actionEnabled bool
}

// seriesKey identifies one alert of one rule: the rule's owner and id and
// the alert's identity labels.
type seriesKey struct {
	owner, rule, identity string
}

// series is the state of one pending or firing alert.
type series struct {
	kind  Kind
	alert alert.Alert
	// lastSeen is when a sample last evaluated the series (zero after a
	// Restore until the next Tick starts its stale clock).
	lastSeen time.Time
}

// Evaluator holds the rules and the per-series pending/firing state.
// Not safe for concurrent use.
type Evaluator struct {
	generatorURL string
	lookup       NodeLookup
	platform     map[string]*compiled
	platformIDs  []string
	custom       map[string][]*compiled // tenant → rules, by id
	overrides    map[string]map[string]override
	invalid      []error
	series       map[seriesKey]*series
}

// NewEvaluator returns an evaluator over rules. generatorURL is the base
// of the alerts' generatorURL (e.g. http://127.0.0.1:8080/api/v1/alert-rules/).
func NewEvaluator(rules []Rule, generatorURL string) *Evaluator {
	e := &Evaluator{generatorURL: generatorURL, series: make(map[seriesKey]*series)}
	e.SetRules(rules)
	return e
}

// SetNodeLookup sets where az and region labels come from (nil: none).
func (e *Evaluator) SetNodeLookup(fn NodeLookup) { e.lookup = fn }

// Invalid returns the errors of the rules the last SetRules skipped
// because they do not validate (the API validates before storing, so
// this is for logging).
func (e *Evaluator) Invalid() []error { return e.invalid }

// SetRules replaces the rules, keeping the state of rules that remain.
// A tenant rule whose id is a platform rule's is that tenant's override of
// it: only its Disabled and ActionEnabled count. Alerts of rules that went
// away or were disabled resolve on the next Tick.
func (e *Evaluator) SetRules(rules []Rule) {
	e.platform = make(map[string]*compiled)
	e.platformIDs = nil
	e.custom = make(map[string][]*compiled)
	e.overrides = make(map[string]map[string]override)
	e.invalid = nil
	platformIDs := make(map[string]bool)
	for _, r := range rules {
		if r.Tenant == "" {
			platformIDs[r.ID] = true
		}
	}
	for _, r := range rules {
		if r.Tenant != "" && platformIDs[r.ID] {
			if e.overrides[r.Tenant] == nil {
				e.overrides[r.Tenant] = make(map[string]override)
			}
			e.overrides[r.Tenant][r.ID] = override{disabled: r.Disabled, actionEnabled: r.ActionEnabled}
			continue
		}
		c, err := compile(r)
		if err != nil {
			e.invalid = append(e.invalid, err)
			continue
		}
		if r.Tenant == "" {
			e.platform[r.ID] = c
			e.platformIDs = append(e.platformIDs, r.ID)
		} else {
			e.custom[r.Tenant] = append(e.custom[r.Tenant], c)
		}
	}
	sort.Strings(e.platformIDs)
	for _, list := range e.custom {
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	}
}

func compile(r Rule) (*compiled, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	c := &compiled{Rule: r, annotations: make(map[string]*template.Template, len(r.Annotations)),
		on: toSet(r.On), resolveOn: toSet(r.ResolveOn)}
	if r.Kind == KindSample {
		c.expr, _ = parseExpr(r.Expr) // Validate parsed it
	}
	for name, text := range r.Annotations {
		t, err := parseTemplate(name, text)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.ID, err)
		}
		c.annotations[name] = t
	}
	return c, nil
}

func toSet(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// rulesFor returns the enabled rules of kind that apply to tenant's alerts
// (platform rules with the tenant's overrides, then the tenant's own).
func (e *Evaluator) rulesFor(tenant string, kind Kind) []effective {
	var out []effective
	for _, id := range e.platformIDs {
		if r, ok := e.rule("", id, tenant); ok && r.Kind == kind {
			out = append(out, r)
		}
	}
	if tenant == "" {
		return out
	}
	for _, c := range e.custom[tenant] {
		if c.Kind == kind && !c.Disabled {
			out = append(out, effective{compiled: c, owner: tenant, actionEnabled: c.ActionEnabled})
		}
	}
	return out
}

// rule returns the enabled rule owner/id as it applies to tenant.
func (e *Evaluator) rule(owner, id, tenant string) (effective, bool) {
	if owner != "" {
		for _, c := range e.custom[owner] {
			if c.ID == id && !c.Disabled {
				return effective{compiled: c, owner: owner, actionEnabled: c.ActionEnabled}, true
			}
		}
		return effective{}, false
	}
	c, ok := e.platform[id]
	if !ok || c.Disabled {
		return effective{}, false
	}
	r := effective{compiled: c, actionEnabled: c.ActionEnabled}
	if o, ok := e.overrides[tenant][id]; ok {
		if o.disabled {
			return effective{}, false
		}
		r.actionEnabled = o.actionEnabled
	}
	return r, true
}

// Event evaluates one platform event (decoded envelope from any consumed
// topic: health, samples, failover, cdc, usage, instances) and returns the
// alerts whose state changed (pending, firing, resolved; an instance's
// deletion resolves its alerts). Labels always carry alertname, severity,
// tenant (when the event has one), instance, node (when known), rule.
// Payloads that do not decode are ignored.
func (e *Evaluator) Event(now time.Time, ev eventbus.Event) []*alert.Alert {
	switch ev.Type {
	case events.TypeNodeSampled:
		return e.samples(now, ev)
	case events.TypeInstanceDeleted:
		return e.instanceDeleted(now, ev)
	}
	return e.platformEvent(now, ev)
}

// Tick resolves one-off event alerts past their ResolveAfter and sample
// series not seen for stale (a node no longer sampled), returning them.
// It also resolves the alerts of rules that were removed or disabled.
func (e *Evaluator) Tick(now time.Time, stale time.Duration) []*alert.Alert {
	var out []*alert.Alert
	for _, k := range e.sortedKeys() {
		s := e.series[k]
		r, ok := e.rule(k.owner, k.rule, s.alert.Labels[alert.LabelTenant])
		switch {
		case !ok || r.Kind != s.kind:
			out = append(out, e.resolve(k, now))
		case s.kind == KindEvent:
			if r.ResolveAfter > 0 && !now.Before(s.alert.StartsAt.Add(r.ResolveAfter)) {
				out = append(out, e.resolve(k, now))
			}
		case s.lastSeen.IsZero():
			s.lastSeen = now
		case stale > 0 && now.Sub(s.lastSeen) > stale:
			out = append(out, e.resolve(k, now))
		}
	}
	return out
}

// Restore seeds the state with the alerts the store holds as pending or
// firing for rules (after a restart), so they can be resolved. The labels
// rule, tenant and the identity labels (instance, node, ...) name the
// series; alerts of rules that no longer exist resolve on the next Tick.
func (e *Evaluator) Restore(alerts []*alert.Alert) {
	for _, a := range alerts {
		id := a.Rule
		if id == "" {
			id = a.Labels[labelRule]
		}
		if id == "" || (a.State != alert.StatePending && a.State != alert.StateFiring) {
			continue
		}
		tenant := a.Labels[alert.LabelTenant]
		owner, kind := "", Kind("")
		if r, ok := e.rule(tenant, id, tenant); ok && tenant != "" {
			owner, kind = tenant, r.Kind
		} else if c, ok := e.platform[id]; ok {
			kind = c.Kind
		}
		cp := copyAlert(a)
		cp.Rule = id
		e.series[seriesKey{owner: owner, rule: id, identity: identity(a.Labels)}] = &series{kind: kind, alert: cp}
	}
}

// samples evaluates the sample rules over a health.node.sampled batch.
func (e *Evaluator) samples(now time.Time, ev eventbus.Event) []*alert.Alert {
	var b events.SampleBatch
	if err := json.Unmarshal(ev.Data, &b); err != nil {
		return nil
	}
	tenant := firstNonEmpty(b.TenantID, ev.Tenant)
	rules := e.rulesFor(tenant, KindSample)
	var out []*alert.Alert
	for _, n := range b.Nodes {
		labels := alert.LabelSet{alert.LabelInstance: b.InstanceID, alert.LabelNode: n.NodeID}
		setNonEmpty(labels, alert.LabelTenant, tenant)
		setNonEmpty(labels, labelRole, n.Role)
		setNonEmpty(labels, labelEngine, b.Engine)
		e.addZone(labels, n.NodeID)
		extra := make(map[string]string, len(n.Metrics))
		for k, v := range n.Metrics {
			extra[k] = fmt.Sprint(v)
		}
		for _, r := range rules {
			k := seriesKey{owner: r.owner, rule: r.ID, identity: identity(labels)}
			value, ok := 0.0, false
			if (r.Engine == "" || r.Engine == b.Engine) && (r.Role == "" || r.Role == n.Role) {
				value, ok = r.expr.eval(n.Metrics)
			}
			if !ok || !r.expr.holds(value) {
				if _, active := e.series[k]; active {
					out = append(out, e.resolve(k, now))
				}
				continue
			}
			if a := e.sampleTrue(now, k, r, labels, extra, value); a != nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// sampleTrue advances a series whose condition holds: inactive → pending
// (or firing when For is 0) → firing once For elapsed. It returns the alert
// on a transition, nil otherwise.
func (e *Evaluator) sampleTrue(now time.Time, k seriesKey, r effective, base alert.LabelSet,
	extra map[string]string, value float64) *alert.Alert {
	s, ok := e.series[k]
	if !ok {
		s = &series{kind: KindSample, alert: e.newAlert(r, base, now)}
		e.series[k] = s
	}
	s.lastSeen = now
	s.alert.Value = value
	want := alert.StatePending
	if !now.Before(s.alert.StartsAt.Add(r.For)) {
		want = alert.StateFiring
	}
	if ok && s.alert.State == want {
		return nil
	}
	if s.alert.State == alert.StateFiring {
		// Restored as firing: stays firing even if For grew meanwhile.
		return nil
	}
	s.alert.State = want
	s.alert.UpdatedAt = now
	s.alert.Annotations = r.expandAnnotations(s.alert.Labels, extra, value)
	cp := copyAlert(&s.alert)
	return &cp
}

// newAlert builds the labels and fields every alert of r carries.
func (e *Evaluator) newAlert(r effective, base alert.LabelSet, startsAt time.Time) alert.Alert {
	labels := make(alert.LabelSet, len(base)+len(r.Labels)+2)
	for k, v := range r.Labels {
		labels[k] = v
	}
	for k, v := range base {
		labels[k] = v
	}
	labels[alert.LabelAlertName] = r.Name
	labels[labelRule] = r.ID
	if labels[alert.LabelSeverity] == "" {
		// Routes select on severity; an alert without one would slip
		// through every such route.
		labels[alert.LabelSeverity] = defaultSeverity
	}
	a := alert.Alert{Labels: labels, StartsAt: startsAt, GeneratorURL: e.generatorURL + url.PathEscape(r.ID),
		Rule: r.ID, UpdatedAt: startsAt}
	if r.actionEnabled {
		a.Action = r.Action
	}
	return a
}

// expandAnnotations expands r's templates. Templates see the alert's
// labels and, under $labels too, the event's payload fields or the node's
// metrics that are not labels (e.g. $labels.reason, $labels.lag_ms).
func (r effective) expandAnnotations(labels alert.LabelSet, extra map[string]string, value float64) alert.LabelSet {
	if len(r.annotations) == 0 {
		return nil
	}
	data := make(map[string]string, len(labels)+len(extra))
	for k, v := range extra {
		data[k] = v
	}
	for k, v := range labels {
		data[k] = v
	}
	out := make(alert.LabelSet, len(r.annotations))
	for name, t := range r.annotations {
		// On an error the raw text is shown, as Prometheus does.
		out[name], _ = expand(t, r.Annotations[name], data, value)
	}
	return out
}

// resolve ends series k at now and returns its resolved alert.
func (e *Evaluator) resolve(k seriesKey, now time.Time) *alert.Alert {
	return e.resolveAt(k, now, now)
}

// resolveAt ends series k at endsAt (the resolving event's time).
func (e *Evaluator) resolveAt(k seriesKey, endsAt, now time.Time) *alert.Alert {
	s := e.series[k]
	delete(e.series, k)
	a := copyAlert(&s.alert)
	a.State = alert.StateResolved
	a.EndsAt = endsAt
	if a.EndsAt.Before(a.StartsAt) {
		a.EndsAt = a.StartsAt
	}
	a.UpdatedAt = now
	return &a
}

// instanceDeleted resolves every alert of the deleted instance.
func (e *Evaluator) instanceDeleted(now time.Time, ev eventbus.Event) []*alert.Alert {
	var in events.Instance
	if err := json.Unmarshal(ev.Data, &in); err != nil || in.InstanceID == "" {
		return nil
	}
	var out []*alert.Alert
	for _, k := range e.sortedKeys() {
		l := e.series[k].alert.Labels
		if l[alert.LabelInstance] == in.InstanceID || l[labelTargetInstance] == in.InstanceID {
			out = append(out, e.resolve(k, now))
		}
	}
	return out
}

func (e *Evaluator) sortedKeys() []seriesKey {
	keys := make([]seriesKey, 0, len(e.series))
	for k := range e.series {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.owner != b.owner {
			return a.owner < b.owner
		}
		if a.rule != b.rule {
			return a.rule < b.rule
		}
		return a.identity < b.identity
	})
	return keys
}

func (e *Evaluator) addZone(labels alert.LabelSet, nodeID string) {
	if e.lookup == nil || nodeID == "" {
		return
	}
	if az, region, ok := e.lookup(nodeID); ok {
		setNonEmpty(labels, labelAZ, az)
		setNonEmpty(labels, labelRegion, region)
	}
}

// identity is the series identity of an alert's labels: the values of the
// identity labels in a fixed order.
func identity(labels alert.LabelSet) string {
	var b strings.Builder
	for _, name := range identityLabels {
		if v, ok := labels[name]; ok {
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(v)
			b.WriteByte(0)
		}
	}
	return b.String()
}

func copyAlert(a *alert.Alert) alert.Alert {
	cp := *a
	cp.Labels = copySet(a.Labels)
	cp.Annotations = copySet(a.Annotations)
	return cp
}

func copySet(s alert.LabelSet) alert.LabelSet {
	if s == nil {
		return nil
	}
	out := make(alert.LabelSet, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}

func setNonEmpty(labels alert.LabelSet, name, value string) {
	if value != "" {
		labels[name] = value
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
