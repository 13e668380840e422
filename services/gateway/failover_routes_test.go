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

// TestFailoverRoutes: the failover API goes to the failover service, signed
// for its audience, while the rest of an instance's routes stay with
// provisioning.
func TestFailoverRoutes(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	stand := func(audience string) *httptest.Server {
		srv := httptest.NewServer(tenancy.Middleware(audience, []byte(testSecret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, audience+" "+r.Method+" "+r.URL.Path)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"items": []any{}})
		})))
		t.Cleanup(srv.Close)
		return srv
	}
	fo, prov := stand(tenancy.AudienceFailover), stand(tenancy.AudienceProvisioning)
	e := newEnv(t, func(c *gateway.Config) { c.FailoverURL, c.ProvisioningURL = fo.URL, prov.URL })
	keys := e.tenantWithKeys("acme")
	member := keys[tenancy.RoleTenantMember]
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/api/v1/instances/i1/failovers", "failover"},
		{"GET", "/api/v1/instances/i1/failovers/f1", "failover"},
		{"POST", "/api/v1/instances/i1/failovers/f1/acknowledge", "failover"},
		{"POST", "/api/v1/instances/i1/switchover", "failover"},
		{"POST", "/api/v1/instances/i1/drills", "failover"},
		{"PUT", "/api/v1/instances/i1/drill-schedule", "failover"},
		{"GET", "/api/v1/drills", "failover"},
		{"GET", "/api/v1/drills/d1", "failover"},
		{"GET", "/api/v1/instances/i1", "provisioning"},
	} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		var body any
		if c.method != "GET" {
			body = map[string]any{}
		}
		r := e.do(c.method, c.path, member, body)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s %s: %s", c.method, c.path, r.Body)
		mu.Lock()
		require.Equal(t, []string{c.want + " " + c.method + " " + c.path}, seen)
		mu.Unlock()
	}
}
