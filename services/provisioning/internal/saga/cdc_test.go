package saga

import (
	"context"
	"errors"
	"testing"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

func (h *harness) orderMySQL(name string) *instance.Instance {
	h.t.Helper()
	plan := redisPlan()
	plan.ID, plan.Engine, plan.ReplicationMode = "mysql-ha", instance.EngineMySQL, instance.ReplicationSemiSync
	in, _, err := h.saga.Order(h.ctx, OrderRequest{Tenant: tenant, Name: name, Plan: plan, Version: "mariadb-10.11"})
	if err != nil {
		h.t.Fatalf("order: %v", err)
	}
	return in
}

// forgetCDC makes in an instance from before the cdc account.
func (h *harness) forgetCDC(id string) {
	h.t.Helper()
	if _, err := h.repo.Update(h.ctx, id, func(c *port.Change) error { c.Instance.Accounts.CDC = instance.Credentials{}; return nil }); err != nil {
		h.t.Fatal(err)
	}
}

// A MySQL order gets a canopy_cdc account, passed to every node's spec; a
// Redis order none.
func TestOrderCDCAccount(t *testing.T) {
	h := newHarness(t, Config{})
	my := h.orderMySQL("db")
	if my.Accounts.CDC.Username != CDCUsername || len(my.Accounts.CDC.Password) != 32 || my.Accounts.CDC.Password == my.Accounts.Monitor.Password {
		t.Fatalf("mysql accounts %+v", my.Accounts)
	}
	h.place(my)
	h.settle()
	my = h.get(my.ID)
	for i := range my.Nodes {
		if sp := h.saga.spec(my, &my.Nodes[i]); sp.CDC.Username != CDCUsername || sp.CDC.Password != my.Accounts.CDC.Password {
			t.Errorf("spec of %s has cdc %+v", my.Nodes[i].ID, sp.CDC)
		}
	}
	if r := h.order("cache"); r.Accounts.CDC != (instance.Credentials{}) {
		t.Fatalf("redis has a cdc account %+v", r.Accounts.CDC)
	}
}

// EnsureCDCAccount adds the account to a ready MySQL instance that predates
// it, once; refuses one that is not ready; leaves Redis alone.
func TestEnsureCDCAccount(t *testing.T) {
	h := newHarness(t, Config{})
	my := h.orderMySQL("db")
	h.place(my)
	h.settle()
	h.forgetCDC(my.ID)

	h.eng.setFail(func(context.Context, call) error { return errors.New("primary unreachable") })
	if _, err := h.saga.EnsureCDCAccount(h.ctx, my.ID); err == nil {
		t.Fatal("ensure with the engine down succeeded")
	}
	if got := h.get(my.ID).Accounts.CDC; got != (instance.Credentials{}) {
		t.Fatalf("stored %+v though the engine failed", got)
	}
	h.eng.setFail(nil)
	before := h.eng.count("create_cdc_user")
	in, err := h.saga.EnsureCDCAccount(h.ctx, my.ID)
	if err != nil || in.Accounts.CDC.Username != CDCUsername || len(in.Accounts.CDC.Password) != 32 {
		t.Fatalf("ensure: %v %+v", err, in)
	}
	if got := h.get(my.ID).Accounts.CDC; got != in.Accounts.CDC {
		t.Fatalf("stored %+v, returned %+v", got, in.Accounts.CDC)
	}
	again, err := h.saga.EnsureCDCAccount(h.ctx, my.ID)
	if err != nil || again.Accounts.CDC != in.Accounts.CDC || h.eng.count("create_cdc_user") != before+1 {
		t.Fatalf("second ensure: %v %+v, %d engine calls", err, again, h.eng.count("create_cdc_user")-before)
	}

	pending := h.orderMySQL("pending")
	h.forgetCDC(pending.ID)
	if _, err := h.saga.EnsureCDCAccount(h.ctx, pending.ID); !errors.Is(err, ErrNotReady) {
		t.Fatalf("ensure on a provisioning instance: %v, want ErrNotReady", err)
	}
	cache := h.ready("cache")
	if in, err := h.saga.EnsureCDCAccount(h.ctx, cache.ID); err != nil || in.Accounts.CDC != (instance.Credentials{}) {
		t.Fatalf("ensure on redis: %v %+v", err, in)
	}
}

// An account created with older grants (before sync jobs wrote to
// targets) is granted again, same credentials, once: the new grants are
// recorded and the next call leaves the engine alone.
func TestEnsureCDCAccountRegrants(t *testing.T) {
	h := newHarness(t, Config{})
	my := h.orderMySQL("db")
	if my.Accounts.CDCGrants != driver.CDCGrants {
		t.Fatalf("a new order records grants %q, want %q", my.Accounts.CDCGrants, driver.CDCGrants)
	}
	h.place(my)
	h.settle()
	if _, err := h.repo.Update(h.ctx, my.ID, func(c *port.Change) error { c.Instance.Accounts.CDCGrants = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	before := h.eng.count("create_cdc_user")
	in, err := h.saga.EnsureCDCAccount(h.ctx, my.ID)
	if err != nil || in.Accounts.CDC != my.Accounts.CDC || in.Accounts.CDCGrants != driver.CDCGrants || h.eng.count("create_cdc_user") != before+1 {
		t.Fatalf("regrant: %v %+v, %d engine calls", err, in.Accounts, h.eng.count("create_cdc_user")-before)
	}
	if got := h.get(my.ID).Accounts; got.CDC != my.Accounts.CDC || got.CDCGrants != driver.CDCGrants {
		t.Fatalf("stored %+v", got)
	}
	if _, err := h.saga.EnsureCDCAccount(h.ctx, my.ID); err != nil || h.eng.count("create_cdc_user") != before+1 {
		t.Fatalf("second ensure: %v, %d engine calls", err, h.eng.count("create_cdc_user")-before)
	}
}
