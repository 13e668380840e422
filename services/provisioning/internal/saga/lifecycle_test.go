package saga

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// TestTimeouts: a create that waits too long for its placement, or is not
// ready within the provision timeout at any step, is rolled back on the
// next sweep. The clock is the saga's: no test waits for minutes.
func TestTimeouts(t *testing.T) {
	cfg := Config{PlacementTimeout: 2 * time.Minute, ProvisionTimeout: 10 * time.Minute}
	tests := []struct {
		name    string
		stuckAt instance.Step
		advance time.Duration
		reason  string
	}{
		{"no placement decision", instance.StepPlacing, cfg.PlacementTimeout + time.Second, "no placement decision within 2m0s"},
		{"stuck creating", instance.StepCreating, cfg.ProvisionTimeout + time.Second, "not ready within 10m0s (step creating)"},
		{"stuck replicating", instance.StepReplicating, cfg.ProvisionTimeout + time.Second, "not ready within 10m0s (step replicating)"},
		{"stuck verifying", instance.StepVerifying, cfg.ProvisionTimeout + time.Second, "not ready within 10m0s (step verifying)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg)
			in := h.order("db")
			if tt.stuckAt != instance.StepPlacing {
				h.haltAt(tt.stuckAt)
				h.place(in)
				h.settle()
			}
			if got := h.get(in.ID); got.Step != tt.stuckAt {
				t.Fatalf("instance at %s, want stuck at %s", got.Step, tt.stuckAt)
			}
			// Just short of the timeout nothing happens.
			h.clock.Advance(tt.advance - 2*time.Second)
			h.sweep()
			if got := h.get(in.ID); got.Step != tt.stuckAt {
				t.Fatalf("before the timeout the instance moved to %s", got.Step)
			}
			h.clock.Advance(2 * time.Second)
			h.sweep()
			h.wantFailed(in.ID, tt.reason)
			if tt.stuckAt == instance.StepPlacing && len(h.drv.callList()) != 0 {
				t.Fatalf("driver called for an instance never placed: %v", h.drv.callList())
			}
		})
	}
}

// TestDelete: a delete destroys every node, drops the bindings and ends
// deleted, from ready or from a create in progress; it is idempotent and
// tenant-scoped.
func TestDelete(t *testing.T) {
	t.Run("ready instance", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.ready("db")
		b, _, err := h.saga.Bind(h.ctx, tenant, in.ID, "app", "")
		if err != nil {
			t.Fatal(err)
		}
		_, op, err := h.saga.Delete(h.ctx, tenant, in.ID)
		if err != nil || op.Type != instance.OpDelete {
			t.Fatalf("delete: %v %+v", err, op)
		}
		// Deleting again while deleting returns the same operation.
		if _, again, err := h.saga.Delete(h.ctx, tenant, in.ID); err != nil || again.ID != op.ID {
			t.Fatalf("second delete: %v, operation %s want %s", err, again.ID, op.ID)
		}
		h.settle()
		got := h.get(in.ID)
		if got.State != instance.StateDeleted || h.op(got).State != instance.OpSucceeded {
			t.Fatalf("instance %s, operation %+v; want deleted, succeeded", got.State, h.op(got))
		}
		if n := h.drv.count("destroy", ""); n != 3 || h.drv.onDisk() != 0 {
			t.Fatalf("destroy called %d times, %d nodes on disk; want 3 and none", n, h.drv.onDisk())
		}
		if sb, err := h.repo.Binding(h.ctx, tenant, in.ID, b.ID); err != nil || !sb.Deleted {
			t.Fatalf("binding after delete: %+v %v, want deleted", sb, err)
		}
		h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceReady,
			events.TypeBindingCreated, events.TypeInstanceDeleting, events.TypeInstanceDeleted)
		if _, _, err := h.saga.Delete(h.ctx, tenant, in.ID); !errors.Is(err, ErrGone) {
			t.Fatalf("delete of a deleted instance: %v, want ErrGone", err)
		}
	})
	t.Run("create in progress", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		h.haltAt(instance.StepVerifying)
		h.place(in)
		h.settle()
		h.saga.hooks = Hooks{}
		_, _, err := h.saga.Delete(h.ctx, tenant, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		h.settle()
		if got := h.get(in.ID); got.State != instance.StateDeleted || h.drv.onDisk() != 0 {
			t.Fatalf("instance %s with %d nodes on disk, want deleted and none", got.State, h.drv.onDisk())
		}
		if h.eng.count("verify") != 0 {
			t.Fatal("verified an instance being deleted")
		}
		old, err := h.repo.OperationAnyTenant(h.ctx, in.OperationID)
		if err != nil || old.State != instance.OpFailed || old.Error != "superseded by delete" {
			t.Fatalf("create operation %+v %v, want failed: superseded by delete", old, err)
		}
	})
	t.Run("destroy retried by the sweep", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.ready("db")
		h.drv.setFail(failTimes("destroy", "-n1", 1, errors.New("device busy")))
		if _, _, err := h.saga.Delete(h.ctx, tenant, in.ID); err != nil {
			t.Fatal(err)
		}
		h.settle()
		if got := h.get(in.ID); got.State != instance.StateDeleting {
			t.Fatalf("instance %s, want still deleting after a failed destroy", got.State)
		}
		h.sweep()
		if got := h.get(in.ID); got.State != instance.StateDeleted {
			t.Fatalf("instance %s after the sweep, want deleted", got.State)
		}
	})
	t.Run("another tenant's instance", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.ready("db")
		if _, _, err := h.saga.Delete(h.ctx, "globex", in.ID); !errors.Is(err, port.ErrNotFound) {
			t.Fatalf("delete by another tenant: %v, want not found", err)
		}
		if got := h.get(in.ID); got.State != instance.StateReady {
			t.Fatalf("instance %s, want untouched", got.State)
		}
	})
}

// TestUpdateParameters: a parameter change is applied to the engine and
// ends ready; one the engine refuses fails its operation and leaves the
// instance ready with its nodes.
func TestUpdateParameters(t *testing.T) {
	tests := []struct {
		name   string
		fail   failFunc
		wantOp instance.OpState
		last   string
	}{
		{"applied", nil, instance.OpSucceeded, events.TypeInstanceUpdated},
		{"engine refuses", failOn("apply", "", errors.New("ERR unsupported")), instance.OpFailed, events.TypeInstanceUpdating},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			in := h.ready("db")
			h.eng.setFail(tt.fail)
			_, op, err := h.saga.UpdateParameters(h.ctx, tenant, in.ID, map[string]any{"maxmemory-policy": "allkeys-lru"})
			if err != nil {
				t.Fatal(err)
			}
			h.settle()
			got := h.get(in.ID)
			if got.State != instance.StateReady {
				t.Fatalf("instance %s, want ready", got.State)
			}
			stored, err := h.repo.Operation(h.ctx, tenant, op.ID)
			if err != nil || stored.State != tt.wantOp {
				t.Fatalf("operation %+v %v, want %s", stored, err, tt.wantOp)
			}
			if len(h.eng.settings) != 1 || h.eng.settings[0]["maxmemory-policy"] != "allkeys-lru" {
				t.Fatalf("applied %v", h.eng.settings)
			}
			evs := h.eventTypes(in.ID)
			if evs[len(evs)-1] != tt.last {
				t.Fatalf("events %v, want %s last", evs, tt.last)
			}
			if h.drv.count("destroy", "") != 0 {
				t.Fatal("an update destroyed nodes")
			}
		})
	}
	t.Run("not a tunable", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.ready("db")
		if _, _, err := h.saga.UpdateParameters(h.ctx, tenant, in.ID, map[string]any{"dir": "/etc"}); !errors.Is(err, instance.ErrInvalid) {
			t.Fatalf("update with dir: %v, want ErrInvalid", err)
		}
		if got := h.get(in.ID); got.State != instance.StateReady || h.eng.count("apply") != 0 {
			t.Fatalf("instance %s, %d applies; want untouched", got.State, h.eng.count("apply"))
		}
	})
}

// TestResume: a provisioning process that stops at any persisted step is
// resumed by the next one — nodes re-adopted through the driver, never
// created twice — and the instance ends where the interrupted operation
// was going.
func TestResume(t *testing.T) {
	tests := []struct {
		name string
		// setup brings an instance to the step where the process stops.
		at         instance.Step
		setup      func(h *harness, in *instance.Instance)
		want       instance.State
		wantAdopts int
		// wantCreates is how many nodes the new process creates.
		wantCreates int
	}{
		{"placing", instance.StepPlacing, nil, instance.StateReady, 0, 3},
		{"creating", instance.StepCreating, nil, instance.StateReady, 0, 3},
		{"replicating", instance.StepReplicating, nil, instance.StateReady, 3, 0},
		{"verifying", instance.StepVerifying, nil, instance.StateReady, 3, 0},
		{"rolling back", instance.StepRollingBack, func(h *harness, in *instance.Instance) {
			h.drv.setFail(failOn("primary", "", driver.ErrUnsupported))
		}, instance.StateFailed, 3, 0},
		{"applying an update", instance.StepApplying, func(h *harness, in *instance.Instance) {
			h.saga.hooks = Hooks{}
			h.place(in)
			h.settle()
			h.haltAt(instance.StepApplying)
			if _, _, err := h.saga.UpdateParameters(h.ctx, tenant, in.ID, map[string]any{"hz": 20}); err != nil {
				h.t.Fatal(err)
			}
		}, instance.StateReady, 3, 0},
		{"destroying", instance.StepDestroying, func(h *harness, in *instance.Instance) {
			h.saga.hooks = Hooks{}
			h.place(in)
			h.settle()
			h.haltAt(instance.StepDestroying)
			if _, _, err := h.saga.Delete(h.ctx, tenant, in.ID); err != nil {
				h.t.Fatal(err)
			}
		}, instance.StateDeleted, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			in := h.order("db")
			if tt.at != instance.StepPlacing {
				h.haltAt(tt.at)
				if tt.setup != nil {
					tt.setup(h, in)
				}
				h.place(in)
				h.settle()
			}
			if got := h.get(in.ID); got.Step != tt.at {
				t.Fatalf("first process stopped at %s, want %s", got.Step, tt.at)
			}
			h.restart()
			if tt.at == instance.StepPlacing {
				h.place(in)
			}
			h.settle()
			got := h.get(in.ID)
			if got.State != tt.want {
				t.Fatalf("after resume: %s/%s (%s), want %s", got.State, got.Step, got.Reason, tt.want)
			}
			if n := h.drv.count("adopt", ""); n != tt.wantAdopts {
				t.Errorf("new process adopted %d nodes, want %d", n, tt.wantAdopts)
			}
			if n := h.drv.count("create", ""); n != tt.wantCreates {
				t.Errorf("new process created %d nodes, want %d", n, tt.wantCreates)
			}
			if tt.want != instance.StateReady && h.drv.onDisk() != 0 {
				t.Errorf("%d nodes left on disk", h.drv.onDisk())
			}
		})
	}
}

// TestResumeHalfCreatedNode: a process that dies after the driver created a
// node but before it was recorded started leaves the node "creating"; the
// next process completes it with the same spec instead of conflicting.
func TestResumeHalfCreatedNode(t *testing.T) {
	h := newHarness(t, Config{})
	in := h.order("db")
	h.place(in)
	crash, stop := context.WithCancel(h.ctx)
	h.drv.setFail(func(ctx context.Context, c call) error {
		if c.matches("start", "-n1") {
			stop() // the process dies while starting n1
			return context.Canceled
		}
		return nil
	})
	<-h.saga.kicks
	h.saga.drive(crash, in.ID)
	got := h.get(in.ID)
	if n, _ := got.Node(in.NodeID("n1")); n.State != instance.NodeCreating {
		t.Fatalf("n1 %s after the crash, want creating", n.State)
	}
	h.restart()
	h.settle()
	if got := h.get(in.ID); got.State != instance.StateReady {
		t.Fatalf("after resume: %s/%s (%s), want ready", got.State, got.Step, got.Reason)
	}
	if n := h.drv.count("create", "-n1"); n != 1 {
		t.Fatalf("n1 created %d times by the new process, want once (completing it)", n)
	}
}

// TestPlacementEvents: placement events are idempotent, checked against the
// stored instance's tenant, and a failed or unusable placement fails the
// create.
func TestPlacementEvents(t *testing.T) {
	t.Run("duplicate decision does nothing twice", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		h.place(in)
		placed := h.get(in.ID)
		outbox := len(h.repo.Outbox())
		h.place(in)
		if again := h.get(in.ID); !again.UpdatedAt.Equal(placed.UpdatedAt) || len(h.repo.Outbox()) != outbox {
			t.Fatal("a repeated decision changed the instance or emitted")
		}
		h.settle()
		h.place(in) // redelivered after ready
		h.settle()
		if got := h.get(in.ID); got.State != instance.StateReady {
			t.Fatalf("instance %s, want ready", got.State)
		}
		if n := h.drv.count("create", ""); n != 3 {
			t.Fatalf("created %d nodes, want 3", n)
		}
		h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceReady)
	})
	t.Run("failure after decision is ignored", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		h.place(in)
		if err := h.saga.OnPlacementFailed(h.ctx, events.PlacementFailed{InstanceID: in.ID, TenantID: tenant, Reason: "late"}); err != nil {
			t.Fatal(err)
		}
		h.settle()
		if got := h.get(in.ID); got.State != instance.StateReady {
			t.Fatalf("instance %s (%s), want ready", got.State, got.Reason)
		}
	})
	t.Run("duplicate failure rolls back once", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		f := events.PlacementFailed{InstanceID: in.ID, TenantID: tenant, Reason: "no capacity"}
		for range 2 {
			if err := h.saga.OnPlacementFailed(h.ctx, f); err != nil {
				t.Fatal(err)
			}
			h.settle()
		}
		h.wantFailed(in.ID, "no placement: no capacity")
		h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceFailed)
	})
	t.Run("placement failed", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		if err := h.saga.OnPlacementFailed(h.ctx, events.PlacementFailed{InstanceID: in.ID, TenantID: tenant, Reason: "no capacity"}); err != nil {
			t.Fatal(err)
		}
		h.settle()
		h.wantFailed(in.ID, "no placement: no capacity")
		if len(h.drv.callList()) != 0 {
			t.Fatalf("driver called: %v", h.drv.callList())
		}
	})
	t.Run("unusable decision", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		d := decision(in, tenant)
		d.Nodes = d.Nodes[:2]
		if err := h.saga.OnPlacementDecided(h.ctx, d); err != nil {
			t.Fatal(err)
		}
		h.settle()
		h.wantFailed(in.ID, "placement unusable")
	})
	t.Run("decision after the instance ended releases again", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		if _, _, err := h.saga.Delete(h.ctx, tenant, in.ID); err != nil {
			t.Fatal(err)
		}
		h.settle()
		if err := h.saga.OnPlacementDecided(h.ctx, decision(in, tenant)); err != nil {
			t.Fatal(err)
		}
		h.settle()
		if got := h.get(in.ID); got.State != instance.StateDeleted {
			t.Fatalf("instance %s, want deleted", got.State)
		}
		if n := h.drv.count("create", ""); n != 0 {
			t.Fatalf("created %d nodes for a deleted instance", n)
		}
		// The second deleted event is what makes scheduling release the
		// reservation it made after the first one.
		h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested,
			events.TypeInstanceDeleting, events.TypeInstanceDeleted, events.TypeInstanceDeleted)

		h = newHarness(t, Config{})
		in = h.order("db")
		if err := h.saga.OnPlacementFailed(h.ctx, events.PlacementFailed{InstanceID: in.ID, TenantID: tenant, Reason: "timeout"}); err != nil {
			t.Fatal(err)
		}
		h.settle()
		if err := h.saga.OnPlacementDecided(h.ctx, decision(in, tenant)); err != nil {
			t.Fatal(err)
		}
		h.settle()
		h.wantFailed(in.ID, "no placement: timeout")
		h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceFailed, events.TypeInstanceFailed)
	})
	t.Run("unknown instance", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		d := decision(in, tenant)
		d.InstanceID = "nope"
		if err := h.saga.OnPlacementDecided(h.ctx, d); err != nil {
			t.Fatalf("decision for an unknown instance: %v, want ignored", err)
		}
		if err := h.saga.OnPlacementFailed(h.ctx, events.PlacementFailed{InstanceID: "nope", TenantID: tenant}); err != nil {
			t.Fatalf("failure for an unknown instance: %v, want ignored", err)
		}
	})
	for _, tt := range []struct {
		name string
		send func(h *harness, in *instance.Instance) error
	}{
		{"decision for another tenant", func(h *harness, in *instance.Instance) error {
			return h.saga.OnPlacementDecided(h.ctx, decision(in, "globex"))
		}},
		{"failure for another tenant", func(h *harness, in *instance.Instance) error {
			return h.saga.OnPlacementFailed(h.ctx, events.PlacementFailed{InstanceID: in.ID, TenantID: "globex", Reason: "x"})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			in := h.order("db")
			err := tt.send(h, in)
			if !errors.Is(err, eventbus.ErrTenantMismatch) || eventbus.ClassOf(err) != eventbus.ClassPoison {
				t.Fatalf("err = %v, want a poison tenant mismatch", err)
			}
			h.settle()
			if got := h.get(in.ID); got.State != instance.StateProvisioning || got.Step != instance.StepPlacing {
				t.Fatalf("instance %s/%s, want untouched", got.State, got.Step)
			}
			h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested)
		})
	}
}

// TestOrderIdempotencyKey: a repeated order with the same key returns the
// first instance and emits nothing.
func TestOrderIdempotencyKey(t *testing.T) {
	h := newHarness(t, Config{})
	req := OrderRequest{Tenant: tenant, Name: "db", Plan: redisPlan(), Version: "7.0", IdempotencyKey: "k1", RequestHash: "h1"}
	first, op, err := h.saga.Order(h.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	outbox := len(h.repo.Outbox())
	again, againOp, err := h.saga.Order(h.ctx, req)
	var dup *port.DuplicateError
	if !errors.As(err, &dup) || !dup.SameRequest || again.ID != first.ID || againOp.ID != op.ID {
		t.Fatalf("repeat: %v, instance %v; want the first instance as a duplicate", err, again)
	}
	if len(h.repo.Outbox()) != outbox {
		t.Fatal("a repeated order emitted events")
	}
}

// TestRun: Run's workers drive kicked instances to the end and stop with
// their context.
func TestRun(t *testing.T) {
	h := newHarness(t, Config{SweepInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- h.saga.Run(ctx) }()
	in := h.order("db")
	h.place(in)
	deadline := time.Now().Add(5 * time.Second)
	for h.get(in.ID).State != instance.StateReady {
		if time.Now().After(deadline) {
			t.Fatalf("not ready in time: %s", h.get(in.ID).Step)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}
