package failover

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/failover/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// countedFaults records injected faults from several goroutines.
type countedFaults struct {
	mu  sync.Mutex
	got map[string]int // instance → faults injected
}

func (f *countedFaults) Inject(_ context.Context, instanceID, _ string, _ topology.Fault) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got == nil {
		f.got = map[string]int{}
	}
	f.got[instanceID]++
	return nil
}

func (f *countedFaults) count(instanceID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[instanceID]
}

type twoNodes struct{}

func (twoNodes) Get(_ context.Context, id string) (topology.Instance, error) {
	return topology.Instance{ID: id, Tenant: "acme", Nodes: []topology.Node{{ID: "n0", Role: topology.RolePrimary}, {ID: "n1", Role: topology.RoleReplica}}}, nil
}

// passes counts the due-schedule reads of one replica's loop.
type passes struct {
	*mysqlstore.Store
	n atomic.Int64
}

func (p *passes) DueSchedules(ctx context.Context, now time.Time) ([]mysqlstore.Schedule, error) {
	defer p.n.Add(1)
	return p.Store.DueSchedules(ctx, now)
}

// TestTwoReplicasOneScheduledDrill: two failover replicas' drill loops on one
// database start exactly one drill per due schedule, however their passes
// interleave, and when one replica stops the other goes on starting them.
func TestTwoReplicasOneScheduledDrill(t *testing.T) {
	ctx := t.Context()
	st, err := mysqlstore.New(storetest.NewDB(t, "failover_drill_replicas"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	replica := func(f *countedFaults) (*drills, *passes) {
		p := &passes{Store: st}
		return &drills{store: p, faults: f, instances: twoNodes{}, recover: noSwitch{}, logger: slog.New(slog.DiscardHandler),
			timeout: time.Hour, scheduleEvery: 50 * time.Millisecond, now: time.Now}, p
	}
	fa, fb := &countedFaults{}, &countedFaults{}
	a, pa := replica(fa)
	b, pb := replica(fb)
	due := func(id string) {
		t.Helper()
		if err := st.PutSchedule(ctx, mysqlstore.Schedule{InstanceID: id, Tenant: "acme", Cadence: "weekly",
			DrillKind: mysqlstore.DrillKillPrimary, NextAt: time.Now().Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
	}

	// Both replicas' passes race on the same due schedules.
	const rounds, perRound = 10, 5
	for r := range rounds {
		for i := range perRound {
			due(fmt.Sprintf("r%d-i%d", r, i))
		}
		var wg sync.WaitGroup
		for _, d := range []*drills{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.scheduled(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for i := range perRound {
			id := fmt.Sprintf("r%d-i%d", r, i)
			if n := fa.count(id) + fb.count(id); n != 1 {
				t.Fatalf("%s: %d drills started, want 1 (a %d, b %d)", id, n, fa.count(id), fb.count(id))
			}
		}
	}
	reports, err := st.ListDrills(ctx, "", "", 1000)
	if err != nil || len(reports) != rounds*perRound {
		t.Fatalf("drill reports = %d, %v; want %d", len(reports), err, rounds*perRound)
	}

	// Both loops run; then a stops and b alone starts what falls due.
	actx, stopA := context.WithCancel(ctx)
	aDone := make(chan struct{})
	go func() { defer close(aDone); _ = a.Run(actx, true) }()
	bctx, stopB := context.WithCancel(ctx)
	bDone := make(chan struct{})
	go func() { defer close(bDone); _ = b.Run(bctx, true) }()
	t.Cleanup(func() { stopB(); <-bDone })
	due("running-both")
	waitFor(t, 10*time.Second, "the drill of running-both", func() bool { return fa.count("running-both")+fb.count("running-both") == 1 })
	// Two more passes of each loop after the claim start nothing more.
	na, nb := pa.n.Load(), pb.n.Load()
	waitFor(t, 10*time.Second, "two more passes of each loop", func() bool { return pa.n.Load() >= na+2 && pb.n.Load() >= nb+2 })
	if n := fa.count("running-both") + fb.count("running-both"); n != 1 {
		t.Fatalf("running-both: %d drills, want 1", n)
	}
	stopA()
	<-aDone
	beforeA := fa.count("after-a-stopped")
	due("after-a-stopped")
	waitFor(t, 10*time.Second, "b starting the drill after a stopped", func() bool { return fb.count("after-a-stopped") == 1 })
	if fa.count("after-a-stopped") != beforeA {
		t.Fatal("a stopped but started a drill")
	}
}

// TestTwoReplicasSettleOneOutcome: a drill's first recorded outcome stands;
// a replica settling it later (here one whose clock says it timed out) does
// not overwrite it.
func TestTwoReplicasSettleOneOutcome(t *testing.T) {
	ctx := t.Context()
	st, err := mysqlstore.New(storetest.NewDB(t, "failover_drill_settle"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	mk := func(clock time.Time) *drills {
		return &drills{store: st, faults: &countedFaults{}, instances: twoNodes{}, recover: noSwitch{},
			logger: slog.New(slog.DiscardHandler), timeout: time.Minute, now: func() time.Time { return clock }}
	}
	a, late := mk(now), mk(now.Add(time.Hour))
	in, _ := twoNodes{}.Get(ctx, "i1")
	rep, err := a.Drill(ctx, in, mysqlstore.DrillKillPrimary, "apikey:1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.Acquire(ctx, "i1", "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := topology.Recovery{ID: ulid.Make().String(), InstanceID: "i1", Tenant: "acme", Kind: topology.KindDrill, Problem: "DeadPrimary",
		State: topology.StateStarted, Step: topology.StepDetected, OldPrimary: "n0", DetectedAt: now.Add(100 * time.Millisecond)}
	if err := st.Begin(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	r.State, r.Step, r.Candidate = topology.StateCompleted, topology.StepDone, "n1"
	if err := st.Save(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	if err := a.settle(ctx); err != nil {
		t.Fatal(err)
	}
	// The late replica read the drill as running before a settled it.
	if err := st.FinishDrill(ctx, rep.ID, mysqlstore.DrillFailed, "", "no recovery completed within 1m", now.Add(time.Hour)); err == nil {
		t.Fatal("second outcome of a finished drill accepted")
	}
	if err := late.settle(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetDrill(ctx, rep.ID)
	if err != nil || got.State != mysqlstore.DrillPassed || got.RecoveryID != r.ID {
		t.Fatalf("drill = %+v, %v; want passed by %s", got, err, r.ID)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
