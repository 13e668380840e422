package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// TestMeteringRoutes: usage (with the ingestion API under it), meters,
// costs, invoices, the budget and prices go to the metering service, every
// method, signed for its audience with the caller's tenant and role (metering
// authorizes: any role reads, members ingest, admins set budgets and
// platform-admins define meters and prices); the query string, the Accept
// header and the body pass as they are, and a CSV answer comes back as CSV.
// Look-alike paths stay with their services.
func TestMeteringRoutes(t *testing.T) {
	var rec upstreamRecorder
	stand := func(audience string) *httptest.Server { return rec.upstream(t, audience) }
	mt, prov, cat := stand(tenancy.AudienceMetering), stand(tenancy.AudienceProvisioning), stand(tenancy.AudienceCatalog)
	e := newEnv(t, func(c *gateway.Config) { c.MeteringURL, c.ProvisioningURL, c.CatalogURL = mt.URL, prov.URL, cat.URL })
	keys := e.tenantWithKeys("acme")
	viewer, member, admin, root := keys[tenancy.RoleTenantViewer], keys[tenancy.RoleTenantMember], keys[tenancy.RoleTenantAdmin], keys[tenancy.RolePlatformAdmin]
	event := `{"specversion":"1.0","id":"e1","source":"gw","type":"com.acme.calls"}`
	for _, c := range []struct {
		key, method, path, body, want string
	}{
		{viewer, "GET", "/api/v1/usage?window=hour&group_by=instance", "", "metering GET /api/v1/usage?window=hour&group_by=instance acme tenant-viewer"},
		{member, "POST", "/api/v1/usage/events", event, "metering POST /api/v1/usage/events acme tenant-member " + event},
		{viewer, "GET", "/api/v1/usage/late", "", "metering GET /api/v1/usage/late acme tenant-viewer"},
		{viewer, "GET", "/api/v1/meters", "", "metering GET /api/v1/meters acme tenant-viewer"},
		{viewer, "GET", "/api/v1/meters/node_hours", "", "metering GET /api/v1/meters/node_hours acme tenant-viewer"},
		{root, "POST", "/api/v1/meters", `{"slug":"calls"}`, `metering POST /api/v1/meters  platform-admin {"slug":"calls"}`},
		{root, "DELETE", "/api/v1/meters/calls", "", "metering DELETE /api/v1/meters/calls  platform-admin"},
		{viewer, "GET", "/api/v1/costs?group_by=instance,meter", "", "metering GET /api/v1/costs?group_by=instance,meter acme tenant-viewer"},
		{viewer, "GET", "/api/v1/invoices?month=2026-12", "", "metering GET /api/v1/invoices?month=2026-12 acme tenant-viewer"},
		{viewer, "GET", "/api/v1/budget", "", "metering GET /api/v1/budget acme tenant-viewer"},
		{admin, "PUT", "/api/v1/budget", `{"amount":"10.00"}`, `metering PUT /api/v1/budget acme tenant-admin {"amount":"10.00"}`},
		{admin, "DELETE", "/api/v1/budget", "", "metering DELETE /api/v1/budget acme tenant-admin"},
		{viewer, "GET", "/api/v1/prices?meter=node_hours", "", "metering GET /api/v1/prices?meter=node_hours acme tenant-viewer"},
		{root, "POST", "/api/v1/prices", `{"meter":"calls"}`, `metering POST /api/v1/prices  platform-admin {"meter":"calls"}`},
		// Look-alikes are not metering's.
		{viewer, "GET", "/api/v1/instances/i1/usage", "", "provisioning GET /api/v1/instances/i1/usage acme tenant-viewer"},
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

	// CSV is asked for with Accept and answered as CSV.
	r := e.do("GET", "/api/v1/usage?window=day", viewer, nil, "Accept", "text/csv")
	require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
	require.Equal(t, "text/csv; charset=utf-8", r.Header.Get("Content-Type"))
	require.Equal(t, "window_start,meter,value\n", string(r.Body))
}

// TestMeteringDefaultURL: with nothing configured the gateway looks for the
// metering service where its binary listens by default, and refuses a URL
// without a scheme.
func TestMeteringDefaultURL(t *testing.T) {
	require.Equal(t, "http://127.0.0.1:8088", gateway.Defaults().MeteringURL)
	c := gateway.Defaults()
	c.MeteringURL = "127.0.0.1:8088"
	require.ErrorContains(t, c.Validate(), "metering_url")
}
