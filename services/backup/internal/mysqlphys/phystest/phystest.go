// Package phystest starts real MariaDB nodes for the physical backup
// tests and benchmarks: a node logging its binlog as Canopy's nodes do
// (GTID strict, ROW, log_slave_updates) with an admin account that
// mariadb-backup connects as over TCP. It is test support: import it only
// from _test files.
package phystest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
)

// Admin account of every node.
const (
	AdminUser     = "canopy_admin"
	AdminPassword = "adm#in 'pw\"1"
)

// Node is one running mariadbd.
type Node struct {
	Proc *enginetest.Proc
	// Addr is host:port; DataDir its data directory.
	Addr    string
	DataDir string
	// Root is a root pool over the unix socket.
	Root *sql.DB
}

// Options change a node's settings.
type Options struct {
	// BufferPool is innodb_buffer_pool_size (default 64M).
	BufferPool string
	// Durable keeps sync_binlog=1 and innodb_flush_log_at_trx_commit=1
	// (default: relaxed, tests need no crash safety).
	Durable bool
	// ServerID is server_id (default 1); replicas need their own.
	ServerID uint32
	// AdminPassword replaces AdminPassword (tests that write it into SQL
	// or JSON by hand want one without quotes).
	AdminPassword string
	// Deferred leaves the node unstarted, for enginetest.StartAll to start
	// several at once; Root connects once it runs.
	Deferred bool
}

// StartMariaDB runs a node (server_id 1 unless told) and waits until it
// answers.
func StartMariaDB(t testing.TB, o Options) *Node {
	t.Helper()
	if o.BufferPool == "" {
		o.BufferPool = "64M"
	}
	if o.ServerID == 0 {
		o.ServerID = 1
	}
	if o.AdminPassword == "" {
		o.AdminPassword = AdminPassword
	}
	flush, syncBinlog := "2", "0"
	if o.Durable {
		flush, syncBinlog = "1", "1"
	}
	p := enginetest.New(t, "mariadbd", func(p *enginetest.Proc, restart bool) []string {
		args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir,
			"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
			"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"),
			"--server-id=" + strconv.FormatUint(uint64(o.ServerID), 10),
			"--log-bin=mysql-bin", "--log-bin-index=mysql-bin.index", "--relay-log=relay-bin", "--log-slave-updates",
			"--gtid-strict-mode=ON", "--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--innodb-buffer-pool-size=" + o.BufferPool, "--innodb-log-file-size=64M",
			"--performance-schema=OFF", "--innodb-flush-log-at-trx-commit=" + flush, "--sync-binlog=" + syncBinlog,
			"--max-connections=100", "--init-file=" + filepath.Join(p.Dir, "init.sql")}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		return args
	}, enginetest.WaitMariaDB)
	dataDir := filepath.Join(p.Dir, "data")
	enginetest.MariaDBData(t, dataDir)
	init := "SET SESSION sql_log_bin=0;\n" +
		"CREATE USER IF NOT EXISTS " + AdminUser + "@'%' IDENTIFIED BY '" + sqlEscape(o.AdminPassword) + "';\n" +
		"GRANT ALL PRIVILEGES ON *.* TO " + AdminUser + "@'%' WITH GRANT OPTION;\n"
	if err := os.WriteFile(filepath.Join(p.Dir, "init.sql"), []byte(init), 0o600); err != nil {
		t.Fatal(err)
	}
	if !o.Deferred {
		p.Start()
	}
	root := enginetest.RootDB(enginetest.MariaDBSocket(p))
	root.SetMaxOpenConns(16)
	t.Cleanup(func() { root.Close() })
	return &Node{Proc: p, Addr: p.Addr, DataDir: dataDir, Root: root}
}

func sqlEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Exec runs statements as root, failing the test on an error.
func (n *Node) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, q := range stmts {
		if _, err := n.Root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s on %s: %v", q, n.Addr, err)
		}
	}
}

// BinlogFiles flushes the binary log and returns its files, oldest first.
func (n *Node) BinlogFiles(t testing.TB) []string {
	t.Helper()
	n.Exec(t, "FLUSH BINARY LOGS")
	files, err := filepath.Glob(filepath.Join(n.DataDir, "mysql-bin.[0-9]*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("binlog files in %s: %v", n.DataDir, err)
	}
	return files
}
