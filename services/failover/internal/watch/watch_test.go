package watch_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/memstore"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery/fakenodes"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
	"github.com/canopy-platform/canopy/services/failover/internal/watch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counting wraps the real recoverer to count what the watcher asked.
type counting struct {
	*recovery.Recoverer
	failovers atomic.Int64
	heals     sync.Map // code → *atomic.Int64
}

func (c *counting) Failover(ctx context.Context, in topology.Instance, p analysis.Problem) (topology.Recovery, error) {
	c.failovers.Add(1)
	return c.Recoverer.Failover(ctx, in, p)
}

func (c *counting) Heal(ctx context.Context, in topology.Instance, p analysis.Problem) error {
	n, _ := c.heals.LoadOrStore(p.Code, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	return c.Recoverer.Heal(ctx, in, p)
}

func (c *counting) healed(code analysis.Code) int64 {
	n, ok := c.heals.Load(code)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

type env struct {
	in      topology.Instance
	nodes   *fakenodes.Cluster
	store   *memstore.Store
	rec     *counting
	w       *watch.Watcher
	observe atomic.Int64
}

func instance(engine topology.Engine) topology.Instance {
	return topology.Instance{ID: "i1", Tenant: "t1", Engine: engine, Region: "r1", Nodes: []topology.Node{
		{ID: "a", Address: "h:1", Region: "r1", Role: topology.RolePrimary},
		{ID: "b", Address: "h:2", Region: "r1", Role: topology.RoleReplica},
		{ID: "c", Address: "h:3", Region: "r1", Role: topology.RoleReplica},
	}}
}

// start runs a watcher over a fake instance until the test ends.
func start(t *testing.T, in topology.Instance) *env {
	t.Helper()
	e := &env{in: in, nodes: fakenodes.New(in), store: memstore.New(nil)}
	e.nodes.OnObserve(func(string) { e.observe.Add(1) })
	e.w, e.rec = e.watcher(t, "w1")
	return e
}

// watcher starts a watcher (one failover service replica) on e's nodes
// and store, stopped when the test ends.
func (e *env) watcher(t *testing.T, holder string) (*watch.Watcher, *counting) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := map[topology.Engine]topology.Nodes{e.in.Engine: e.nodes}
	r, err := recovery.New(recovery.Config{Holder: holder}, recovery.Deps{Store: e.store, Nodes: nodes, Logger: log})
	require.NoError(t, err)
	rec := &counting{Recoverer: r}
	w, err := watch.New(watch.Config{Interval: 5 * time.Millisecond, CheckTimeout: 50 * time.Millisecond, FullEvery: 40 * time.Millisecond, RetryAfter: 50 * time.Millisecond},
		watch.Deps{Nodes: nodes, Recoverer: rec, Logger: log})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("watcher did not stop")
		}
		require.Empty(t, e.nodes.Violations(), "two writable nodes at some moment")
	})
	return w, rec
}

// settle waits until the watcher has looked at nodes n more times, so
// that "nothing happened" is asserted after the watcher had every chance.
func (e *env) settle(t *testing.T, n int64) {
	t.Helper()
	target := e.observe.Load() + n
	require.Eventually(t, func() bool { return e.observe.Load() >= target }, 10*time.Second, time.Millisecond)
}

func (e *env) count(typ string) int {
	n := 0
	for _, ev := range e.store.Events() {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func TestDeadPrimaryOneFailoverThenRejoin(t *testing.T) {
	e := start(t, instance(topology.EngineMySQL))
	e.w.Own(e.in)
	e.settle(t, 30)
	require.Zero(t, e.rec.failovers.Load(), "healthy instance: nothing to do")
	for range 5 {
		require.NoError(t, e.nodes.Write("a"))
	}

	e.nodes.Kill("a")
	require.Eventually(t, func() bool { return e.count(events.TypeFailoverCompleted) == 1 }, 10*time.Second, time.Millisecond)
	e.settle(t, 200)
	require.Equal(t, int64(1), e.rec.failovers.Load(), "exactly one failover")
	require.Equal(t, 1, e.count(events.TypeFailoverStarted))
	require.Zero(t, e.count(events.TypeFailoverFailed))
	w := e.nodes.Writable()
	require.Len(t, w, 1)
	require.Equal(t, int64(5), e.nodes.Seq(w[0]))
	rec := e.store.Events()[1].Recovery
	require.Equal(t, string(analysis.DeadPrimary), rec.Problem)
	require.GreaterOrEqual(t, rec.RTOMS, rec.DetectionMS)

	// The old primary returns read-only: the watcher (following the new
	// roles without waiting for an Update) rejoins it.
	e.nodes.Restart("a")
	require.Eventually(t, func() bool { return e.count(events.TypeNodeRejoined) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, w[0], e.nodes.Source("a"))
	require.Equal(t, w, e.nodes.Writable(), "the old primary stays read-only")
	e.settle(t, 100)
	require.Equal(t, int64(1), e.rec.failovers.Load())
	require.Equal(t, 1, e.count(events.TypeNodeRejoined), "rejoined once")
}

func TestUnreachableButStreamingPrimaryIsLeftAlone(t *testing.T) {
	e := start(t, instance(topology.EngineRedis))
	e.w.Own(e.in)
	e.nodes.Hide("a", true)
	e.settle(t, 300)
	require.Zero(t, e.rec.failovers.Load())
	require.Empty(t, e.store.Events())
	require.Equal(t, []string{"a"}, e.nodes.Writable())
}

func TestPeriodicAnalysisHeals(t *testing.T) {
	e := start(t, instance(topology.EngineMySQL))
	e.w.Own(e.in)
	e.nodes.StopSQL("c")
	require.Eventually(t, func() bool { return e.rec.healed(analysis.ReplicationStopped) > 0 && e.nodes.Source("c") == "a" }, 10*time.Second, time.Millisecond)
	e.nodes.SetWritable("b", true) // a writable replica still streaming
	require.Eventually(t, func() bool { return len(e.nodes.Writable()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"a"}, e.nodes.Writable())
	require.Zero(t, e.rec.failovers.Load())
}

func TestDisownUpdateTrigger(t *testing.T) {
	e := start(t, instance(topology.EngineMySQL))
	e.w.Own(e.in)
	e.settle(t, 20)
	e.w.Disown(e.in.ID)
	e.nodes.Kill("a")
	before := e.observe.Load()
	e.w.Trigger(e.in.ID) // not owned any more: ignored
	e.w.Update(e.in)
	require.Equal(t, before, e.observe.Load(), "a disowned instance is not looked at")
	require.Zero(t, e.rec.failovers.Load())

	// Owned again after the primary came back read-only (and nobody
	// failed over meanwhile): the most advanced node gets its writes back.
	e.nodes.Restart("a")
	e.w.Own(e.in)
	require.Eventually(t, func() bool { return len(e.nodes.Writable()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"a"}, e.nodes.Writable(), "restarted read-only primary, most advanced: writes back on")
	require.Zero(t, e.rec.failovers.Load())
}

func TestTwoWatchersOneRecovery(t *testing.T) {
	for round := range 5 {
		e := start(t, instance(topology.EngineMySQL))
		w2, rec2 := e.watcher(t, "w2")
		e.w.Own(e.in)
		w2.Own(e.in)
		e.settle(t, 20)
		e.nodes.Kill("a")
		require.Eventually(t, func() bool { return e.count(events.TypeFailoverCompleted) == 1 }, 10*time.Second, time.Millisecond)
		e.settle(t, 300)
		require.Equal(t, 1, e.count(events.TypeFailoverStarted), "round %d: exactly one recovery recorded", round)
		require.Zero(t, e.count(events.TypeFailoverFailed), "round %d", round)
		require.Len(t, e.nodes.Writable(), 1)
		require.Equal(t, 1, e.nodes.Count("promote b")+e.nodes.Count("promote c"), "round %d: one promotion", round)
		t.Logf("round %d: failover calls w1=%d w2=%d", round, e.rec.failovers.Load(), rec2.failovers.Load())
	}
}

// TestHoldOffBacksOffUntilAcknowledged: a second failure within the
// hold-off is refused once (recorded failed), not retried on every check;
// acknowledging and triggering lets the watcher fail over at once.
func TestHoldOffBacksOffUntilAcknowledged(t *testing.T) {
	ctx := context.Background()
	e := start(t, instance(topology.EngineMySQL))
	e.w.Own(e.in)
	e.nodes.Kill("a")
	require.Eventually(t, func() bool { return e.count(events.TypeFailoverCompleted) == 1 }, 10*time.Second, time.Millisecond)
	first := e.store.Events()[1].Recovery

	e.nodes.Kill(first.Candidate)
	require.Eventually(t, func() bool { return e.count(events.TypeFailoverFailed) == 1 }, 10*time.Second, time.Millisecond)
	e.settle(t, 300)
	require.Equal(t, 1, e.count(events.TypeFailoverFailed), "held off once, then backed off")
	require.Empty(t, e.nodes.Writable())

	require.NoError(t, e.store.Acknowledge(ctx, e.in.ID, first.ID))
	e.w.Trigger(e.in.ID)
	require.Eventually(t, func() bool { return e.count(events.TypeFailoverCompleted) == 2 }, 10*time.Second, time.Millisecond)
	require.Len(t, e.nodes.Writable(), 1)
}

// TestWatcherFinishesCrashedRecovery: another actor crashed at each step of
// a failover; the watcher that owns the instance finishes or rolls back its
// recovery once the lease lapses, and the instance ends with one primary.
func TestWatcherFinishesCrashedRecovery(t *testing.T) {
	for _, point := range recovery.Points() {
		t.Run(string(point), func(t *testing.T) {
			ctx := context.Background()
			e := start(t, instance(topology.EngineMySQL))
			require.NoError(t, e.nodes.Write("a"))
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			crashed, err := recovery.New(recovery.Config{Holder: "crashed", LeaseTTL: 200 * time.Millisecond}, recovery.Deps{
				Store: e.store, Nodes: map[topology.Engine]topology.Nodes{e.in.Engine: e.nodes}, Logger: log,
				Hook: func(p recovery.Point) error {
					if p == point {
						return errors.New("crash")
					}
					return nil
				},
			})
			require.NoError(t, err)
			e.nodes.Kill("a")
			_, err = crashed.Failover(ctx, e.in, analysis.Problem{Code: analysis.DeadPrimary, Node: "a", Action: analysis.ActionFailover})
			require.ErrorIs(t, err, recovery.ErrStopped)

			e.w.Own(e.in)
			require.Eventually(t, func() bool {
				_, err := e.store.Open(ctx, e.in.ID)
				return errors.Is(err, topology.ErrNotFound) && len(e.nodes.Writable()) == 1
			}, 10*time.Second, time.Millisecond)
			e.settle(t, 100)
			w := e.nodes.Writable()
			require.Len(t, w, 1)
			require.Equal(t, int64(1), e.nodes.Seq(w[0]))
			for _, n := range []string{"b", "c"} {
				if n != w[0] {
					require.Equal(t, w[0], e.nodes.Source(n))
				}
			}
			require.Equal(t, 1, e.count(events.TypeFailoverCompleted), "one completed recovery")
		})
	}
}
