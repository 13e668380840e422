package gateway_test

import (
	"net/http"
	"net/http/httptest"
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
	var rec upstreamRecorder
	stand := func(audience string) *httptest.Server { return rec.upstream(t, audience) }
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

// TestBackupDefaultURL: the gateway looks for the backup service where its
// binary listens by default, and refuses a URL without a scheme.
func TestBackupDefaultURL(t *testing.T) {
	require.Equal(t, "http://127.0.0.1:8091", gateway.Defaults().BackupURL)
	c := gateway.Defaults()
	c.BackupURL = "127.0.0.1:8091"
	require.ErrorContains(t, c.Validate(), "backup_url")
}
