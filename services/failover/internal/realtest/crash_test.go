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
// little.
const crashTTL = 300 * time.Millisecond

// TestActorCrashMidRecovery kills the primary with kill -9 and lets a
// failover actor die at each hook point (the hook stops it there, lease
// kept, nothing more recorded); a new actor resumes once the lease lapses.
// The recovery completes or is rolled back (and a fresh failover then
// completes); in the end exactly one node is writable, the others — the
// old primary too, restarted read-only and rejoined — replicate from it,
// no acknowledged write is lost, and two nodes were never writable. One
// topology serves every point: each ends healthy with a new primary.
func TestActorCrashMidRecovery(t *testing.T) {
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			e := newEnv(t, eng)
			for _, point := range recovery.Points() {
				ok := t.Run(string(point), func(t *testing.T) { crashAt(t, e, point) })
				if !ok {
					t.Fatalf("topology left in an unknown state after %s", point)
				}
			}
		})
	}
}

func crashAt(t *testing.T, e *env, point recovery.Point) {
	e.healthy(t)
	old, oi := e.primary(t)
	killed := time.Now()
	e.tp.Procs[oi].Kill()
	problem := e.deadPrimary(t, killed)

	nodes := newSpy(e.adapter(t))
	crashed := e.recoverer(t, "crashed-"+string(point), crashTTL, nodes, func(p recovery.Point) error {
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

	next := e.recoverer(t, "next-"+string(point), crashTTL, nodes, nil)
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
	switch rec.State {
	case topology.StateCompleted:
	case topology.StateFailed:
		// Rolled back with the old primary still dead: nobody is
		// writable, and the next analysis fails over again (a failed
		// recovery imposes no hold-off).
		e.c.settle(t, 2)
		if w := e.writable(t); len(w) > 0 {
			t.Fatalf("rolled back, yet %v writable with the old primary dead", w)
		}
		rec, err = next.Failover(ctxFor(t, 30*time.Second), e.in, e.deadPrimary(t, killed))
		if err != nil {
			t.Fatalf("failover after the rollback: %v", err)
		}
	default:
		t.Fatalf("resumed recovery left %s", rec.State)
	}
	if _, err := e.store.Open(ctxFor(t, 5*time.Second), e.in.ID); !errors.Is(err, topology.ErrNotFound) {
		t.Fatalf("a recovery is still open: %v", err)
	}
	if rec.State != topology.StateCompleted || rec.OldPrimary != old.ID {
		t.Fatalf("recovery %+v", rec)
	}
	e.in = recovery.Apply(e.in, rec.Roles)
	np, npi := e.primary(t)
	e.w.waitMore(t, 1, npi, 20*time.Second)
	t.Logf("%s -> %s; first acknowledged write on the new primary %v after kill -9", old.ID, np.ID, time.Since(killed).Round(time.Millisecond))
	e.noneLost(t, np.ID)

	// The supervisor restarts the old primary read-only; it rejoins.
	e.tp.Procs[oi].Restart()
	if err := next.Rejoin(ctxFor(t, 30*time.Second), e.in, old.ID); err != nil {
		t.Fatalf("rejoin %s: %v", old.ID, err)
	}
	e.in = recovery.Apply(e.in, map[string]topology.Role{old.ID: topology.RoleReplica})
	e.oneWritable(t)
	if n := nodes.promotions(); n > 2 {
		t.Fatalf("%d promotions: %v", n, nodes.actions())
	}
	// Lift the hold-off for the next point, as an operator would.
	if err := e.store.Acknowledge(ctxFor(t, 5*time.Second), e.in.ID, rec.ID); err != nil {
		t.Fatal(err)
	}
}
