// Package testproc starts real redis-server and mariadbd processes, with the
// healthcheck's monitor accounts, for its integration tests. The processes
// are libs/enginetest's (free loopback ports, killed by pid when the test
// ends, also on failure); this package adds the command lines and accounts.
// It is test support, imported only from _test files.
package testproc

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/porttest"
)

// MonitorUser and MonitorPassword are the monitor account created on every
// node started here.
const (
	MonitorUser     = "canopy-monitor"
	MonitorPassword = "monitor-secret-1"
)

// FreePort returns a free loopback TCP port below the ephemeral range, so
// that no outgoing connection takes it before (or between two runs of) the
// server started on it (see porttest).
func FreePort(t testing.TB) int {
	t.Helper()
	return porttest.Free(t)
}

// StartRedis starts a redis-server with the monitor ACL user (the same
// least-privilege rules as provisioning's local driver) and an admin user.
// With replicaOf set it replicates from that address.
func StartRedis(t testing.TB, replicaOf string) *enginetest.Proc {
	t.Helper()
	p := enginetest.New(t, "redis-server", func(p *enginetest.Proc, _ bool) []string { return redisArgs(p, replicaOf) }, nil)
	p.Start()
	return p
}

func redisArgs(p *enginetest.Proc, replicaOf string) []string {
	args := []string{
		"--port", strconv.Itoa(p.Port), "--bind", "127.0.0.1", "--dir", p.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
		"--user", "default", "off",
		"--user", "admin", "on", ">admin-secret-1", "~*", "&*", "+@all",
		"--user", MonitorUser, "on", ">" + MonitorPassword, "resetkeys", "resetchannels", "-@all", "+ping", "+info", "+role", "+auth", "+hello",
		"--masteruser", "admin", "--masterauth", "admin-secret-1",
	}
	if replicaOf != "" {
		h, pt, _ := net.SplitHostPort(replicaOf)
		args = append(args, "--replicaof", h, pt)
	}
	return args
}

// CleanupTemplate removes the MariaDB template; call it from TestMain.
func CleanupTemplate() { enginetest.CleanupTemplate() }

// MariaDB is a started mariadbd with root over its socket.
type MariaDB struct {
	*enginetest.Proc
	Socket string
}

// MonitorGrants are the monitor account's privileges: REPLICATION CLIENT,
// PROCESS and SLAVE MONITOR for the status, SHOW VIEW so that
// information_schema lists every table for storage_used_bytes (it reads
// no row).
const MonitorGrants = "REPLICATION CLIENT, PROCESS, SLAVE MONITOR, SHOW VIEW"

// StartMariaDB starts a mariadbd with binary logs, GTID and the monitor
// account (MonitorGrants) and a replication account. Root is reachable
// over the unix socket only.
func StartMariaDB(t testing.TB, serverID int) *MariaDB {
	t.Helper()
	p := enginetest.New(t, "mariadbd", func(p *enginetest.Proc, _ bool) []string { return mariadbArgs(p, serverID) }, enginetest.WaitMariaDB)
	dir := p.Dir
	enginetest.MariaDBData(t, filepath.Join(dir, "data"))
	init := filepath.Join(dir, "init.sql")
	sqlText := strings.Join([]string{
		"SET SESSION sql_log_bin=0",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS 10", MonitorUser, MonitorPassword),
		fmt.Sprintf("GRANT %s ON *.* TO '%s'@'%%'", MonitorGrants, MonitorUser),
		"CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'repl-secret-1'",
		"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
	}, ";\n") + ";\n"
	if err := os.WriteFile(init, []byte(sqlText), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Start()
	return &MariaDB{Proc: p, Socket: enginetest.MariaDBSocket(p)}
}

func mariadbArgs(p *enginetest.Proc, serverID int) []string {
	args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir, "--socket=" + enginetest.MariaDBSocket(p),
		"--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1", "--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"),
		"--server-id=" + strconv.Itoa(serverID), "--log-bin=mysql-bin", "--log-slave-updates", "--gtid-strict-mode=ON",
		"--binlog-format=ROW", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=OFF",
		"--skip-slave-start", "--init-file=" + filepath.Join(p.Dir, "init.sql"), "--plugin-load-add=semisync_master", "--plugin-load-add=semisync_slave"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return args
}

// Root returns a root connection over the socket; closed at test end.
func (m *MariaDB) Root(t testing.TB) *sql.DB {
	t.Helper()
	db := enginetest.RootDB(m.Socket)
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs statements as root.
func (m *MariaDB) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	db := m.Root(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// ReplicateFrom makes m a read-only GTID replica of primary and waits until
// both replication threads run.
func (m *MariaDB) ReplicateFrom(t testing.TB, primary *MariaDB) {
	t.Helper()
	m.Exec(t,
		"SET GLOBAL read_only=ON",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-secret-1', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1", primary.Port),
		"START SLAVE")
	db := m.Root(t)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st := enginetest.SlaveStatus(db)
		if st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("replication did not start")
}
