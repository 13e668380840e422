package realtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/failover/internal/nodetest"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
	"github.com/canopy-platform/canopy/services/failover/internal/watch"
)

// twoActors runs two failover actors (a recoverer and a watcher each,
// their own adapters, one store) on the same instance and kills the
// primary with kill -9 twice in a row: each failure gets exactly one
// completed recovery and one promotion, no acknowledged write is lost, the
// old primary comes back read-only and is rejoined by the watchers, and two
// nodes are never writable. Between the kills the test does what
// provisioning and an operator do: publishes the new roles to both actors
// and acknowledges the recovery (lifting the hold-off).
func twoActors(t *testing.T, e *env) {
	spies := []*spy{newSpy(e.adapter(t)), newSpy(e.adapter(t))}
	var ws []*watch.Watcher
	for i, s := range spies {
		holder := fmt.Sprintf("actor-%d", i+1)
		ws = append(ws, e.watcher(t, holder, s, e.recoverer(t, holder, 5*time.Second, s, nil)))
	}
	publish := func() {
		for _, w := range ws {
			w.Own(e.in)
		}
	}
	publish()
	promotions := func() int { return spies[0].promotions() + spies[1].promotions() }
	before := len(e.records(t))

	for round := 1; round <= 2; round++ {
		e.healthy(t)
		old, oi := e.primary(t)
		killed := time.Now()
		e.tp.Procs[oi].Kill()

		var rec topology.Recovery
		nodetest.Eventually(t, 20*time.Second, fmt.Sprintf("round %d: a completed recovery", round), func() (bool, string) {
			rs := e.records(t)
			if len(rs) < round || rs[round-1].State != topology.StateCompleted {
				return false, fmt.Sprintf("%+v", rs)
			}
			rec = rs[round-1]
			return true, ""
		})
		if rec.OldPrimary != old.ID || rec.Candidate == old.ID || rec.Kind != topology.KindAutomatic {
			t.Fatalf("round %d: recovery %+v", round, rec)
		}
		e.in = recovery.Apply(e.in, rec.Roles)
		np, npi := e.primary(t)
		if np.ID != rec.Candidate {
			t.Fatalf("round %d: roles %v name %s primary, candidate %s", round, rec.Roles, np.ID, rec.Candidate)
		}
		e.w.waitMore(t, 1, npi, 20*time.Second)
		t.Logf("round %d: %s -> %s, first acknowledged write on the new primary %v after kill -9; rto_ms %d detection_ms %d promotion_ms %d (by %s)",
			round, old.ID, np.ID, time.Since(killed).Round(time.Millisecond), rec.RTOMS, rec.DetectionMS, rec.PromotionMS, rec.Holder)
		e.noneLost(t, np.ID)
		publish()

		// The supervisor restarts the old primary read-only; the
		// watchers rejoin it as a replica of the new primary.
		e.tp.Procs[oi].Start()
		e.waitReplicates(t, old.ID)
		e.in = recovery.Apply(e.in, map[string]topology.Role{old.ID: topology.RoleReplica})
		publish()
		e.oneWritable(t)

		rs := e.records(t)[before:]
		if len(rs) != round || promotions() != round {
			t.Fatalf("round %d: %d recoveries recorded, %d promotions (want %d each): %+v, calls %v %v",
				round, len(rs), promotions(), round, rs, spies[0].actions(), spies[1].actions())
		}
		if err := e.store.Acknowledge(ctxFor(t, 5*time.Second), e.in.ID, rec.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.healthy(t)
	for _, n := range e.in.Nodes {
		e.noneLost(t, n.ID)
	}
	if _, err := e.store.Open(ctxFor(t, 5*time.Second), e.in.ID); err == nil {
		t.Fatal("a recovery is still open")
	}
}
