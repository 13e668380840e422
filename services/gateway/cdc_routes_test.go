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

// TestCDCRoutes: an instance's CDC streams and the sync jobs go to the cdc
// service, every method, signed for its audience with the caller's tenant and role (the cdc
// service authorizes: viewers read, members write), while the instance
// itself and its other sub-resources stay with their services.
func TestCDCRoutes(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	stand := func(audience string) *httptest.Server {
		srv := httptest.NewServer(tenancy.Middleware(audience, []byte(testSecret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := tenancy.PrincipalFrom(r.Context())
			mu.Lock()
			seen = append(seen, audience+" "+r.Method+" "+r.URL.Path+" "+string(p.Tenant)+" "+string(p.Role))
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"items": []any{}})
		})))
		t.Cleanup(srv.Close)
		return srv
	}
	cdc, prov, fo := stand(tenancy.AudienceCDC), stand(tenancy.AudienceProvisioning), stand(tenancy.AudienceFailover)
	e := newEnv(t, func(c *gateway.Config) { c.CDCURL, c.ProvisioningURL, c.FailoverURL = cdc.URL, prov.URL, fo.URL })
	keys := e.tenantWithKeys("acme")
	viewer, member := keys[tenancy.RoleTenantViewer], keys[tenancy.RoleTenantMember]
	for _, c := range []struct {
		key, method, path, want string
	}{
		{viewer, "GET", "/api/v1/instances/i1/cdc-streams", "cdc GET /api/v1/instances/i1/cdc-streams acme tenant-viewer"},
		{viewer, "GET", "/api/v1/instances/i1/cdc-streams/s1", "cdc GET /api/v1/instances/i1/cdc-streams/s1 acme tenant-viewer"},
		{member, "POST", "/api/v1/instances/i1/cdc-streams", "cdc POST /api/v1/instances/i1/cdc-streams acme tenant-member"},
		{member, "POST", "/api/v1/instances/i1/cdc-streams/s1:pause", "cdc POST /api/v1/instances/i1/cdc-streams/s1:pause acme tenant-member"},
		{member, "POST", "/api/v1/instances/i1/cdc-streams/s1:resume", "cdc POST /api/v1/instances/i1/cdc-streams/s1:resume acme tenant-member"},
		{member, "POST", "/api/v1/instances/i1/cdc-streams/s1:resnapshot", "cdc POST /api/v1/instances/i1/cdc-streams/s1:resnapshot acme tenant-member"},
		{member, "DELETE", "/api/v1/instances/i1/cdc-streams/s1", "cdc DELETE /api/v1/instances/i1/cdc-streams/s1 acme tenant-member"},
		{member, "POST", "/api/v1/instances/i1/cdc-streams/s1/pause", "cdc POST /api/v1/instances/i1/cdc-streams/s1/pause acme tenant-member"},
		{viewer, "GET", "/api/v1/sync-jobs", "cdc GET /api/v1/sync-jobs acme tenant-viewer"},
		{member, "POST", "/api/v1/sync-jobs", "cdc POST /api/v1/sync-jobs acme tenant-member"},
		{viewer, "GET", "/api/v1/sync-jobs/j1", "cdc GET /api/v1/sync-jobs/j1 acme tenant-viewer"},
		{member, "POST", "/api/v1/sync-jobs/j1:pause", "cdc POST /api/v1/sync-jobs/j1:pause acme tenant-member"},
		{member, "DELETE", "/api/v1/sync-jobs/j1", "cdc DELETE /api/v1/sync-jobs/j1 acme tenant-member"},
		{viewer, "GET", "/api/v1/sync-jobs/j1/conflicts", "cdc GET /api/v1/sync-jobs/j1/conflicts acme tenant-viewer"},
		{member, "POST", "/api/v1/sync-jobs/j1/conflicts/c1:resolve", "cdc POST /api/v1/sync-jobs/j1/conflicts/c1:resolve acme tenant-member"},
		{member, "POST", "/api/v1/sync-jobs/j1/verifications", "cdc POST /api/v1/sync-jobs/j1/verifications acme tenant-member"},
		{viewer, "GET", "/api/v1/sync-jobs/j1/verifications/v1", "cdc GET /api/v1/sync-jobs/j1/verifications/v1 acme tenant-viewer"},
		// The instance and its other sub-resources are not captured by the
		// cdc routes, nor are look-alike paths.
		{viewer, "GET", "/api/v1/instances/i1", "provisioning GET /api/v1/instances/i1 acme tenant-viewer"},
		{viewer, "GET", "/api/v1/instances/i1/cdc-streamsx", "provisioning GET /api/v1/instances/i1/cdc-streamsx acme tenant-viewer"},
		{member, "DELETE", "/api/v1/instances/i1", "provisioning DELETE /api/v1/instances/i1 acme tenant-member"},
		{viewer, "GET", "/api/v1/instances/i1/failovers", "failover GET /api/v1/instances/i1/failovers acme tenant-viewer"},
	} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		var body any
		if c.method == "POST" {
			body = map[string]any{}
		}
		r := e.do(c.method, c.path, c.key, body)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s %s: %s", c.method, c.path, r.Body)
		mu.Lock()
		require.Equal(t, []string{c.want}, seen, "%s %s", c.method, c.path)
		mu.Unlock()
	}
}

// TestCDCDefaultURL: with nothing configured the gateway looks for the cdc
// service where its binary listens by default, and refuses a URL without a
// scheme.
func TestCDCDefaultURL(t *testing.T) {
	require.Equal(t, "http://127.0.0.1:8087", gateway.Defaults().CDCURL)
	c := gateway.Defaults()
	c.CDCURL = "127.0.0.1:8087"
	require.ErrorContains(t, c.Validate(), "cdc_url")
}
