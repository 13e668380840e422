package nodetest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Accounts on every node started here.
var (
	// Admin is Canopy's admin account (what the failover acts with).
	Admin = topology.Credentials{Username: "canopy-admin", Password: "admin-secret-1"}
	// Replication is the account replicas connect to their primary with.
	Replication = topology.Credentials{Username: "canopy-repl", Password: "repl-secret-1"}
	// App is an application account: all rights on AppDatabase and nothing
	// else, so read_only applies to it (admin holds READ_ONLY ADMIN).
	App = topology.Credentials{Username: "app", Password: "app-secret-1"}
)

// AppDatabase is the application database on MariaDB nodes; it holds a
// table kv(k VARCHAR(64) PRIMARY KEY, v VARCHAR(255)).
const AppDatabase = "app"

// Topology is a started three-node instance.
type Topology struct {
	// Instance describes it the way the failover service sees it: node 0 is
	// the primary, 1 and 2 its replicas.
	Instance topology.Instance
	// Procs are the nodes' processes, in the order of Instance.Nodes.
	Procs []*Proc
}

// Proc returns the process of the node with that id.
func (tp *Topology) Proc(nodeID string) *Proc {
	for i, n := range tp.Instance.Nodes {
		if n.ID == nodeID {
			return tp.Procs[i]
		}
	}
	return nil
}

// MySQLOptions shape a MariaDB topology.
type MySQLOptions struct {
	// SemiSync turns on semi-synchronous replication (AFTER_SYNC).
	SemiSync bool
}

func initSQL() string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	return strings.Join([]string{
		// Outside the binlog on every node: GTID sets start empty.
		"SET SESSION sql_log_bin=0",
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", q(Admin.Username), q(Admin.Password)),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", q(Admin.Username)),
		fmt.Sprintf("GRANT READ_ONLY ADMIN, REPLICATION MASTER ADMIN ON *.* TO %s@'%%'", q(Admin.Username)),
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", q(Replication.Username), q(Replication.Password)),
		fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO %s@'%%'", q(Replication.Username)),
		"CREATE DATABASE IF NOT EXISTS " + AppDatabase,
		"CREATE TABLE IF NOT EXISTS " + AppDatabase + ".kv (k VARCHAR(64) PRIMARY KEY, v VARCHAR(255))",
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", q(App.Username), q(App.Password)),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON %s.* TO %s@'%%'", AppDatabase, q(App.Username)),
	}, ";\n") + ";\n"
}

// MySQL starts three MariaDB 10.11 nodes (GTID, strict mode, binlogs on
// every node, semi-sync when asked): node 0 the writable primary, nodes 1
// and 2 read-only replicas replicating from it.
func MySQL(t testing.TB, opts MySQLOptions) *Topology {
	t.Helper()
	tp := &Topology{Instance: topology.Instance{
		ID: "inst-" + strings.ToLower(strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())), Tenant: "tenant-test",
		Engine: topology.EngineMySQL, Mode: "multi-az", Region: "local",
		SemiSync: opts.SemiSync, Admin: Admin, Replication: Replication,
	}}
	for i := range 3 {
		serverID := i + 1
		p := enginetest.New(t, "mariadbd", func(p *Proc, restart bool) []string {
			return mariadbArgs(p, serverID, i == 0 && !restart, opts.SemiSync)
		}, enginetest.WaitMariaDB)
		enginetest.MariaDBData(t, filepath.Join(p.Dir, "data"))
		if err := os.WriteFile(filepath.Join(p.Dir, "init.sql"), []byte(initSQL()), 0o600); err != nil {
			t.Fatal(err)
		}
		role := topology.RoleReplica
		if i == 0 {
			role = topology.RolePrimary
		}
		tp.Procs = append(tp.Procs, p)
		tp.Instance.Nodes = append(tp.Instance.Nodes, topology.Node{
			ID: "node-" + strconv.Itoa(i), Address: p.Addr, Region: "local", Zone: "zone-" + strconv.Itoa(i),
			Role: role, Promotion: topology.PromoteNeutral,
		})
	}
	enginetest.StartAll(t, tp.Procs)
	for _, p := range tp.Procs[1:] {
		ReplicateFrom(t, p, tp.Procs[0], opts.SemiSync)
	}
	return tp
}

// mariadbArgs is a node's command line. Only the first start of the primary
// is writable: every restart comes back read-only, as a semi-sync replica to
// be (init_rpl_role=SLAVE truncates a binlog tail no replica acknowledged),
// as provisioning's local driver does until failover assigns the role.
func mariadbArgs(p *Proc, serverID int, primary, semiSync bool) []string {
	onOff := func(b bool) string {
		if b {
			return "ON"
		}
		return "OFF"
	}
	args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir, "--socket=" + enginetest.MariaDBSocket(p),
		"--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--pid-file=" + filepath.Join(p.Dir, "m.pid"), "--server-id=" + strconv.Itoa(serverID),
		"--report-host=127.0.0.1", "--report-port=" + strconv.Itoa(p.Port),
		"--log-bin=mysql-bin", "--relay-log=relay-bin", "--log-slave-updates", "--gtid-strict-mode=ON",
		"--binlog-format=ROW", "--sync-binlog=1", "--innodb-flush-log-at-trx-commit=1",
		"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=OFF",
		"--init-file=" + filepath.Join(p.Dir, "init.sql"),
		"--read-only=" + onOff(!primary),
		"--rpl-semi-sync-master-wait-point=AFTER_SYNC",
		"--rpl-semi-sync-master-enabled=" + onOff(primary && semiSync),
		"--rpl-semi-sync-slave-enabled=" + onOff(!primary && semiSync),
	}
	if primary {
		args = append(args, "--init-rpl-role=MASTER", "--skip-slave-start")
	} else {
		args = append(args, "--init-rpl-role=SLAVE")
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return args
}

// Root opens a root pool over the node's socket; the caller closes it.
func Root(p *Proc) *sql.DB { return enginetest.RootDB(enginetest.MariaDBSocket(p)) }

// AppDB opens a pool to the node as the application account on
// AppDatabase, closed when the test ends. Short timeouts: tests use it
// against nodes they kill.
func AppDB(t testing.TB, p *Proc) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = App.Username, App.Password, "tcp", p.Addr, AppDatabase
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = time.Second, 5*time.Second, 5*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs statements as root on the node.
func Exec(t testing.TB, p *Proc, stmts ...string) {
	t.Helper()
	db := Root(p)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s on %s: %v", s, p.Addr, err)
		}
	}
}

// ReplicateFrom makes replica a read-only GTID replica of primary and waits
// until both replication threads run.
func ReplicateFrom(t testing.TB, replica, primary *Proc, semiSync bool) {
	t.Helper()
	semi := "OFF"
	if semiSync {
		semi = "ON"
	}
	Exec(t, replica,
		"SET GLOBAL read_only=ON",
		"STOP SLAVE",
		"SET GLOBAL rpl_semi_sync_slave_enabled="+semi,
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			primary.Port, Replication.Username, Replication.Password),
		"START SLAVE")
	db := Root(replica)
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	var io, sqlRunning, lastErr string
	for time.Now().Before(deadline) {
		st := enginetest.SlaveStatus(db)
		io, sqlRunning, lastErr = st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"]+st["Last_SQL_Error"]
		if io == "Yes" && sqlRunning == "Yes" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("replication %s <- %s did not start: io=%s sql=%s %s", replica.Addr, primary.Addr, io, sqlRunning, lastErr)
}
