package saga

import (
	"context"
	"errors"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// TestOrderRefused: an order the tenant's quota, the plan's mode or the
// engine's allowlist refuses writes nothing.
func TestOrderRefused(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *OrderRequest)
		check func(t *testing.T, err error)
	}{
		{"quota", func(r *OrderRequest) { r.Quota = tenancy.Quota{MaxVCPU: 2} }, func(t *testing.T, err error) {
			var qe *tenancy.QuotaExceededError
			if !errors.As(err, &qe) {
				t.Fatalf("err = %v, want a quota error", err)
			}
		}},
		{"unknown deployment mode", func(r *OrderRequest) { r.Plan.DeploymentMode = "sideways" }, func(t *testing.T, err error) {
			var ve *instance.ValidationError
			if !errors.As(err, &ve) || ve.Field != "plan_id" {
				t.Fatalf("err = %v, want a plan_id validation error", err)
			}
		}},
		{"parameter not tunable", func(r *OrderRequest) { r.Parameters = map[string]any{"loadmodule": "/x.so"} }, func(t *testing.T, err error) {
			if !errors.Is(err, instance.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			req := OrderRequest{Tenant: tenant, Name: "db", Plan: redisPlan(), Version: "7.0"}
			tt.edit(&req)
			_, _, err := h.saga.Order(h.ctx, req)
			tt.check(t, err)
			if ids, _ := h.repo.Unfinished(h.ctx); len(ids) != 0 || len(h.repo.Outbox()) != 0 {
				t.Fatalf("a refused order wrote %v and %d events", ids, len(h.repo.Outbox()))
			}
		})
	}
}

// TestOrderRecordsRequester: the operation names who asked for it.
func TestOrderRecordsRequester(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := tenancy.WithPrincipal(h.ctx, tenancy.Principal{Subject: "apikey:k1"})
	in, op, err := h.saga.Order(ctx, OrderRequest{Tenant: tenant, Name: "db", Plan: redisPlan(), Version: "7.0"})
	if err != nil {
		t.Fatal(err)
	}
	if stored := h.op(in); op.RequestedBy != "apikey:k1" || stored.RequestedBy != "apikey:k1" {
		t.Fatalf("requested_by %q (stored %q), want apikey:k1", op.RequestedBy, stored.RequestedBy)
	}
}

// TestBind: a binding creates a user on a ready instance only; a binding
// that cannot be stored takes its user away again; unbinding drops it.
func TestBind(t *testing.T) {
	t.Run("ready instance", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.ready("db")
		b, _, err := h.saga.Bind(h.ctx, tenant, in.ID, "app", "")
		if err != nil || b.Credentials.Username == "" || b.Credentials.Password == "" {
			t.Fatalf("bind: %v %+v", err, b)
		}
		if h.eng.count("create_user") != 1 {
			t.Fatal("no user created")
		}
		if err := h.saga.Unbind(h.ctx, tenant, b); err != nil {
			t.Fatal(err)
		}
		if h.eng.count("drop_user") != 1 {
			t.Fatal("user not dropped")
		}
		h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceReady,
			events.TypeBindingCreated, events.TypeBindingDeleted)
	})
	t.Run("not ready", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.order("db")
		if _, _, err := h.saga.Bind(h.ctx, tenant, in.ID, "app", ""); !errors.Is(err, ErrNotReady) {
			t.Fatalf("bind while provisioning: %v, want ErrNotReady", err)
		}
		if h.eng.count("create_user") != 0 {
			t.Fatal("user created on an instance not ready")
		}
	})
	t.Run("name taken: user dropped again", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.ready("db")
		if _, _, err := h.saga.Bind(h.ctx, tenant, in.ID, "app", ""); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.saga.Bind(h.ctx, tenant, in.ID, "app", ""); !errors.Is(err, port.ErrBindingNameTaken) {
			t.Fatalf("second bind: %v, want ErrBindingNameTaken", err)
		}
		if h.eng.count("create_user") != 2 || h.eng.count("drop_user") != 1 {
			t.Fatalf("users created %d, dropped %d; want 2 and 1", h.eng.count("create_user"), h.eng.count("drop_user"))
		}
	})
	t.Run("repeated OSB bind", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.ready("db")
		first, _, err := h.saga.BindOSB(h.ctx, tenant, in.ID, "osb-b1", "b1", "h1")
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := h.saga.BindOSB(h.ctx, tenant, in.ID, "osb-b1", "b1", "h1")
		if !errors.Is(err, port.ErrDuplicate) || again.ID != first.ID {
			t.Fatalf("repeat: %v %+v, want ErrDuplicate with the first binding", err, again)
		}
		if h.eng.count("create_user") != 1 {
			t.Fatal("a repeated OSB bind created another user")
		}
	})
	t.Run("engine refuses", func(t *testing.T) {
		h := newHarness(t, Config{})
		in := h.ready("db")
		h.eng.setFail(failOn("create_user", "", errors.New("ERR")))
		if _, _, err := h.saga.Bind(h.ctx, tenant, in.ID, "app", ""); err == nil {
			t.Fatal("bind succeeded without a user")
		}
		if list, _ := h.repo.Bindings(context.Background(), tenant, in.ID); len(list) != 0 {
			t.Fatalf("binding stored without a user: %+v", list)
		}
	})
}
