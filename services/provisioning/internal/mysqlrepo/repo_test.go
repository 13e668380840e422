package mysqlrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/secrets"
)

func newRepo(t *testing.T) (*Repo, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	db := storetest.NewDB(t, "provrepo")
	box, _ := secrets.New(bytes.Repeat([]byte{3}, secrets.KeySize))
	r, err := New(db, box)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return r, ctx
}

func order(id, tenant, name string) (*instance.Instance, instance.Operation) {
	in, op, err := instance.New(instance.Order{ID: id, OperationID: "op-" + id, Tenant: tenant, Name: name, Version: "7",
		Plan: instance.Plan{ID: "p", Engine: instance.EngineRedis, DeploymentMode: instance.ModeSingleAZ,
			Nodes: []instance.NodeTemplate{{Role: instance.RolePrimary}}, Resources: instance.Resources{VCPU: 1, MemoryMB: 100}},
		Accounts: instance.Accounts{Admin: instance.Credentials{Username: "a", Password: "very-secret-admin"}},
	}, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		panic(err)
	}
	return in, op
}

func TestRepo(t *testing.T) {
	r, ctx := newRepo(t)
	in, op := order("i1", "acme", "db")
	ev, _ := eventbus.NewEvent("provisioning.instance.requested", "/t", "i1", map[string]string{"x": "y"})
	quota := tenancy.Quota{MaxInstances: 1}
	admit := func(u Usage) error { return quota.Check(u, tenancy.Usage{Instances: 1}) }
	if err := r.Create(ctx, CreateRequest{Instance: in, Op: op, IdempotencyKey: "k", RequestHash: "h", Admit: admit,
		Events: []Outgoing{{Topic: "canopy.instances.v1", Event: ev}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		id    string
		key   string
		hash  string
		admit func(Usage) error
		want  error
	}{
		{"same key same request", "i2", "k", "h", nil, ErrDuplicate},
		{"quota", "i3", "", "", admit, nil},
		{"name taken", "i4", "", "", nil, ErrNameTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in2, op2 := order(tt.id, "acme", "db")
			err := r.Create(ctx, CreateRequest{Instance: in2, Op: op2, IdempotencyKey: tt.key, RequestHash: tt.hash, Admit: tt.admit})
			var qe *tenancy.QuotaExceededError
			switch {
			case tt.name == "quota":
				if !errors.As(err, &qe) || qe.Quota != tenancy.QuotaInstances {
					t.Fatalf("err = %v, want instances quota", err)
				}
			case !errors.Is(err, tt.want):
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var dup *DuplicateError
			if errors.As(err, &dup) && (!dup.SameRequest || dup.Existing.ID != "i1") {
				t.Fatalf("duplicate %+v", dup)
			}
		})
	}
	// Another tenant: not found, and may use the name.
	if _, err := r.Get(ctx, "globex", "i1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other tenant get: %v", err)
	}
	in5, op5 := order("i5", "globex", "db")
	if err := r.Create(ctx, CreateRequest{Instance: in5, Op: op5}); err != nil {
		t.Fatalf("same name in another tenant: %v", err)
	}
	// Credentials are sealed at rest.
	var raw []byte
	if err := r.db.SQL().QueryRowContext(ctx, "SELECT accounts FROM instances WHERE id = 'i1'").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("very-secret-admin")) {
		t.Fatal("admin password stored in clear")
	}
	got, err := r.Get(ctx, "acme", "i1")
	if err != nil || got.Accounts.Admin.Password != "very-secret-admin" {
		t.Fatalf("get: %v %+v", err, got)
	}
	// Update writes state, nodes, operation and outbox rows together.
	_, err = r.Update(ctx, "i1", func(c *Change) error {
		if _, err := c.Instance.Place([]instance.Placement{{Name: "n0", Port: 7000, Host: "h"}}, time.Now()); err != nil {
			return err
		}
		c.Instance.Sync(c.Op, time.Now())
		c.Emit("canopy.placements.v1", ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = r.Get(ctx, "acme", "i1")
	if got.Step != instance.StepCreating || len(got.Nodes) != 1 || got.Nodes[0].Port != 7000 {
		t.Fatalf("after update: %+v", got)
	}
	var n int
	if err := r.db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox").Scan(&n); err != nil || n != 2 {
		t.Fatalf("outbox rows = %d, %v", n, err)
	}
	// A failing callback writes nothing.
	_, err = r.Update(ctx, "i1", func(c *Change) error {
		c.Instance.Name = "renamed"
		c.Emit("x", ev)
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("update error lost")
	}
	if err := r.db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox").Scan(&n); err != nil || n != 2 {
		t.Fatalf("outbox rows after rollback = %d", n)
	}
	// Bindings: sealed, unique names, delete.
	b := instance.Binding{ID: "b1", InstanceID: "i1", Tenant: "acme", Name: "app", Credentials: instance.Credentials{Username: "u", Password: "binding-pass"}, CreatedAt: time.Now()}
	if _, err := r.CreateBinding(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	b2 := b
	b2.ID = "b2"
	if _, err := r.CreateBinding(ctx, b2, nil); !errors.Is(err, ErrBindingNameTaken) {
		t.Fatalf("duplicate binding name: %v", err)
	}
	gb, err := r.Binding(ctx, "acme", "i1", "b1")
	if err != nil || gb.Credentials.Password != "binding-pass" {
		t.Fatalf("binding: %v %+v", err, gb)
	}
	if _, err := r.Binding(ctx, "globex", "i1", "b1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other tenant binding: %v", err)
	}
	if err := r.DeleteBinding(ctx, gb, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateBinding(ctx, b2, nil); err != nil {
		t.Fatalf("name reusable after delete: %v", err)
	}
}

// TestOSBIDsCompareExactly: OSB ids are opaque and compare byte for byte,
// so ids differing only in case are different instances and bindings.
func TestOSBIDsCompareExactly(t *testing.T) {
	r, ctx := newRepo(t)
	create := func(id, osbID, name string) error {
		in, op := order(id, "acme", name)
		in.OSBID = osbID
		return r.Create(ctx, CreateRequest{Instance: in, Op: op, RequestHash: "h-" + id})
	}
	if err := create("i-upper", "ABC", "osb-upper"); err != nil {
		t.Fatal(err)
	}
	if err := create("i-lower", "abc", "osb-lower"); err != nil {
		t.Fatalf("abc after ABC: %v (want a second instance)", err)
	}
	for osbID, want := range map[string]string{"ABC": "i-upper", "abc": "i-lower"} {
		got, err := r.GetByOSBID(ctx, "acme", osbID)
		if err != nil || got.ID != want {
			t.Fatalf("GetByOSBID(%q) = %v, %v; want %s", osbID, got, err, want)
		}
	}
	if _, err := r.GetByOSBID(ctx, "acme", "Abc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetByOSBID(Abc): %v, want not found", err)
	}

	bind := func(id, osbID, hash string) error {
		_, err := r.CreateBinding(ctx, instance.Binding{ID: id, InstanceID: "i-upper", Tenant: "acme", Name: "osb-" + id, OSBID: osbID, RequestHash: hash,
			Credentials: instance.Credentials{Username: "u-" + id, Password: "pw"}, CreatedAt: time.Now()}, nil)
		return err
	}
	if err := bind("b-upper", "B1", "hash-upper"); err != nil {
		t.Fatal(err)
	}
	if err := bind("b-lower", "b1", "hash-lower"); err != nil {
		t.Fatalf("b1 after B1: %v (want a second binding)", err)
	}
	if err := bind("b-again", "b1", "other"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("b1 again: %v, want ErrDuplicate", err)
	}
	got, err := r.BindingByOSBID(ctx, "acme", "i-upper", "b1")
	if err != nil || got.ID != "b-lower" || got.RequestHash != "hash-lower" {
		t.Fatalf("BindingByOSBID(b1) = %+v, %v", got, err)
	}
	if _, err := r.BindingByOSBID(ctx, "acme", "i-upper", "b1 "); !errors.Is(err, ErrNotFound) {
		t.Fatalf("BindingByOSBID(%q): %v, want not found", "b1 ", err)
	}
}

// TestCreateBindingConcurrentOSBID: binds racing with one OSB id (a
// platform retrying while the first is still running) store one binding;
// every other gets ErrDuplicate and that binding, never a raw key error.
func TestCreateBindingConcurrentOSBID(t *testing.T) {
	r, ctx := newRepo(t)
	in, op := order("i1", "acme", "db")
	if err := r.Create(ctx, CreateRequest{Instance: in, Op: op}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	type result struct {
		b   instance.Binding
		err error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			id := fmt.Sprintf("b%d", i)
			b, err := r.CreateBinding(ctx, instance.Binding{ID: id, InstanceID: "i1", Tenant: "acme", Name: "osb-" + id, OSBID: "same",
				Credentials: instance.Credentials{Username: "u" + id, Password: "pw"}, CreatedAt: time.Now()}, nil)
			results <- result{b, err}
		}()
	}
	close(start)
	var created []string
	var dups []instance.Binding
	for range n {
		res := <-results
		switch {
		case res.err == nil:
			created = append(created, res.b.ID)
		case errors.Is(res.err, ErrDuplicate):
			dups = append(dups, res.b)
		default:
			t.Errorf("CreateBinding: %v", res.err)
		}
	}
	if len(created) != 1 {
		t.Fatalf("created %v, want exactly one binding", created)
	}
	for _, d := range dups {
		if d.ID != created[0] {
			t.Errorf("duplicate returned binding %q, want the stored %q", d.ID, created[0])
		}
	}
}

// TestNoTenantIsNotEveryTenant: tenant-scoped methods refuse an empty
// tenant; reading across tenants takes the explicitly named methods.
func TestNoTenantIsNotEveryTenant(t *testing.T) {
	r, ctx := newRepo(t)
	for _, o := range []struct{ id, tenant string }{{"a1", "acme"}, {"a2", "acme"}, {"g1", "globex"}} {
		in, op := order(o.id, o.tenant, "db-"+o.id)
		if err := r.Create(ctx, CreateRequest{Instance: in, Op: op}); err != nil {
			t.Fatal(err)
		}
	}
	b := instance.Binding{ID: "b1", InstanceID: "g1", Tenant: "globex", Name: "app", Credentials: instance.Credentials{Username: "u", Password: "p"}, CreatedAt: time.Now()}
	if _, err := r.CreateBinding(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	scoped := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := r.Get(ctx, "", "g1"); return err }},
		{"GetByOSBID", func() error { _, err := r.GetByOSBID(ctx, "", "x"); return err }},
		{"List", func() error { _, err := r.List(ctx, "", "", 10, true); return err }},
		{"Operation", func() error { _, err := r.Operation(ctx, "", "op-g1"); return err }},
		{"Binding", func() error { _, err := r.Binding(ctx, "", "g1", "b1"); return err }},
		{"BindingByOSBID", func() error { _, err := r.BindingByOSBID(ctx, "", "g1", "x"); return err }},
		{"Bindings", func() error { _, err := r.Bindings(ctx, "", "g1"); return err }},
	}
	for _, tt := range scoped {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrNoTenant) {
				t.Fatalf("empty tenant: %v, want ErrNoTenant", err)
			}
		})
	}

	if in, err := r.GetAnyTenant(ctx, "g1"); err != nil || in.Tenant != "globex" {
		t.Fatalf("GetAnyTenant: %v %+v", err, in)
	}
	if op, err := r.OperationAnyTenant(ctx, "op-g1"); err != nil || op.Tenant != "globex" {
		t.Fatalf("OperationAnyTenant: %v %+v", err, op)
	}
	// ListAllInstances pages through every tenant's instances by id.
	var ids []string
	after := ""
	for {
		page, err := r.ListAllInstances(ctx, after, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range page {
			ids = append(ids, in.Tenant+"/"+in.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if want := []string{"acme/a1", "acme/a2", "globex/g1"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ListAllInstances = %v, want %v", ids, want)
	}
}
