package instance

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func plan3() Plan {
	return Plan{ID: "p", Engine: EngineMySQL, DeploymentMode: ModeMultiAZ, ReplicationMode: ReplicationSemiSync,
		Nodes:     []NodeTemplate{{Role: RolePrimary, RegionRole: RegionPrimary}, {Role: RoleReplica, RegionRole: RegionPrimary}, {Role: RoleReplica, RegionRole: RegionPrimary}},
		Resources: Resources{VCPU: 2, MemoryMB: 1024, StorageGB: 10}}
}

func order() Order {
	return Order{ID: "i1", OperationID: "op1", Tenant: "acme", Name: "orders", Plan: plan3(), Version: "10.11"}
}

func placements(n int) []Placement {
	var ps []Placement
	for i := range n {
		ps = append(ps, Placement{Name: NodeName(i), Region: "eu", AZ: "eu-" + NodeName(i), Host: "h" + NodeName(i), Port: 20000 + i})
	}
	return ps
}

// ready returns an instance driven through a successful create.
func ready(t *testing.T) *Instance {
	t.Helper()
	in, _, err := New(order(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := in.Place(placements(3), t0); !ok || err != nil {
		t.Fatalf("place: %v %v", ok, err)
	}
	for _, n := range in.Nodes {
		if err := in.RecordNode(n.ID, NodeUpdate{State: NodeRunning, Address: "127.0.0.1:1", PID: 1}, t0); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []Step{StepReplicating, StepVerifying} {
		if err := in.Advance(s, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.MarkReady(t0); err != nil {
		t.Fatal(err)
	}
	return in
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Order)
		field string
	}{
		{"ok", func(*Order) {}, ""},
		{"no tenant", func(o *Order) { o.Tenant = "" }, "tenant"},
		{"bad name", func(o *Order) { o.Name = "Orders!" }, "name"},
		{"one-char name", func(o *Order) { o.Name = "a" }, "name"},
		{"no version", func(o *Order) { o.Version = "" }, "version"},
		{"two primaries", func(o *Order) { o.Plan.Nodes[1].Role = RolePrimary }, "plan_id"},
		{"unknown engine", func(o *Order) { o.Plan.Engine = "oracle" }, "plan_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := order()
			tt.edit(&o)
			in, op, err := New(o, t0)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if in.State != StateProvisioning || in.Step != StepPlacing || op.Type != OpCreate || op.State != OpInProgress {
					t.Fatalf("got %s/%s op %s/%s", in.State, in.Step, op.Type, op.State)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want field %s", err, tt.field)
			}
		})
	}
}

func TestPlace(t *testing.T) {
	tests := []struct {
		name    string
		ps      []Placement
		changed bool
		wantErr bool
	}{
		{"all nodes", placements(3), true, false},
		{"missing node", placements(2), false, true},
		{"wrong name", append(placements(2), Placement{Name: "x"}), false, true},
		{"duplicate port", []Placement{{Name: "n0", Host: "h", Port: 1}, {Name: "n1", Host: "h", Port: 1}, {Name: "n2", Host: "h", Port: 2}}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, _, _ := New(order(), t0)
			changed, err := in.Place(tt.ps, t0)
			if changed != tt.changed || (err != nil) != tt.wantErr {
				t.Fatalf("changed %v err %v", changed, err)
			}
			if changed && (in.Step != StepCreating || len(in.Nodes) != 3 || in.Nodes[0].Role != RolePrimary || in.Nodes[0].ID != "i1-n0") {
				t.Fatalf("after place: %+v", in)
			}
		})
	}
	t.Run("redelivered decision is a no-op", func(t *testing.T) {
		in := ready(t)
		changed, err := in.Place(placements(3), t0)
		if changed || err != nil {
			t.Fatalf("changed %v err %v", changed, err)
		}
	})
}

func TestTransitions(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) *Instance
		act     func(*Instance) error
		want    State
		wantErr error
	}{
		{"advance before nodes run", func(t *testing.T) *Instance {
			in, _, _ := New(order(), t0)
			in.Place(placements(3), t0)
			return in
		}, func(in *Instance) error { return in.Advance(StepReplicating, t0) }, StateProvisioning, ErrInvalidTransition},
		{"ready skipping verify", func(t *testing.T) *Instance {
			in, _, _ := New(order(), t0)
			in.Place(placements(3), t0)
			return in
		}, func(in *Instance) error { return in.MarkReady(t0) }, StateProvisioning, ErrInvalidTransition},
		{"rollback then failed", func(t *testing.T) *Instance {
			in, _, _ := New(order(), t0)
			in.Place(placements(3), t0)
			return in
		}, func(in *Instance) error {
			if err := in.StartRollback("boom", t0); err != nil {
				return err
			}
			return in.MarkFailed(t0)
		}, StateFailed, nil},
		{"failed with a live node", func(t *testing.T) *Instance {
			in, _, _ := New(order(), t0)
			in.Place(placements(3), t0)
			in.RecordNode("i1-n0", NodeUpdate{State: NodeRunning, Address: "127.0.0.1:1"}, t0)
			in.StartRollback("boom", t0)
			return in
		}, func(in *Instance) error { return in.MarkFailed(t0) }, StateProvisioning, ErrInvalidTransition},
		{"rollback of a ready instance", ready, func(in *Instance) error { return in.StartRollback("x", t0) }, StateReady, ErrInvalidTransition},
		{"update ready", ready, func(in *Instance) error { _, err := in.Update(map[string]any{"a": 1}, "op2", t0); return err }, StateUpdating, nil},
		{"update while provisioning", func(t *testing.T) *Instance { in, _, _ := New(order(), t0); return in },
			func(in *Instance) error { _, err := in.Update(nil, "op2", t0); return err }, StateProvisioning, ErrBusy},
		{"delete ready", ready, func(in *Instance) error { _, err := in.Delete("op2", t0); return err }, StateDeleting, nil},
		{"delete provisioning", func(t *testing.T) *Instance { in, _, _ := New(order(), t0); return in },
			func(in *Instance) error { _, err := in.Delete("op2", t0); return err }, StateDeleting, nil},
		{"delete twice", ready, func(in *Instance) error {
			in.Delete("op2", t0)
			_, err := in.Delete("op3", t0)
			return err
		}, StateDeleting, ErrInvalidTransition},
		{"deleted with running nodes", ready, func(in *Instance) error {
			in.Delete("op2", t0)
			return in.MarkDeleted(t0)
		}, StateDeleting, ErrInvalidTransition},
		{"deleted after destroy", ready, func(in *Instance) error {
			in.Delete("op2", t0)
			for _, n := range in.Nodes {
				in.RecordNode(n.ID, NodeUpdate{State: NodeDestroyed}, t0)
			}
			return in.MarkDeleted(t0)
		}, StateDeleted, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.setup(t)
			err := tt.act(in)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if in.State != tt.want {
				t.Fatalf("state = %s, want %s", in.State, tt.want)
			}
		})
	}
}

func TestSyncOperation(t *testing.T) {
	in, op, _ := New(order(), t0)
	in.Place(placements(3), t0)
	in.StartRollback("no capacity", t0)
	in.MarkFailed(t0)
	in.Sync(&op, t0)
	if op.State != OpFailed || op.Error != "no capacity" || op.FinishedAt == nil {
		t.Fatalf("op = %+v", op)
	}
	in2 := ready(t)
	op2 := Operation{ID: "op1", Type: OpCreate, State: OpInProgress}
	in2.Sync(&op2, t0)
	if op2.State != OpSucceeded || op2.Step != StepDone {
		t.Fatalf("op = %+v", op2)
	}
	if e := in2.Endpoints(); e.Primary != "127.0.0.1:1" || len(e.Replicas) != 2 {
		t.Fatalf("endpoints = %+v", e)
	}
}
