package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// TestAlertingRoutes: alerts, receivers, rules, settings, dead letters,
// remediation runs, groups, silences, the Alertmanager v2 API (the push
// Prometheus sends, its status probe) and Prometheus service discovery go
// to the alerting service, every method, signed for its audience with the
// caller's tenant and role (alerting authorizes and scopes); query strings
// and bodies pass as they are. Look-alikes stay with their services.
func TestAlertingRoutes(t *testing.T) {
	var rec upstreamRecorder
	stand := func(audience string) *httptest.Server { return rec.upstream(t, audience) }
	al, prov, cat := stand(tenancy.AudienceAlerting), stand(tenancy.AudienceProvisioning), stand(tenancy.AudienceCatalog)
	e := newEnv(t, func(c *gateway.Config) { c.AlertingURL, c.ProvisioningURL, c.CatalogURL = al.URL, prov.URL, cat.URL })
	keys := e.tenantWithKeys("acme")
	viewer, member, admin, root := keys[tenancy.RoleTenantViewer], keys[tenancy.RoleTenantMember], keys[tenancy.RoleTenantAdmin], keys[tenancy.RolePlatformAdmin]
	receiver := `{"name":"oncall","url":"https://hooks.example.com/x","group_wait":"1s"}`
	silence := `{"matchers":["alertname=\"NodeDown\""],"ends_at":"2030-01-01T00:00:00Z","comment":"maintenance"}`
	pushed := `[{"labels":{"alertname":"DiskFull"}}]`
	for _, c := range []struct {
		key, method, path, body, want string
	}{
		{viewer, "GET", "/api/v1/alerts?state=firing", "", "alerting GET /api/v1/alerts?state=firing acme tenant-viewer"},
		{viewer, "GET", "/api/v1/alerts/0123456789abcdef", "", "alerting GET /api/v1/alerts/0123456789abcdef acme tenant-viewer"},
		{admin, "POST", "/api/v1/alert-receivers", receiver, "alerting POST /api/v1/alert-receivers acme tenant-admin " + receiver},
		{viewer, "GET", "/api/v1/alert-receivers", "", "alerting GET /api/v1/alert-receivers acme tenant-viewer"},
		{admin, "PATCH", "/api/v1/alert-receivers/r1", `{"continue":true}`, `alerting PATCH /api/v1/alert-receivers/r1 acme tenant-admin {"continue":true}`},
		{admin, "DELETE", "/api/v1/alert-receivers/r1", "", "alerting DELETE /api/v1/alert-receivers/r1 acme tenant-admin"},
		{viewer, "GET", "/api/v1/alert-rules", "", "alerting GET /api/v1/alert-rules acme tenant-viewer"},
		{admin, "PATCH", "/api/v1/alert-rules/node-down", `{"disabled":true}`, `alerting PATCH /api/v1/alert-rules/node-down acme tenant-admin {"disabled":true}`},
		{admin, "PUT", "/api/v1/alert-settings", `{"remediation":true}`, `alerting PUT /api/v1/alert-settings acme tenant-admin {"remediation":true}`},
		{viewer, "GET", "/api/v1/alert-dead-letters", "", "alerting GET /api/v1/alert-dead-letters acme tenant-viewer"},
		{admin, "POST", "/api/v1/alert-dead-letters/7/retry", "", "alerting POST /api/v1/alert-dead-letters/7/retry acme tenant-admin"},
		{viewer, "GET", "/api/v1/alert-actions", "", "alerting GET /api/v1/alert-actions acme tenant-viewer"},
		{viewer, "GET", "/api/v1/alert-groups", "", "alerting GET /api/v1/alert-groups acme tenant-viewer"},
		{member, "POST", "/api/v1/silences", silence, "alerting POST /api/v1/silences acme tenant-member " + silence},
		{member, "DELETE", "/api/v1/silences/s1", "", "alerting DELETE /api/v1/silences/s1 acme tenant-member"},
		{member, "POST", "/api/v2/alerts", pushed, "alerting POST /api/v2/alerts acme tenant-member " + pushed},
		{viewer, "GET", "/api/v2/status", "", "alerting GET /api/v2/status acme tenant-viewer"},
		{root, "GET", "/api/v1/prometheus/targets", "", "alerting GET /api/v1/prometheus/targets  platform-admin"},
		// Look-alikes are not alerting's.
		{viewer, "GET", "/api/v1/instances/i1/alerts", "", "provisioning GET /api/v1/instances/i1/alerts acme tenant-viewer"},
		{viewer, "GET", "/api/v1/catalog/plans", "", "catalog GET /api/v1/catalog/plans acme tenant-viewer"},
	} {
		rec.take()
		var body any
		if c.body != "" {
			body = c.body
		}
		r := e.do(c.method, c.path, c.key, body)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s %s: %s", c.method, c.path, r.Body)
		require.Equal(t, []string{c.want}, rec.take(), "%s %s", c.method, c.path)
	}
}

// TestAlertingDefaultURL: with nothing configured the gateway looks for the
// alerting service where its binary listens by default, and refuses a URL
// without a scheme.
func TestAlertingDefaultURL(t *testing.T) {
	require.Equal(t, "http://127.0.0.1:8089", gateway.Defaults().AlertingURL)
	c := gateway.Defaults()
	c.AlertingURL = "127.0.0.1:8089"
	require.ErrorContains(t, c.Validate(), "alerting_url")
}
