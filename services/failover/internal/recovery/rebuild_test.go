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

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery/fakenodes"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// rebuildable is the fake cluster whose nodes a fakeRebuilder can rebuild:
// a rebuilt node's data is the primary's copy, so it has nothing errant
// any more (the fake cannot take a node's transactions away, so Errant
// answers for it).
type rebuildable struct {
	*fakenodes.Cluster
	mu      sync.Mutex
	rebuilt map[string]bool
}

func (r *rebuildable) Errant(ctx context.Context, in topology.Instance, old, primary topology.Node) ([]string, error) {
	r.mu.Lock()
	done := r.rebuilt[old.ID]
	r.mu.Unlock()
	if done {
		return nil, nil
	}
	return r.Cluster.Errant(ctx, in, old, primary)
}

// fakeRebuilder is provisioning's rebuild: it checks the node is fenced
// (read-only, replicating from nothing) when asked, restarts it read-only
// as the driver does, and records the call; err makes it fail instead,
// leaving the node as it was.
type fakeRebuilder struct {
	t     *testing.T
	nodes *rebuildable
	mu    sync.Mutex
	calls []string
	err   error
	// replicas: the node may be a replicating replica (a rebuild on
	// request; the driver stops the node before the copy replaces its data).
	replicas bool
}

func (f *fakeRebuilder) Rebuild(ctx context.Context, instanceID, nodeID, source string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, instanceID+"/"+nodeID+"<"+source)
	require.NotContains(f.t, f.nodes.Writable(), nodeID, "rebuild of a writable node")
	if !f.replicas {
		require.Empty(f.t, f.nodes.Source(nodeID), "rebuild of a replicating node")
	}
	if f.err != nil {
		return f.err
	}
	f.nodes.Kill(nodeID)
	f.nodes.Restart(nodeID)
	f.nodes.mu.Lock()
	f.nodes.rebuilt[nodeID] = true
	f.nodes.mu.Unlock()
	return nil
}

func (f *fakeRebuilder) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// errantEnv fails a over to a replica after a took 2 writes nobody else
// has, and brings a back read-only: the instance with its new roles, the
// new primary and a rebuilder over the cluster.
func errantEnv(t *testing.T) (*env, topology.Instance, string, *fakeRebuilder, *rebuildable) {
	t.Helper()
	e := newEnv(t, instance(topology.EngineMySQL))
	e.write(t, "a", 3)
	e.nodes.Lag("b", true)
	e.nodes.Lag("c", true)
	e.write(t, "a", 2) // async: a dies with 2 transactions nobody has
	e.nodes.Kill("a")
	e.nodes.Lag("b", false)
	e.nodes.Lag("c", false)
	rec, err := e.recoverer(t, "r1", nil).Failover(context.Background(), e.in, deadPrimary(e))
	require.NoError(t, err)
	e.nodes.Restart("a")
	nodes := &rebuildable{Cluster: e.nodes, rebuilt: map[string]bool{}}
	return e, recovery.Apply(e.in, rec.Roles), rec.Candidate, &fakeRebuilder{t: t, nodes: nodes}, nodes
}

func rebuildingRecoverer(t *testing.T, e *env, nodes topology.Nodes, rb topology.Rebuilder) *recovery.Recoverer {
	t.Helper()
	r, err := recovery.New(recovery.Config{Holder: "r1"}, recovery.Deps{
		Store: e.store, Nodes: map[topology.Engine]topology.Nodes{e.in.Engine: nodes},
		Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Rebuilder: rb,
	})
	require.NoError(t, err)
	return r
}

func rejoins(e *env) []events.NodeRejoined {
	var out []events.NodeRejoined
	for _, ev := range e.store.Events() {
		if ev.Type == events.TypeNodeRejoined {
			out = append(out, *ev.Rejoined)
		}
	}
	return out
}

// A returning old primary with errant transactions is rebuilt from the new
// primary, reported with its lost transactions and rejoined as a read-only
// replica of the new primary.
func TestRejoinRebuildsErrantNode(t *testing.T) {
	ctx := context.Background()
	e, in, p, rb, nodes := errantEnv(t)
	primary, _ := in.Node(p)

	require.NoError(t, rebuildingRecoverer(t, e, nodes, rb).Rejoin(ctx, in, "a"))
	require.Equal(t, []string{"i1/a<" + primary.Address}, rb.took())
	require.Equal(t, []string{p}, e.nodes.Writable(), "one writable node: the new primary")
	require.Equal(t, p, e.nodes.Source("a"), "the rebuilt node follows the new primary")
	require.Equal(t, []events.NodeRejoined{{InstanceID: "i1", TenantID: "t1", NodeID: "a", Primary: p, Rebuilt: true,
		LostTransactions: []string{"0-1-4..0-1-5"}, OccurredAt: e.clock.Now()}}, rejoins(e))
	// Fenced again before the rebuild, re-pointed after it.
	calls := e.nodes.Calls()
	require.Contains(t, calls, "fence a")
	require.Equal(t, "repoint a→"+p, calls[len(calls)-1])

	// It applies the new primary's next writes (the fake keeps a's old
	// counter, so the primary writes past it; that the rebuilt node's data
	// is the primary's is the driver's test, on real MariaDB).
	e.write(t, p, 3)
	require.Equal(t, e.nodes.Seq(p), e.nodes.Seq("a"))

	// Back as a replica with nothing errant, a second rejoin only re-points.
	require.NoError(t, rebuildingRecoverer(t, e, nodes, rb).Rejoin(ctx, in, "a"))
	require.Len(t, rb.took(), 1, "rebuilt once")
}

// A failed rebuild leaves the node fenced with its data, records nothing
// (the node has not rejoined and its transactions are not lost yet) and is
// retried by the caller; the retry rebuilds it.
func TestRejoinRebuildFails(t *testing.T) {
	ctx := context.Background()
	e, in, p, rb, nodes := errantEnv(t)
	rb.err = errors.New("provisioning: 502 rebuild failed, the node keeps its data")
	r := rebuildingRecoverer(t, e, nodes, rb)

	err := r.Rejoin(ctx, in, "a")
	require.ErrorContains(t, err, "rebuild failed")
	require.NotErrorIs(t, err, recovery.ErrErrant, "a failed rebuild is retried, not parked")
	require.Empty(t, rejoins(e))
	require.Equal(t, []string{p}, e.nodes.Writable())
	require.Empty(t, e.nodes.Source("a"), "still fenced: replicates from nothing")
	require.Zero(t, e.nodes.Count("repoint a→"+p))

	rb.err = nil
	require.NoError(t, r.Rejoin(ctx, in, "a"))
	require.Len(t, rb.took(), 2)
	got := rejoins(e)
	require.Len(t, got, 1)
	require.True(t, got[0].Rebuilt)
	require.Equal(t, []string{"0-1-4..0-1-5"}, got[0].LostTransactions)
	require.Equal(t, p, e.nodes.Source("a"))
}

// Once rebuilt the node's errant transactions exist only in the report, so
// it is recorded even when the re-point then fails (the node, a clean copy
// of the primary, is then a replica whose replication the watcher heals).
func TestRejoinRebuiltButRepointFails(t *testing.T) {
	ctx := context.Background()
	e, in, p, rb, nodes := errantEnv(t)
	e.nodes.FailOn("repoint", "a", errors.New("connection reset"))

	err := rebuildingRecoverer(t, e, nodes, rb).Rejoin(ctx, in, "a")
	require.ErrorContains(t, err, "re-point rebuilt node")
	got := rejoins(e)
	require.Len(t, got, 1)
	require.True(t, got[0].Rebuilt)
	require.Equal(t, []string{"0-1-4..0-1-5"}, got[0].LostTransactions)
	require.Equal(t, []string{p}, e.nodes.Writable())
}

// Another actor holding the instance's lease: nothing is rebuilt.
func TestRejoinRebuildNeedsLease(t *testing.T) {
	ctx := context.Background()
	e, in, _, rb, nodes := errantEnv(t)
	_, err := e.store.Acquire(ctx, "i1", "r2", time.Minute)
	require.NoError(t, err)

	err = rebuildingRecoverer(t, e, nodes, rb).Rejoin(ctx, in, "a")
	require.ErrorIs(t, err, topology.ErrLeaseHeld)
	require.Empty(t, rb.took())
	require.Empty(t, rejoins(e))
}

type rebuildFunc func(ctx context.Context, instanceID, nodeID, source string) error

func (f rebuildFunc) Rebuild(ctx context.Context, instanceID, nodeID, source string) error {
	return f(ctx, instanceID, nodeID, source)
}

// A rebuild outlasting the lease keeps it renewed; when another actor takes
// the lease meanwhile the rebuild is cancelled (provisioning then puts the
// node back) and nothing is recorded.
func TestRejoinRebuildLosesLease(t *testing.T) {
	ctx := context.Background()
	e, in, _, _, nodes := errantEnv(t)
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	rb := rebuildFunc(func(ctx context.Context, _, _, _ string) error {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	})
	r, err := recovery.New(recovery.Config{Holder: "r1", LeaseTTL: 30 * time.Millisecond}, recovery.Deps{
		Store: e.store, Nodes: map[topology.Engine]topology.Nodes{e.in.Engine: nodes},
		Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Rebuilder: rb,
	})
	require.NoError(t, err)
	res := make(chan error, 1)
	go func() { res <- r.Rejoin(ctx, in, "a") }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("rebuild never asked")
	}
	e.clock.Advance(time.Minute) // r1's lease lapses; r2 takes the instance
	require.Eventually(t, func() bool {
		_, err := e.store.Acquire(ctx, "i1", "r2", time.Hour)
		return err == nil
	}, 10*time.Second, time.Millisecond)
	select {
	case err := <-res:
		require.ErrorIs(t, err, topology.ErrFenced)
	case <-time.After(10 * time.Second):
		t.Fatal("rejoin did not stop when its lease was lost")
	}
	require.ErrorIs(t, <-cancelled, context.Canceled)
	require.Empty(t, rejoins(e))
}

// A replica rebuilt on request (an alert's rebuild-replica action) gets the
// primary's copy, follows the primary again and is recorded rebuilt with
// nothing lost; the primary, an unknown node and engines or recoverers
// that cannot rebuild are refused before anything is touched.
func TestRebuildReplica(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, instance(topology.EngineMySQL))
	e.write(t, "a", 3)
	nodes := &rebuildable{Cluster: e.nodes, rebuilt: map[string]bool{}}
	rb := &fakeRebuilder{t: t, nodes: nodes, replicas: true}
	r := rebuildingRecoverer(t, e, nodes, rb)
	primary, _ := e.in.Node("a")

	require.NoError(t, r.RebuildReplica(ctx, e.in, "b"))
	require.Equal(t, []string{"i1/b<" + primary.Address}, rb.took())
	require.Equal(t, []string{"a"}, e.nodes.Writable(), "the primary stays the one writable node")
	require.Equal(t, "a", e.nodes.Source("b"), "the rebuilt replica follows the primary")
	require.Equal(t, []events.NodeRejoined{{InstanceID: "i1", TenantID: "t1", NodeID: "b", Primary: "a", Rebuilt: true,
		OccurredAt: e.clock.Now()}}, rejoins(e))
	e.write(t, "a", 2)
	require.Equal(t, e.nodes.Seq("a"), e.nodes.Seq("b"))

	require.ErrorIs(t, r.RebuildReplica(ctx, e.in, "a"), recovery.ErrNotReplica)
	require.ErrorIs(t, r.RebuildReplica(ctx, e.in, "zz"), topology.ErrNotFound)
	require.ErrorIs(t, e.recoverer(t, "r1", nil).RebuildReplica(ctx, e.in, "c"), recovery.ErrNoRebuilder)
	redis := newEnv(t, instance(topology.EngineRedis))
	require.ErrorIs(t, rebuildingRecoverer(t, redis, redis.nodes, rb).RebuildReplica(ctx, redis.in, "b"), recovery.ErrNoRebuilder)
	require.Len(t, rb.took(), 1, "nothing else rebuilt")
}
