// Package repotest is the conformance suite every provisioning repository
// passes (mysqlrepo against the real MariaDB, memrepo in memory): creation
// with idempotency keys, OSB ids, unique names and quotas; Update writing
// the instance, its nodes, operations and outbox events together or not at
// all; tenant scoping, where an empty tenant is never "every tenant";
// bindings; the saga's listings. What only one adapter has (sealing at
// rest, migrations) is tested in that adapter's package.
package repotest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// Repository is the contract under test: what the saga, the HTTP edge and
// the monitoring view use.
type Repository interface {
	Create(ctx context.Context, req port.CreateRequest) error
	Update(ctx context.Context, id string, fn func(c *port.Change) error) (*instance.Instance, error)
	Get(ctx context.Context, tenant, id string) (*instance.Instance, error)
	GetAnyTenant(ctx context.Context, id string) (*instance.Instance, error)
	GetByOSBID(ctx context.Context, tenant, osbID string) (*instance.Instance, error)
	List(ctx context.Context, tenant, after string, limit int, includeDeleted bool) ([]*instance.Instance, error)
	ListAllInstances(ctx context.Context, after string, limit int, includeDeleted bool) ([]*instance.Instance, error)
	ListMonitored(ctx context.Context, after string, limit int) ([]*instance.Instance, error)
	Unfinished(ctx context.Context) ([]string, error)
	WithNodes(ctx context.Context) ([]string, error)
	Operation(ctx context.Context, tenant, id string) (instance.Operation, error)
	OperationAnyTenant(ctx context.Context, id string) (instance.Operation, error)
	CreateBinding(ctx context.Context, b instance.Binding, events []port.Outgoing) (instance.Binding, error)
	Binding(ctx context.Context, tenant, instanceID, id string) (instance.Binding, error)
	BindingByOSBID(ctx context.Context, tenant, instanceID, osbID string) (instance.Binding, error)
	Bindings(ctx context.Context, tenant, instanceID string) ([]instance.Binding, error)
	DeleteBinding(ctx context.Context, b instance.Binding, events []port.Outgoing) error
	DeleteBindings(ctx context.Context, instanceID string) error
	WithoutRouterPorts(ctx context.Context) ([]string, error)
	AssignRouterPorts(ctx context.Context, id string, pr instance.PortRange) (*instance.Instance, bool, error)
	ListRouted(ctx context.Context, after string, limit int) ([]*instance.Instance, error)
}

// Subject is one repository under test.
type Subject struct {
	Repo Repository
	// OutboxLen returns how many events the repository has written to its
	// outbox so far.
	OutboxLen func(t *testing.T) int
}

// Run runs the suite; newSubject returns an empty repository for each case.
func Run(t *testing.T, newSubject func(t *testing.T) Subject) {
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s Subject)
	}{
		{"Create", testCreate},
		{"Update", testUpdate},
		{"Bindings", testBindings},
		{"OSBIDsCompareExactly", testOSBIDsCompareExactly},
		{"CreateBindingConcurrentOSBID", testCreateBindingConcurrentOSBID},
		{"NoTenantIsNotEveryTenant", testNoTenantIsNotEveryTenant},
		{"SagaListings", testSagaListings},
		{"RouterPorts", testRouterPorts},
		{"RouterPortsConcurrent", testRouterPortsConcurrent},
		{"RouterPortsBackfill", testRouterPortsBackfill},
		{"Restore", testRestore},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(t, ctx, newSubject(t))
		})
	}
}

// Order returns a new single-node Redis instance of tenant and its create
// operation.
func Order(id, tenant, name string) (*instance.Instance, instance.Operation) {
	in, op, err := instance.New(instance.Order{ID: id, OperationID: "op-" + id, Tenant: tenant, Name: name, Version: "7",
		Plan: instance.Plan{ID: "p", Engine: instance.EngineRedis, DeploymentMode: instance.ModeSingleAZ,
			Nodes: []instance.NodeTemplate{{Role: instance.RolePrimary}}, Resources: instance.Resources{VCPU: 1, MemoryMB: 100}},
		Accounts: instance.Accounts{Admin: instance.Credentials{Username: "a", Password: "very-secret-admin"}},
	}, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		panic(err) // the order above is valid
	}
	return in, op
}

func event(t *testing.T) eventbus.Event {
	t.Helper()
	ev, err := eventbus.NewEvent("provisioning.instance.requested", "/t", "i1", map[string]string{"x": "y"})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func create(t *testing.T, ctx context.Context, r Repository, id, tenant, name string) *instance.Instance {
	t.Helper()
	in, op := Order(id, tenant, name)
	if err := r.Create(ctx, port.CreateRequest{Instance: in, Op: op}); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	return in
}

// testCreate: idempotency keys, quotas under the tenant's usage, names
// unique per tenant, tenants apart.
func testCreate(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	in, op := Order("i1", "acme", "db")
	quota := tenancy.Quota{MaxInstances: 1}
	admit := func(u port.Usage) error { return quota.Check(u, tenancy.Usage{Instances: 1}) }
	if err := r.Create(ctx, port.CreateRequest{Instance: in, Op: op, IdempotencyKey: "k", RequestHash: "h", Admit: admit,
		Events: []port.Outgoing{{Topic: "canopy.instances.v1", Event: event(t)}}}); err != nil {
		t.Fatal(err)
	}
	if n := s.OutboxLen(t); n != 1 {
		t.Fatalf("outbox has %d events after create, want 1", n)
	}
	tests := []struct {
		name     string
		id       string
		key      string
		hash     string
		admit    func(port.Usage) error
		want     error
		sameHash bool
	}{
		{"same key same request", "i2", "k", "h", nil, port.ErrDuplicate, true},
		{"same key other request", "i2", "k", "other", nil, port.ErrDuplicate, false},
		{"quota", "i3", "", "", admit, nil, false},
		{"name taken", "i4", "", "", nil, port.ErrNameTaken, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in2, op2 := Order(tt.id, "acme", "db")
			err := r.Create(ctx, port.CreateRequest{Instance: in2, Op: op2, IdempotencyKey: tt.key, RequestHash: tt.hash, Admit: tt.admit})
			var qe *tenancy.QuotaExceededError
			switch {
			case tt.name == "quota":
				if !errors.As(err, &qe) || qe.Quota != tenancy.QuotaInstances {
					t.Fatalf("err = %v, want instances quota", err)
				}
			case !errors.Is(err, tt.want):
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var dup *port.DuplicateError
			if errors.As(err, &dup) && (dup.SameRequest != tt.sameHash || dup.Existing.ID != "i1") {
				t.Fatalf("duplicate %+v", dup)
			}
		})
	}
	if n := s.OutboxLen(t); n != 1 {
		t.Fatalf("outbox has %d events after refused creates, want 1", n)
	}
	// Another tenant: not found, and may use the name.
	if _, err := r.Get(ctx, "globex", "i1"); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("other tenant get: %v", err)
	}
	create(t, ctx, r, "i5", "globex", "db")
	got, err := r.Get(ctx, "acme", "i1")
	if err != nil || got.Accounts.Admin.Password != "very-secret-admin" || got.Name != "db" || got.State != instance.StateProvisioning {
		t.Fatalf("get: %v %+v", err, got)
	}
	if op, err := r.Operation(ctx, "acme", "op-i1"); err != nil || op.Type != instance.OpCreate || op.InstanceID != "i1" {
		t.Fatalf("operation: %v %+v", err, op)
	}
	// A deleted instance frees its name.
	if _, err := r.Update(ctx, "i5", func(c *port.Change) error {
		if _, err := c.Instance.Delete("op-del", time.Now()); err != nil {
			return err
		}
		return c.Instance.MarkDeleted(time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	create(t, ctx, r, "i6", "globex", "db")
}

// testUpdate: state, nodes, operations and events are written together, a
// failing callback writes nothing, ErrNoChange commits nothing.
func testUpdate(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	create(t, ctx, r, "i1", "acme", "db")
	ev := event(t)
	out, err := r.Update(ctx, "i1", func(c *port.Change) error {
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
	if out.Step != instance.StepCreating {
		t.Fatalf("Update returned step %s, want creating", out.Step)
	}
	got, _ := r.Get(ctx, "acme", "i1")
	if got.Step != instance.StepCreating || len(got.Nodes) != 1 || got.Nodes[0].Port != 7000 || got.Nodes[0].State != instance.NodePending {
		t.Fatalf("after update: %+v", got)
	}
	if op, _ := r.Operation(ctx, "acme", "op-i1"); op.Step != instance.StepCreating {
		t.Fatalf("operation step %s, want creating", op.Step)
	}
	if n := s.OutboxLen(t); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
	// The running engine build round-trips.
	if _, err := r.Update(ctx, "i1", func(c *port.Change) error {
		c.Instance.EngineVersion = "redis-7.0.15"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Get(ctx, "acme", "i1"); got.EngineVersion != "redis-7.0.15" {
		t.Fatalf("engine version %q after update, want redis-7.0.15", got.EngineVersion)
	}
	// Node results and settings round-trip.
	settings := map[string]string{"maxmemory-policy": "noeviction"}
	if _, err := r.Update(ctx, "i1", func(c *port.Change) error {
		return c.Instance.RecordNode(c.Instance.Nodes[0].ID, instance.NodeUpdate{State: instance.NodeRunning, Address: "127.0.0.1:7000",
			PID: 42, DataDir: "/d", Settings: settings}, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = r.GetAnyTenant(ctx, "i1")
	if n := got.Nodes[0]; n.State != instance.NodeRunning || n.PID != 42 || n.Address != "127.0.0.1:7000" || n.DataDir != "/d" || !reflect.DeepEqual(n.Settings, settings) {
		t.Fatalf("node after update: %+v", n)
	}
	// A failover's outcome round-trips: roles, the fenced mark, the
	// promotion rule and the applied fencing token.
	if _, err := r.Update(ctx, "i1", func(c *port.Change) error {
		n := &c.Instance.Nodes[0]
		n.Role, n.Fenced, n.Promotion = instance.RoleReplica, true, instance.PromoteNever
		c.Instance.Failover = instance.AppliedFailover{Token: 7, Recovery: "rec-7"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = r.GetAnyTenant(ctx, "i1")
	if n := got.Nodes[0]; n.Role != instance.RoleReplica || !n.Fenced || n.PromotionRule() != instance.PromoteNever ||
		got.Failover != (instance.AppliedFailover{Token: 7, Recovery: "rec-7"}) {
		t.Fatalf("failover outcome after update: node %+v, applied %+v", n, got.Failover)
	}
	// A failing callback writes nothing.
	_, err = r.Update(ctx, "i1", func(c *port.Change) error {
		c.Instance.Reason = "changed"
		c.Emit("x", ev)
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("update error lost")
	}
	if n := s.OutboxLen(t); n != 1 {
		t.Fatalf("outbox has %d events after a failed update, want 1", n)
	}
	// ErrNoChange commits nothing and returns the stored instance.
	out, err = r.Update(ctx, "i1", func(c *port.Change) error {
		c.Instance.Reason = "changed"
		c.Emit("x", ev)
		return port.ErrNoChange
	})
	if err != nil || out.Reason != "" {
		t.Fatalf("ErrNoChange: %v, reason %q; want nil and the stored instance", err, out.Reason)
	}
	if got, _ := r.Get(ctx, "acme", "i1"); got.Reason != "" || s.OutboxLen(t) != 1 {
		t.Fatalf("ErrNoChange wrote: reason %q, outbox %d", got.Reason, s.OutboxLen(t))
	}
	// A new operation supersedes the current one; both are saved.
	if _, err := r.Update(ctx, "i1", func(c *port.Change) error {
		newOp, err := c.Instance.Delete("op-del", time.Now())
		if err != nil {
			return err
		}
		c.Op.Fail("superseded by delete", time.Now())
		c.Superseded = append(c.Superseded, *c.Op)
		*c.Op = newOp
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if op, err := r.Operation(ctx, "acme", "op-i1"); err != nil || op.State != instance.OpFailed || op.Error != "superseded by delete" || op.FinishedAt == nil {
		t.Fatalf("superseded operation: %v %+v", err, op)
	}
	if op, err := r.Operation(ctx, "acme", "op-del"); err != nil || op.Type != instance.OpDelete || op.State != instance.OpInProgress {
		t.Fatalf("new operation: %v %+v", err, op)
	}
	if _, err := r.Update(ctx, "nope", func(*port.Change) error { return nil }); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("update of an unknown instance: %v, want not found", err)
	}
}

// testBindings: unique live names, tenant scoping, delete frees the name
// and emits once.
func testBindings(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	create(t, ctx, r, "i1", "acme", "db")
	ev := []port.Outgoing{{Topic: "canopy.instances.v1", Event: event(t)}}
	b := instance.Binding{ID: "b1", InstanceID: "i1", Tenant: "acme", Name: "app", Credentials: instance.Credentials{Username: "u", Password: "binding-pass"}, CreatedAt: time.Now()}
	if _, err := r.CreateBinding(ctx, b, ev); err != nil {
		t.Fatal(err)
	}
	b2 := b
	b2.ID = "b2"
	if _, err := r.CreateBinding(ctx, b2, ev); !errors.Is(err, port.ErrBindingNameTaken) {
		t.Fatalf("duplicate binding name: %v", err)
	}
	gb, err := r.Binding(ctx, "acme", "i1", "b1")
	if err != nil || gb.Credentials.Password != "binding-pass" || gb.Name != "app" {
		t.Fatalf("binding: %v %+v", err, gb)
	}
	if _, err := r.Binding(ctx, "globex", "i1", "b1"); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("other tenant binding: %v", err)
	}
	if err := r.DeleteBinding(ctx, gb, ev); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteBinding(ctx, gb, ev); err != nil {
		t.Fatal(err)
	}
	if n := s.OutboxLen(t); n != 2 {
		t.Fatalf("outbox has %d events, want 2 (created, deleted once)", n)
	}
	if _, err := r.CreateBinding(ctx, b2, nil); err != nil {
		t.Fatalf("name reusable after delete: %v", err)
	}
	b3 := b
	b3.ID, b3.Name = "b3", "other"
	if _, err := r.CreateBinding(ctx, b3, nil); err != nil {
		t.Fatal(err)
	}
	list, err := r.Bindings(ctx, "acme", "i1")
	if err != nil || len(list) != 2 || list[0].ID != "b2" || list[1].ID != "b3" {
		t.Fatalf("bindings: %v %+v, want b2 and b3", err, list)
	}
	if err := r.DeleteBindings(ctx, "i1"); err != nil {
		t.Fatal(err)
	}
	if list, err := r.Bindings(ctx, "acme", "i1"); err != nil || len(list) != 0 {
		t.Fatalf("bindings after DeleteBindings: %v %+v", err, list)
	}
	if got, err := r.Binding(ctx, "acme", "i1", "b3"); err != nil || !got.Deleted {
		t.Fatalf("deleted binding: %v %+v, want readable and deleted", err, got)
	}
}

// testOSBIDsCompareExactly: OSB ids are opaque and compare byte for byte,
// so ids differing only in case are different instances and bindings.
func testOSBIDsCompareExactly(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	createOSB := func(id, osbID, name string) error {
		in, op := Order(id, "acme", name)
		in.OSBID = osbID
		return r.Create(ctx, port.CreateRequest{Instance: in, Op: op, RequestHash: "h-" + id})
	}
	if err := createOSB("i-upper", "ABC", "osb-upper"); err != nil {
		t.Fatal(err)
	}
	if err := createOSB("i-lower", "abc", "osb-lower"); err != nil {
		t.Fatalf("abc after ABC: %v (want a second instance)", err)
	}
	if err := createOSB("i-again", "abc", "osb-again"); !errors.Is(err, port.ErrDuplicate) {
		t.Fatalf("abc again: %v, want ErrDuplicate", err)
	}
	for osbID, want := range map[string]string{"ABC": "i-upper", "abc": "i-lower"} {
		got, err := r.GetByOSBID(ctx, "acme", osbID)
		if err != nil || got.ID != want {
			t.Fatalf("GetByOSBID(%q) = %v, %v; want %s", osbID, got, err, want)
		}
	}
	if _, err := r.GetByOSBID(ctx, "acme", "Abc"); !errors.Is(err, port.ErrNotFound) {
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
	if err := bind("b-again", "b1", "other"); !errors.Is(err, port.ErrDuplicate) {
		t.Fatalf("b1 again: %v, want ErrDuplicate", err)
	}
	got, err := r.BindingByOSBID(ctx, "acme", "i-upper", "b1")
	if err != nil || got.ID != "b-lower" || got.RequestHash != "hash-lower" {
		t.Fatalf("BindingByOSBID(b1) = %+v, %v", got, err)
	}
	if _, err := r.BindingByOSBID(ctx, "acme", "i-upper", "b1 "); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("BindingByOSBID(%q): %v, want not found", "b1 ", err)
	}
}

// testCreateBindingConcurrentOSBID: binds racing with one OSB id (a
// platform retrying while the first is still running) store one binding;
// every other gets ErrDuplicate and that binding, never a raw key error.
func testCreateBindingConcurrentOSBID(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	create(t, ctx, r, "i1", "acme", "db")
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
		case errors.Is(res.err, port.ErrDuplicate):
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

// testNoTenantIsNotEveryTenant: tenant-scoped methods refuse an empty
// tenant; reading across tenants takes the explicitly named methods.
func testNoTenantIsNotEveryTenant(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	for _, o := range []struct{ id, tenant string }{{"a1", "acme"}, {"a2", "acme"}, {"g1", "globex"}} {
		create(t, ctx, r, o.id, o.tenant, "db-"+o.id)
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
			if err := tt.call(); !errors.Is(err, port.ErrNoTenant) {
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
	if _, err := r.Operation(ctx, "acme", "op-g1"); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("another tenant's operation: %v, want not found", err)
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
	page, err := r.List(ctx, "acme", "", 10, false)
	if err != nil || len(page) != 2 || page[0].ID != "a1" || page[1].ID != "a2" {
		t.Fatalf("List(acme) = %v, %v", page, err)
	}
}

// testSagaListings: the ids the saga resumes (unfinished instances, those
// with nodes to adopt) and the instances the health checker monitors.
func testSagaListings(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	for _, id := range []string{"i1", "i2", "i3", "i4"} {
		create(t, ctx, r, id, "acme", "db-"+id)
	}
	now := time.Now()
	step := func(id string, fn func(in *instance.Instance) error) {
		t.Helper()
		if _, err := r.Update(ctx, id, func(c *port.Change) error { return fn(c.Instance) }); err != nil {
			t.Fatalf("update %s: %v", id, err)
		}
	}
	place := func(in *instance.Instance) error {
		_, err := in.Place([]instance.Placement{{Name: "n0", Port: 7000, Host: "h"}}, now)
		return err
	}
	run := func(in *instance.Instance) error {
		return in.RecordNode(in.Nodes[0].ID, instance.NodeUpdate{State: instance.NodeRunning, Address: "127.0.0.1:7000"}, now)
	}
	// i1 placing (no nodes); i2 creating with a running node; i3 ready;
	// i4 deleted.
	step("i2", place)
	step("i2", run)
	for _, id := range []string{"i3", "i4"} {
		step(id, place)
		step(id, run)
		step(id, func(in *instance.Instance) error {
			if err := in.Advance(instance.StepVerifying, now); err != nil {
				return err
			}
			return in.MarkReady(now)
		})
	}
	step("i4", func(in *instance.Instance) error {
		if _, err := in.Delete("op-d", now); err != nil {
			return err
		}
		if err := in.RecordNode(in.Nodes[0].ID, instance.NodeUpdate{State: instance.NodeDestroyed}, now); err != nil {
			return err
		}
		return in.MarkDeleted(now)
	})
	unfinished, err := r.Unfinished(ctx)
	if err != nil || !reflect.DeepEqual(unfinished, []string{"i1", "i2"}) {
		t.Fatalf("Unfinished = %v, %v; want [i1 i2]", unfinished, err)
	}
	withNodes, err := r.WithNodes(ctx)
	if err != nil || !reflect.DeepEqual(withNodes, []string{"i2", "i3"}) {
		t.Fatalf("WithNodes = %v, %v; want [i2 i3]", withNodes, err)
	}
	monitored, err := r.ListMonitored(ctx, "", 10)
	if err != nil || len(monitored) != 1 || monitored[0].ID != "i3" || len(monitored[0].Nodes) != 1 {
		t.Fatalf("ListMonitored = %v, %v; want i3 with its node", monitored, err)
	}
	if all, err := r.ListAllInstances(ctx, "", 10, true); err != nil || len(all) != 4 {
		t.Fatalf("ListAllInstances with deleted = %d, %v; want 4", len(all), err)
	}
	if live, err := r.List(ctx, "acme", "", 10, false); err != nil || len(live) != 3 {
		t.Fatalf("List without deleted = %d, %v; want 3", len(live), err)
	}
}

// testRestore: an instance's restore (id, source, target, then its seed)
// and its operation's step detail are stored with it and read back; an
// instance without one reads back without one.
func testRestore(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	plain := create(t, ctx, r, "i0", "acme", "plain")
	if got, err := r.Get(ctx, "acme", plain.ID); err != nil || got.Restore != nil {
		t.Fatalf("instance without a restore reads back with %+v (err %v)", got.Restore, err)
	}
	in, op := Order("i1", "acme", "restored")
	pit := time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC)
	in.Restore = &instance.Restore{ID: "r1", SourceInstanceID: "src", PointInTime: pit}
	if err := r.Create(ctx, port.CreateRequest{Instance: in, Op: op}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, "acme", in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (instance.Restore{ID: "r1", SourceInstanceID: "src", PointInTime: pit}); got.Restore == nil || *got.Restore != want {
		t.Fatalf("restore reads back as %+v, want %+v", got.Restore, want)
	}
	ready := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := r.Update(ctx, in.ID, func(c *port.Change) error {
		c.Instance.Restore.Seed, c.Instance.Restore.ReadyAt = "/seeds/r1", ready
		c.Op.StepDetail = "replaying"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err = r.GetAnyTenant(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Restore == nil || got.Restore.Seed != "/seeds/r1" || !got.Restore.ReadyAt.Equal(ready) || got.Restore.ID != "r1" {
		t.Fatalf("restore after update reads back as %+v", got.Restore)
	}
	gotOp, err := r.Operation(ctx, "acme", op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gotOp.StepDetail != "replaying" {
		t.Fatalf("operation step detail %q, want replaying", gotOp.StepDetail)
	}
}
