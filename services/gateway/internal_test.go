package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// signedHeaders returns p's identity headers for a body-less request
// (method, path) signed with secret for audience, as name/value pairs for env.do.
func signedHeaders(secret, audience, method, path string, p tenancy.Principal) []string {
	return headerPairs(signed(secret, audience, method, path, nil, p))
}

func signed(secret, audience, method, path string, body []byte, p tenancy.Principal) http.Header {
	req := httptest.NewRequest(method, path, nil)
	tenancy.NewSigner([]byte(secret)).SignRequest(req, body, audience, p)
	return req.Header
}

func headerPairs(h http.Header) []string {
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
	sign := func(p tenancy.Principal) []string {
		return signedHeaders(testSecret, tenancy.AudienceGateway, "GET", path, p)
	}

	t.Run("signed service request reads the stored quota", func(t *testing.T) {
		r := e.doAt(e.internal, "GET", path, "", nil, sign(provisioningIdentity)...)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.JSONEq(t, string(public.Body), string(r.Body), "same shape and values as the public quota")
		require.Equal(t, 4.5, r.json(t)["max_vcpu"])
	})
	t.Run("unknown tenant is 404", func(t *testing.T) {
		for _, p := range []string{"/internal/v1/tenants/nobody/quota", "/internal/v1/tenants/Not%20A%20Tenant/quota"} {
			r := e.doAt(e.internal, "GET", p, "", nil, signedHeaders(testSecret, tenancy.AudienceGateway, "GET", p, provisioningIdentity)...)
			require.Equal(t, http.StatusNotFound, r.StatusCode, "%s: %s", p, r.Body)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			require.Equal(t, "https://canopy.dev/problems/unknown-tenant", r.json(t)["type"], "provisioning tells this 404 from a missing route by its type")
		}
	})

	now := strconv.FormatInt(time.Now().Unix(), 10)
	used := sign(provisioningIdentity)
	require.Equal(t, http.StatusOK, e.doAt(e.internal, "GET", path, "", nil, used...).StatusCode)
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
		{"signed with another secret", "", signedHeaders("not-the-internal-secret-0123", tenancy.AudienceGateway, "GET", path, provisioningIdentity), http.StatusUnauthorized},
		{"replayed", "", used, http.StatusUnauthorized},
		{"signed for another service", "", signedHeaders(testSecret, tenancy.AudienceProvisioning, "GET", path, provisioningIdentity), http.StatusUnauthorized},
		{"signed for another path", "", signedHeaders(testSecret, tenancy.AudienceGateway, "GET", "/internal/v1/tenants/other/quota", provisioningIdentity), http.StatusUnauthorized},
		{"signed tenant identity", "", sign(tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:x"}), http.StatusForbidden},
		{"signed platform-admin API key identity", "", sign(tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}), http.StatusForbidden},
		{"signed identity of a service without the need", "", sign(tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:healthcheck"}), http.StatusForbidden},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := e.doAt(e.internal, "GET", path, tt.key, nil, tt.headers...)
			require.Equal(t, tt.status, r.StatusCode, "%s", r.Body)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
			require.NotContains(t, string(r.Body), "max_vcpu")
		})
	}
	t.Run("writes are not served", func(t *testing.T) {
		body, err := json.Marshal(quota)
		require.NoError(t, err)
		h := headerPairs(signed(testSecret, tenancy.AudienceGateway, "PUT", path, body, provisioningIdentity))
		r := e.doAt(e.internal, "PUT", path, "", string(body), h...)
		require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode, "%s", r.Body)
	})
	t.Run("not on the public listener", func(t *testing.T) {
		for _, key := range []string{"", e.adminKey} {
			r := e.do("GET", path, key, nil, sign(provisioningIdentity)...)
			require.Equal(t, http.StatusNotFound, r.StatusCode, "%s", r.Body)
			require.NotContains(t, string(r.Body), "max_vcpu")
		}
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

// TestOperatorEndpointsAreInternal: /metrics and the readiness details are
// served on the internal listener only; the public /readyz says ready or not.
func TestOperatorEndpointsAreInternal(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/metrics", "", nil)
	require.Equal(t, http.StatusNotFound, r.StatusCode)
	r = e.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.JSONEq(t, `{"status":"ok"}`, string(r.Body), "no dependency names on the public port")

	r = e.doAt(e.internal, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, string(r.Body), "canopy_gateway_breaker_state")
	r = e.doAt(e.internal, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, string(r.Body), `"mysql":"ok"`)
	// The internal listener serves nothing of the public API.
	require.Equal(t, http.StatusNotFound, e.doAt(e.internal, "GET", "/api/v1/tenants", e.adminKey, nil).StatusCode)
}

// TestInternalSecretRotation: a service still signing with the previous
// secret is served while the gateway lists it as previous.
func TestInternalSecretRotation(t *testing.T) {
	const next = "next-internal-secret-0123456789"
	e := newEnv(t, func(c *gateway.Config) { c.InternalSecret, c.InternalSecretPrevious = next, testSecret })
	e.tenantWithKeys("acme")
	path := "/internal/v1/tenants/acme/quota"
	for _, secret := range []string{testSecret, next} {
		r := e.doAt(e.internal, "GET", path, "", nil, signedHeaders(secret, tenancy.AudienceGateway, "GET", path, provisioningIdentity)...)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
	}
}

// TestCapturedIdentityIsBoundToItsRequest: the identity headers the gateway
// signed for one request are refused on that request a second time, on
// another path, with another method, and by another service.
func TestCapturedIdentityIsBoundToItsRequest(t *testing.T) {
	e := newEnv(t)
	keys := e.tenantWithKeys("acme")
	r := e.do("GET", "/api/v1/catalog/services?limit=5", keys[tenancy.RoleTenantAdmin], nil)
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
	captured := *e.catalog.signed.Load()
	require.NotEmpty(t, captured.Get(tenancy.SignatureHeader))
	require.NotEmpty(t, captured.Get(tenancy.NonceHeader))

	replay := func(method, path string) int {
		req, err := http.NewRequest(method, e.catalog.srv.URL+path, nil)
		require.NoError(t, err)
		for k, v := range captured {
			req.Header[k] = v
		}
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct{ name, method, path string }{
		{"same request again", "GET", "/api/v1/catalog/services?limit=5"},
		{"another query", "GET", "/api/v1/catalog/services?limit=500"},
		{"another path", "GET", "/api/v1/catalog/plans"},
		{"another method", "DELETE", "/api/v1/catalog/services?limit=5"},
		{"another service (scheduling)", "GET", "/api/v1/inventory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, http.StatusUnauthorized, replay(tt.method, tt.path))
		})
	}
	// The gateway's internal API does not take it either.
	h := headerPairs(captured)
	require.Equal(t, http.StatusUnauthorized, e.doAt(e.internal, "GET", "/internal/v1/tenants/acme/quota", "", nil, h...).StatusCode)
	// Two identical requests through the gateway both pass: each is signed anew.
	for range 2 {
		r := e.do("GET", "/api/v1/catalog/services?limit=5", keys[tenancy.RoleTenantAdmin], nil)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
	}
}
