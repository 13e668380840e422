package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/memstore"
	"github.com/canopy-platform/canopy/services/failover/internal/metrics"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery/fakenodes"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// sample is one series of a gathered family: a counter's or gauge's value,
// or a histogram's count and sum.
type sample struct {
	value, count, sum float64
}

// gather returns the series of family name whose labels include want; the
// zero sample when there is none.
func gather(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) sample {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			return value(m)
		}
	}
	return sample{}
}

func value(m *dto.Metric) sample {
	switch {
	case m.Counter != nil:
		return sample{value: m.GetCounter().GetValue()}
	case m.Gauge != nil:
		return sample{value: m.GetGauge().GetValue()}
	case m.Histogram != nil:
		return sample{count: float64(m.GetHistogram().GetSampleCount()), sum: m.GetHistogram().GetSampleSum()}
	}
	return sample{}
}

// TestRecoveriesCounted runs real recoveries (the recoverer on the
// in-memory store and fake nodes) through the decorated ports: a completed
// failover moves the started and completed counters and the three
// histograms; a held-off one counts as started and failed; another
// actor's lease is a conflict; looks at the primary count by result.
func TestRecoveriesCounted(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	require.NoError(t, err)

	in := topology.Instance{ID: "i1", Tenant: "t1", Engine: topology.EngineMySQL, Region: "r1", Nodes: []topology.Node{
		{ID: "a", Address: "h:1", Region: "r1", Role: topology.RolePrimary},
		{ID: "b", Address: "h:2", Region: "r1", Role: topology.RoleReplica},
		{ID: "c", Address: "h:3", Region: "r1", Role: topology.RoleReplica},
	}}
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	raw := memstore.New(now)
	st := m.Store(raw)
	cluster := fakenodes.New(in)
	nodes := m.Nodes(in.Engine, cluster)
	rec, err := recovery.New(recovery.Config{Holder: "r1"}, recovery.Deps{Store: st,
		Nodes: map[topology.Engine]topology.Nodes{in.Engine: nodes}, Now: now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)

	primary := func(result string) float64 {
		return gather(t, reg, "canopy_failover_primary_checks_total", map[string]string{"engine": "mysql", "result": result}).value
	}
	require.Zero(t, primary(metrics.ResultWritable))
	nodes.Observe(ctx, in, in.Nodes[0])
	nodes.Observe(ctx, in, in.Nodes[1]) // a replica: timed, not a primary check
	require.Equal(t, 1.0, primary(metrics.ResultWritable))
	require.Equal(t, 2.0, gather(t, reg, "canopy_failover_node_observe_seconds", map[string]string{"engine": "mysql"}).count)

	cluster.Kill("a")
	nodes.Observe(ctx, in, in.Nodes[0])
	require.Equal(t, 1.0, primary(metrics.ResultUnreachable))

	dead := analysis.Problem{Code: analysis.DeadPrimary, Node: "a", Action: analysis.ActionFailover, Since: now().Add(-300 * time.Millisecond), DetectedAt: now()}
	done, err := rec.Failover(ctx, in, dead)
	require.NoError(t, err)
	require.Equal(t, topology.StateCompleted, done.State)

	recoveries := func(state string) float64 {
		return gather(t, reg, "canopy_failover_recoveries_total", map[string]string{"engine": "mysql", "kind": "automatic", "state": state}).value
	}
	require.Equal(t, 1.0, recoveries("started"))
	require.Equal(t, 1.0, recoveries("completed"))
	require.Zero(t, recoveries("failed"))
	labels := map[string]string{"engine": "mysql", "kind": "automatic"}
	rto := gather(t, reg, "canopy_failover_recovery_rto_seconds", labels)
	require.Equal(t, sample{count: 1, sum: 0.3}, rto, "RTO of 300 ms on a frozen clock")
	require.Equal(t, sample{count: 1, sum: 0.3}, gather(t, reg, "canopy_failover_recovery_detection_seconds", labels))
	require.Equal(t, 1.0, gather(t, reg, "canopy_failover_recovery_promotion_seconds", labels).count)

	// The new primary is looked at as the primary now.
	moved := recovery.Apply(in, done.Roles)
	b, _ := moved.Primary()
	nodes.Observe(ctx, moved, b)
	require.Equal(t, 2.0, primary(metrics.ResultWritable))

	// Within the hold-off, unacknowledged: recorded, then failed.
	cluster.Kill(b.ID)
	_, err = rec.Failover(ctx, moved, analysis.Problem{Code: analysis.DeadPrimary, Node: b.ID, Action: analysis.ActionFailover, DetectedAt: now()})
	require.ErrorIs(t, err, topology.ErrHoldOff)
	require.Equal(t, 2.0, recoveries("started"))
	require.Equal(t, 1.0, recoveries("failed"))
	require.Equal(t, 1.0, gather(t, reg, "canopy_failover_recovery_rto_seconds", labels).count, "a failed recovery has no RTO")

	// Another actor's live lease.
	_, err = st.Acquire(ctx, "i9", "other", time.Minute)
	require.NoError(t, err)
	require.Zero(t, gather(t, reg, "canopy_failover_lease_conflicts_total", nil).value)
	_, err = st.Acquire(ctx, "i9", "r1", time.Minute)
	require.ErrorIs(t, err, topology.ErrLeaseHeld)
	require.Equal(t, 1.0, gather(t, reg, "canopy_failover_lease_conflicts_total", nil).value)
}

// ownership is a watcher stand-in that records what reaches it.
type ownership struct {
	mu    sync.Mutex
	owned []string
}

func (o *ownership) Own(in topology.Instance) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.owned = append(o.owned, in.ID)
}
func (o *ownership) Disown(string)                 {}
func (o *ownership) Trigger(string)                {}
func (o *ownership) Update(topology.Instance)      {}
func (o *ownership) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// TestWatchedInstances follows ownership: instances of a watched engine
// count once however often they are owned, a disowned one stops counting,
// and nothing counts once the watcher stopped.
func TestWatchedInstances(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	require.NoError(t, err)
	inner := &ownership{}
	w := m.Watcher(inner, topology.EngineMySQL, topology.EngineRedis)
	watched := func() float64 { return gather(t, reg, "canopy_failover_watched_instances", nil).value }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	w.Own(topology.Instance{ID: "i1", Engine: topology.EngineMySQL})
	w.Own(topology.Instance{ID: "i1", Engine: topology.EngineMySQL})
	w.Own(topology.Instance{ID: "i2", Engine: topology.EngineRedis})
	w.Own(topology.Instance{ID: "i3", Engine: "postgres"})
	require.Equal(t, 2.0, watched())
	require.Len(t, inner.owned, 4, "every call still reaches the watcher")
	w.Disown("i1")
	w.Disown("unknown")
	require.Equal(t, 1.0, watched())

	cancel()
	require.NoError(t, <-done)
	require.Zero(t, watched())
	w.Own(topology.Instance{ID: "i4", Engine: topology.EngineMySQL})
	require.Zero(t, watched(), "owned after the stop: not watched")
}

// TestNewRegistersOnce: the metrics are one service's; a second set on the
// same registry is refused rather than silently shared.
func TestNewRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := metrics.New(reg)
	require.NoError(t, err)
	_, err = metrics.New(reg)
	require.ErrorContains(t, err, "register failover metrics")
}
