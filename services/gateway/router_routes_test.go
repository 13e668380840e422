package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// TestRouterRoutes: the endpoints' live state goes to the router, signed for
// its audience with the caller's tenant and role (the router scopes by
// them), while an instance's other routes stay with their services.
func TestRouterRoutes(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	stand := func(audience string) *httptest.Server {
		srv := httptest.NewServer(tenancy.Middleware(audience, []byte(testSecret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := tenancy.PrincipalFrom(r.Context())
			mu.Lock()
			seen = append(seen, audience+" "+r.Method+" "+r.URL.Path+" "+string(p.Tenant)+" "+string(p.Role))
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"instances": []any{}})
		})))
		t.Cleanup(srv.Close)
		return srv
	}
	rt, prov, hc := stand(tenancy.AudienceRouter), stand(tenancy.AudienceProvisioning), stand(tenancy.AudienceHealthcheck)
	e := newEnv(t, func(c *gateway.Config) { c.RouterURL, c.ProvisioningURL, c.HealthcheckURL = rt.URL, prov.URL, hc.URL })
	keys := e.tenantWithKeys("acme")
	viewer, admin := keys[tenancy.RoleTenantViewer], keys[tenancy.RolePlatformAdmin]
	for _, c := range []struct {
		key, path, want string
	}{
		{viewer, "/api/v1/instances/i1/endpoints", "router GET /api/v1/instances/i1/endpoints acme tenant-viewer"},
		{admin, "/api/v1/router/endpoints", "router GET /api/v1/router/endpoints  platform-admin"},
		{viewer, "/api/v1/router/endpoints", "router GET /api/v1/router/endpoints acme tenant-viewer"},
		{viewer, "/api/v1/instances/i1", "provisioning GET /api/v1/instances/i1 acme tenant-viewer"},
		{viewer, "/api/v1/instances/i1/health", "healthcheck GET /api/v1/instances/i1/health acme tenant-viewer"},
	} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		r := e.do("GET", c.path, c.key, nil)
		require.Equal(t, http.StatusOK, r.StatusCode, "GET %s: %s", c.path, r.Body)
		mu.Lock()
		require.Equal(t, []string{c.want}, seen)
		mu.Unlock()
	}
}

// TestRouterDefaultURL: with nothing configured the gateway looks for the
// router where its binary listens by default.
func TestRouterDefaultURL(t *testing.T) {
	require.Equal(t, "http://127.0.0.1:8090", gateway.Defaults().RouterURL)
	c := gateway.Defaults()
	c.RouterURL = "127.0.0.1:8090"
	require.ErrorContains(t, c.Validate(), "router_url")
}
