package provisioning

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// ids returns the sorted "tenant/name" of a list response's items and its
// next cursor.
func listed(t testing.TB, r response) ([]string, string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	m := r.json(t)
	var out []string
	for _, it := range m["items"].([]any) {
		in := it.(map[string]any)
		out = append(out, fmt.Sprintf("%s/%s", in["tenant"], in["name"]))
	}
	sort.Strings(out)
	next, _ := m["next_cursor"].(string)
	return out, next
}

// TestPlatformAdmin: a platform admin sees the whole fleet, filters by
// tenant, acts on any tenant's instance under its own identity, and orders
// only for a named tenant; tenants still see only their own instances.
func TestPlatformAdmin(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	acme := s.as("acme")
	acme.role = tenancy.RoleTenantAdmin
	globex := s.as("globex")
	admin := s.as("")
	admin.role = tenancy.RolePlatformAdmin
	admin.subject = "apikey:ops-alice"

	order := func(c *client, name string) string {
		r := c.do("POST", "/api/v1/instances", map[string]any{"name": name, "plan_id": planRedisDev})
		if r.status != http.StatusAccepted {
			t.Fatalf("order %s: %d %s", name, r.status, r.body)
		}
		return r.json(t)["instance"].(map[string]any)["id"].(string)
	}
	aID := order(acme, "cache")
	gID := order(globex, "cache")
	acme.waitState(aID, readyWithin, "ready")
	globex.waitState(gID, readyWithin, "ready")
	if r := globex.do("POST", "/api/v1/instances/"+gID+"/bindings", map[string]any{"name": "app"}); r.status != http.StatusCreated {
		t.Fatalf("bind: %d %s", r.status, r.body)
	}

	// The fleet, one tenant, and cursor pages across tenants.
	if got, _ := listed(t, admin.do("GET", "/api/v1/instances", nil)); fmt.Sprint(got) != "[acme/cache globex/cache]" {
		t.Errorf("admin lists %v", got)
	}
	if got, _ := listed(t, admin.do("GET", "/api/v1/instances?tenant=globex", nil)); fmt.Sprint(got) != "[globex/cache]" {
		t.Errorf("admin lists globex: %v", got)
	}
	var paged []string
	for cursor, pages := "", 0; ; pages++ {
		if pages > 3 {
			t.Fatal("cursor does not end")
		}
		got, next := listed(t, admin.do("GET", "/api/v1/instances?limit=1&cursor="+url.QueryEscape(cursor), nil))
		paged = append(paged, got...)
		if next == "" {
			break
		}
		cursor = next
	}
	if sort.Strings(paged); fmt.Sprint(paged) != "[acme/cache globex/cache]" {
		t.Errorf("admin pages %v", paged)
	}
	if r := admin.do("GET", "/api/v1/instances?tenant=Not+A+Tenant!", nil); r.status != http.StatusBadRequest {
		t.Errorf("bad tenant filter: %d %s", r.status, r.body)
	}

	// Any instance, its bindings; but no minting of a tenant's credentials.
	if r := admin.do("GET", "/api/v1/instances/"+gID, nil); r.status != http.StatusOK || r.json(t)["tenant"] != "globex" {
		t.Errorf("admin get: %d %s", r.status, r.body)
	}
	if r := admin.do("GET", "/api/v1/instances/"+gID+"/bindings", nil); r.status != http.StatusOK || len(r.json(t)["items"].([]any)) != 1 {
		t.Errorf("admin bindings: %d %s", r.status, r.body)
	}
	if r := admin.do("POST", "/api/v1/instances/"+gID+"/bindings", map[string]any{"name": "ops"}); r.status != http.StatusBadRequest {
		t.Errorf("admin bind: %d %s", r.status, r.body)
	}
	if r := admin.do("GET", "/api/v1/instances/nope", nil); r.status != http.StatusNotFound {
		t.Errorf("admin get unknown: %d", r.status)
	}

	// A change to another tenant's instance is the admin's operation.
	r := admin.do("PATCH", "/api/v1/instances/"+aID, map[string]any{"parameters": map[string]any{"timeout": 60}})
	if r.status != http.StatusAccepted {
		t.Fatalf("admin patch: %d %s", r.status, r.body)
	}
	patchOp := r.json(t)["operation_id"].(string)
	eventually(t, readyWithin, "admin's update applied", func() error {
		op := acme.do("GET", "/api/v1/operations/"+patchOp, nil).json(t)
		if op["state"] != "succeeded" || op["requested_by"] != "apikey:ops-alice" {
			return fmt.Errorf("operation %v", op)
		}
		return nil
	})

	// Ordering needs a named, valid tenant.
	if r := admin.do("POST", "/api/v1/instances", map[string]any{"name": "x", "plan_id": planRedisDev}); r.status != http.StatusBadRequest || fieldOf(t, r) != "tenant" {
		t.Errorf("admin order without tenant: %d %s", r.status, r.body)
	}
	if r := admin.do("POST", "/api/v1/instances", map[string]any{"tenant": "Bad Tenant", "name": "x", "plan_id": planRedisDev}); r.status != http.StatusUnprocessableEntity || fieldOf(t, r) != "tenant" {
		t.Errorf("admin order for a bad tenant: %d %s", r.status, r.body)
	}
	r = admin.do("POST", "/api/v1/instances", map[string]any{"tenant": "initech", "name": "ops-made", "plan_id": planRedisDev, "region": "nowhere"})
	if r.status != http.StatusAccepted || r.json(t)["instance"].(map[string]any)["tenant"] != "initech" {
		t.Fatalf("admin order for initech: %d %s", r.status, r.body)
	}
	if op := s.as("initech").do("GET", "/api/v1/operations/"+r.json(t)["operation_id"].(string), nil).json(t); op["requested_by"] != "apikey:ops-alice" {
		t.Errorf("order not attributed to the admin: %v", op)
	}
	if r := acme.do("POST", "/api/v1/instances", map[string]any{"tenant": "globex", "name": "y", "plan_id": planRedisDev}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("tenant orders for another tenant: %d %s", r.status, r.body)
	}

	// Tenants never see across.
	if got, _ := listed(t, acme.do("GET", "/api/v1/instances", nil)); fmt.Sprint(got) != "[acme/cache]" {
		t.Errorf("acme lists %v", got)
	}
	if r := acme.do("GET", "/api/v1/instances?tenant=globex", nil); r.status != http.StatusForbidden {
		t.Errorf("acme lists globex: %d %s", r.status, r.body)
	}
	for _, rq := range []struct{ m, p string }{{"GET", "/api/v1/instances/" + gID}, {"GET", "/api/v1/instances/" + gID + "/bindings"}, {"DELETE", "/api/v1/instances/" + gID}} {
		if r := acme.do(rq.m, rq.p, nil); r.status != http.StatusNotFound {
			t.Errorf("acme %s %s: %d", rq.m, rq.p, r.status)
		}
	}

	// The admin deletes globex's instance; the operation names the admin.
	r = admin.do("DELETE", "/api/v1/instances/"+gID, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("admin delete: %d %s", r.status, r.body)
	}
	opID := r.json(t)["operation_id"].(string)
	globex.waitState(gID, readyWithin, "deleted")
	for _, c := range []*client{admin, globex} {
		op := c.do("GET", "/api/v1/operations/"+opID, nil).json(t)
		if op["type"] != "delete" || op["state"] != "succeeded" || op["requested_by"] != "apikey:ops-alice" {
			t.Errorf("delete operation as seen by %q: %v", c.tenant, op)
		}
	}
	if r := acme.do("GET", "/api/v1/operations/"+opID, nil); r.status != http.StatusNotFound {
		t.Errorf("acme reads globex's operation: %d", r.status)
	}
	if got, _ := listed(t, admin.do("GET", "/api/v1/instances", nil)); fmt.Sprint(got) != "[acme/cache initech/ops-made]" {
		t.Errorf("admin lists after delete %v", got)
	}
}
