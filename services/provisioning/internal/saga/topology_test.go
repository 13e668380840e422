package saga

import (
	"errors"
	"slices"
	"testing"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

func promoted(in *instance.Instance, token int64, recovery string) events.Recovery {
	return events.Recovery{RecoveryID: recovery, InstanceID: in.ID, TenantID: in.Tenant, FencingToken: token, State: "completed",
		OldPrimary: in.ID + "-n0", NewPrimary: in.ID + "-n1",
		Roles: map[string]string{in.ID + "-n0": "fenced", in.ID + "-n1": "primary", in.ID + "-n2": "replica"}}
}

func wantPrimary(t *testing.T, in *instance.Instance, id string) {
	t.Helper()
	p, ok := in.Primary()
	if !ok || p.ID != id || in.Endpoints().Primary != p.Address {
		t.Fatalf("primary %+v, endpoints %+v; want %s", p, in.Endpoints(), id)
	}
}

// A failover outcome commits the roles with one updated event; a
// redelivery commits nothing.
func TestOnFailoverCompleted(t *testing.T) {
	h := newHarness(t, Config{})
	in := h.ready("db")
	n := len(h.eventTypes(in.ID))
	for range 2 {
		if err := h.saga.OnFailoverCompleted(h.ctx, promoted(in, 1, "r1")); err != nil {
			t.Fatal(err)
		}
	}
	got := h.get(in.ID)
	wantPrimary(t, got, in.ID+"-n1")
	if old, _ := got.Node(in.ID + "-n0"); old.Role != instance.RoleReplica || !old.Fenced {
		t.Fatalf("old primary %+v, want a fenced replica", old)
	}
	if evs := h.eventTypes(in.ID)[n:]; !slices.Equal(evs, []string{events.TypeInstanceUpdated}) {
		t.Fatalf("events %v, want one %s", evs, events.TypeInstanceUpdated)
	}
	other := promoted(in, 2, "r2")
	other.TenantID = "globex"
	if err := h.saga.OnFailoverCompleted(h.ctx, other); !IsTopologyPoison(err) {
		t.Fatalf("another tenant's outcome: %v, want poison", err)
	}
	bad := promoted(in, 3, "r3")
	bad.Roles = map[string]string{"elsewhere-n0": "primary"}
	if err := h.saga.OnFailoverCompleted(h.ctx, bad); !IsTopologyPoison(err) || !errors.Is(err, instance.ErrInvalid) {
		t.Fatalf("outcome naming foreign nodes: %v, want poison", err)
	}
	if err := h.saga.OnNodeRejoined(h.ctx, events.NodeRejoined{InstanceID: in.ID, TenantID: tenant, NodeID: in.ID + "-n0", Primary: in.ID + "-n1"}); err != nil {
		t.Fatal(err)
	}
	if old, _ := h.get(in.ID).Node(in.ID + "-n0"); old.Fenced || len(h.get(in.ID).Endpoints().Replicas) != 2 {
		t.Fatalf("rejoined node %+v, endpoints %+v", old, h.get(in.ID).Endpoints())
	}
	// A restarted provisioning re-adopts the nodes under their new roles.
	h.restart()
	wantPrimary(t, h.get(in.ID), in.ID+"-n1")
}

// An update running while a failover completes commits against the roles
// as they are then: its final change re-reads the locked instance, so the
// new primary survives it.
func TestFailoverDuringUpdate(t *testing.T) {
	h := newHarness(t, Config{})
	in := h.ready("db")
	if _, _, err := h.saga.UpdateParameters(h.ctx, tenant, in.ID, map[string]any{"maxmemory-policy": "allkeys-lru"}); err != nil {
		t.Fatal(err)
	}
	if err := h.saga.OnFailoverCompleted(h.ctx, promoted(in, 1, "r1")); err != nil {
		t.Fatal(err)
	}
	h.settle()
	got := h.get(in.ID)
	if got.State != instance.StateReady {
		t.Fatalf("instance %s, want ready", got.State)
	}
	wantPrimary(t, got, in.ID+"-n1")
}

// A failover outcome for an instance being deleted changes nothing; the
// delete destroys every node whatever its role.
func TestFailoverDuringDelete(t *testing.T) {
	h := newHarness(t, Config{})
	in := h.ready("db")
	if _, _, err := h.saga.Delete(h.ctx, tenant, in.ID); err != nil {
		t.Fatal(err)
	}
	n := len(h.eventTypes(in.ID))
	if err := h.saga.OnFailoverCompleted(h.ctx, promoted(in, 1, "r1")); err != nil {
		t.Fatal(err)
	}
	if evs := h.eventTypes(in.ID)[n:]; len(evs) != 0 {
		t.Fatalf("events %v for a deleting instance", evs)
	}
	wantPrimary(t, h.get(in.ID), in.ID+"-n0")
	h.settle()
	got := h.get(in.ID)
	if got.State != instance.StateDeleted || h.drv.onDisk() != 0 {
		t.Fatalf("instance %s with %d nodes on disk, want deleted and none", got.State, h.drv.onDisk())
	}
	if err := h.saga.OnFailoverCompleted(h.ctx, promoted(in, 2, "r2")); err != nil || len(h.eventTypes(in.ID)) != n+1 {
		t.Fatalf("outcome for a deleted instance: %v, events %v", err, h.eventTypes(in.ID))
	}
}
