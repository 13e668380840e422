package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// TestBackupRoutes: an instance's backups, restore window, backup policy
// and restore drills, and the plans' default policies go to the backup
// service, signed for its audience with the caller's tenant and role; the
// instance itself, its failover drills and a restore order (POST
// /api/v1/instances with restore_from) stay with their services.
func TestBackupRoutes(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	stand := func(audience string) *httptest.Server {
		srv := httptest.NewServer(tenancy.Middleware(audience, []byte(testSecret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := tenancy.PrincipalFrom(r.Context())
			body, _ := io.ReadAll(r.Body)
			line := audience + " " + r.Method + " " + r.URL.RequestURI() + " " + string(p.Tenant) + " " + string(p.Role)
			if len(body) > 0 {
				line += " " + string(body)
			}
			mu.Lock()
			seen = append(seen, line)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"items":[]}`)
		})))
		t.Cleanup(srv.Close)
		return srv
	}
	bk, prov, fo := stand(tenancy.AudienceBackup), stand(tenancy.AudienceProvisioning), stand(tenancy.AudienceFailover)
	e := newEnv(t, func(c *gateway.Config) { c.BackupURL, c.ProvisioningURL, c.FailoverURL = bk.URL, prov.URL, fo.URL })
	keys := e.tenantWithKeys("acme")
	viewer, admin, root := keys[tenancy.RoleTenantViewer], keys[tenancy.RoleTenantAdmin], keys[tenancy.RolePlatformAdmin]
	for _, c := range []struct {
		key, method, path, body, want string
	}{
		{viewer, "GET", "/api/v1/instances/i1/backups?limit=5", "", "backup GET /api/v1/instances/i1/backups?limit=5 acme tenant-viewer"},
		{admin, "POST", "/api/v1/instances/i1/backups", `{}`, "backup POST /api/v1/instances/i1/backups acme tenant-admin {}"},
		{viewer, "GET", "/api/v1/instances/i1/backups/b1", "", "backup GET /api/v1/instances/i1/backups/b1 acme tenant-viewer"},
		{viewer, "GET", "/api/v1/instances/i1/restore-window", "", "backup GET /api/v1/instances/i1/restore-window acme tenant-viewer"},
		{admin, "PUT", "/api/v1/instances/i1/backup-policy", `{"pitr_days":3}`, `backup PUT /api/v1/instances/i1/backup-policy acme tenant-admin {"pitr_days":3}`},
		{viewer, "GET", "/api/v1/instances/i1/restore-drills", "", "backup GET /api/v1/instances/i1/restore-drills acme tenant-viewer"},
		{admin, "POST", "/api/v1/instances/i1/restore-drills", `{}`, "backup POST /api/v1/instances/i1/restore-drills acme tenant-admin {}"},
		{root, "PUT", "/api/v1/backup-policies/plans/p1", `{"daily_keep_days":14}`, `backup PUT /api/v1/backup-policies/plans/p1  platform-admin {"daily_keep_days":14}`},
		// Look-alikes are not the backup service's.
		{viewer, "GET", "/api/v1/instances/i1", "", "provisioning GET /api/v1/instances/i1 acme tenant-viewer"},
		{admin, "POST", "/api/v1/instances", `{"restore_from":{"instance_id":"i1"}}`, `provisioning POST /api/v1/instances acme tenant-admin {"restore_from":{"instance_id":"i1"}}`},
		{viewer, "GET", "/api/v1/instances/i1/drills", "", "failover GET /api/v1/instances/i1/drills acme tenant-viewer"},
	} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		var body any
		if c.body != "" {
			body = c.body
		}
		r := e.do(c.method, c.path, c.key, body)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s %s: %s", c.method, c.path, r.Body)
		mu.Lock()
		require.Equal(t, []string{c.want}, seen, "%s %s", c.method, c.path)
		mu.Unlock()
	}
}

// TestBackupDefaultURL: the gateway looks for the backup service where its
// binary listens by default, and refuses a URL without a scheme.
func TestBackupDefaultURL(t *testing.T) {
	require.Equal(t, "http://127.0.0.1:8091", gateway.Defaults().BackupURL)
	c := gateway.Defaults()
	c.BackupURL = "127.0.0.1:8091"
	require.ErrorContains(t, c.Validate(), "backup_url")
}
