package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

// replica is another provisioning service on s's database, state dir and
// consumer group (a second replica of the same deployment), stopped at the
// end of the test before s.
func (s *stack) replica() *stack {
	r := &stack{t: s.t, env: s.env, cfg: s.cfg, stateDir: s.stateDir}
	s.t.Cleanup(r.stopService)
	return r
}

// TestTwoReplicas runs two provisioning replicas on one database and state
// dir (what split mode runs): a batch of orders and deletes through both
// ends with every instance ready then deleted, one node each and no process
// left; then one replica dies (its context cancelled without giving its
// leases back, as a crash) while it drives an instance, and the other takes
// the instance over once the lease expired. The takeover time is logged.
func TestTwoReplicas(t *testing.T) {
	e := newEnv(t)
	a := newStack(t, e, nil)
	// Phase 2's interruption: armed, the first instance replica a drives
	// into verifying stops there until a dies; replica b refuses the step
	// until then, so that a is the one holding the lease.
	var armed atomic.Bool
	blocked := make(chan string, 1)
	var once sync.Once
	a.hooks = saga.Hooks{KeepLeasesOnStop: true, BeforeStep: func(ctx context.Context, id string, step instance.Step) error {
		if !armed.Load() || step != instance.StepVerifying {
			return nil
		}
		first := false
		once.Do(func() { first = true; blocked <- id })
		if !first {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	a.start()
	b := a.replica()
	var aBlocked atomic.Bool
	b.hooks = saga.Hooks{BeforeStep: func(_ context.Context, _ string, step instance.Step) error {
		if armed.Load() && !aBlocked.Load() && step == instance.StepVerifying {
			return errors.New("left to replica a")
		}
		return nil
	}}
	b.start()
	db := a.openDB(t)

	// Phase 1: 10 orders, then 10 deletes, through both replicas.
	const n = 10
	replicas := []*stack{a, b}
	ids := make([]string, n)
	for i := range n {
		c := replicas[i%2].as("acme")
		r := c.do("POST", "/api/v1/instances", map[string]any{"name": fmt.Sprintf("r%d", i), "plan_id": planRedisDev})
		if r.status != http.StatusAccepted {
			t.Fatalf("order %d: %d %s", i, r.status, r.body)
		}
		ids[i] = r.json(t)["instance"].(map[string]any)["id"].(string)
	}
	for i, id := range ids {
		inst := replicas[i%2].as("acme").waitState(id, readyWithin, "ready", "failed")
		if inst["state"] != "ready" {
			t.Fatalf("instance %s: %v (%v)", id, inst["state"], inst["reason"])
		}
		if nodes := inst["nodes"].([]any); len(nodes) != 1 {
			t.Fatalf("instance %s has %d nodes: %v", id, len(nodes), nodes)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(a.stateDir, "nodes", "*"))
	if pids := nodePIDs(a.stateDir); len(pids) != n || len(dirs) != n {
		t.Fatalf("%d servers and %d node directories for %d single-node instances: %v", len(pids), len(dirs), n, pids)
	}
	var owners int
	if err := db.QueryRow("SELECT COUNT(DISTINCT owner) FROM saga_leases").Scan(&owners); err != nil {
		t.Fatal(err)
	}
	t.Logf("the batch's leases were last held by %d replicas", owners)
	for i, id := range ids {
		if r := replicas[(i+1)%2].as("acme").do("DELETE", "/api/v1/instances/"+id, nil); r.status != http.StatusAccepted {
			t.Fatalf("delete %s: %d %s", id, r.status, r.body)
		}
	}
	for i, id := range ids {
		replicas[i%2].as("acme").waitState(id, time.Minute, "deleted")
	}
	if pids := nodePIDs(a.stateDir); len(pids) != 0 {
		t.Fatalf("servers left after the deletes: %v", pids)
	}

	// Phase 2: a dies mid-saga; b takes the instance over.
	armed.Store(true)
	c := b.as("acme")
	r := c.do("POST", "/api/v1/instances", map[string]any{"name": "orphan", "plan_id": planRedisDev})
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.body)
	}
	id := r.json(t)["instance"].(map[string]any)["id"].(string)
	select {
	case got := <-blocked:
		if got != id {
			t.Fatalf("replica a stopped at %s, not %s", got, id)
		}
	case <-time.After(readyWithin):
		t.Fatal("replica a never drove the instance into verifying")
	}
	aBlocked.Store(true)
	var owner string
	var token int64
	if err := db.QueryRow("SELECT owner, token FROM saga_leases WHERE instance_id = ?", id).Scan(&owner, &token); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	a.stopService() // the context ends; with KeepLeasesOnStop the lease stays, as after a crash
	var (
		takenAt  time.Time
		newOwner string
	)
	// Polled every 20ms (not eventually's backoff) for the figure's sake.
	for deadline := crashed.Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var tok int64
		if err := db.QueryRow("SELECT owner, token FROM saga_leases WHERE instance_id = ?", id).Scan(&newOwner, &tok); err != nil {
			t.Fatal(err)
		}
		if newOwner != owner && tok > token {
			takenAt = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease of %s still %s's (token %d) 30s after the crash", id, newOwner, tok)
		}
	}
	inst := c.waitState(id, readyWithin, "ready", "failed")
	ready := time.Now()
	if inst["state"] != "ready" {
		t.Fatalf("taken-over instance: %v (%v)", inst["state"], inst["reason"])
	}
	takeover := takenAt.Sub(crashed)
	ttl := 5 * time.Second // saga.Config's default LeaseTTL, which the stack keeps
	t.Logf("takeover time of a dead provisioning replica: %s (lease TTL %s, renewed every 1s), instance ready %s after the crash",
		takeover.Round(time.Millisecond), ttl, ready.Sub(crashed).Round(time.Millisecond))
	if takeover > ttl+3*time.Second {
		t.Fatalf("takeover took %s, more than the lease TTL %s + 3s", takeover, ttl)
	}
	if nodes := inst["nodes"].([]any); len(nodes) != 1 {
		t.Fatalf("taken-over instance has %d nodes", len(nodes))
	}
	if r := c.do("DELETE", "/api/v1/instances/"+id, nil); r.status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	c.waitState(id, time.Minute, "deleted")
	if pids := nodePIDs(a.stateDir); len(pids) != 0 {
		t.Fatalf("servers left: %v", pids)
	}
}
