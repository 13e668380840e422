package enginetest

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The template is per test binary, not per test: mariadb-install-db takes
// seconds, a copy of its result milliseconds.
var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

func mariadbTemplate() (string, error) {
	templateOnce.Do(func() {
		dir, err := os.MkdirTemp("/tmp", "et-tpl-")
		if err != nil {
			templateErr = err
			return
		}
		// Its own tmpdir: concurrent mariadb-install-db runs (test binaries
		// of several packages) collide on their temporary tables in a shared
		// /tmp ("Unknown table 'mysql.tmp_proxies_priv'", seen in CI).
		if err := os.Mkdir(dir+"/tmp", 0o700); err != nil {
			templateErr = err
			return
		}
		args := []string{"--no-defaults", "--datadir=" + dir + "/data", "--tmpdir=" + dir + "/tmp", "--auth-root-authentication-method=socket",
			"--skip-test-db", "--skip-name-resolve", "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=16M"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		out, err := exec.Command("mariadb-install-db", args...).CombinedOutput()
		if err != nil {
			templateErr = fmt.Errorf("mariadb-install-db: %w: %s", err, out)
			return
		}
		templateDir = dir + "/data"
	})
	return templateDir, templateErr
}

// MariaDBData fills dst with a fresh MariaDB data directory (root over the
// unix socket only, no test database), copied from a template installed
// once per test binary.
func MariaDBData(t testing.TB, dst string) {
	t.Helper()
	tpl, err := mariadbTemplate()
	if err != nil {
		t.Fatalf("mariadb template: %v", err)
	}
	if out, err := exec.Command("cp", "-a", tpl, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy template: %v: %s", err, out)
	}
}

// CleanupTemplate removes the MariaDB template; call it from TestMain after
// m.Run.
func CleanupTemplate() {
	if templateDir != "" {
		os.RemoveAll(filepath.Dir(templateDir))
	}
}

// RootDB opens a root pool over a mariadbd's unix socket; the caller closes
// it.
func RootDB(socket string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", socket
	cfg.Timeout = 5 * time.Second
	conn, _ := mysql.NewConnector(cfg) // only fails on a bad config
	return sql.OpenDB(conn)
}

// MariaDBSocket is where a mariadbd started in p.Dir puts its unix socket
// (give it --socket=MariaDBSocket(p)); root connects there.
func MariaDBSocket(p *Proc) string { return filepath.Join(p.Dir, "m.sock") }

// WaitMariaDB is the ReadyFunc of a mariadbd: it waits until root answers
// over MariaDBSocket. mariadbd listens on TCP and on its socket separately,
// and a first statement right after the port accepted failed with
// "connect: connection refused" on a loaded machine.
func WaitMariaDB(p *Proc, exited <-chan struct{}) error {
	db := RootDB(MariaDBSocket(p))
	defer db.Close()
	return WaitUntil(p, exited, 60*time.Second, db.PingContext)
}

// SlaveStatus returns SHOW SLAVE STATUS as column → value (empty when none).
func SlaveStatus(db *sql.DB) map[string]string {
	st := map[string]string{}
	rows, err := db.Query("SHOW SLAVE STATUS")
	if err != nil {
		return st
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if rows.Next() && rows.Scan(ptrs...) == nil {
		for i, c := range cols {
			st[c] = vals[i].String
		}
	}
	return st
}
