// Package testproc starts real redis-server and mariadbd processes on free
// loopback ports for the healthcheck's integration tests, and kills them by
// pid when the test ends (also on failure). It is test support, imported only
// from _test files.
package testproc

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

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

// Proc is one server process that can be killed and started again on the
// same port and data.
type Proc struct {
	t    testing.TB
	name string
	args []string
	// Port and Addr are where it listens.
	Port int
	Addr string
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
	// done is closed when the current process has been reaped.
	done chan struct{}
}

func newProc(t testing.TB, name string, port int, dir string, args []string) *Proc {
	p := &Proc{t: t, name: name, args: args, Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
	t.Cleanup(func() { p.Kill() })
	return p
}

// Start runs the process and waits until its port accepts connections.
func (p *Proc) Start() {
	p.t.Helper()
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		p.t.Fatalf("%s already running", p.name)
	}
	log, err := os.OpenFile(filepath.Join(p.dir, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.mu.Unlock()
		p.t.Fatalf("open log: %v", err)
	}
	cmd := exec.Command(p.name, p.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		p.mu.Unlock()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			p.t.Fatalf("%s exited at start; log in %s: %s", p.name, p.dir, p.tail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not listen on %s within 60s: %s", p.name, p.Addr, p.tail())
		}
	}
}

func (p *Proc) tail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, p.name+".log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// PID returns the running process id (0 when stopped).
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL to the process and waits until it is reaped.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// StartRedis starts a redis-server with the monitor ACL user (the same
// least-privilege rules as provisioning's local driver) and an admin user.
// With replicaOf set it replicates from that address.
func StartRedis(t testing.TB, replicaOf string) *Proc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	dir := TempDir(t)
	port := FreePort(t)
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
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
	p := newProc(t, "redis-server", port, dir, args)
	p.Start()
	return p
}

// TempDir returns a short directory under /tmp (unix socket paths are
// limited to 108 bytes), removed at the end of the test.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "hc-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

// mariadbTemplate runs mariadb-install-db once per test binary.
func mariadbTemplate() (string, error) {
	templateOnce.Do(func() {
		dir, err := os.MkdirTemp("/tmp", "hc-tpl-")
		if err != nil {
			templateErr = err
			return
		}
		args := []string{"--no-defaults", "--datadir=" + dir + "/data", "--auth-root-authentication-method=socket",
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

// CleanupTemplate removes the MariaDB template; call it from TestMain.
func CleanupTemplate() {
	if templateDir != "" {
		os.RemoveAll(filepath.Dir(templateDir))
	}
}

// MariaDB is a started mariadbd with root over its socket.
type MariaDB struct {
	*Proc
	Socket   string
	serverID int
}

// StartMariaDB starts a mariadbd with binary logs, GTID and the monitor
// account (REPLICATION CLIENT, PROCESS, SLAVE MONITOR) and a replication
// account. Root is reachable over the unix socket only.
func StartMariaDB(t testing.TB, serverID int) *MariaDB {
	t.Helper()
	if _, err := exec.LookPath("mariadbd"); err != nil {
		t.Skip("mariadbd not installed")
	}
	tpl, err := mariadbTemplate()
	if err != nil {
		t.Fatalf("mariadb template: %v", err)
	}
	dir := TempDir(t)
	data := filepath.Join(dir, "data")
	if out, err := exec.Command("cp", "-a", tpl, data).CombinedOutput(); err != nil {
		t.Fatalf("copy template: %v: %s", err, out)
	}
	init := filepath.Join(dir, "init.sql")
	sqlText := strings.Join([]string{
		"SET SESSION sql_log_bin=0",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS 10", MonitorUser, MonitorPassword),
		fmt.Sprintf("GRANT REPLICATION CLIENT, PROCESS, SLAVE MONITOR ON *.* TO '%s'@'%%'", MonitorUser),
		"CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'repl-secret-1'",
		"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
	}, ";\n") + ";\n"
	if err := os.WriteFile(init, []byte(sqlText), 0o600); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	sock := filepath.Join(dir, "m.sock")
	args := []string{"--no-defaults", "--datadir=" + data, "--socket=" + sock, "--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--skip-name-resolve", "--pid-file=" + filepath.Join(dir, "m.pid"),
		"--server-id=" + strconv.Itoa(serverID), "--log-bin=mysql-bin", "--log-slave-updates", "--gtid-strict-mode=ON",
		"--binlog-format=ROW", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=OFF",
		"--skip-slave-start", "--init-file=" + init, "--plugin-load-add=semisync_master", "--plugin-load-add=semisync_slave"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	p := newProc(t, "mariadbd", port, dir, args)
	p.Start()
	m := &MariaDB{Proc: p, Socket: sock, serverID: serverID}
	m.waitSocket(t)
	return m
}

// waitSocket waits until root answers over the unix socket. Start only saw
// the TCP port accept, and mariadbd listens on the socket separately: a
// first Exec right after Start failed with "dial unix m.sock: connect:
// connection refused" (1 of 20 runs on a loaded machine).
func (m *MariaDB) waitSocket(t testing.TB) {
	t.Helper()
	db := m.Root(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-m.done:
			t.Fatalf("mariadbd exited at start; log in %s: %s", m.dir, m.tail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd did not answer on %s within 60s: %v: %s", m.Socket, err, m.tail())
		}
	}
}

// Root returns a root connection over the socket; closed at test end.
func (m *MariaDB) Root(t testing.TB) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", m.Socket
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
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
		var io, sqlRunning string
		rows, err := db.Query("SHOW SLAVE STATUS")
		if err == nil {
			cols, _ := rows.Columns()
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if rows.Next() && rows.Scan(ptrs...) == nil {
				for i, c := range cols {
					switch c {
					case "Slave_IO_Running":
						io = vals[i].String
					case "Slave_SQL_Running":
						sqlRunning = vals[i].String
					}
				}
			}
			rows.Close()
		}
		if io == "Yes" && sqlRunning == "Yes" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("replication did not start")
}
