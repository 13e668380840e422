package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// route is one gateway route as a test case: how to call it on tenant A.
type route struct {
	name   string
	method string
	path   func(e *env, tenant string) string
	body   func() any
	// own: true when the route is the gateway's own (validated against OpenAPI)
	own bool
	// want maps a role acting on its own tenant (or a platform-admin on any
	// tenant) to the expected status.
	want map[tenancy.Role]int
}

var seq atomic.Int64

func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

func fixed(p string) func(*env, string) string { return func(*env, string) string { return p } }

func onTenant(suffix string) func(*env, string) string {
	return func(_ *env, tenant string) string { return "/api/v1/tenants/" + tenant + suffix }
}

func all(code int) map[tenancy.Role]int {
	return map[tenancy.Role]int{tenancy.RolePlatformAdmin: code, tenancy.RoleTenantAdmin: code, tenancy.RoleTenantMember: code, tenancy.RoleTenantViewer: code}
}

func only(ok int, roles ...tenancy.Role) map[tenancy.Role]int {
	m := all(http.StatusForbidden)
	for _, r := range roles {
		m[r] = ok
	}
	return m
}

var (
	quotaBody = func() any {
		return map[string]any{"max_instances": 5, "max_vcpu": 16, "max_memory_mb": 65536, "max_storage_gb": 500}
	}
	rateBody = func() any { return map[string]any{"requests_per_second": 1000, "burst": 1000} }
)

func gatewayRoutes() []route {
	pa, ta := tenancy.RolePlatformAdmin, tenancy.RoleTenantAdmin
	return []route{
		{name: "create tenant", method: "POST", path: fixed("/api/v1/tenants"), own: true,
			body: func() any { return map[string]any{"id": uniq("t"), "name": "New"} }, want: only(http.StatusCreated, pa)},
		{name: "list tenants", method: "GET", path: fixed("/api/v1/tenants"), own: true, want: only(http.StatusOK, pa)},
		{name: "get tenant", method: "GET", path: onTenant(""), own: true, want: all(http.StatusOK)},
		{name: "create key", method: "POST", path: onTenant("/api-keys"), own: true,
			body: func() any { return map[string]any{"name": "k", "role": "tenant-viewer"} }, want: only(http.StatusCreated, pa, ta)},
		{name: "list keys", method: "GET", path: onTenant("/api-keys"), own: true, want: only(http.StatusOK, pa, ta)},
		{name: "revoke key", method: "DELETE", own: true, want: only(http.StatusNoContent, pa, ta),
			path: func(e *env, tenant string) string {
				r := e.do("POST", "/api/v1/tenants/"+tenant+"/api-keys", e.adminKey, map[string]any{"name": "victim", "role": "tenant-viewer"})
				if r.StatusCode != http.StatusCreated { // no such tenant: any well-formed id
					return "/api/v1/tenants/" + tenant + "/api-keys/01aaaaaaaaaaaaaaaaaaaaaaaa"
				}
				return "/api/v1/tenants/" + tenant + "/api-keys/" + r.json(e.t)["id"].(string)
			}},
		{name: "get quota", method: "GET", path: onTenant("/quota"), own: true, want: all(http.StatusOK)},
		{name: "set quota", method: "PUT", path: onTenant("/quota"), own: true, body: quotaBody, want: only(http.StatusOK, pa)},
		{name: "get rate limit", method: "GET", path: onTenant("/rate-limit"), own: true, want: all(http.StatusOK)},
		{name: "set rate limit", method: "PUT", path: onTenant("/rate-limit"), own: true, body: rateBody, want: only(http.StatusOK, pa)},
		{name: "audit log", method: "GET", path: fixed("/api/v1/audit"), own: true, want: only(http.StatusOK, pa)},
		{name: "catalog (proxied)", method: "GET", path: fixed("/api/v1/catalog/services"), want: all(http.StatusOK)},
		{name: "inventory (proxied)", method: "GET", path: fixed("/api/v1/inventory/regions"), want: all(http.StatusOK)},
		{name: "placements (proxied)", method: "GET", path: fixed("/api/v1/placements"), want: all(http.StatusOK)},
	}
}

func body(rt route) any {
	if rt.body == nil {
		return nil
	}
	return rt.body()
}

// TestRoleMatrix calls every route with every role on the role's own tenant.
func TestRoleMatrix(t *testing.T) {
	e := newEnv(t)
	keys := e.tenantWithKeys("acme")
	for _, rt := range gatewayRoutes() {
		for _, role := range tenancy.Roles() {
			t.Run(rt.name+"/"+string(role), func(t *testing.T) {
				r := e.do(rt.method, rt.path(e, "acme"), keys[role], body(rt))
				require.Equal(t, rt.want[role], r.StatusCode, "%s", r.Body)
				if rt.own {
					validate(t, r)
				}
			})
		}
	}
}

// TestCrossTenantMatrix: tenant B's keys never reach tenant A's resources,
// and nothing of A's appears in what B can list.
func TestCrossTenantMatrix(t *testing.T) {
	e := newEnv(t)
	e.tenantWithKeys("tenant-a")
	b := e.tenantWithKeys("tenant-b")
	for _, rt := range gatewayRoutes() {
		if !strings.Contains(rt.path(e, "X"), "/tenants/X") {
			continue
		}
		for _, role := range []tenancy.Role{tenancy.RoleTenantAdmin, tenancy.RoleTenantMember, tenancy.RoleTenantViewer} {
			t.Run(rt.name+"/"+string(role), func(t *testing.T) {
				r := e.do(rt.method, rt.path(e, "tenant-a"), b[role], body(rt))
				require.Equal(t, http.StatusNotFound, r.StatusCode, "%s", r.Body)
				require.NotContains(t, string(r.Body), "Tenant tenant-a", "a refusal must not echo A's data")
				validate(t, r)
				// A tenant that does not exist looks exactly the same.
				r2 := e.do(rt.method, rt.path(e, "no-such-tenant"), b[role], body(rt))
				require.Equal(t, http.StatusNotFound, r2.StatusCode)
			})
		}
	}
	t.Run("lists", func(t *testing.T) {
		r := e.do("GET", "/api/v1/tenants/tenant-b/api-keys", b[tenancy.RoleTenantAdmin], nil)
		require.Equal(t, http.StatusOK, r.StatusCode)
		validate(t, r)
		items := r.json(t)["items"].([]any)
		require.Len(t, items, 3)
		for _, it := range items {
			require.Equal(t, "tenant-b", it.(map[string]any)["tenant_id"])
		}
		for _, role := range []tenancy.Role{tenancy.RoleTenantAdmin, tenancy.RoleTenantMember, tenancy.RoleTenantViewer} {
			for _, p := range []string{"/api/v1/tenants", "/api/v1/audit", "/api/v1/audit?tenant=tenant-a"} {
				r := e.do("GET", p, b[role], nil)
				require.Equal(t, http.StatusForbidden, r.StatusCode, "%s %s", role, p)
				require.NotContains(t, string(r.Body), "tenant-a")
			}
		}
	})
	t.Run("key of A under B's path", func(t *testing.T) {
		r := e.do("GET", "/api/v1/tenants/tenant-a/api-keys", e.adminKey, nil)
		aKey := r.json(t)["items"].([]any)[0].(map[string]any)["id"].(string)
		r = e.do("DELETE", "/api/v1/tenants/tenant-b/api-keys/"+aKey, b[tenancy.RoleTenantAdmin], nil)
		require.Equal(t, http.StatusNotFound, r.StatusCode)
		r = e.do("GET", "/api/v1/tenants/tenant-a/api-keys", e.adminKey, nil)
		for _, it := range r.json(t)["items"].([]any) {
			require.Nil(t, it.(map[string]any)["revoked_at"], "A's key must not be revoked through B")
		}
	})
	t.Run("proxied identity is B's even with forged headers", func(t *testing.T) {
		r := e.do("GET", "/api/v1/catalog/services", b[tenancy.RoleTenantViewer], nil,
			tenancy.HTTPHeader, "tenant-a", tenancy.RoleHeader, "platform-admin")
		require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
		require.Equal(t, "tenant-b", r.Header.Get("X-Seen-Tenant"))
		require.Equal(t, "tenant-viewer", r.Header.Get("X-Seen-Role"))
		require.Empty(t, r.Header.Get("X-Seen-Authorization"), "the API key must not reach services")
	})
}

func TestAuthenticationFailuresAreGeneric(t *testing.T) {
	e := newEnv(t)
	keys := e.tenantWithKeys("acme")
	good := keys[tenancy.RoleTenantAdmin]
	id, _, _ := strings.Cut(strings.TrimPrefix(good, "cnp_"), "_")
	r := e.do("GET", "/api/v1/tenants/acme/api-keys", e.adminKey, nil)
	var revokedID string
	for _, it := range r.json(t)["items"].([]any) {
		if it.(map[string]any)["role"] == "tenant-viewer" {
			revokedID = it.(map[string]any)["id"].(string)
		}
	}
	// Warm the cache with the viewer key, then revoke it: it must stop at once.
	require.Equal(t, http.StatusOK, e.do("GET", "/api/v1/tenants/acme", keys[tenancy.RoleTenantViewer], nil).StatusCode)
	require.Equal(t, http.StatusNoContent, e.do("DELETE", "/api/v1/tenants/acme/api-keys/"+revokedID, good, nil).StatusCode)

	var bodies []string
	for name, header := range map[string]string{
		"missing":       "",
		"malformed":     "Bearer",
		"not bearer":    "Basic Zm9vOmJhcg==",
		"unknown id":    "Bearer cnp_01aaaaaaaaaaaaaaaaaaaaaaaa_secret",
		"wrong secret":  "Bearer cnp_" + id + "_wrong",
		"revoked":       "Bearer " + keys[tenancy.RoleTenantViewer],
		"truncated":     "Bearer cnp_" + id,
		"too long":      "Bearer " + strings.Repeat("x", 1000),
		"bootstrap bad": "Bearer not-the-admin-key",
	} {
		t.Run(name, func(t *testing.T) {
			req := []string{}
			if header != "" {
				req = []string{"Authorization", header}
			}
			r := e.do("GET", "/api/v1/tenants/acme", "", nil, req...)
			require.Equal(t, http.StatusUnauthorized, r.StatusCode)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			validate(t, r)
			m := r.json(t)
			bodies = append(bodies, m["title"].(string)+"|"+m["detail"].(string))
		})
	}
	for _, b := range bodies {
		require.Equal(t, bodies[0], b, "every authentication failure reads the same")
	}
}
