package consumers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// placingSaga applies decisions to an instance in placing with the domain's
// rules, as the saga does inside its repository transaction, without a DB.
type placingSaga struct{ t *testing.T }

func (s placingSaga) instance() *instance.Instance {
	plan := instance.Plan{ID: "p", Engine: instance.EngineMySQL, DeploymentMode: instance.ModeMultiAZ,
		ReplicationMode: instance.ReplicationSemiSync,
		Nodes: []instance.NodeTemplate{{Role: instance.RolePrimary, RegionRole: instance.RegionPrimary},
			{Role: instance.RoleReplica, RegionRole: instance.RegionPrimary}},
		Resources: instance.Resources{VCPU: 2, MemoryMB: 1024, StorageGB: 10}}
	in, _, err := instance.New(instance.Order{ID: "i1", OperationID: "op1", Tenant: "acme", Name: "orders",
		Plan: plan, Version: "10.11"}, time.Unix(0, 0))
	if err != nil {
		s.t.Fatal(err)
	}
	return in
}

func (s placingSaga) OnPlacementDecided(_ context.Context, d events.PlacementDecided) error {
	ps := make([]instance.Placement, 0, len(d.Nodes))
	for _, n := range d.Nodes {
		ps = append(ps, instance.Placement{Name: n.Name, Role: n.Role, Region: n.Region, AZ: n.AZ, Host: n.Host, Address: n.Address, Port: n.Port})
	}
	in := s.instance()
	if _, err := in.Place(ps, time.Unix(1, 0)); err != nil {
		if !errors.Is(err, instance.ErrInvalid) {
			s.t.Fatalf("Place error %v is not ErrInvalid", err)
		}
		// The saga rolls the create back; the event itself is handled.
		return in.StartRollback("placement unusable: "+err.Error(), time.Unix(1, 0))
	}
	return nil
}

func (s placingSaga) OnPlacementFailed(_ context.Context, f events.PlacementFailed) error {
	return s.instance().StartRollback("no placement: "+f.Reason, time.Unix(1, 0))
}

var fuzzTypes = []string{events.TypePlacementDecided, events.TypePlacementFailed, events.TypePlacementRequested, "other"}

// FuzzPlacements feeds arbitrary payloads of canopy.placements.v1 events to
// provisioning's handler and the domain's placement rules: no panic, and
// every failure is poison or permanent (dead-lettered, not retried).
func FuzzPlacements(f *testing.F) {
	for _, s := range []struct {
		typ  uint8
		data string
	}{
		{0, `{"instance_id":"i1","kind":"new","deployment_mode":"multi-az","nodes":[{"name":"n0","role":"primary","region":"eu","az":"eu-1","host":"h1","address":"127.0.0.1","port":20000},{"name":"n1","role":"replica","region":"eu","az":"eu-2","host":"h2","address":"127.0.0.1","port":20001}],"expires_at":"2025-01-02T03:04:05Z"}`},
		{0, `{"instance_id":"i1","nodes":[{"name":"n0","host":"h","port":1},{"name":"n1","host":"h","port":1}]}`},
		{0, `{"instance_id":"i1","nodes":[{"name":"n0","port":-1},{"name":"n9","port":70000}]}`},
		{0, `{"instance_id":"i1","kind":"replace"}`},
		{0, `{"instance_id":"","nodes":null}`},
		{0, `{"instance_id":"i1","expires_at":"never"}`},
		{1, `{"instance_id":"i1","reason":"no capacity","filters":[{"name":"capacity","rejected":12}]}`},
		{1, `{"reason":"x"}`},
		{1, `[]`},
		{2, `{}`},
		{3, ``},
	} {
		f.Add(s.typ, []byte(s.data))
	}
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		h := Placements(placingSaga{t: t})
		ev := eventbus.Event{ID: "ev-1", Type: fuzzTypes[int(typ)%len(fuzzTypes)], Source: "/fuzz", Key: "i1", Data: data}
		if err := h(context.Background(), ev); err != nil {
			if c := eventbus.ClassOf(err); c == eventbus.ClassRetryable {
				t.Fatalf("%s event %q: retryable error %v", ev.Type, data, err)
			}
		}
	})
}
