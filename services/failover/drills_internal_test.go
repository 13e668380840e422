package failover

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/failover/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// faults records injected faults; fail, when set, is their error.
type faults struct {
	got  []string
	fail error
}

func (f *faults) Inject(_ context.Context, instanceID, nodeID string, kind topology.Fault) error {
	f.got = append(f.got, instanceID+"/"+nodeID+":"+string(kind))
	return f.fail
}

type noSwitch struct{}

func (noSwitch) Switchover(context.Context, string, string, bool) (topology.Recovery, error) {
	return topology.Recovery{}, topology.ErrNoCandidate
}

// TestDrillSettledByItsRecovery: a kill-primary drill kills the primary and
// passes when the recovery detected after it completes; a drill no recovery
// answers fails after the timeout; a fault that cannot be injected fails at once.
func TestDrillSettledByItsRecovery(t *testing.T) {
	ctx := t.Context()
	st, err := mysqlstore.New(storetest.NewDB(t, "failover_drills"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &faults{}
	now := time.Now()
	d := &drills{store: st, faults: f, recover: noSwitch{}, logger: slog.New(slog.DiscardHandler), timeout: time.Minute,
		now: func() time.Time { return now }}
	in := topology.Instance{ID: "i1", Tenant: "acme", Nodes: []topology.Node{{ID: "n0", Role: topology.RolePrimary}, {ID: "n1", Role: topology.RoleReplica}}}
	rep, err := d.Drill(ctx, in, mysqlstore.DrillKillPrimary, "apikey:1")
	if err != nil || rep.State != mysqlstore.DrillRunning || len(f.got) != 1 || f.got[0] != "i1/n0:kill" {
		t.Fatalf("drill = %+v, %v; faults %v", rep, err, f.got)
	}
	// The watcher answers: a recovery detected after the fault completes.
	l, err := st.Acquire(ctx, "i1", "w", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A switchover that ended just before the drill was asked for is not
	// its answer, though within the second allowed for clock skew.
	sw0 := topology.Recovery{ID: ulid.Make().String(), InstanceID: "i1", Tenant: "acme", Kind: topology.KindSwitchover, Problem: "Switchover",
		State: topology.StateStarted, Step: topology.StepDetected, OldPrimary: "n1", DetectedAt: now.Add(-500 * time.Millisecond)}
	if err := st.Begin(ctx, l, sw0); err != nil {
		t.Fatal(err)
	}
	sw0.State, sw0.Step, sw0.Candidate = topology.StateCompleted, topology.StepDone, "n0"
	if err := st.Save(ctx, l, sw0); err != nil {
		t.Fatal(err)
	}
	if err := d.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetDrill(ctx, rep.ID); got.State != mysqlstore.DrillRunning {
		t.Fatalf("drill settled by the switchover before it: %+v", got)
	}
	r := topology.Recovery{ID: ulid.Make().String(), InstanceID: "i1", Tenant: "acme", Kind: topology.KindDrill, Problem: "DeadPrimary",
		State: topology.StateStarted, Step: topology.StepDetected, OldPrimary: "n0", DetectedAt: now.Add(200 * time.Millisecond)}
	if err := st.Begin(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	if err := d.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetDrill(ctx, rep.ID); got.State != mysqlstore.DrillRunning {
		t.Fatalf("drill settled while its recovery runs: %+v", got)
	}
	r.State, r.Step, r.Candidate = topology.StateCompleted, topology.StepDone, "n1"
	if err := st.Save(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	if err := d.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetDrill(ctx, rep.ID); got.State != mysqlstore.DrillPassed || got.RecoveryID != r.ID {
		t.Fatalf("drill after its recovery completed = %+v", got)
	}

	lonely, err := d.Drill(ctx, topology.Instance{ID: "i2", Tenant: "acme", Nodes: in.Nodes}, mysqlstore.DrillStopPrimary, "x")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if err := d.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetDrill(ctx, lonely.ID); got.State != mysqlstore.DrillFailed || got.Reason == "" {
		t.Fatalf("unanswered drill after the timeout = %+v", got)
	}

	f.fail = errors.New("driver refused")
	failed, err := d.Drill(ctx, in, mysqlstore.DrillKillPrimary, "x")
	if err != nil || failed.State != mysqlstore.DrillFailed || failed.Reason == "" {
		t.Fatalf("drill whose fault failed = %+v, %v", failed, err)
	}
	sw, err := d.Drill(ctx, in, mysqlstore.DrillSwitchover, "x")
	if err != nil || sw.State != mysqlstore.DrillFailed {
		t.Fatalf("switchover drill with no candidate = %+v, %v", sw, err)
	}
}
