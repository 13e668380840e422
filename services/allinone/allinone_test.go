package allinone_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/porttest"
	"github.com/canopy-platform/canopy/libs/statedir"
	"github.com/canopy-platform/canopy/services/allinone"
)

func TestAllInOneStartsAndStopsCleanly(t *testing.T) {
	inv, err := filepath.Abs("../../deploy/inventory/dev.yaml")
	require.NoError(t, err)
	t.Setenv("CANOPY_SCHEDULING_INVENTORY_FILE", inv)
	// The router's Sentinel port, away from a developer's `make dev`.
	t.Setenv("CANOPY_ROUTER_SENTINEL_ADDR", fmt.Sprintf("127.0.0.1:%d", porttest.Free(t)))
	prefix := fmt.Sprintf("canopy_test_aio%d_", time.Now().UnixNano()%1_000_000_000)
	t.Cleanup(func() { dropDatabases(t, prefix) })
	// A state dir an older version left readable by everyone.
	stateDir := filepath.Join(t.TempDir(), ".canopy")
	require.NoError(t, os.MkdirAll(filepath.Join(stateDir, "kafka"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(stateDir, "leftover"), []byte("x"), 0o644))
	require.NoError(t, os.Chmod(stateDir, 0o755))
	cfg := allinone.Config{
		DatabasePrefix:    prefix,
		StateDir:          stateDir,
		EmbeddedKafkaAddr: "127.0.0.1:0",
		MySQLDSN:          "root@tcp(127.0.0.1:3306)/",
		RedisAddr:         "127.0.0.1:6379",
		GatewayAddr:       "127.0.0.1:0",
		ShutdownTimeout:   20 * time.Second,
	}
	p, err := allinone.New(cfg, allinone.Deps{Logger: obs.NopLogger()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("platform stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("platform not ready within 60s")
	}

	resp, err := http.Get("http://" + p.GatewayAddr() + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The platform recorded itself for `canopy reset`, and the databases it
	// made are exactly the ones a reset drops.
	pid, err := os.ReadFile(filepath.Join(stateDir, "canopy.pid"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(pid), fmt.Sprintf("%d ", os.Getpid())), "canopy.pid = %q", pid)
	made := databasesWith(t, prefix)
	require.NotEmpty(t, made)
	require.Subset(t, cfg.Databases(), made, "a database the reset would not drop")

	// The bootstrap admin key was generated into the state dir; with it the
	// catalog answers through the gateway.
	key, err := os.ReadFile(filepath.Join(cfg.StateDir, "admin-key"))
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.GatewayAddr()+"/api/v1/catalog/services", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), "mysql-ha-multi-az")

	// Scheduling loaded the dev inventory and answers through the gateway too.
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.GatewayAddr()+"/api/v1/inventory/zones", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), "eu-central-3")

	// The quota a platform-admin sets through the gateway is the one
	// provisioning enforces: provisioning found the gateway on its random port.
	adminKey := strings.TrimSpace(string(key))
	call := func(method, path, key string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+p.GatewayAddr()+path, rd)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	status, out := call("POST", "/api/v1/tenants", adminKey, map[string]any{"id": "quota-test", "name": "Quota test"})
	require.Equal(t, http.StatusCreated, status, "%v", out)
	status, out = call("PUT", "/api/v1/tenants/quota-test/quota", adminKey, map[string]any{"max_instances": 0, "max_vcpu": 0.25, "max_memory_mb": 0, "max_storage_gb": 0})
	require.Equal(t, http.StatusOK, status, "%v", out)
	status, out = call("POST", "/api/v1/tenants/quota-test/api-keys", adminKey, map[string]any{"name": "admin", "role": "tenant-admin"})
	require.Equal(t, http.StatusCreated, status, "%v", out)
	tenantKey, _ := out["key"].(string)
	status, out = call("GET", "/api/v1/catalog/services", tenantKey, nil)
	require.Equal(t, http.StatusOK, status, "%v", out)
	var planID string // any plan: each needs more than 0.25 vCPU
	if items, _ := out["items"].([]any); len(items) > 0 {
		if plans, _ := items[0].(map[string]any)["plans"].([]any); len(plans) > 0 {
			planID, _ = plans[0].(map[string]any)["id"].(string)
		}
	}
	require.NotEmpty(t, planID, "no plan in %v", out)
	status, out = call("POST", "/api/v1/instances", tenantKey, map[string]any{"name": "over", "plan_id": planID})
	require.Equal(t, http.StatusUnprocessableEntity, status, "order over the gateway's vCPU quota: %v", out)
	require.Equal(t, "vcpu", out["quota"], "%v", out)

	// Broker credentials bind only to tenants the gateway knows (the catalog
	// asks the gateway's internal API at the address it actually got).
	status, out = call("POST", "/api/v1/catalog/broker-credentials", adminKey, map[string]any{"name": "cf-quota-test", "tenant": "quota-test"})
	require.Equal(t, http.StatusCreated, status, "credential for a known tenant: %v", out)
	status, out = call("POST", "/api/v1/catalog/broker-credentials", adminKey, map[string]any{"name": "cf-ghost", "tenant": "ghost"})
	require.Equal(t, http.StatusUnprocessableEntity, status, "credential for an unknown tenant: %v", out)

	// The cdc service runs in the platform: its database was migrated.
	mdb, err := sql.Open("mysql", cfg.MySQLDSN)
	require.NoError(t, err)
	defer mdb.Close()
	var streamsTables int
	require.NoError(t, mdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'streams'",
		prefix+"cdc").Scan(&streamsTables))
	require.Equal(t, 1, streamsTables, "the cdc database has no streams table")

	// So does the metering service: its database was migrated.
	var meterTables int
	require.NoError(t, mdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN ('meters', 'usage_hour')",
		prefix+"metering").Scan(&meterTables))
	require.Equal(t, 2, meterTables, "the metering database has no meters and usage_hour tables")

	// And the alerting service: its database was migrated, and the gateway
	// routes the alerts API to it.
	var alertTables int
	require.NoError(t, mdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'schema_migrations'",
		prefix+"alerting").Scan(&alertTables))
	require.Equal(t, 1, alertTables, "the alerting database was not migrated")
	status, out = call("GET", "/api/v1/alerts", adminKey, nil)
	require.Equal(t, http.StatusOK, status, "alerting's /api/v1/alerts through the gateway: %v", out)

	// And the backup service: its database was migrated, and the gateway
	// routes an instance's backups to it (an unknown instance is a 404
	// problem from the backup service, not from the gateway's router).
	var backupTables int
	require.NoError(t, mdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'schema_migrations'",
		prefix+"backup").Scan(&backupTables))
	require.Equal(t, 1, backupTables, "the backup database was not migrated")
	status, out = call("GET", "/api/v1/instances/nope/backups", adminKey, nil)
	require.Equal(t, http.StatusNotFound, status, "backup's /api/v1/instances/{id}/backups through the gateway: %v", out)

	// The embedded broker answers the Kafka protocol through the normal client.
	conn, err := kafka.DialContext(ctx, "tcp", p.KafkaBrokers()[0])
	require.NoError(t, err)
	_, err = conn.Brokers()
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("platform did not stop within 30s")
	}
	_, err = http.Get("http://" + p.GatewayAddr() + "/readyz")
	require.Error(t, err, "gateway still listening after shutdown")

	require.NoFileExists(t, filepath.Join(stateDir, "canopy.pid"), "the pid file outlived the platform")

	// Nothing in the state dir (broker data, keys, secrets) is readable by
	// group or others.
	loose, err := statedir.Loose(stateDir)
	require.NoError(t, err)
	require.Empty(t, loose, "group/other permission bits in the state dir")
}

// databasesWith lists the databases whose names start with prefix.
func databasesWith(t *testing.T, prefix string) []string {
	db, err := sql.Open("mysql", "root@tcp(127.0.0.1:3306)/")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT schema_name FROM information_schema.schemata WHERE LEFT(schema_name, ?) = ?", len(prefix), prefix)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Close())
	return names
}

// dropDatabases removes every database the test's platform created.
func dropDatabases(t *testing.T, prefix string) {
	db, err := sql.Open("mysql", "root@tcp(127.0.0.1:3306)/")
	require.NoError(t, err)
	defer db.Close()
	for _, n := range databasesWith(t, prefix) {
		_, err := db.Exec("DROP DATABASE `" + n + "`")
		require.NoError(t, err)
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := allinone.New(allinone.Config{GatewayAddr: "nope"}, allinone.Deps{Logger: obs.NopLogger()})
	require.ErrorContains(t, err, "gateway_addr")
	require.ErrorContains(t, err, "state_dir")
}
