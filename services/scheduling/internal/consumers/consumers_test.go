package consumers

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// placer records calls and answers with err.
type placer struct {
	err                                  error
	placed, replaced, rejected, released []string
	confirmed                            []string
	lastReq                              placement.Request
	owners                               map[string]string // instance → stored placement's tenant
}

func (p *placer) Get(_ context.Context, id string) (placement.Record, error) {
	t, ok := p.owners[id]
	if !ok {
		return placement.Record{}, placement.ErrNotPlaced
	}
	return placement.Record{InstanceID: id, Tenant: t}, nil
}

func (p *placer) Place(_ context.Context, req placement.Request) (placement.Decision, error) {
	p.placed = append(p.placed, req.InstanceID)
	p.lastReq = req
	return placement.Decision{}, p.err
}
func (p *placer) Replace(_ context.Context, id, node, _ string) (placement.Decision, error) {
	p.replaced = append(p.replaced, id+"/"+node)
	return placement.Decision{}, p.err
}
func (p *placer) Reject(_ context.Context, req placement.Request, reason string) error {
	p.rejected = append(p.rejected, req.InstanceID+": "+reason)
	return nil
}
func (p *placer) Confirm(_ context.Context, id string) (placement.Record, error) {
	p.confirmed = append(p.confirmed, id)
	return placement.Record{}, p.err
}
func (p *placer) Release(_ context.Context, id, _ string) error {
	p.released = append(p.released, id)
	return p.err
}

func ev(t *testing.T, typ, key string, payload any) eventbus.Event {
	t.Helper()
	e, err := eventbus.NewEvent(typ, "/test", key, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func tenantEv(t *testing.T, typ, tenant string, payload any) eventbus.Event {
	t.Helper()
	e := ev(t, typ, "owned", payload)
	e.Tenant = tenant
	return e
}

func TestHandlerClassifies(t *testing.T) {
	good := events.PlacementRequested{InstanceID: "i1", DeploymentMode: "multi-az",
		Nodes: []events.NodeRequest{{Role: "primary", VCPU: 0.5, MemoryMB: 1024, StorageGB: 10}}}
	malformed := eventbus.Event{ID: "x", Type: events.TypePlacementRequested, Key: "i9", Data: []byte("{not json")}
	tests := []struct {
		name   string
		event  eventbus.Event
		err    error // what the placer answers
		class  eventbus.Class
		ok     bool
		expect func(t *testing.T, p *placer)
	}{
		{"placed", ev(t, events.TypePlacementRequested, "i1", good), nil, 0, true, func(t *testing.T, p *placer) {
			if len(p.placed) != 1 || p.lastReq.Nodes[0].Resources.MilliCPU != 500 || p.lastReq.RequestID == "" {
				t.Fatalf("%+v", p)
			}
		}},
		{"refused is answered, not retried", ev(t, events.TypePlacementRequested, "i1", good), &placement.RefusalError{}, 0, true, nil},
		{"invalid is answered, not retried", ev(t, events.TypePlacementRequested, "i1", good), &inventory.ValidationError{Fields: []inventory.FieldError{{Field: "x"}}}, 0, true, nil},
		{"database trouble is retried", ev(t, events.TypePlacementRequested, "i1", good), errors.New("db down"), eventbus.ClassRetryable, false, nil},
		{"malformed is poison and answered", malformed, nil, eventbus.ClassPoison, false, func(t *testing.T, p *placer) {
			if len(p.rejected) != 1 {
				t.Fatalf("%+v", p)
			}
		}},
		{"no instance id is poison", ev(t, events.TypePlacementRequested, "", events.PlacementRequested{}), nil, eventbus.ClassPoison, false, nil},
		{"replace without failed node is rejected", ev(t, events.TypePlacementRequested, "i1", events.PlacementRequested{InstanceID: "i1", Kind: "replace"}), nil, 0, true, func(t *testing.T, p *placer) {
			if len(p.rejected) != 1 || len(p.replaced) != 0 {
				t.Fatalf("%+v", p)
			}
		}},
		{"replace", ev(t, events.TypePlacementRequested, "i1", events.PlacementRequested{InstanceID: "i1", Kind: "replace", FailedNode: "node-1"}), nil, 0, true, func(t *testing.T, p *placer) {
			if len(p.replaced) != 1 || p.replaced[0] != "i1/node-1" {
				t.Fatalf("%+v", p)
			}
		}},
		{"replace of unplaced instance is rejected", ev(t, events.TypePlacementRequested, "i1", events.PlacementRequested{InstanceID: "i1", Kind: "replace", FailedNode: "n"}), placement.ErrNotPlaced, 0, true, func(t *testing.T, p *placer) {
			if len(p.rejected) != 1 {
				t.Fatalf("%+v", p)
			}
		}},
		{"unknown kind is rejected", ev(t, events.TypePlacementRequested, "i1", events.PlacementRequested{InstanceID: "i1", Kind: "move"}), nil, 0, true, nil},
		{"instance ready confirms", ev(t, events.TypeInstanceReady, "i1", map[string]string{"instance_id": "i1"}), nil, 0, true, func(t *testing.T, p *placer) {
			if len(p.confirmed) != 1 {
				t.Fatalf("%+v", p)
			}
		}},
		{"ready for an unplaced instance is ignored", ev(t, events.TypeInstanceReady, "i1", map[string]string{}), placement.ErrNotPlaced, 0, true, nil},
		{"instance deleted releases", ev(t, events.TypeInstanceDeleted, "i1", map[string]string{"instance_id": "i1"}), nil, 0, true, func(t *testing.T, p *placer) {
			if len(p.released) != 1 {
				t.Fatalf("%+v", p)
			}
		}},
		{"own decisions are ignored", ev(t, events.TypePlacementDecided, "i1", map[string]string{}), nil, 0, true, nil},
		{"request whose header is not its payload's tenant is poison", tenantEv(t, events.TypePlacementRequested, "evil", events.PlacementRequested{InstanceID: "i1", TenantID: "acme", DeploymentMode: "multi-az"}), nil, eventbus.ClassPoison, false, func(t *testing.T, p *placer) {
			if len(p.placed)+len(p.rejected) != 0 {
				t.Fatalf("acted upon: %+v", p)
			}
		}},
		{"replace of another tenant's placement is poison", tenantEv(t, events.TypePlacementRequested, "evil", events.PlacementRequested{InstanceID: "owned", TenantID: "evil", Kind: "replace", FailedNode: "n"}), nil, eventbus.ClassPoison, false, func(t *testing.T, p *placer) {
			if len(p.replaced)+len(p.rejected) != 0 {
				t.Fatalf("acted upon: %+v", p)
			}
		}},
		{"request of the placement's tenant is placed", tenantEv(t, events.TypePlacementRequested, "acme", events.PlacementRequested{InstanceID: "owned", TenantID: "acme", DeploymentMode: "multi-az"}), nil, 0, true, nil},
		{"deleted of another tenant's placement is poison", tenantEv(t, events.TypeInstanceDeleted, "evil", map[string]string{"instance_id": "owned", "tenant_id": "evil"}), nil, eventbus.ClassPoison, false, func(t *testing.T, p *placer) {
			if len(p.released) != 0 {
				t.Fatalf("released: %+v", p)
			}
		}},
		{"ready without the tenant header is poison", ev(t, events.TypeInstanceReady, "owned", map[string]string{"instance_id": "owned", "tenant_id": "acme"}), nil, eventbus.ClassPoison, false, func(t *testing.T, p *placer) {
			if len(p.confirmed) != 0 {
				t.Fatalf("confirmed: %+v", p)
			}
		}},
		{"ready of the placement's tenant confirms", tenantEv(t, events.TypeInstanceReady, "acme", map[string]string{"instance_id": "owned", "tenant_id": "acme"}), nil, 0, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &placer{err: tt.err, owners: map[string]string{"owned": "acme"}}
			err := Handler(p, slog.New(slog.DiscardHandler))(context.Background(), tt.event)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if err != nil && eventbus.ClassOf(err) != tt.class {
				t.Fatalf("class %v, want %v (%v)", eventbus.ClassOf(err), tt.class, err)
			}
			if tt.expect != nil {
				tt.expect(t, p)
			}
		})
	}
}
