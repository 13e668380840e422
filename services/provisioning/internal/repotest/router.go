package repotest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

func createRouted(ctx context.Context, r Repository, id, tenant, name string, pr instance.PortRange) (*instance.Instance, error) {
	in, op := Order(id, tenant, name)
	if err := r.Create(ctx, port.CreateRequest{Instance: in, Op: op, RouterPorts: pr}); err != nil {
		return nil, err
	}
	return r.GetAnyTenant(ctx, id)
}

func markDeleted(t *testing.T, ctx context.Context, r Repository, id string) {
	t.Helper()
	if _, err := r.Update(ctx, id, func(c *port.Change) error {
		c.Instance.State, c.Instance.Step = instance.StateDeleted, instance.StepDone
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// testRouterPorts: the lowest free pair, stored and read back, unchanged by
// updates; a deleted instance's ports return to the pool; a full range is
// ErrRouterPortsExhausted and creates nothing.
func testRouterPorts(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	pr := instance.PortRange{Lo: 16000, Hi: 16004}
	want := map[string]instance.RouterPorts{"i1": {RW: 16000, RO: 16001}, "i2": {RW: 16002, RO: 16003}}
	for _, id := range []string{"i1", "i2"} {
		got, err := createRouted(ctx, r, id, "acme", "db-"+id, pr)
		if err != nil {
			t.Fatal(err)
		}
		if got.Router != want[id] {
			t.Fatalf("%s: router ports %+v, want %+v", id, got.Router, want[id])
		}
	}
	// One port left: not a pair.
	if _, err := createRouted(ctx, r, "i3", "acme", "db-i3", pr); !errors.Is(err, instance.ErrRouterPortsExhausted) {
		t.Fatalf("full range: %v, want ErrRouterPortsExhausted", err)
	}
	if _, err := r.GetAnyTenant(ctx, "i3"); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("refused order stored: %v", err)
	}
	// An update keeps the ports whatever the callback does to the field.
	got, err := r.Update(ctx, "i1", func(c *port.Change) error {
		c.Instance.Reason = "x"
		c.Instance.Router = instance.RouterPorts{RW: 1, RO: 2}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err = r.GetAnyTenant(ctx, "i1"); err != nil || got.Router != want["i1"] {
		t.Fatalf("after update: %v %+v", err, got)
	}
	markDeleted(t, ctx, r, "i1")
	got, err = createRouted(ctx, r, "i4", "other", "db", pr)
	if err != nil {
		t.Fatal(err)
	}
	if got.Router != want["i1"] {
		t.Fatalf("after delete: %+v, want the deleted instance's %+v", got.Router, want["i1"])
	}
	routed, err := r.ListRouted(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(routed); fmt.Sprint(ids) != "[i2 i4]" {
		t.Fatalf("routed: %v, want [i2 i4] (deleted left out)", ids)
	}
	if page, err := r.ListRouted(ctx, "i2", 1); err != nil || fmt.Sprint(idsOf(page)) != "[i4]" {
		t.Fatalf("routed after i2: %v %v", err, idsOf(page))
	}
	// Without a range nothing is allocated.
	in, op := Order("i5", "acme", "plain")
	if err := r.Create(ctx, port.CreateRequest{Instance: in, Op: op}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.GetAnyTenant(ctx, "i5"); err != nil || got.Router.Allocated() {
		t.Fatalf("no range: %v %+v", err, got)
	}
}

func idsOf(ins []*instance.Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

// testRouterPortsConcurrent: creates of several tenants at once never share
// a port, whichever column it would be in.
func testRouterPortsConcurrent(t *testing.T, ctx context.Context, s Subject) {
	const n = 8
	pr := instance.PortRange{Lo: 20000, Hi: 20000 + 2*n - 1}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = createRouted(ctx, s.Repo, fmt.Sprintf("c%02d", i), fmt.Sprintf("t%d", i), "db", pr)
		}()
	}
	wg.Wait()
	seen := map[int]string{}
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		in, err := s.Repo.GetAnyTenant(ctx, fmt.Sprintf("c%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []int{in.Router.RW, in.Router.RO} {
			if p < pr.Lo || p > pr.Hi {
				t.Fatalf("%s: port %d outside %v", in.ID, p, pr)
			}
			if other, dup := seen[p]; dup {
				t.Fatalf("port %d given to %s and %s", p, other, in.ID)
			}
			seen[p] = in.ID
		}
	}
}

// testRouterPortsBackfill: live instances without ports are listed and get
// them once; deleted ones are neither listed nor assigned.
func testRouterPortsBackfill(t *testing.T, ctx context.Context, s Subject) {
	r := s.Repo
	pr := instance.PortRange{Lo: 30000, Hi: 30009}
	create(t, ctx, r, "i1", "acme", "old")
	create(t, ctx, r, "i2", "acme", "gone")
	markDeleted(t, ctx, r, "i2")
	if _, err := createRouted(ctx, r, "i3", "acme", "new", pr); err != nil {
		t.Fatal(err)
	}
	ids, err := r.WithoutRouterPorts(ctx)
	if err != nil || fmt.Sprint(ids) != "[i1]" {
		t.Fatalf("without ports: %v %v, want [i1]", err, ids)
	}
	in, assigned, err := r.AssignRouterPorts(ctx, "i1", pr)
	if err != nil || !assigned || in.Router != (instance.RouterPorts{RW: 30002, RO: 30003}) {
		t.Fatalf("assign: %v %v %+v", err, assigned, in)
	}
	if got, err := r.GetAnyTenant(ctx, "i1"); err != nil || got.Router != in.Router {
		t.Fatalf("stored: %v %+v", err, got)
	}
	if again, assigned, err := r.AssignRouterPorts(ctx, "i1", pr); err != nil || assigned || again.Router != in.Router {
		t.Fatalf("assign again: %v %v %+v, want unchanged", err, assigned, again)
	}
	if _, assigned, err := r.AssignRouterPorts(ctx, "i2", pr); err != nil || assigned {
		t.Fatalf("assign deleted: %v %v", err, assigned)
	}
	if ids, err := r.WithoutRouterPorts(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("without ports after backfill: %v %v", err, ids)
	}
	if _, _, err := r.AssignRouterPorts(ctx, "nope", pr); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}
