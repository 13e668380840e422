package recovery_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
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
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock shared by the store and the recoverers, so a
// test can let a crashed actor's lease expire without waiting.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	in    topology.Instance
	nodes *fakenodes.Cluster
	store *memstore.Store
	clock *clock
}

func instance(engine topology.Engine) topology.Instance {
	return topology.Instance{ID: "i1", Tenant: "t1", Engine: engine, Region: "r1", Nodes: []topology.Node{
		{ID: "a", Address: "h:1", Region: "r1", Role: topology.RolePrimary},
		{ID: "b", Address: "h:2", Region: "r1", Role: topology.RoleReplica},
		{ID: "c", Address: "h:3", Region: "r1", Role: topology.RoleReplica},
	}}
}

func newEnv(t *testing.T, in topology.Instance) *env {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := &env{in: in, nodes: fakenodes.New(in), store: memstore.New(c.Now), clock: c}
	t.Cleanup(func() { require.Empty(t, e.nodes.Violations(), "two writable nodes at some moment") })
	return e
}

func (e *env) recoverer(t *testing.T, holder string, hook recovery.Hook) *recovery.Recoverer {
	t.Helper()
	r, err := recovery.New(recovery.Config{Holder: holder, CatchUpTimeout: 200 * time.Millisecond}, recovery.Deps{
		Store: e.store, Nodes: map[topology.Engine]topology.Nodes{e.in.Engine: e.nodes},
		Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Hook: hook,
	})
	require.NoError(t, err)
	return r
}

func (e *env) write(t *testing.T, id string, n int) {
	t.Helper()
	for range n {
		require.NoError(t, e.nodes.Write(id))
	}
}

func (e *env) eventTypes() []string {
	var out []string
	for _, ev := range e.store.Events() {
		out = append(out, ev.Type)
	}
	return out
}

func deadPrimary(e *env) analysis.Problem {
	now := e.clock.Now()
	return analysis.Problem{Code: analysis.DeadPrimary, Node: "a", Action: analysis.ActionFailover, Since: now.Add(-300 * time.Millisecond), DetectedAt: now}
}

// requireFollows asserts exactly one writable node, p, and every other
// live node replicating from it.
func requireFollows(t *testing.T, e *env, p string, others ...string) {
	t.Helper()
	require.Equal(t, []string{p}, e.nodes.Writable())
	for _, o := range others {
		require.Equal(t, p, e.nodes.Source(o), "%s follows %s", o, p)
		require.Equal(t, e.nodes.Seq(p), e.nodes.Seq(o), "%s has every write", o)
	}
}

func TestFailoverHappyPath(t *testing.T) {
	for _, engine := range []topology.Engine{topology.EngineMySQL, topology.EngineRedis} {
		t.Run(string(engine), func(t *testing.T) {
			e := newEnv(t, instance(engine))
			e.write(t, "a", 10)
			e.nodes.Lag("c", true)
			e.write(t, "a", 2) // c is now 2 behind: b is the most advanced
			e.nodes.Lag("c", false)
			e.nodes.Lag("c", true) // stays behind after a's death
			e.nodes.Kill("a")
			e.nodes.Lag("c", false)

			rec, err := e.recoverer(t, "r1", nil).Failover(context.Background(), e.in, deadPrimary(e))
			require.NoError(t, err)
			require.Equal(t, topology.StateCompleted, rec.State)
			require.Equal(t, "b", rec.Candidate)
			require.Equal(t, map[string]topology.Role{"a": topology.RoleFenced, "b": topology.RolePrimary, "c": topology.RoleReplica}, rec.Roles)
			require.Equal(t, int64(300), rec.DetectionMS)
			require.Equal(t, int64(300), rec.RTOMS, "first failed check → completed on a frozen clock")
			require.NotNil(t, rec.PromotedAt)
			require.Equal(t, []string{events.TypeFailoverStarted, events.TypeFailoverCompleted}, e.eventTypes())
			requireFollows(t, e, "b", "c")
			require.Equal(t, int64(12), e.nodes.Seq("b"), "no acknowledged write lost")
			require.NoError(t, e.nodes.Write("b"))

			// The old primary returns read-only and is rejoined.
			e.nodes.Restart("a")
			in := recovery.Apply(e.in, rec.Roles)
			require.NoError(t, e.recoverer(t, "r1", nil).Rejoin(context.Background(), in, "a"))
			requireFollows(t, e, "b", "a", "c")
			require.Equal(t, events.TypeNodeRejoined, e.eventTypes()[2])
		})
	}
}

func TestFailoverNoCandidate(t *testing.T) {
	in := instance(topology.EngineMySQL)
	in.Nodes[1].Promotion = topology.PromoteNever
	in.Nodes[2].Promotion = topology.PromoteNever
	e := newEnv(t, in)
	e.nodes.Kill("a")
	rec, err := e.recoverer(t, "r1", nil).Failover(context.Background(), e.in, deadPrimary(e))
	require.ErrorIs(t, err, topology.ErrNoCandidate)
	var nc *analysis.NoCandidateError
	require.ErrorAs(t, err, &nc)
	require.Equal(t, "promotion rule never", nc.Reasons["b"])
	require.Equal(t, topology.StateFailed, rec.State)
	require.Contains(t, rec.Reason, "promotion rule never")
	require.Equal(t, []string{events.TypeFailoverStarted, events.TypeFailoverFailed}, e.eventTypes())
	require.Zero(t, e.nodes.Count("promote b")+e.nodes.Count("promote c"))
	_, err = e.store.Open(context.Background(), in.ID)
	require.ErrorIs(t, err, topology.ErrNotFound, "nothing left open")
}

func TestFailoverHoldOffAndAcknowledge(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, instance(topology.EngineMySQL))
	r := e.recoverer(t, "r1", nil)
	e.nodes.Kill("a")
	first, err := r.Failover(ctx, e.in, deadPrimary(e))
	require.NoError(t, err)
	in := recovery.Apply(e.in, first.Roles)

	// The new primary dies a minute later: held off.
	e.clock.Advance(time.Minute)
	e.nodes.Kill(first.Candidate)
	p := deadPrimary(e)
	p.Node = first.Candidate
	held, err := r.Failover(ctx, in, p)
	require.ErrorIs(t, err, topology.ErrHoldOff)
	require.Equal(t, topology.StateFailed, held.State)
	require.Contains(t, held.Reason, "hold-off")
	require.Empty(t, e.nodes.Writable(), "nothing promoted during the hold-off")

	// Acknowledged: the next failover goes ahead.
	require.NoError(t, e.store.Acknowledge(ctx, in.ID, first.ID))
	second, err := r.Failover(ctx, in, p)
	require.NoError(t, err)
	require.Equal(t, topology.StateCompleted, second.State)
	require.Equal(t, []string{second.Candidate}, e.nodes.Writable())

	// After the hold-off, no acknowledgement is needed.
	in = recovery.Apply(in, second.Roles)
	e.nodes.Restart("a")
	require.NoError(t, r.Rejoin(ctx, in, "a"))
	in.Nodes[0].Role = topology.RoleReplica
	e.clock.Advance(11 * time.Minute)
	e.nodes.Kill(second.Candidate)
	p.Node = second.Candidate
	third, err := r.Failover(ctx, in, p)
	require.NoError(t, err)
	require.Equal(t, "a", third.Candidate)
}

func TestTwoRecoverersOnePromotion(t *testing.T) {
	e := newEnv(t, instance(topology.EngineMySQL))
	e.write(t, "a", 5)
	e.nodes.Kill("a")
	rs := []*recovery.Recoverer{e.recoverer(t, "r1", nil), e.recoverer(t, "r2", nil)}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	recs := make([]topology.Recovery, 2)
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i], errs[i] = r.Failover(context.Background(), e.in, deadPrimary(e))
		}()
	}
	wg.Wait()
	completed := 0
	for i := range rs {
		switch {
		case errs[i] == nil:
			completed++
			require.Equal(t, topology.StateCompleted, recs[i].State)
		default:
			// The loser either found the lease held or, coming after the
			// winner, found the primary role already moved.
			require.True(t, errors.Is(errs[i], topology.ErrLeaseHeld) || errors.Is(errs[i], recovery.ErrProblemGone), "%v", errs[i])
		}
	}
	require.Equal(t, 1, completed)
	require.Equal(t, 1, e.nodes.Count("promote b")+e.nodes.Count("promote c"), "exactly one promotion")
	require.Len(t, e.nodes.Writable(), 1)
	require.Equal(t, []string{events.TypeFailoverStarted, events.TypeFailoverCompleted}, e.eventTypes(), "one recovery recorded")

	// An actor that analysed before the failover and acts after it (stale
	// topology, lease free again) records nothing and touches nothing.
	calls := len(e.nodes.Calls())
	_, err := e.recoverer(t, "r3", nil).Failover(context.Background(), e.in, deadPrimary(e))
	require.ErrorIs(t, err, recovery.ErrProblemGone)
	require.Len(t, e.nodes.Calls(), calls)
	require.Len(t, e.eventTypes(), 2)
}

// TestCrashAtEveryStepThenResume stops a failover at each step, as if its
// actor crashed, lets the lease expire and resumes it from another actor:
// the recovery completes or is rolled back, and a later failover (if one is
// still needed) completes; never two writable nodes (checked by the fake at
// every change).
func TestCrashAtEveryStepThenResume(t *testing.T) {
	for _, point := range recovery.Points() {
		for _, returns := range []bool{false, true} {
			name := string(point)
			if returns {
				name += "/old primary returns read-only"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t, instance(topology.EngineMySQL))
				e.write(t, "a", 7)
				e.nodes.Kill("a")
				crash := e.recoverer(t, "r1", func(p recovery.Point) error {
					if p == point {
						return errors.New("crash")
					}
					return nil
				})
				_, err := crash.Failover(ctx, e.in, deadPrimary(e))
				require.ErrorIs(t, err, recovery.ErrStopped)
				if returns {
					e.nodes.Restart("a")
				}

				next := e.recoverer(t, "r2", nil)
				_, err = next.Resume(ctx, e.in)
				require.ErrorIs(t, err, topology.ErrLeaseHeld, "the crashed actor's lease is live")
				e.clock.Advance(time.Minute)
				rec, err := next.Resume(ctx, e.in)
				require.NoError(t, err)
				require.NotEqual(t, topology.StateStarted, rec.State)
				t.Logf("resumed from step %s: %s %s", rec.Step, rec.State, rec.Reason)
				_, err = e.store.Open(ctx, e.in.ID)
				require.ErrorIs(t, err, topology.ErrNotFound)

				in := e.in
				if rec.State == topology.StateCompleted {
					in = recovery.Apply(in, rec.Roles)
				} else if w := e.nodes.Writable(); len(w) == 0 {
					// Rolled back with the primary still gone: the next
					// analysis fails over again; a failed recovery imposes
					// no hold-off.
					rec, err = next.Failover(ctx, in, deadPrimary(e))
					require.NoError(t, err)
					in = recovery.Apply(in, rec.Roles)
				}
				p, _ := in.Primary()
				require.Equal(t, []string{p.ID}, e.nodes.Writable())
				require.Equal(t, int64(7), e.nodes.Seq(p.ID), "no write lost")
				for _, n := range in.Nodes {
					if n.ID != p.ID && n.Role == topology.RoleReplica {
						require.Equal(t, p.ID, e.nodes.Source(n.ID))
					}
				}
			})
		}
	}
}

func TestSwitchover(t *testing.T) {
	ctx := context.Background()
	for _, engine := range []topology.Engine{topology.EngineMySQL, topology.EngineRedis} {
		t.Run(string(engine)+"/both directions, zero loss", func(t *testing.T) {
			e := newEnv(t, instance(engine))
			r := e.recoverer(t, "r1", nil)
			e.write(t, "a", 20)
			rec, err := r.Switchover(ctx, e.in, "c", false)
			require.NoError(t, err)
			require.Equal(t, topology.KindSwitchover, rec.Kind)
			require.Equal(t, "c", rec.Candidate)
			require.Equal(t, topology.RoleReplica, rec.Roles["a"], "old primary rejoins as a replica")
			require.Empty(t, rec.LostTransactions)
			requireFollows(t, e, "c", "a", "b")
			in := recovery.Apply(e.in, rec.Roles)
			e.write(t, "c", 3)
			back, err := r.Switchover(ctx, in, "a", false)
			require.NoError(t, err)
			requireFollows(t, e, "a", "b", "c")
			require.Equal(t, int64(23), e.nodes.Seq("a"))
			require.Equal(t, topology.RoleReplica, back.Roles["c"])
		})
	}

	t.Run("target does not catch up: rolled back", func(t *testing.T) {
		e := newEnv(t, instance(topology.EngineMySQL))
		r := e.recoverer(t, "r1", nil)
		e.write(t, "a", 5)
		e.nodes.Lag("b", true)
		e.write(t, "a", 1)
		rec, err := r.Switchover(ctx, e.in, "b", false)
		require.ErrorIs(t, err, recovery.ErrCatchUp)
		require.Equal(t, topology.StateFailed, rec.State)
		require.Equal(t, []string{"a"}, e.nodes.Writable(), "old primary writable again")
		require.NoError(t, e.nodes.Write("a"))
		require.Zero(t, e.nodes.Count("promote b"))
	})

	t.Run("DR region: refused unless streaming, forced reports lost", func(t *testing.T) {
		in := instance(topology.EngineMySQL)
		in.Nodes[2].Region = "r2"
		e := newEnv(t, in)
		r := e.recoverer(t, "r1", nil)
		e.write(t, "a", 5)
		e.nodes.Lag("c", true)
		e.write(t, "a", 2)
		_, err := r.Switchover(ctx, e.in, "c", false)
		require.ErrorIs(t, err, recovery.ErrCatchUp)
		require.Equal(t, []string{"a"}, e.nodes.Writable())

		rec, err := r.Switchover(ctx, e.in, "c", true)
		require.NoError(t, err)
		require.Equal(t, []string{"0-1-6..0-1-7"}, rec.LostTransactions)
		require.Equal(t, []string{"c"}, e.nodes.Writable())
		require.Equal(t, topology.RoleFenced, rec.Roles["a"], "the old primary has what c lacks: it stays fenced")
	})
}

func TestRejoinErrant(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, instance(topology.EngineMySQL))
	r := e.recoverer(t, "r1", nil)
	e.write(t, "a", 3)
	e.nodes.Lag("b", true)
	e.nodes.Lag("c", true)
	e.write(t, "a", 2) // async: a dies with 2 transactions nobody has
	e.nodes.Kill("a")
	e.nodes.Lag("b", false)
	e.nodes.Lag("c", false)
	rec, err := r.Failover(ctx, e.in, deadPrimary(e))
	require.NoError(t, err)
	in := recovery.Apply(e.in, rec.Roles)
	e.nodes.Restart("a")
	err = r.Rejoin(ctx, in, "a")
	require.ErrorIs(t, err, recovery.ErrErrant)
	require.Equal(t, []string{rec.Candidate}, e.nodes.Writable(), "the errant node stays read-only")
	last := e.store.Events()[len(e.store.Events())-1]
	require.Equal(t, events.TypeNodeRejoined, last.Type)
	require.False(t, last.Rejoined.Rebuilt)
	require.Equal(t, []string{"0-1-4..0-1-5"}, last.Rejoined.LostTransactions)
}

func TestHeal(t *testing.T) {
	ctx := context.Background()
	t.Run("primary restarted read-only gets its writes back", func(t *testing.T) {
		e := newEnv(t, instance(topology.EngineMySQL))
		e.write(t, "a", 4)
		e.nodes.Kill("a")
		e.nodes.Restart("a")
		views := recovery.ObserveAll(ctx, e.nodes, e.in, time.Second)
		p, ok := analysis.FirstActionable(analysis.Analyze(e.in, valuesOf(views), nil))
		require.True(t, ok)
		require.Equal(t, analysis.ActionMakeWritable, p.Action)
		require.NoError(t, e.recoverer(t, "r1", nil).Heal(ctx, e.in, p))
		requireFollows(t, e, "a", "b", "c")
	})
	t.Run("writable replica fenced, stopped replica re-pointed", func(t *testing.T) {
		e := newEnv(t, instance(topology.EngineMySQL))
		r := e.recoverer(t, "r1", nil)
		e.nodes.StopSQL("c")
		e.write(t, "a", 2)
		views := recovery.ObserveAll(ctx, e.nodes, e.in, time.Second)
		p, ok := analysis.FirstActionable(analysis.Analyze(e.in, valuesOf(views), nil))
		require.True(t, ok)
		require.Equal(t, analysis.ReplicationStopped, p.Code)
		require.NoError(t, r.Heal(ctx, e.in, p))
		requireFollows(t, e, "a", "b", "c")
	})
	t.Run("stale problem does nothing", func(t *testing.T) {
		e := newEnv(t, instance(topology.EngineMySQL))
		p := analysis.Problem{Code: analysis.WritableReplica, Node: "b", Action: analysis.ActionFence}
		require.NoError(t, e.recoverer(t, "r1", nil).Heal(ctx, e.in, p))
		require.Zero(t, e.nodes.Count("fence b"))
	})
}

func valuesOf(m map[string]topology.NodeView) []topology.NodeView {
	var out []topology.NodeView
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestSupersededActorStops: an actor that stalls before promoting while
// another takes the instance over (its lease expired) must not promote
// when it wakes up, and none of its writes are recorded.
func TestSupersededActorStops(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, instance(topology.EngineMySQL))
	e.write(t, "a", 3)
	e.nodes.Kill("a")
	next := e.recoverer(t, "r2", nil)
	var resumed topology.Recovery
	stalled := e.recoverer(t, "r1", func(p recovery.Point) error {
		if p != recovery.BeforePromote {
			return nil
		}
		// r1 stalls here (a GC pause, a partition) past its lease.
		e.clock.Advance(time.Minute)
		var err error
		resumed, err = next.Resume(ctx, e.in)
		require.NoError(t, err)
		return nil
	})
	_, err := stalled.Failover(ctx, e.in, deadPrimary(e))
	require.ErrorIs(t, err, topology.ErrFenced)
	require.Equal(t, topology.StateFailed, resumed.State, "r2 rolled the unpromoted recovery back")
	require.Zero(t, e.nodes.Count("promote b")+e.nodes.Count("promote c"), "the superseded actor promoted nothing")
	got, err := e.store.Get(ctx, e.in.ID, resumed.ID)
	require.NoError(t, err)
	require.Equal(t, "r2", got.Holder)
	require.Equal(t, topology.StateFailed, got.State)

	// The next failover (no hold-off after a failed one) completes.
	rec, err := next.Failover(ctx, e.in, deadPrimary(e))
	require.NoError(t, err)
	require.Equal(t, topology.StateCompleted, rec.State)
}

// TestSwitchoverCrashThenResume: a switchover stopped at any step is
// completed or rolled back by Resume; either way one writable node that
// every other node follows, and no write lost.
func TestSwitchoverCrashThenResume(t *testing.T) {
	for _, point := range recovery.Points() {
		t.Run(string(point), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, instance(topology.EngineRedis))
			e.write(t, "a", 9)
			crash := e.recoverer(t, "r1", func(p recovery.Point) error {
				if p == point {
					return errors.New("crash")
				}
				return nil
			})
			_, err := crash.Switchover(ctx, e.in, "b", false)
			require.ErrorIs(t, err, recovery.ErrStopped)
			e.clock.Advance(time.Minute)
			rec, err := e.recoverer(t, "r2", nil).Resume(ctx, e.in)
			require.NoError(t, err)
			t.Logf("resumed from step %s: %s %s", rec.Step, rec.State, rec.Reason)
			switch rec.State {
			case topology.StateCompleted:
				require.Equal(t, topology.RoleReplica, rec.Roles["a"])
				requireFollows(t, e, "b", "a", "c")
			case topology.StateFailed:
				requireFollows(t, e, "a", "b", "c")
			default:
				t.Fatalf("state %s", rec.State)
			}
			require.Equal(t, int64(9), e.nodes.Seq(e.nodes.Writable()[0]))
		})
	}
}
