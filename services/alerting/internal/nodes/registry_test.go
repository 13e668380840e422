package nodes

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
)

// clock is a fake clock safe for concurrent reads.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock        { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func mustEvent(t *testing.T, typ, aggregate string, payload any) eventbus.Event {
	t.Helper()
	ev, err := eventbus.NewEvent(typ, "/canopy/test", aggregate, payload)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func mysqlInstance(token int64, nodes ...events.Node) events.Instance {
	return events.Instance{
		InstanceID: "i1", TenantID: "t1", Name: "db", Engine: "mysql", State: "ready",
		Nodes: nodes, FailoverToken: token, OccurredAt: t0,
	}
}

var (
	primary = events.Node{ID: "n1", Role: "primary", AZ: "az1", Region: "r1", Host: "h1", Address: "10.0.0.1:3306"}
	replica = events.Node{ID: "n2", Role: "replica", AZ: "az2", Region: "r1", Host: "h2", Address: "10.0.0.2:3306"}
)

func samples(instanceID string, at time.Time, ns ...events.NodeSample) events.SampleBatch {
	for i := range ns {
		if ns[i].At.IsZero() {
			ns[i].At = at
		}
	}
	return events.SampleBatch{InstanceID: instanceID, TenantID: "t1", Engine: "mysql", Nodes: ns, WindowEnd: at}
}

func TestTopologyFromInstanceEvents(t *testing.T) {
	t.Parallel()
	r := NewWithOptions(Options{Now: newClock(t0).Now})
	r.Event(mustEvent(t, events.TypeInstanceReady, "i1", mysqlInstance(0, primary, replica)))

	got, ok := r.Lookup("n2")
	want := Node{Tenant: "t1", Instance: "i1", Node: "n2", Role: "replica", AZ: "az2", Region: "r1", Engine: "mysql", Address: "10.0.0.2:3306"}
	if !ok || got != want {
		t.Fatalf("Lookup(n2) = %+v, %v; want %+v", got, ok, want)
	}

	// A failover swaps the roles; an updated event with a higher token says so.
	p, rep := primary, replica
	p.Role, rep.Role = "replica", "primary"
	r.Event(mustEvent(t, events.TypeInstanceUpdated, "i1", mysqlInstance(1, p, rep)))
	if n, _ := r.Lookup("n1"); n.Role != "replica" {
		t.Fatalf("after failover n1 role = %q, want replica", n.Role)
	}
	// A replayed older event (token 0) does not undo it.
	r.Event(mustEvent(t, events.TypeInstanceUpdated, "i1", mysqlInstance(0, primary, replica)))
	if n, _ := r.Lookup("n1"); n.Role != "replica" {
		t.Fatalf("older topology applied: n1 role = %q", n.Role)
	}
	// A node leaving the topology is forgotten.
	r.Event(mustEvent(t, events.TypeInstanceUpdated, "i1", mysqlInstance(1, p)))
	if _, ok := r.Lookup("n2"); ok {
		t.Fatal("n2 still known after it left the topology")
	}
	// Deleted removes the instance.
	r.Event(mustEvent(t, events.TypeInstanceDeleted, "i1", mysqlInstance(1)))
	if _, ok := r.Lookup("n1"); ok {
		t.Fatal("n1 still known after its instance was deleted")
	}
	if tg := r.Targets("", true); len(tg) != 0 {
		t.Fatalf("targets after delete: %+v", tg)
	}
}

func TestEventIgnoresOtherTypesAndReportsBadPayloads(t *testing.T) {
	t.Parallel()
	r := New()
	r.Event(mustEvent(t, events.TypeNodeDown, "i1", events.NodeTransition{InstanceID: "i1", NodeID: "n1"}))
	if _, ok := r.Lookup("n1"); ok {
		t.Fatal("a health.node.down event created a node")
	}
	bad := eventbus.Event{Type: events.TypeInstanceReady, ID: "x", Data: []byte("{not json")}
	if err := r.Apply(bad); err == nil {
		t.Fatal("Apply accepted a payload that is not JSON")
	}
	r.Event(bad) // must not panic
}

func TestSamples(t *testing.T) {
	t.Parallel()
	clk := newClock(t0)
	r := NewWithOptions(Options{Now: clk.Now})
	r.Event(mustEvent(t, events.TypeInstanceReady, "i1", mysqlInstance(0, primary, replica)))
	r.Event(mustEvent(t, events.TypeNodeSampled, "i1", samples("i1", t0,
		events.NodeSample{NodeID: "n1", Role: "primary", Status: "up", Metrics: map[string]int64{"connected_clients": 10}},
		events.NodeSample{NodeID: "n9", Role: "replica", Status: "up", Metrics: map[string]int64{"x": 1}},
	)))
	s, ok := r.Latest("n1")
	if !ok || s.Metrics["connected_clients"] != 10 || s.Status != "up" || !s.At.Equal(t0) {
		t.Fatalf("Latest(n1) = %+v, %v", s, ok)
	}
	if n, _ := r.Lookup("n1"); !n.SampledAt.Equal(t0) {
		t.Fatalf("SampledAt = %v", n.SampledAt)
	}
	if _, ok := r.Lookup("n9"); ok {
		t.Fatal("a sample added a node the topology does not have")
	}
	// An older sample arriving late does not replace the newer one.
	r.Event(mustEvent(t, events.TypeNodeSampled, "i1", samples("i1", t0.Add(-time.Minute),
		events.NodeSample{NodeID: "n1", Status: "down", Metrics: map[string]int64{"connected_clients": 1}})))
	if s, _ := r.Latest("n1"); s.Metrics["connected_clients"] != 10 {
		t.Fatalf("older sample replaced the newer: %+v", s)
	}
	// Unsampled for 10 minutes: still listed.
	clk.Advance(10 * time.Minute)
	if _, ok := r.Lookup("n2"); !ok {
		t.Fatal("unsampled node not listed")
	}
	if tg := r.Targets("t1", false); len(tg) != 2 {
		t.Fatalf("targets = %+v, want both nodes", tg)
	}
}

func TestSamplesBeforeTopologyAndAfterDelete(t *testing.T) {
	t.Parallel()
	r := NewWithOptions(Options{Now: newClock(t0).Now})
	// The service started after the instance was ready: samples alone make
	// the node known (labels from the batch), without an address.
	r.Event(mustEvent(t, events.TypeNodeSampled, "i1", samples("i1", t0,
		events.NodeSample{NodeID: "n1", Role: "primary", Status: "up"})))
	n, ok := r.Lookup("n1")
	if !ok || n.Tenant != "t1" || n.Instance != "i1" || n.Engine != "mysql" || n.Role != "primary" {
		t.Fatalf("Lookup(n1) = %+v, %v", n, ok)
	}
	if tg := r.Targets("", true); len(tg) != 0 {
		t.Fatalf("a node without address listed as a target: %+v", tg)
	}
	// The topology then fills in az, region and address and keeps the sample.
	r.Event(mustEvent(t, events.TypeInstanceUpdated, "i1", mysqlInstance(0, primary)))
	if n, _ := r.Lookup("n1"); n.AZ != "az1" || n.Address != primary.Address || !n.SampledAt.Equal(t0) {
		t.Fatalf("after topology: %+v", n)
	}
	// After the delete, a batch still in flight does not bring it back.
	r.Event(mustEvent(t, events.TypeInstanceDeleted, "i1", mysqlInstance(0)))
	r.Event(mustEvent(t, events.TypeNodeSampled, "i1", samples("i1", t0.Add(time.Second),
		events.NodeSample{NodeID: "n1", Status: "up"})))
	if _, ok := r.Lookup("n1"); ok {
		t.Fatal("a late sample resurrected a deleted instance")
	}
	r.Event(mustEvent(t, events.TypeInstanceUpdated, "i1", mysqlInstance(0, primary)))
	if _, ok := r.Lookup("n1"); ok {
		t.Fatal("a replayed instance event resurrected a deleted instance")
	}
}

func TestTargetsHTTPSD(t *testing.T) {
	t.Parallel()
	r := New()
	r.Event(mustEvent(t, events.TypeInstanceReady, "i1", mysqlInstance(0, primary, replica)))
	other := events.Instance{InstanceID: "i2", TenantID: "t2", Engine: "redis",
		Nodes: []events.Node{{ID: "r1", Role: "primary", Address: "10.0.1.1:6379"}}}
	r.Event(mustEvent(t, events.TypeInstanceReady, "i2", other))

	body, err := json.Marshal(r.Targets("t1", false))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("tenant t1 targets: %s", body)
	}
	first := got[0]
	if tg := first["targets"].([]any); len(tg) != 1 || tg[0] != "10.0.0.1:3306" {
		t.Fatalf("targets field: %s", body)
	}
	labels := first["labels"].(map[string]any)
	for k, v := range map[string]string{
		"tenant": "t1", "instance": "i1", "node": "n1", "role": "primary", "az": "az1", "region": "r1", "engine": "mysql",
		"__meta_canopy_tenant": "t1", "__meta_canopy_node": "n1", "__meta_canopy_address": "10.0.0.1:3306",
	} {
		if labels[k] != v {
			t.Errorf("label %s = %v, want %q (%s)", k, labels[k], v, body)
		}
	}
	if all := r.Targets("", true); len(all) != 3 {
		t.Fatalf("all targets = %d, want 3", len(all))
	}
	if t2 := r.Targets("t2", false); len(t2) != 1 || t2[0].Labels["tenant"] != "t2" {
		t.Fatalf("t2 targets = %+v", t2)
	}
	if none := r.Targets("t3", false); len(none) != 0 {
		t.Fatalf("t3 targets = %+v", none)
	}
	if _, hasAZ := r.Targets("t2", false)[0].Labels["az"]; hasAZ {
		t.Fatal("empty az exported as a plain label")
	}
}

func TestCollector(t *testing.T) {
	t.Parallel()
	clk := newClock(t0)
	r := NewWithOptions(Options{Now: clk.Now})
	r.Event(mustEvent(t, events.TypeInstanceReady, "i1", mysqlInstance(0, primary, replica)))
	r.Event(mustEvent(t, events.TypeNodeSampled, "i1", samples("i1", t0,
		events.NodeSample{NodeID: "n1", Status: "up", Metrics: map[string]int64{"connected_clients": 10, "max_connections": 151}},
		events.NodeSample{NodeID: "n2", Status: "down", Metrics: map[string]int64{"Replication.Lag-Seconds": 3, "up": 7}},
	)))
	c := r.Collector()
	want := `
# HELP canopy_node_connected_clients Latest value of the node's connected_clients sample (canopy.health.samples.v1).
# TYPE canopy_node_connected_clients gauge
canopy_node_connected_clients{az="az1",engine="mysql",instance="i1",node="n1",region="r1",role="primary",tenant="t1"} 10
# HELP canopy_node_max_connections Latest value of the node's max_connections sample (canopy.health.samples.v1).
# TYPE canopy_node_max_connections gauge
canopy_node_max_connections{az="az1",engine="mysql",instance="i1",node="n1",region="r1",role="primary",tenant="t1"} 151
# HELP canopy_node_replication_lag_seconds Latest value of the node's replication_lag_seconds sample (canopy.health.samples.v1).
# TYPE canopy_node_replication_lag_seconds gauge
canopy_node_replication_lag_seconds{az="az2",engine="mysql",instance="i1",node="n2",region="r1",role="replica",tenant="t1"} 3
# HELP canopy_node_up 1 when the node's latest sample is fresh and says up, else 0.
# TYPE canopy_node_up gauge
canopy_node_up{az="az1",engine="mysql",instance="i1",node="n1",region="r1",role="primary",tenant="t1"} 1
canopy_node_up{az="az2",engine="mysql",instance="i1",node="n2",region="r1",role="replica",tenant="t1"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	// It registers on a real registry and gathers without error.
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}

	// Ten minutes without samples: the nodes stay, the stale gauges go.
	clk.Advance(10 * time.Minute)
	stale := `
# HELP canopy_node_up 1 when the node's latest sample is fresh and says up, else 0.
# TYPE canopy_node_up gauge
canopy_node_up{az="az1",engine="mysql",instance="i1",node="n1",region="r1",role="primary",tenant="t1"} 0
canopy_node_up{az="az2",engine="mysql",instance="i1",node="n2",region="r1",role="replica",tenant="t1"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(stale)); err != nil {
		t.Fatal(err)
	}
}

func TestSanitizeMetricName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"used_memory":          "used_memory",
		"Replication.Lag-Secs": "replication_lag_secs",
		"a:b":                  "a_b",
		"9lives":               "9lives",
		"---":                  "",
		"":                     "",
	} {
		if got := SanitizeMetricName(in); got != want {
			t.Errorf("SanitizeMetricName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	r := New()
	c := r.Collector()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				r.Event(mustEvent(t, events.TypeInstanceUpdated, "i1", mysqlInstance(int64(j), primary, replica)))
				r.Event(mustEvent(t, events.TypeNodeSampled, "i1", samples("i1", time.Now(),
					events.NodeSample{NodeID: "n1", Status: "up", Metrics: map[string]int64{"m": int64(j)}})))
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				r.Targets("", true)
				r.Lookup("n1")
				testutil.CollectAndCount(c)
			}
		}()
	}
	wg.Wait()
	if _, ok := r.Lookup("n1"); !ok {
		t.Fatal("n1 lost under concurrent use")
	}
}

// An instance's nodes are known from its topology, not from samples, and
// are gone with the instance.
func TestInstanceNodes(t *testing.T) {
	r := New()
	if got := r.InstanceNodes("i1"); got != nil {
		t.Fatalf("unknown instance: %v", got)
	}
	r.Event(mustEvent(t, events.TypeInstanceReady, "i1", mysqlInstance(1, replica, primary)))
	if got := r.InstanceNodes("i1"); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("InstanceNodes = %v, want [n1 n2]", got)
	}
	r.Event(mustEvent(t, events.TypeInstanceDeleted, "i1", mysqlInstance(2)))
	if got := r.InstanceNodes("i1"); got != nil {
		t.Fatalf("deleted instance: %v", got)
	}
}
