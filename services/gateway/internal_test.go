package gateway_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// signedHeaders returns p's identity headers signed with secret, as name/value pairs for env.do.
func signedHeaders(secret string, p tenancy.Principal) []string {
	h := http.Header{}
	tenancy.Sign(h, []byte(secret), p, time.Now())
	var out []string
	for k, v := range h {
		out = append(out, k, v[0])
	}
	return out
}

var provisioningIdentity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:provisioning"}

func TestInternalQuota(t *testing.T) {
	e := newEnv(t)
	keys := e.tenantWithKeys("acme")
	quota := map[string]any{"max_instances": 3, "max_vcpu": 4.5, "max_memory_mb": 8192, "max_storage_gb": 100}
	r := e.do("PUT", "/api/v1/tenants/acme/quota", e.adminKey, quota)
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
	public := e.do("GET", "/api/v1/tenants/acme/quota", keys[tenancy.RoleTenantViewer], nil)
	require.Equal(t, http.StatusOK, public.StatusCode, "%s", public.Body)
	path := "/internal/v1/tenants/acme/quota"

	t.Run("signed service request reads the stored quota", func(t *testing.T) {
		r := e.do("GET", path, "", nil, signedHeaders(testSecret, provisioningIdentity)...)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.JSONEq(t, string(public.Body), string(r.Body), "same shape and values as the public quota")
		require.Equal(t, 4.5, r.json(t)["max_vcpu"])
	})
	t.Run("unknown tenant is 404", func(t *testing.T) {
		for _, p := range []string{"/internal/v1/tenants/nobody/quota", "/internal/v1/tenants/Not%20A%20Tenant/quota"} {
			r := e.do("GET", p, "", nil, signedHeaders(testSecret, provisioningIdentity)...)
			require.Equal(t, http.StatusNotFound, r.StatusCode, "%s: %s", p, r.Body)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			require.Equal(t, "https://canopy.dev/problems/unknown-tenant", r.json(t)["type"], "provisioning tells this 404 from a missing route by its type")
		}
	})

	now := strconv.FormatInt(time.Now().Unix(), 10)
	refused := []struct {
		name    string
		key     string
		headers []string
		status  int
	}{
		{"no identity", "", nil, http.StatusUnauthorized},
		{"platform-admin API key alone", e.adminKey, nil, http.StatusUnauthorized},
		{"tenant-admin API key alone", keys[tenancy.RoleTenantAdmin], nil, http.StatusUnauthorized},
		{"forged unsigned headers", "", []string{tenancy.RoleHeader, "platform-admin", tenancy.SubjectHeader, "service:provisioning"}, http.StatusUnauthorized},
		{"forged headers with a made-up signature", e.adminKey, []string{tenancy.RoleHeader, "platform-admin", tenancy.AuthTimeHeader, now,
			tenancy.SignatureHeader, strings.Repeat("ab", 32)}, http.StatusUnauthorized},
		{"signed with another secret", "", signedHeaders("not-the-internal-secret-0123", provisioningIdentity), http.StatusUnauthorized},
		{"signed tenant identity", "", signedHeaders(testSecret, tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:x"}), http.StatusForbidden},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", path, tt.key, nil, tt.headers...)
			require.Equal(t, tt.status, r.StatusCode, "%s", r.Body)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			require.NotContains(t, string(r.Body), "max_vcpu")
		})
	}
	t.Run("writes are not served", func(t *testing.T) {
		r := e.do("PUT", path, "", quota, signedHeaders(testSecret, provisioningIdentity)...)
		require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode, "%s", r.Body)
	})
	require.Zero(t, e.catalog.calls.Load(), "an internal request reached an upstream")
}

// TestInternalRoutesAreNotProxied: the proxied route table has nothing under
// /internal/, so the gateway never forwards such a path to a service.
func TestInternalRoutesAreNotProxied(t *testing.T) {
	for _, rt := range gateway.Routes() {
		if strings.HasPrefix(rt.Pattern, "/internal") {
			t.Errorf("route %s (upstream %s) lies under /internal/", rt.Pattern, rt.Upstream)
		}
	}
}
