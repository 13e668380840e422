package backup_test

// The service-level harness: the backup binary as a subprocess (so that a
// kill is a real SIGKILL), a MariaDB primary and replica configured like
// Canopy's nodes, a stand-in for provisioning's internal backup view, the
// embedded Kafka broker in the test process and a per-test database on the
// machine's MariaDB.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/svctest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys/phystest"
)

// binary is the backup command TestMain builds into a temporary PATH entry.
const binary = "canopy-backup-svctest"

const secret = "svc-test-internal-secret-0123456789"

// The admin account of every node, as provisioning's init file creates it.
const (
	adminUser     = phystest.AdminUser
	adminPassword = "admin-secret-1"
)

func TestMain(m *testing.M) { os.Exit(svctest.Main(m, "./cmd/backup", binary)) }

// node is one mariadbd configured as provisioning's local driver
// configures it (GTID strict, ROW, replicas logging what they apply).
type node struct {
	proc    *enginetest.Proc
	dataDir string
	root    *sql.DB
}

func newNode(t *testing.T, serverID int) *node {
	t.Helper()
	n := phystest.StartMariaDB(t, phystest.Options{ServerID: uint32(serverID), AdminPassword: adminPassword, Deferred: true})
	return &node{proc: n.Proc, dataDir: n.DataDir, root: n.Root}
}

func (n *node) exec(t *testing.T, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range stmts {
		if _, err := n.root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s on %s: %v", q, n.proc.Addr, err)
		}
	}
}

// startPair runs a primary and a replica replicating from it.
func startPair(t *testing.T) (primary, replica *node) {
	t.Helper()
	primary, replica = newNode(t, 1), newNode(t, 2)
	enginetest.StartAll(t, []*enginetest.Proc{primary.proc, replica.proc})
	host, port, err := net.SplitHostPort(primary.proc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	replica.exec(t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
		host, port, adminUser, adminPassword), "START SLAVE", "SET GLOBAL read_only=ON")
	return primary, replica
}

// waitCaughtUp waits until the replica applied everything the primary
// logged.
func waitCaughtUp(t *testing.T, primary, replica *node) {
	t.Helper()
	var want string
	if err := primary.root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&want); err != nil {
		t.Fatal(err)
	}
	svctest.WaitFor(t, "replica caught up", 30*time.Second, func() (bool, string) {
		var got string
		if err := replica.root.QueryRow("SELECT @@gtid_slave_pos").Scan(&got); err != nil {
			return false, err.Error()
		}
		return got == want, fmt.Sprintf("replica at %q, primary at %q", got, want)
	})
}

// instanceOf is the instance provisioning would show for the pair: the
// replica healthy, so that backups are taken from it.
func instanceOf(t *testing.T, tenant string, primary, replica *node) backup.Instance {
	return backup.Instance{ID: "inst-" + svctest.RandHex(t, 4), TenantID: tenant, Name: "orders", Engine: backup.EngineMySQL,
		PlanID: "mysql-small", State: "running", Admin: backup.Credentials{Username: adminUser, Password: adminPassword},
		Nodes: []backup.Node{
			{ID: "n1", Role: "primary", Address: primary.proc.Addr, DataDir: primary.dataDir, Host: "local", Region: "local", Zone: "a", Healthy: true},
			{ID: "n2", Role: "replica", Address: replica.proc.Addr, DataDir: replica.dataDir, Host: "local", Region: "local", Zone: "b", Healthy: true},
		}}
}

// provisioning stands in for provisioning's internal backup view: it
// serves the instances it holds and checks nothing of the caller.
func provisioning(t *testing.T, ins ...backup.Instance) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	all := make(map[string]backup.Instance)
	for _, in := range ins {
		all[in.ID] = in
	}
	const list = "/internal/v1/backup/instances"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == list:
			items := make([]backup.Instance, 0, len(all))
			for _, in := range all {
				items = append(items, in)
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, list+"/"):
			in, ok := all[strings.TrimPrefix(r.URL.Path, list+"/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			_ = json.NewEncoder(w).Encode(in)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// startService starts the backup service on a fresh database, with state
// in stateDir, reading instances from provURL; extraEnv adds to or
// overrides its environment. The daily window starts twelve hours from
// now: an instance's first backup is taken at once (it has none), the
// next scheduled one is far beyond the test. Drills are off (they would
// order scratch instances from provisioning).
func startService(t *testing.T, provURL, stateDir string, extraEnv map[string]string) *svctest.Service {
	t.Helper()
	window := time.Now().UTC().Add(12 * time.Hour).Format("15:04")
	env := map[string]string{
		"CANOPY_MYSQL_DSN":                storetest.DSN(),
		"CANOPY_BACKUP_DATABASE":          storetest.NewConfig(t, "backup_svc").Database,
		"CANOPY_KAFKA_BROKERS":            svctest.StartKafka(t),
		"CANOPY_INTERNAL_SECRET":          secret,
		"CANOPY_STATE_DIR":                stateDir,
		"CANOPY_BACKUP_PROVISIONING_URL":  provURL,
		"CANOPY_BACKUP_WINDOW_START":      window,
		"CANOPY_BACKUP_DRILL_EVERY":       "0",
		"CANOPY_BACKUP_SYNC_EVERY":        "500ms",
		"CANOPY_BACKUP_TICK_EVERY":        "200ms",
		"CANOPY_BACKUP_ARCHIVE_LAG_BOUND": "1m",
	}
	maps.Copy(env, extraEnv)
	return svctest.Start(t, svctest.Config{Binary: binary, AddrEnv: "CANOPY_BACKUP_ADDR", Env: env,
		Secret: secret, Audience: tenancy.AudienceBackup})
}

// getBackup reads one backup through the tenant API.
func getBackup(svc *svctest.Service, p tenancy.Principal, instanceID, id string) (backup.Backup, error) {
	var b backup.Backup
	err := svc.Call(p, http.MethodGet, "/api/v1/instances/"+instanceID+"/backups/"+id, nil, &b)
	return b, err
}

// listBackups reads an instance's backups through the tenant API.
func listBackups(svc *svctest.Service, p tenancy.Principal, instanceID string) ([]backup.Backup, error) {
	var page struct {
		Items []backup.Backup `json:"items"`
	}
	err := svc.Call(p, http.MethodGet, "/api/v1/instances/"+instanceID+"/backups?limit=100", nil, &page)
	return page.Items, err
}

// waitBackup waits until the backup is no longer running and returns it.
func waitBackup(t *testing.T, svc *svctest.Service, p tenancy.Principal, instanceID, id string, timeout time.Duration) backup.Backup {
	t.Helper()
	var b backup.Backup
	svctest.WaitFor(t, "backup "+id+" finished", timeout, func() (bool, string) {
		var err error
		if b, err = getBackup(svc, p, instanceID, id); err != nil {
			return false, err.Error()
		}
		return b.Status != backup.StatusRunning, string(b.Status)
	})
	return b
}

// firstBackup waits for the instance's first, scheduled backup (taken at
// once for an instance that has none) to complete and returns it.
func firstBackup(t *testing.T, svc *svctest.Service, p tenancy.Principal, instanceID string) backup.Backup {
	t.Helper()
	var first backup.Backup
	svctest.WaitFor(t, "the first scheduled backup started", 30*time.Second, func() (bool, string) {
		items, err := listBackups(svc, p, instanceID)
		if err != nil {
			return false, err.Error()
		}
		if len(items) == 0 {
			return false, "no backup"
		}
		first = items[len(items)-1]
		return true, ""
	})
	if first.Trigger != backup.TriggerScheduled {
		t.Fatalf("first backup %s: trigger %s, want scheduled", first.ID, first.Trigger)
	}
	first = waitBackup(t, svc, p, instanceID, first.ID, time.Minute)
	if first.Status != backup.StatusCompleted || !first.Verified {
		t.Fatalf("first backup %s: %s (verified %v) %s", first.ID, first.Status, first.Verified, first.Error)
	}
	return first
}

// entries lists a directory's names (none when it does not exist).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(des))
	for i, d := range des {
		names[i] = d.Name()
	}
	return names
}
