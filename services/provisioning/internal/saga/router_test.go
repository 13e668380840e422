package saga

import (
	"errors"
	"testing"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// lastInstanceEvent is the payload of the last instance event about id.
func (h *harness) lastInstanceEvent(id string) (string, events.Instance) {
	h.t.Helper()
	var typ string
	var p events.Instance
	for _, o := range h.repo.Outbox() {
		if o.Event.Subject == id && o.Topic == events.TopicInstances {
			typ = o.Event.Type
			if err := o.Event.Decode(&p); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	return typ, p
}

// With the router enabled an order takes the lowest free port pair, the
// instance's events name the router's endpoints, and failovers and rejoins
// emit an updated event with the new roles and the fencing token.
func TestRouterEndpoints(t *testing.T) {
	h := newHarness(t, Config{})
	router := instance.Router{Host: "router.internal", SentinelPort: 26380, Ports: instance.PortRange{Lo: 16000, Hi: 16003}}
	h.saga.WithRouter(router)
	in := h.ready("db")
	if got := h.get(in.ID); got.Router != (instance.RouterPorts{RW: 16000, RO: 16001}) {
		t.Fatalf("router ports %+v", got.Router)
	}
	typ, p := h.lastInstanceEvent(in.ID)
	want := events.Endpoints{RW: "router.internal:16000", RO: "router.internal:16001", Sentinel: "router.internal:26380", MasterName: "db"}
	if typ != events.TypeInstanceReady || p.Endpoints.RW != want.RW || p.Endpoints.RO != want.RO ||
		p.Endpoints.Sentinel != want.Sentinel || p.Endpoints.MasterName != want.MasterName || p.FailoverToken != 0 {
		t.Fatalf("%s: %+v, token %d", typ, p.Endpoints, p.FailoverToken)
	}
	if err := h.saga.OnFailoverCompleted(h.ctx, promoted(in, 3, "r1")); err != nil {
		t.Fatal(err)
	}
	typ, p = h.lastInstanceEvent(in.ID)
	if typ != events.TypeInstanceUpdated || p.FailoverToken != 3 || p.Endpoints.RW != want.RW || p.Nodes[1].Role != "primary" {
		t.Fatalf("after failover %s: token %d, endpoints %+v, nodes %+v", typ, p.FailoverToken, p.Endpoints, p.Nodes)
	}
	n := len(h.eventTypes(in.ID))
	if err := h.saga.OnNodeRejoined(h.ctx, events.NodeRejoined{InstanceID: in.ID, TenantID: tenant, NodeID: in.ID + "-n0", Primary: in.ID + "-n1"}); err != nil {
		t.Fatal(err)
	}
	typ, p = h.lastInstanceEvent(in.ID)
	if len(h.eventTypes(in.ID)) != n+1 || typ != events.TypeInstanceUpdated || p.FailoverToken != 3 || len(p.Endpoints.Replicas) != 2 {
		t.Fatalf("after rejoin %s: token %d, endpoints %+v", typ, p.FailoverToken, p.Endpoints)
	}
	// The second instance takes the next pair; a third finds the range full.
	second := h.order("db2")
	if got := h.get(second.ID); got.Router != (instance.RouterPorts{RW: 16002, RO: 16003}) {
		t.Fatalf("second router ports %+v", got.Router)
	}
	if _, _, err := h.saga.Order(h.ctx, OrderRequest{Tenant: tenant, Name: "db3", Plan: redisPlan(), Version: "7.0"}); !errors.Is(err, instance.ErrRouterPortsExhausted) {
		t.Fatalf("order in a full range: %v", err)
	}
	// A deleted instance's pair goes to the next order.
	if _, _, err := h.saga.Delete(h.ctx, tenant, in.ID); err != nil {
		t.Fatal(err)
	}
	h.settle()
	third := h.order("db3")
	if got := h.get(third.ID); got.Router != (instance.RouterPorts{RW: 16000, RO: 16001}) {
		t.Fatalf("third router ports %+v, want the deleted instance's", got.Router)
	}
}

// Without a router no ports are taken and events name only the nodes.
func TestRouterDisabled(t *testing.T) {
	h := newHarness(t, Config{})
	h.saga.WithRouter(instance.Router{Ports: instance.PortRange{Lo: 16000, Hi: 16001}})
	in := h.ready("db")
	_, p := h.lastInstanceEvent(in.ID)
	if h.get(in.ID).Router.Allocated() || p.Endpoints.RW != "" || p.Endpoints.Primary == "" {
		t.Fatalf("router disabled: ports %+v, endpoints %+v", h.get(in.ID).Router, p.Endpoints)
	}
}
