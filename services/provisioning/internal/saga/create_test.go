package saga

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// TestCreate: an order goes requested → placed → creating → replicating →
// verifying → ready, one step at a time, with its events in order.
func TestCreate(t *testing.T) {
	h := newHarness(t, Config{})
	var steps []instance.Step
	h.saga.hooks.BeforeStep = func(_ context.Context, _ string, s instance.Step) error {
		steps = append(steps, s)
		return nil
	}
	in := h.order("db")
	if in.State != instance.StateProvisioning || in.Step != instance.StepPlacing {
		t.Fatalf("ordered instance %s/%s, want provisioning/placing", in.State, in.Step)
	}
	h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested)

	h.settle() // nothing to do before scheduling decides
	if got := h.get(in.ID); got.Step != instance.StepPlacing || len(h.drv.callList()) != 0 {
		t.Fatalf("before the decision: step %s, driver calls %v", got.Step, h.drv.callList())
	}

	h.place(in)
	if got := h.get(in.ID); got.Step != instance.StepCreating || len(got.Nodes) != 3 {
		t.Fatalf("after the decision: step %s with %d nodes, want creating with 3", got.Step, len(got.Nodes))
	}
	h.settle()

	got := h.get(in.ID)
	if got.State != instance.StateReady || got.Step != instance.StepDone {
		t.Fatalf("instance %s/%s (%s), want ready", got.State, got.Step, got.Reason)
	}
	if got.EngineVersion != FakeServerVersion {
		t.Fatalf("engine version %q, want what the engine reported (%s)", got.EngineVersion, FakeServerVersion)
	}
	if want := []instance.Step{instance.StepCreating, instance.StepReplicating, instance.StepVerifying}; !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	if op := h.op(got); op.Type != instance.OpCreate || op.State != instance.OpSucceeded || op.FinishedAt == nil {
		t.Fatalf("operation %+v, want a succeeded create", op)
	}
	h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceReady)
	for _, n := range got.Nodes {
		if n.State != instance.NodeRunning || n.Address == "" || n.PID == 0 || n.Settings == nil {
			t.Fatalf("node %+v, want running with address, pid and settings", n)
		}
	}
	for op, want := range map[string]int{"create": 3, "start": 3, "primary": 1, "replica": 2, "destroy": 0} {
		if n := h.drv.count(op, ""); n != want {
			t.Errorf("driver %s called %d times, want %d", op, n, want)
		}
	}
	if h.drv.count("primary", "-n0") != 1 {
		t.Errorf("primary configured on another node than n0: %v", h.drv.callList())
	}
	calls := h.drv.callList()
	primary := slices.IndexFunc(calls, func(c call) bool { return c.Op == "primary" })
	replica := slices.IndexFunc(calls, func(c call) bool { return c.Op == "replica" })
	if primary > replica {
		t.Errorf("a replica was configured before the primary: %v", calls)
	}
	if n := h.eng.count("verify"); n != 1 {
		t.Errorf("verify called %d times, want 1", n)
	}
}

// TestStepRetries: a step whose driver or engine call fails for a while is
// retried and the create still ends ready.
func TestStepRetries(t *testing.T) {
	transient := errors.New("connection refused")
	tests := []struct {
		name    string
		drv     failFunc
		eng     failFunc
		op      string
		node    string
		wantOps int
	}{
		{"create of one node fails twice", failTimes("create", "-n1", 2, transient), nil, "create", "-n1", 3},
		{"start of every node fails once", failTimes("start", "", 3, transient), nil, "start", "", 6},
		{"configure primary fails once", failTimes("primary", "", 1, transient), nil, "primary", "", 2},
		{"configure replica fails twice", failTimes("replica", "-n2", 2, transient), nil, "replica", "-n2", 3},
		{"port in use once", failTimes("start", "-n0", 1, driver.ErrPortInUse), nil, "start", "-n0", 2},
		{"verify fails once", nil, failTimes("verify", "", 1, transient), "verify", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.drv.setFail(tt.drv)
			h.eng.setFail(tt.eng)
			in := h.ready("db")
			got := h.drv.count(tt.op, tt.node)
			if tt.op == "verify" {
				got = h.eng.count(tt.op)
			}
			if got != tt.wantOps {
				t.Fatalf("%s called %d times, want %d", tt.op, got, tt.wantOps)
			}
			if h.drv.count("destroy", "") != 0 {
				t.Fatal("a retried step destroyed nodes")
			}
			h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceReady)
		})
	}
}

// TestStepFailureRollsBack: a step that cannot succeed — a permanent driver
// error at once, a transient one until the step timeout, a call that hangs —
// rolls the create back: every node created is destroyed, the instance and
// its operation fail with the step's reason and the failed event releases
// the reservation.
func TestStepFailureRollsBack(t *testing.T) {
	transient := errors.New("connection refused")
	tests := []struct {
		name   string
		drv    failFunc
		eng    failFunc
		reason string
		// tries is how often op is called on node: once for a permanent
		// error, more for a retried one (-1: more than once).
		op    string
		node  string
		tries int
	}{
		{"create keeps failing on one node", failOn("create", "-n1", transient), nil, "creating: ", "create", "-n1", -1},
		{"create conflicts (permanent)", failOn("create", "-n2", driver.ErrConflict), nil, "creating: ", "create", "-n2", 2},
		{"start unsupported (permanent)", failOn("start", "", driver.ErrUnsupported), nil, "creating: ", "start", "", 3},
		{"start hangs", hangOn("start"), nil, "creating: ", "start", "", 3},
		{"configure primary keeps failing", failOn("primary", "", transient), nil, "replicating: ", "primary", "", -1},
		{"configure replica refused (permanent)", failOn("replica", "-n1", driver.ErrUnsupported), nil, "replicating: ", "replica", "-n1", 1},
		{"configure replica hangs", hangOn("replica"), nil, "replicating: ", "replica", "", 2},
		{"verify keeps failing", nil, failOn("verify", "", transient), "verifying: ", "verify", "", -1},
		{"verify hangs", nil, hangOn("verify"), "verifying: ", "verify", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each case waits out its step timeout
			// Long enough for the steps before the failing one on a loaded
			// machine, short enough to retry until it passes.
			h := newHarness(t, Config{StepTimeout: 150 * time.Millisecond})
			h.drv.setFail(tt.drv)
			h.eng.setFail(tt.eng)
			in := h.order("db")
			h.place(in)
			h.settle()
			got := h.wantFailed(in.ID, tt.reason)
			h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceFailed)
			n := h.drv.count(tt.op, tt.node)
			if tt.op == "verify" {
				n = h.eng.count(tt.op)
			}
			switch {
			case tt.tries == -1 && n < 2:
				t.Fatalf("%s called %d times, want retries", tt.op, n)
			case tt.tries > 0 && n != tt.tries:
				t.Fatalf("%s called %d times, want %d", tt.op, n, tt.tries)
			}
			// Every node the step had reached is destroyed.
			for _, node := range got.Nodes {
				if node.State == instance.NodeDestroyed && h.drv.count("destroy", node.ID) != 1 {
					t.Fatalf("node %s destroyed %d times, want once", node.ID, h.drv.count("destroy", node.ID))
				}
			}
			if h.drv.count("destroy", "") == 0 {
				t.Fatal("rollback destroyed nothing")
			}
			if h.eng.count("verify") > 0 && tt.reason != "verifying: " {
				t.Fatal("verified an instance whose earlier step failed")
			}
		})
	}
}

// TestRollbackRetriedBySweep: a destroy that fails leaves the instance
// rolling back; the next sweep finishes the rollback.
func TestRollbackRetriedBySweep(t *testing.T) {
	h := newHarness(t, Config{})
	h.drv.setFail(func(ctx context.Context, c call) error {
		switch {
		case c.matches("primary", ""):
			return driver.ErrUnsupported
		case c.matches("destroy", "-n2"):
			return errors.New("device busy")
		}
		return nil
	})
	in := h.order("db")
	h.place(in)
	h.settle()
	if got := h.get(in.ID); got.State != instance.StateProvisioning || got.Step != instance.StepRollingBack {
		t.Fatalf("instance %s/%s, want rolling back while a destroy fails", got.State, got.Step)
	}
	h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested)
	h.drv.setFail(nil)
	h.sweep()
	h.wantFailed(in.ID, "replicating: ")
	if n := h.drv.count("destroy", "-n0"); n != 1 {
		t.Fatalf("n0 destroyed %d times, want once (recorded destroyed before the retry)", n)
	}
}
