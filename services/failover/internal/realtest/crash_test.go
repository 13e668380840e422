package realtest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/failover/internal/nodetest"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// crashTTL is the crashed actor's lease: short, so the next actor waits
// little, yet long enough for the crashed actor to reach its hook point on
// two busy cores (300 ms was not: a lease that lapses between two steps
// supersedes its own holder). The next actor's lease is long for the same
// reason: one MariaDB re-point took 600 ms here under load.
const (
	crashTTL = time.Second
	nextTTL  = 10 * time.Second
)

// crashAt kills the primary with kill -9 and lets a failover actor die at
// point (the hook stops it there, lease kept, nothing more recorded); a new
// actor resumes once the lease lapses. With returns, the supervisor has
// restarted the old primary (read-only) before the new actor looks. The
// recovery completes or is rolled back (and a fresh failover then
// completes, when still needed); in the end exactly one node is writable,
// the others — the old primary too, restarted read-only and rejoined —
// replicate from it, no acknowledged write is lost, and two nodes were
// never writable.
func crashAt(t *testing.T, e *env, point recovery.Point, returns bool) {
	e.healthy(t)
	old, oi := e.primary(t)
	killed := time.Now()
	e.tp.Procs[oi].Kill()
	problem := e.failoverProblem(t, killed)

	// Each actor is its own process, with its own connections.
	crashedNodes, nextNodes := newSpy(e.adapter(t)), newSpy(e.adapter(t))
	crashed := e.recoverer(t, "crashed", crashTTL, crashedNodes, func(p recovery.Point) error {
		if p == point {
			return errCrash
		}
		return nil
	})
	_, err := crashed.Failover(ctxFor(t, 30*time.Second), e.in, problem)
	if !errors.Is(err, recovery.ErrStopped) {
		t.Fatalf("crashing failover: %v, want ErrStopped", err)
	}
	open, err := e.store.Open(ctxFor(t, 5*time.Second), e.in.ID)
	if err != nil {
		t.Fatalf("the crashed actor left no open recovery: %v", err)
	}
	if returns {
		e.tp.Procs[oi].Start()
	}

	next := e.recoverer(t, "next", nextTTL, nextNodes, nil)
	var rec topology.Recovery
	nodetest.Eventually(t, 10*time.Second, "resume once the crashed actor's lease lapsed", func() (bool, string) {
		rec, err = next.Resume(ctxFor(t, 30*time.Second), e.in)
		return !errors.Is(err, topology.ErrLeaseHeld), fmt.Sprint(err)
	})
	if err != nil && rec.State != topology.StateFailed {
		t.Fatalf("resume: %v (%+v)", err, rec)
	}
	if rec.ID != open.ID {
		t.Fatalf("resumed %s, the open recovery was %s", rec.ID, open.ID)
	}
	t.Logf("crashed at %s (step %s); resumed: %s %s", point, open.Step, rec.State, rec.Reason)
	if _, err := e.store.Open(ctxFor(t, 5*time.Second), e.in.ID); !errors.Is(err, topology.ErrNotFound) {
		t.Fatalf("a recovery is still open after the resume: %v", err)
	}
	switch rec.State {
	case topology.StateCompleted:
		e.in = recovery.Apply(e.in, rec.Roles)
	case topology.StateFailed:
		e.c.settle(t, 2)
		switch w := e.writable(t); {
		case len(w) == 1 && w[0] == old.ID && returns:
			// Rolled back: the returned old primary, the most advanced
			// node, took its writes back; the topology is as before.
		case len(w) == 0:
			// Rolled back with no primary: the next analysis fails over
			// (a failed recovery imposes no hold-off).
			rec, err = next.Failover(ctxFor(t, 30*time.Second), e.in, e.failoverProblem(t, killed))
			if err != nil || rec.State != topology.StateCompleted {
				t.Fatalf("failover after the rollback: %v (%+v)", err, rec)
			}
			e.in = recovery.Apply(e.in, rec.Roles)
		default:
			t.Fatalf("rolled back, and %v writable (old primary %s, returned %t)", w, old.ID, returns)
		}
	default:
		t.Fatalf("resumed recovery left %s", rec.State)
	}
	np, npi := e.primary(t)
	e.w.waitMore(t, 1, npi, 20*time.Second)
	t.Logf("%s -> %s (%s); first acknowledged write on the primary %v after kill -9", old.ID, np.ID, rec.State, time.Since(killed).Round(time.Millisecond))
	e.noneLost(t, np.ID)

	if n, _ := e.in.Node(old.ID); n.Role == topology.RoleFenced {
		// The supervisor restarts the old primary read-only; it rejoins.
		if !returns {
			e.tp.Procs[oi].Start()
		}
		if err := next.Rejoin(ctxFor(t, 30*time.Second), e.in, old.ID); err != nil {
			t.Fatalf("rejoin %s: %v", old.ID, err)
		}
		e.in = recovery.Apply(e.in, map[string]topology.Role{old.ID: topology.RoleReplica})
	}
	e.oneWritable(t)
	for _, n := range e.in.Nodes {
		e.noneLost(t, n.ID)
	}
	// At most: the crashed actor's, and the resuming actor's (idempotent
	// on the same candidate, or the rollback's on the old primary, or the
	// fresh failover's after a rollback).
	if n := crashedNodes.promotions() + nextNodes.promotions(); n > 2 {
		t.Fatalf("%d promotions: crashed %v, next %v", n, crashedNodes.actions(), nextNodes.actions())
	}
	// Lift the hold-off for the next scenario, as an operator would.
	if rec.State == topology.StateCompleted {
		if err := e.store.Acknowledge(ctxFor(t, 5*time.Second), e.in.ID, rec.ID); err != nil {
			t.Fatal(err)
		}
	}
}
