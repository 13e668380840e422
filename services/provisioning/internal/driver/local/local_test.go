package local

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/porttest"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver/drivertest"
)

// requireBinaries skips when the servers are not installed.
func requireBinaries(t testing.TB) {
	t.Helper()
	for _, b := range []string{"mariadbd", "mariadb-install-db", "redis-server"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed", b)
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// freePort hands out a loopback port for a node started later: below the
// ephemeral range, never the same one twice per run (see porttest).
func freePort(t testing.TB) int {
	t.Helper()
	return porttest.Free(t)
}

// dataRoot makes a short data root (mariadbd's socket path is limited to
// 107 bytes) and, even when the test fails, kills every server started under
// it and removes it.
func dataRoot(t testing.TB) string {
	t.Helper()
	root, err := os.MkdirTemp("/tmp", "cnp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killUnder(t, root)
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("remove %s: %v", root, err)
		}
	})
	return root
}

// killUnder SIGKILLs every process recorded in a pid file under root whose
// working directory is under root.
func killUnder(t testing.TB, root string) {
	pidFiles, _ := filepath.Glob(filepath.Join(root, "nodes", "*", "canopy.pid"))
	for _, f := range pidFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !alive(pid) {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
		if err != nil || !strings.HasPrefix(cwd, root+"/") {
			continue
		}
		t.Logf("cleanup: killing leftover server %d in %s", pid, cwd)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := waitGone(ctx, pid, nil); err != nil {
			t.Errorf("cleanup: %d survived SIGKILL", pid)
		}
		cancel()
	}
}

func newDriver(t testing.TB, cfg Config) *Driver {
	t.Helper()
	d, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	requireBinaries(t)
	began := time.Now()
	drivertest.Run(t, drivertest.Harness{
		NewDriver:      func(t *testing.T) driver.Driver { return newDriver(t, Config{StopTimeout: 20 * time.Second}) },
		Port:           func(t *testing.T) int { return freePort(t) },
		DataRoot:       func(t *testing.T) string { return dataRoot(t) },
		Versions:       map[driver.Engine]string{driver.EngineMySQL: "10.11", driver.EngineRedis: "7"},
		Timeout:        3 * time.Minute,
		LocalAddresses: true,
	})
	t.Cleanup(func() { t.Logf("conformance took %s", time.Since(began).Round(time.Millisecond)) })
}

func testSpec(root string, engine driver.Engine, port int) driver.NodeSpec {
	s := drivertest.Specs("loc"+string(engine[0]), engine, "", root, func() int { return port })[0]
	return s
}

// A recycled pid (here: the test process itself) is never taken for a node,
// and a node found stopped is never signalled.
func TestAdoptIgnoresForeignPID(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := dataRoot(t)
	spec := testSpec(root, driver.EngineRedis, freePort(t))
	d := newDriver(t, Config{})
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	n, err := d.Start(ctx, spec.NodeID)
	if err != nil {
		t.Fatal(err)
	}

	forged := n
	forged.PID = os.Getpid()
	st, err := newDriver(t, Config{}).Adopt(ctx, spec, forged)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != driver.StateRunning || st.Node.PID != n.PID {
		t.Fatalf("adopt with a foreign pid = %+v, want running with pid %d from the pid file", st, n.PID)
	}

	if err := d.Stop(ctx, spec.NodeID); err != nil {
		t.Fatal(err)
	}
	d2 := newDriver(t, Config{})
	st, err = d2.Adopt(ctx, spec, forged)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != driver.StateStopped || st.Node.PID != 0 {
		t.Fatalf("adopt stopped node with a foreign pid = %+v, want stopped", st)
	}
	if err := d2.Stop(ctx, spec.NodeID); err != nil { // must not signal the test process
		t.Fatal(err)
	}
}

func TestStartReportsServerFailure(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := dataRoot(t)
	spec := testSpec(root, driver.EngineMySQL, freePort(t))
	spec.Settings = map[string]string{"innodb_buffer_pool_size": "not-a-size"}
	d := newDriver(t, Config{})
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	_, err := d.Start(ctx, spec.NodeID)
	if err == nil || !strings.Contains(err.Error(), "server exited during start") {
		t.Fatalf("start with a bad setting: err = %v, want the server's exit with its log", err)
	}
	if ctx.Err() != nil {
		t.Fatal("start waited for the deadline instead of noticing the exit")
	}
}

func TestStartRefusesTakenPort(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	spec := testSpec(dataRoot(t), driver.EngineRedis, l.Addr().(*net.TCPAddr).Port)
	d := newDriver(t, Config{})
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, spec.NodeID); !errors.Is(err, driver.ErrPortInUse) {
		t.Fatalf("start on a taken port: err = %v, want ErrPortInUse", err)
	}
}

func TestValidate(t *testing.T) {
	requireBinaries(t)
	ctx := context.Background()
	long := "/tmp/" + strings.Repeat("x", 90)
	tests := []struct {
		name  string
		edit  func(*driver.NodeSpec)
		want  error
		field string
	}{
		{name: "relative data root", edit: func(s *driver.NodeSpec) { s.DataRoot = "rel/dir" }, field: "data_root"},
		{name: "socket path too long", edit: func(s *driver.NodeSpec) { s.DataRoot = long }, field: "data_root"},
		{name: "managed setting", edit: func(s *driver.NodeSpec) { s.Settings = map[string]string{"server-id": "7"} }, field: "settings"},
		{name: "newline in setting", edit: func(s *driver.NodeSpec) { s.Settings = map[string]string{"max_connections": "10\nskip-grant-tables"} }, field: "settings"},
		{name: "unknown engine", edit: func(s *driver.NodeSpec) { s.Engine = "oracle" }, field: "engine"},
		{name: "same user twice", edit: func(s *driver.NodeSpec) { s.Monitor.Username = s.Admin.Username }, field: "credentials"},
		{name: "quote in password", edit: func(s *driver.NodeSpec) { s.Admin.Password = "abcdefgh'; DROP" }, field: "admin.password"},
		{name: "version not installed", edit: func(s *driver.NodeSpec) { s.Version = "5.5" }, want: driver.ErrUnsupported},
	}
	d := newDriver(t, Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec("/tmp/cnp-validate", driver.EngineMySQL, 3306)
			tc.edit(&spec)
			_, err := d.Create(ctx, spec)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			var se *driver.SpecError
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("err = %v, want a SpecError on %s", err, tc.field)
			}
		})
	}
}

func TestVersionMatches(t *testing.T) {
	tests := []struct {
		want, have string
		ok         bool
	}{
		{"", "10.11.19", true},
		{"10.11", "10.11.19", true},
		{"10.11.19", "10.11.19", true},
		{"10.1", "10.11.19", false},
		{"7", "7.0.15", true},
		{"7.2", "7.0.15", false},
	}
	for _, tc := range tests {
		if got := versionMatches(tc.want, tc.have); got != tc.ok {
			t.Errorf("versionMatches(%q, %q) = %v, want %v", tc.want, tc.have, got, tc.ok)
		}
	}
}

func TestSQLString(t *testing.T) {
	tests := map[string]string{
		`plain`:   `'plain'`,
		`it's`:    `'it\'s'`,
		`back\sl`: `'back\\sl'`,
		"nl\n":    `'nl\n'`,
	}
	for in, want := range tests {
		if got := sqlString(in); got != want {
			t.Errorf("sqlString(%q) = %s, want %s", in, got, want)
		}
	}
}

// Every role renders a read-only start (writes come from ConfigurePrimary
// at runtime) with the slave side of semi-sync, which makes crash recovery
// truncate an unacknowledged binlog tail.
func TestRenderCnfStartsReadOnly(t *testing.T) {
	spec := testSpec("/tmp/cnp-x", driver.EngineMySQL, 3400)
	spec.SemiSync = true
	spec.Settings = map[string]string{"max_connections": "500"}
	for _, role := range []driver.Role{driver.RolePrimary, driver.RoleReplica} {
		n := &node{spec: spec, dir: "/tmp/cnp-x/nodes/" + spec.NodeID, state: nodeState{Role: role, SemiSync: true}}
		cnf := renderCnf(n, false)
		for _, want := range []string{"read_only=ON", "init_rpl_role=SLAVE", "rpl_semi_sync_master_enabled=OFF", "rpl_semi_sync_slave_enabled=ON",
			"gtid_strict_mode=ON", "binlog_row_metadata=FULL", "max_connections=500", "port=3400", "bind_address=127.0.0.1"} {
			if !strings.Contains(cnf, want+"\n") {
				t.Errorf("%s my.cnf lacks %s:\n%s", role, want, cnf)
			}
		}
	}
}

func TestRenderRedis(t *testing.T) {
	spec := testSpec("/tmp/cnp-x", driver.EngineRedis, 3500)
	spec.Settings = map[string]string{"appendonly": "no", "tcp-keepalive": "60"}
	src := driver.Endpoint{Host: "127.0.0.1", Port: 3501}
	n := &node{spec: spec, dir: "/tmp/cnp-x/nodes/" + spec.NodeID, state: nodeState{Role: driver.RoleReplica, Source: &src}}
	conf := renderRedisConf(n, "/a.acl", "/r.log")
	for _, want := range []string{"replicaof 127.0.0.1 3501", "appendonly no", "tcp-keepalive 60", "repl-diskless-sync-delay 0", "maxmemory 67108864", "masteruser canopy-repl"} {
		if !strings.Contains(conf, want+"\n") {
			t.Errorf("redis.conf lacks %q:\n%s", want, conf)
		}
	}
	n.state = nodeState{Role: driver.RolePrimary}
	if primary := renderRedisConf(n, "/a.acl", "/r.log"); !strings.Contains(primary, "replicaof 127.0.0.1 1\n") {
		t.Errorf("a primary's redis.conf must start it as a replica of nothing reachable:\n%s", primary)
	}
	if strings.Count(conf, "appendonly ") != 1 {
		t.Errorf("appendonly set twice:\n%s", conf)
	}
	acl := renderACL(spec)
	if strings.Contains(acl, spec.Admin.Password) || strings.Contains(acl, spec.Monitor.Password) {
		t.Errorf("ACL file holds a clear-text password:\n%s", acl)
	}
}

// A crash during Create leaves a directory without node.json: the next
// Create redoes it. An unreadable node.json is never wiped.
func TestCreateAfterCrash(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := dataRoot(t)
	spec := testSpec(root, driver.EngineRedis, freePort(t))
	dir := filepath.Join(root, "nodes", spec.NodeID)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.acl.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, Config{})
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatalf("create over a half-created dir: %v", err)
	}
	if _, err := d.Start(ctx, spec.NodeID); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx, spec.NodeID); err != nil {
		t.Fatal(err)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newDriver(t, Config{}).Create(ctx, spec); err == nil {
		t.Fatal("create over an unreadable node.json succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "node.json")); err != nil {
		t.Fatalf("unreadable node.json was removed: %v", err)
	}
}

// EngineVersions reports the installed servers as their --version says,
// and a missing server is left out rather than failing the others.
func TestEngineVersions(t *testing.T) {
	requireBinaries(t)
	d := newDriver(t, Config{})
	got := d.EngineVersions(context.Background())
	if len(got) != 2 || got[0].Engine != driver.EngineMySQL || got[1].Engine != driver.EngineRedis {
		t.Fatalf("EngineVersions = %+v, want mysql and redis", got)
	}
	for _, v := range got {
		out, err := exec.Command(map[driver.Engine]string{driver.EngineMySQL: "mariadbd", driver.EngineRedis: "redis-server"}[v.Engine], "--version").Output()
		if err != nil {
			t.Fatal(err)
		}
		if v.Series() == "" || !strings.Contains(string(out), v.Version) {
			t.Errorf("%s: reported %+v, --version says %q", v.Engine, v, out)
		}
	}
	missing := newDriver(t, Config{RedisServerPath: filepath.Join(t.TempDir(), "no-redis-server")})
	if got := missing.EngineVersions(context.Background()); len(got) != 1 || got[0].Engine != driver.EngineMySQL {
		t.Fatalf("without redis-server: EngineVersions = %+v, want mysql only", got)
	}
}
