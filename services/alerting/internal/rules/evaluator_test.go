package rules

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

const genURL = "http://127.0.0.1:8080/api/v1/alert-rules/"

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func envelope(t *testing.T, typ string, at time.Time, payload any) eventbus.Event {
	t.Helper()
	b, err := json.Marshal(payload)
	require.NoError(t, err)
	return eventbus.Event{ID: typ + at.String(), Type: typ, Time: at, Data: b}
}

func batch(t *testing.T, at time.Time, tenant, instance, engine string, nodes ...events.NodeSample) eventbus.Event {
	t.Helper()
	return envelope(t, events.TypeNodeSampled, at, events.SampleBatch{InstanceID: instance, TenantID: tenant,
		Engine: engine, Nodes: nodes, WindowEnd: at})
}

func node(id, role string, metrics map[string]int64) events.NodeSample {
	return events.NodeSample{NodeID: id, Role: role, Status: "up", Metrics: metrics}
}

func lagRule() Rule {
	return Rule{ID: "replica-lag", Name: "ReplicaLag", Kind: KindSample, Expr: "replication_lag_seconds > 10",
		Role: "replica", For: time.Minute, Labels: map[string]string{"severity": "warning"},
		Annotations: map[string]string{"summary": "{{ $labels.node }} lags {{ $value }}s"}}
}

func lag(n int64) map[string]int64 { return map[string]int64{"replication_lag_seconds": n} }

// step is one evaluation and the transitions it must return.
type step struct {
	at     time.Duration // after t0
	lag    int64         // -1: metric missing
	states []alert.State
}

func TestSampleRuleLifecycle(t *testing.T) {
	cases := []struct {
		name  string
		for_  time.Duration
		steps []step
	}{
		{"pending then firing after for, then resolved", time.Minute, []step{
			{0, 20, []alert.State{alert.StatePending}},
			{30 * time.Second, 25, nil},
			{time.Minute, 30, []alert.State{alert.StateFiring}},
			{90 * time.Second, 30, nil},
			{2 * time.Minute, 5, []alert.State{alert.StateResolved}},
			{3 * time.Minute, 5, nil},
		}},
		{"for 0 fires at once", 0, []step{
			{0, 20, []alert.State{alert.StateFiring}},
			{time.Minute, 3, []alert.State{alert.StateResolved}},
		}},
		{"flapping restarts the pending clock", time.Minute, []step{
			{0, 20, []alert.State{alert.StatePending}},
			{40 * time.Second, 1, []alert.State{alert.StateResolved}},
			{50 * time.Second, 20, []alert.State{alert.StatePending}},
			{70 * time.Second, 20, nil}, // 60s after t0, but only 20s after the new start
			{110 * time.Second, 20, []alert.State{alert.StateFiring}},
		}},
		{"a missing metric is no value: nothing while inactive, resolved while firing", 0, []step{
			{0, -1, nil},
			{10 * time.Second, 20, []alert.State{alert.StateFiring}},
			{20 * time.Second, -1, []alert.State{alert.StateResolved}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := lagRule()
			r.For = tc.for_
			e := NewEvaluator([]Rule{r}, genURL)
			var startsAt time.Time
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				m := lag(s.lag)
				if s.lag < 0 {
					m = map[string]int64{}
				}
				got := e.Event(now, batch(t, now, "acme", "i-1", "mysql", node("n-2", "replica", m)))
				require.Len(t, got, len(s.states), "step %d", i)
				for j, a := range got {
					require.Equal(t, s.states[j], a.State, "step %d", i)
					switch a.State {
					case alert.StatePending:
						startsAt = now
						require.Equal(t, now, a.StartsAt)
					case alert.StateFiring:
						if tc.for_ == 0 {
							startsAt = now
						}
						require.Equal(t, startsAt, a.StartsAt, "firing keeps the time the condition began")
						require.Equal(t, float64(s.lag), a.Value)
						require.True(t, a.EndsAt.IsZero())
					case alert.StateResolved:
						require.Equal(t, now, a.EndsAt)
						require.Equal(t, startsAt, a.StartsAt)
					}
				}
			}
		})
	}
}

func TestSampleAlertLabels(t *testing.T) {
	r := lagRule()
	r.For = 0
	r.Action, r.ActionEnabled = ActionRebuildReplica, true
	e := NewEvaluator([]Rule{r}, genURL)
	e.SetNodeLookup(func(id string) (string, string, bool) { return "eu-1a", "eu-1", id == "n-2" })
	got := e.Event(t0, batch(t, t0, "acme", "i-1", "mysql", node("n-2", "replica", lag(42))))
	require.Len(t, got, 1)
	a := got[0]
	require.Equal(t, alert.LabelSet{"alertname": "ReplicaLag", "severity": "warning", "tenant": "acme",
		"instance": "i-1", "node": "n-2", "role": "replica", "engine": "mysql", "az": "eu-1a", "region": "eu-1",
		"rule": "replica-lag"}, a.Labels)
	require.Equal(t, alert.LabelSet{"summary": "n-2 lags 42s"}, a.Annotations)
	require.Equal(t, genURL+"replica-lag", a.GeneratorURL)
	require.Equal(t, "replica-lag", a.Rule)
	require.Equal(t, ActionRebuildReplica, a.Action)
	require.Equal(t, float64(42), a.Value)

	r.ActionEnabled = false
	e = NewEvaluator([]Rule{r}, genURL)
	a = e.Event(t0, batch(t, t0, "", "i-9", "mysql", node("n-2", "replica", lag(42))))[0]
	require.Empty(t, a.Action, "an action not enabled is not handed to the engine")
	require.NotContains(t, a.Labels, "tenant", "a platform node's alert has no tenant label")
	require.NotContains(t, a.Labels, "az", "no lookup: no zone")
}

func TestSampleFilters(t *testing.T) {
	mem := Rule{ID: "mem", Name: "Mem", Kind: KindSample, Expr: "used_memory / maxmemory > 0.5", Engine: "redis"}
	cases := []struct {
		name   string
		rule   Rule
		engine string
		role   string
		fires  bool
	}{
		{"engine matches", mem, "redis", "primary", true},
		{"other engine", mem, "mysql", "primary", false},
		{"role matches", withRole(mem, "primary"), "redis", "primary", true},
		{"other role", withRole(mem, "replica"), "redis", "primary", false},
		{"node without role is no replica", withRole(mem, "replica"), "redis", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEvaluator([]Rule{tc.rule}, genURL)
			got := e.Event(t0, batch(t, t0, "acme", "i-1", tc.engine,
				node("n-1", tc.role, map[string]int64{"used_memory": 90, "maxmemory": 100})))
			require.Equal(t, tc.fires, len(got) == 1)
		})
	}

	t.Run("a role change resolves the alert", func(t *testing.T) {
		r := lagRule()
		r.For = 0
		e := NewEvaluator([]Rule{r}, genURL)
		require.Len(t, e.Event(t0, batch(t, t0, "acme", "i-1", "mysql", node("n-2", "replica", lag(40)))), 1)
		got := e.Event(t0.Add(time.Minute), batch(t, t0, "acme", "i-1", "mysql", node("n-2", "primary", lag(40))))
		require.Len(t, got, 1)
		require.Equal(t, alert.StateResolved, got[0].State)
	})
}

func withRole(r Rule, role string) Rule { r.Role = role; return r }

func TestStaleSeriesResolveOnTick(t *testing.T) {
	r := lagRule()
	r.For = 0
	e := NewEvaluator([]Rule{r}, genURL)
	require.Len(t, e.Event(t0, batch(t, t0, "acme", "i-1", "mysql", node("n-2", "replica", lag(40)))), 1)
	require.Empty(t, e.Tick(t0.Add(5*time.Minute), 5*time.Minute), "not stale yet")
	got := e.Tick(t0.Add(5*time.Minute+time.Second), 5*time.Minute)
	require.Len(t, got, 1)
	require.Equal(t, alert.StateResolved, got[0].State)
	require.Equal(t, "n-2", got[0].Labels["node"])
	require.Empty(t, e.Tick(t0.Add(time.Hour), 5*time.Minute), "resolved once")
}

func nodeDown() Rule {
	return Rule{ID: "node-down", Name: "NodeDown", Kind: KindEvent, On: []string{events.TypeNodeDown},
		ResolveOn: []string{events.TypeNodeUp}, Labels: map[string]string{"severity": "critical"},
		Annotations: map[string]string{"description": "{{ $labels.node }}: {{ $labels.reason }}"}}
}

func transition(t *testing.T, typ string, at time.Time, nodeID, role string) eventbus.Event {
	return envelope(t, typ, at, events.NodeTransition{InstanceID: "i-1", TenantID: "acme", NodeID: nodeID,
		Engine: "mysql", Role: role, Status: "down", Reason: "refused", ProbedAt: at})
}

func TestEventFireAndResolve(t *testing.T) {
	e := NewEvaluator([]Rule{nodeDown()}, genURL)
	got := e.Event(t0.Add(time.Second), transition(t, events.TypeNodeDown, t0, "n-1", "primary"))
	require.Len(t, got, 1)
	a := got[0]
	require.Equal(t, alert.StateFiring, a.State)
	require.Equal(t, t0, a.StartsAt, "the event's time, not the consumer's")
	require.Equal(t, alert.LabelSet{"alertname": "NodeDown", "severity": "critical", "tenant": "acme",
		"instance": "i-1", "node": "n-1", "role": "primary", "engine": "mysql", "rule": "node-down"}, a.Labels)
	require.Equal(t, "n-1: refused", a.Annotations["description"], "payload fields reach the templates")

	require.Empty(t, e.Event(t0.Add(2*time.Second), transition(t, events.TypeNodeDown, t0.Add(time.Second), "n-1", "primary")),
		"a repeat changes nothing")
	require.Empty(t, e.Event(t0.Add(3*time.Second), transition(t, events.TypeNodeUp, t0.Add(2*time.Second), "n-2", "replica")),
		"another node's up resolves nothing")

	// The node came back as a replica (a failover happened meanwhile): the
	// alert is still the same node's.
	got = e.Event(t0.Add(time.Minute), transition(t, events.TypeNodeUp, t0.Add(50*time.Second), "n-1", "replica"))
	require.Len(t, got, 1)
	require.Equal(t, alert.StateResolved, got[0].State)
	require.Equal(t, t0.Add(50*time.Second), got[0].EndsAt)
	require.Equal(t, a.Labels, got[0].Labels, "resolved with the labels it fired with")

	require.Len(t, e.Event(t0.Add(2*time.Minute), transition(t, events.TypeNodeDown, t0.Add(2*time.Minute), "n-1", "replica")), 1,
		"down again fires again")
}

func failoverRule() Rule {
	return Rule{ID: "failover-happened", Name: "FailoverHappened", Kind: KindEvent,
		On: []string{events.TypeFailoverCompleted}, ResolveAfter: 15 * time.Minute,
		Labels: map[string]string{"severity": "warning"}}
}

func recovery(t *testing.T, at time.Time, id string) eventbus.Event {
	return envelope(t, events.TypeFailoverCompleted, at, events.Recovery{RecoveryID: id, InstanceID: "i-1",
		TenantID: "acme", Engine: "mysql", Kind: events.RecoveryAutomatic, Problem: "DeadPrimary", State: "completed",
		OldPrimary: "n-1", NewPrimary: "n-2", DetectedAt: at})
}

func TestEventAutoResolve(t *testing.T) {
	e := NewEvaluator([]Rule{failoverRule()}, genURL)
	got := e.Event(t0, recovery(t, t0, "r-1"))
	require.Len(t, got, 1)
	require.Equal(t, "r-1", got[0].Labels["recovery_id"])
	require.NotContains(t, got[0].Labels, "node", "a failover alert is not the old primary's (NodeDown would inhibit it)")
	require.Len(t, e.Event(t0.Add(time.Minute), recovery(t, t0.Add(time.Minute), "r-2")), 1, "each recovery is its own alert")

	require.Empty(t, e.Tick(t0.Add(15*time.Minute-time.Second), time.Hour))
	got = e.Tick(t0.Add(15*time.Minute), time.Hour)
	require.Len(t, got, 1)
	require.Equal(t, alert.StateResolved, got[0].State)
	require.Equal(t, "r-1", got[0].Labels["recovery_id"])
	require.Len(t, e.Tick(t0.Add(16*time.Minute), time.Hour), 1)

	require.Empty(t, e.Event(t0.Add(2*time.Hour), recovery(t, t0, "r-3")),
		"a replayed event older than its alert's life does not fire")
}

func TestEventMatch(t *testing.T) {
	r80 := Rule{ID: "budget-80", Name: "Budget", Kind: KindEvent, On: []string{events.TypeMeteringBudgetThreshold},
		Match: map[string]string{"threshold_percent": "80"}, ResolveAfter: 24 * time.Hour}
	rFc := Rule{ID: "budget-forecast", Name: "Budget", Kind: KindEvent, On: []string{events.TypeMeteringBudgetThreshold},
		Match: map[string]string{"kind": "forecast", "threshold_percent": "100"}}
	cases := []struct {
		name      string
		percent   int
		kind      string
		wantRules []string
	}{
		{"80 actual", 80, "actual", []string{"budget-80"}},
		{"80 forecast", 80, "forecast", []string{"budget-80"}},
		{"100 forecast", 100, "forecast", []string{"budget-forecast"}},
		{"100 actual", 100, "actual", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEvaluator([]Rule{r80, rFc}, genURL)
			got := e.Event(t0, envelope(t, events.TypeMeteringBudgetThreshold, t0, events.BudgetThreshold{
				TenantID: "acme", Month: "2026-12", Kind: tc.kind, ThresholdPercent: tc.percent,
				Budget: "100.00", Actual: "81.00", Forecast: "120.00", Currency: "USD", OccurredAt: t0}))
			var ids []string
			for _, a := range got {
				ids = append(ids, a.Labels["rule"])
				require.Equal(t, "2026-12", a.Labels["month"])
				require.Equal(t, tc.kind, a.Labels["kind"])
				require.Equal(t, "acme", a.Labels["tenant"])
			}
			require.Equal(t, tc.wantRules, ids)
		})
	}
}

func TestInstanceDeletionResolvesItsAlerts(t *testing.T) {
	r := lagRule()
	r.For = 0
	e := NewEvaluator([]Rule{r, nodeDown()}, genURL)
	require.Len(t, e.Event(t0, batch(t, t0, "acme", "i-1", "mysql", node("n-2", "replica", lag(40)))), 1)
	require.Len(t, e.Event(t0, transition(t, events.TypeNodeDown, t0, "n-1", "primary")), 1)
	other := envelope(t, events.TypeNodeDown, t0, events.NodeTransition{InstanceID: "i-2", TenantID: "acme", NodeID: "n-9"})
	require.Len(t, e.Event(t0, other), 1)

	got := e.Event(t0.Add(time.Minute), envelope(t, events.TypeInstanceDeleted, t0.Add(time.Minute),
		events.Instance{InstanceID: "i-1", TenantID: "acme", State: "deleted"}))
	require.Len(t, got, 2)
	for _, a := range got {
		require.Equal(t, alert.StateResolved, a.State)
		require.Equal(t, "i-1", a.Labels["instance"])
	}
	require.Empty(t, e.Tick(t0.Add(2*time.Minute), time.Hour), "i-2's alert stays, i-1's are gone")
	require.Len(t, e.Event(t0.Add(time.Hour), envelope(t, events.TypeInstanceDeleted, t0.Add(time.Hour),
		events.Instance{InstanceID: "i-2"})), 1)
}

func TestRestore(t *testing.T) {
	r := lagRule()
	fd := failoverRule()
	e := NewEvaluator([]Rule{r, nodeDown(), fd}, genURL)
	firing := func(rule string, labels alert.LabelSet, startsAt time.Time, state alert.State) *alert.Alert {
		labels["rule"] = rule
		return &alert.Alert{Labels: labels, StartsAt: startsAt, State: state, Rule: rule}
	}
	e.Restore([]*alert.Alert{
		firing("replica-lag", alert.LabelSet{"alertname": "ReplicaLag", "tenant": "acme", "instance": "i-1", "node": "n-2",
			"role": "replica", "engine": "mysql"}, t0, alert.StateFiring),
		firing("replica-lag", alert.LabelSet{"alertname": "ReplicaLag", "tenant": "acme", "instance": "i-1", "node": "n-3",
			"role": "replica", "engine": "mysql"}, t0.Add(30*time.Minute), alert.StatePending),
		firing("node-down", alert.LabelSet{"alertname": "NodeDown", "tenant": "acme", "instance": "i-1", "node": "n-1",
			"role": "primary"}, t0, alert.StateFiring),
		firing("failover-happened", alert.LabelSet{"alertname": "FailoverHappened", "tenant": "acme", "instance": "i-1",
			"recovery_id": "r-1", "kind": "automatic", "engine": "mysql"}, t0.Add(20*time.Minute), alert.StateFiring),
		firing("gone-rule", alert.LabelSet{"alertname": "Gone", "instance": "i-1"}, t0, alert.StateFiring),
		firing("replica-lag", alert.LabelSet{"instance": "i-1", "node": "n-4"}, t0, alert.StateResolved),
	})
	now := t0.Add(31 * time.Minute)

	// The firing lag alert resolves when its condition no longer holds; the
	// pending one fires once its For elapsed from the stored StartsAt.
	half := t0.Add(30*time.Minute + 30*time.Second)
	got := e.Event(half, batch(t, half, "acme", "i-1", "mysql",
		node("n-2", "replica", lag(0)), node("n-3", "replica", lag(50))))
	require.Len(t, got, 1)
	require.Equal(t, "n-2", got[0].Labels["node"])
	require.Equal(t, alert.StateResolved, got[0].State)
	require.Equal(t, t0, got[0].StartsAt)
	got = e.Event(now, batch(t, now, "acme", "i-1", "mysql", node("n-3", "replica", lag(50))))
	require.Len(t, got, 1)
	require.Equal(t, alert.StateFiring, got[0].State)
	require.Equal(t, t0.Add(30*time.Minute), got[0].StartsAt)

	got = e.Event(now, transition(t, events.TypeNodeUp, now, "n-1", "primary"))
	require.Len(t, got, 1, "the restored node-down alert resolves on the node's up")
	require.Equal(t, "NodeDown", got[0].Labels["alertname"])

	got = e.Tick(now, 5*time.Minute)
	require.Len(t, got, 1, "the alert of a rule that no longer exists resolves")
	require.Equal(t, "gone-rule", got[0].Labels["rule"])

	got = e.Tick(t0.Add(35*time.Minute), 5*time.Minute)
	require.Len(t, got, 1, "the restored failover alert resolves 15m after it started")
	require.Equal(t, "r-1", got[0].Labels["recovery_id"])
}

func TestRestoredSampleSeriesGoStale(t *testing.T) {
	e := NewEvaluator([]Rule{lagRule()}, genURL)
	e.Restore([]*alert.Alert{{Labels: alert.LabelSet{"rule": "replica-lag", "instance": "i-1", "node": "n-2"},
		StartsAt: t0, State: alert.StateFiring, Rule: "replica-lag"}})
	later := t0.Add(24 * time.Hour)
	require.Empty(t, e.Tick(later, 5*time.Minute), "the stale clock starts at the first tick after a restore")
	require.Len(t, e.Tick(later.Add(5*time.Minute+time.Second), 5*time.Minute), 1)
}

func TestTenantRulesAndOverrides(t *testing.T) {
	mine := Rule{ID: "my-lag", Tenant: "acme", Name: "MyLag", Kind: KindSample, Expr: "replication_lag_seconds > 1"}
	platform := lagRule()
	platform.For = 0
	platform.Action = ActionRebuildReplica
	sample := func(tenant string, at time.Time) eventbus.Event {
		return batch(t, at, tenant, "i-"+tenant, "mysql", node("n-"+tenant, "replica", lag(40)))
	}

	e := NewEvaluator([]Rule{platform, mine}, genURL)
	got := e.Event(t0, sample("acme", t0))
	require.Len(t, got, 2)
	require.Equal(t, "replica-lag", got[0].Labels["rule"])
	require.Equal(t, "my-lag", got[1].Labels["rule"])
	got = e.Event(t0, sample("globex", t0))
	require.Len(t, got, 1, "a tenant's rule never sees another tenant's nodes")
	require.Equal(t, "replica-lag", got[0].Labels["rule"])
	require.Empty(t, got[0].Action)

	// acme switches the platform rule off and globex enables its action.
	e.SetRules([]Rule{platform, mine,
		{ID: "replica-lag", Tenant: "acme", Disabled: true},
		{ID: "replica-lag", Tenant: "globex", ActionEnabled: true}})
	got = e.Tick(t0.Add(time.Second), time.Hour)
	require.Len(t, got, 1, "acme's alert of the rule it disabled resolves")
	require.Equal(t, "acme", got[0].Labels["tenant"])
	require.Equal(t, "replica-lag", got[0].Labels["rule"])
	require.Empty(t, e.Event(t0.Add(time.Minute), sample("acme", t0)), "my-lag keeps firing, replica-lag is off")

	e.SetRules([]Rule{platform, {ID: "replica-lag", Tenant: "globex", ActionEnabled: true}})
	got = e.Tick(t0.Add(2*time.Minute), time.Hour)
	require.Len(t, got, 1, "the deleted rule's alert resolves")
	require.Equal(t, "my-lag", got[0].Labels["rule"])
	got = e.Event(t0.Add(3*time.Minute), batch(t, t0, "globex", "i-globex-2", "mysql", node("n-7", "replica", lag(40))))
	require.Len(t, got, 1)
	require.Equal(t, ActionRebuildReplica, got[0].Action, "the tenant enabled the action")
}

func TestInvalidRulesAreSkipped(t *testing.T) {
	bad := Rule{ID: "bad", Name: "Bad", Kind: KindSample, Expr: "nonsense"}
	r := lagRule()
	r.For = 0
	e := NewEvaluator([]Rule{bad, r}, genURL)
	require.Len(t, e.Invalid(), 1)
	require.Len(t, e.Event(t0, batch(t, t0, "", "i-1", "mysql", node("n-1", "replica", lag(40)))), 1)
	require.Empty(t, e.Event(t0, eventbus.Event{Type: events.TypeNodeSampled, Data: []byte("{not json")}))
	require.Empty(t, e.Event(t0, eventbus.Event{Type: events.TypeNodeDown, Data: []byte("[1]")}))
}

func TestRestoreTenantRuleAndDefaultSeverity(t *testing.T) {
	mine := Rule{ID: "my-lag", Tenant: "acme", Name: "MyLag", Kind: KindSample, Expr: "replication_lag_seconds > 1"}
	e := NewEvaluator([]Rule{mine}, genURL)
	e.Restore([]*alert.Alert{{Labels: alert.LabelSet{"alertname": "MyLag", "severity": "warning", "rule": "my-lag",
		"tenant": "acme", "instance": "i-1", "node": "n-1"}, StartsAt: t0, State: alert.StateFiring, Rule: "my-lag"}})
	require.Empty(t, e.Tick(t0, time.Minute), "the tenant's rule still exists")
	got := e.Event(t0.Add(time.Second), batch(t, t0, "acme", "i-1", "mysql", node("n-1", "replica", lag(0))))
	require.Len(t, got, 1)
	require.Equal(t, alert.StateResolved, got[0].State)
	require.Equal(t, t0, got[0].StartsAt)

	got = e.Event(t0.Add(2*time.Second), batch(t, t0, "acme", "i-1", "mysql", node("n-1", "replica", lag(5))))
	require.Len(t, got, 1)
	require.Equal(t, "warning", got[0].Labels["severity"], "a rule without severity gets warning")
}
