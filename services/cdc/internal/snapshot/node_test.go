package snapshot

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}

// The account the snapshot reads with: the privileges Canopy's cdc account
// has, and no RELOAD (no FLUSH TABLES WITH READ LOCK is needed).
const (
	cdcUser     = "canopy_cdc"
	cdcPassword = "cdc-secret-1"
)

// node is a single MariaDB 10.11 binlog source, as captured in production:
// row-based binlog with full metadata, GTID strict mode.
type node struct {
	proc *enginetest.Proc
	root *sql.DB
}

func startNode(t *testing.T) *node {
	t.Helper()
	p := enginetest.New(t, "mariadbd", func(p *enginetest.Proc, _ bool) []string {
		args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir,
			"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
			"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"), "--server-id=1",
			"--log-bin=mysql-bin", "--binlog-format=ROW", "--binlog-row-metadata=FULL", "--gtid-strict-mode=ON",
			"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=2",
			"--performance-schema=OFF"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		return args
	}, enginetest.WaitMariaDB)
	enginetest.MariaDBData(t, filepath.Join(p.Dir, "data"))
	p.Start()
	n := &node{proc: p, root: enginetest.RootDB(enginetest.MariaDBSocket(p))}
	t.Cleanup(func() { n.root.Close() })
	n.exec(t,
		"CREATE USER "+cdcUser+"@'%' IDENTIFIED BY '"+cdcPassword+"'",
		"GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO "+cdcUser+"@'%'")
	return n
}

func (n *node) source() capture.Source {
	return capture.Source{Addr: n.proc.Addr, User: cdcUser, Password: cdcPassword}
}

func (n *node) exec(t testing.TB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range stmts {
		if _, err := n.root.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func (n *node) gtidBinlogPos(t testing.TB) string {
	t.Helper()
	var g string
	if err := n.root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&g); err != nil {
		t.Fatal(err)
	}
	return g
}
