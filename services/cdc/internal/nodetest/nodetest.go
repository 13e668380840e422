// Package nodetest starts the real MariaDB and Redis nodes the cdc
// service's tests read from and write to: a MariaDB 10.11 node logging its
// binlog the way capture needs it (ROW, FULL row metadata, GTID strict)
// with Canopy's canopy_cdc account granted what provisioning grants it, and
// a Redis node with an admin user. Every node is stopped and its files
// removed when the test ends.
package nodetest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/enginetest"
)

// CDCGrants mirror provisioning's driver.CDCGrants.
const CDCGrants = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR, BINLOG REPLAY"

// CDCUser and CDCPassword are the canopy_cdc account of every node.
const (
	CDCUser     = "canopy_cdc"
	CDCPassword = "cdc-secret-1"
)

// MariaDB is one running node.
type MariaDB struct {
	Proc *enginetest.Proc
	// Addr is host:port.
	Addr string
	// Root is a root connection pool (unix socket).
	Root *sql.DB
}

// StartMariaDB runs a node with the given server id (distinct per node of
// one test).
func StartMariaDB(t testing.TB, serverID uint32) *MariaDB {
	t.Helper()
	p := enginetest.New(t, "mariadbd", func(p *enginetest.Proc, restart bool) []string {
		args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir,
			"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
			"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"), "--server-id=" + strconv.FormatUint(uint64(serverID), 10),
			"--log-bin=mysql-bin", "--log-slave-updates", "--gtid-strict-mode=ON", "--binlog-format=ROW",
			"--binlog-row-metadata=FULL", "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=32M",
			"--performance-schema=OFF", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
			"--max-connections=200", "--init-file=" + filepath.Join(p.Dir, "init.sql")}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		return args
	}, enginetest.WaitMariaDB)
	enginetest.MariaDBData(t, filepath.Join(p.Dir, "data"))
	init := "SET SESSION sql_log_bin=0;\n" +
		"CREATE USER IF NOT EXISTS " + CDCUser + "@'%' IDENTIFIED BY '" + CDCPassword + "';\n" +
		"GRANT " + CDCGrants + " ON *.* TO " + CDCUser + "@'%';\n"
	if err := os.WriteFile(filepath.Join(p.Dir, "init.sql"), []byte(init), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Start()
	root := enginetest.RootDB(enginetest.MariaDBSocket(p))
	root.SetMaxOpenConns(8)
	t.Cleanup(func() { root.Close() })
	return &MariaDB{Proc: p, Addr: p.Addr, Root: root}
}

// Exec runs statements as root, failing the test on an error.
func (m *MariaDB) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, q := range stmts {
		if _, err := m.Root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s on %s: %v", q, m.Addr, err)
		}
	}
}

// Pos is the node's @@gtid_binlog_pos.
func (m *MariaDB) Pos(t testing.TB) string {
	t.Helper()
	var p string
	if err := m.Root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// RedisUser and RedisPassword are the admin user of every Redis node.
const (
	RedisUser     = "admin"
	RedisPassword = "redis-secret-1"
)

// Redis is one running redis-server.
type Redis struct {
	Proc   *enginetest.Proc
	Addr   string
	Client *goredis.Client
}

// StartRedis runs a redis-server without persistence whose default user is
// off and whose admin user may do everything.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	var client *goredis.Client
	p := enginetest.New(t, "redis-server", func(p *enginetest.Proc, restart bool) []string {
		return []string{"--port", strconv.Itoa(p.Port), "--bind", "127.0.0.1", "--dir", p.Dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
			"--user", "default", "off", "--user", RedisUser, "on", ">" + RedisPassword, "~*", "&*", "+@all"}
	}, func(p *enginetest.Proc, exited <-chan struct{}) error {
		c := client
		if c == nil {
			c = newRedis(p.Addr)
			defer c.Close()
		}
		return enginetest.WaitUntil(p, exited, 30*time.Second, func(ctx context.Context) error { return c.Ping(ctx).Err() })
	})
	p.Start()
	client = newRedis(p.Addr)
	t.Cleanup(func() { client.Close() })
	return &Redis{Proc: p, Addr: p.Addr, Client: client}
}

func newRedis(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr, Username: RedisUser, Password: RedisPassword,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second, PoolSize: 4, DisableIdentity: true})
}
