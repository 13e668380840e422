package allinone_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/porttest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/allinone"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate() // the MariaDB node's data-directory template
	os.Exit(code)
}

// TestResetLeavesNothingBehind builds what `make dev` leaves on a machine:
// a state directory with a redis-server and a mariadbd node started the way
// the local driver starts them (own session, working directory the node's
// data directory, pid in canopy.pid), a recorded platform process and the
// services' databases; and next to them what is not Canopy's: a redis-server
// working elsewhere, databases of another prefix. A forced reset leaves
// none of Canopy's processes, databases or files and everything else as it
// was; a second reset has nothing to do.
func TestResetLeavesNothingBehind(t *testing.T) {
	for _, bin := range []string{"redis-server", "mariadbd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Short: mariadbd's socket lives in its node directory.
	stateDir := filepath.Join(enginetest.TempDir(t), ".canopy")

	redisDir := nodeDir(t, stateDir, "n-redis")
	redisPort := porttest.Free(t)
	redisNode := launchNode(t, stateDir, "n-redis", "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", redisDir)
	waitPing(t, redisPort)

	mysqlDir := filepath.Join(stateDir, "nodes", "n-mysql")
	require.NoError(t, os.MkdirAll(mysqlDir, 0o700))
	enginetest.MariaDBData(t, filepath.Join(mysqlDir, "data"))
	mysqlArgs := []string{"--no-defaults", "--datadir=" + filepath.Join(mysqlDir, "data"), "--tmpdir=" + mysqlDir,
		"--socket=" + filepath.Join(mysqlDir, "m.sock"), "--port=" + strconv.Itoa(porttest.Free(t)), "--bind-address=127.0.0.1",
		"--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=OFF"}
	if os.Geteuid() == 0 {
		mysqlArgs = append(mysqlArgs, "--user=root")
	}
	mysqlNode := launchNode(t, stateDir, "n-mysql", "mariadbd", mysqlArgs...)
	root := enginetest.RootDB(filepath.Join(mysqlDir, "m.sock"))
	require.NoError(t, waitFor(ctx, root.PingContext), "mariadbd node did not answer")
	root.Close()

	// The platform: any process recorded in canopy.pid; it works outside
	// the state directory, as `make dev` does from the repository.
	platform := start(t, "", "sleep", "300")
	recordPlatform(t, stateDir, platform.Process.Pid)

	// Not Canopy's: a redis-server working elsewhere.
	foreignPort := porttest.Free(t)
	foreign := start(t, "", "redis-server", "--port", strconv.Itoa(foreignPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	waitPing(t, foreignPort)

	prefix := fmt.Sprintf("canopy_test_reset%d_", time.Now().UnixNano()%1_000_000_000)
	server := serverDB(t)
	ours := []string{prefix + "gateway", prefix + "provisioning"}
	// Other setups' databases: a longer prefix and a name outside the list.
	theirs := []string{prefix + "e2e_gateway", prefix + "provisioning_old"}
	for _, d := range append(append([]string{}, ours...), theirs...) {
		_, err := server.Exec("CREATE DATABASE `" + d + "`")
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = server.Exec("DROP DATABASE IF EXISTS `" + d + "`") })
	}
	cfg := allinone.Config{StateDir: stateDir, MySQLDSN: storetest.DSN(), DatabasePrefix: prefix}
	opts := allinone.ResetOptions{NodeTimeout: 20 * time.Second, PlatformTimeout: 20 * time.Second}

	// Not confirmed: nothing changes.
	var out bytes.Buffer
	err := allinone.Reset(ctx, cfg, opts, strings.NewReader("yes\n"), &out)
	require.ErrorIs(t, err, allinone.ErrResetNotConfirmed)
	require.Contains(t, out.String(), "stop the platform (pid "+strconv.Itoa(platform.Process.Pid)+":")
	require.Contains(t, out.String(), "stop redis-server (pid "+strconv.Itoa(redisNode.Process.Pid)+")")
	require.Contains(t, out.String(), "stop mariadbd (pid "+strconv.Itoa(mysqlNode.Process.Pid)+")")
	require.Contains(t, out.String(), "drop database "+prefix+"gateway")
	require.NotContains(t, out.String(), "foreign")
	require.DirExists(t, stateDir)
	waitPing(t, redisPort)

	out.Reset()
	opts.Force = true
	require.NoError(t, allinone.Reset(ctx, cfg, opts, nil, &out), out.String())
	t.Log(out.String())

	for name, cmd := range map[string]*exec.Cmd{"platform": platform, "redis node": redisNode, "mariadbd node": mysqlNode} {
		require.False(t, alive(cmd.Process.Pid), "%s (pid %d) still runs", name, cmd.Process.Pid)
	}
	require.NoDirExists(t, stateDir)
	require.Equal(t, theirs, databases(t, server, prefix), "only the configured databases are dropped")
	waitPing(t, foreignPort)
	require.True(t, alive(foreign.Process.Pid), "the foreign redis-server was stopped")

	out.Reset()
	opts.Force = false
	require.NoError(t, allinone.Reset(ctx, cfg, opts, nil, &out))
	require.Contains(t, out.String(), "Nothing to reset")
}

// TestResetFindsNodesOfADeletedStateDir: a state directory deleted while its
// nodes run (rm -rf .canopy) leaves them working in a deleted directory;
// reset still finds and stops them.
func TestResetFindsNodesOfADeletedStateDir(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stateDir := filepath.Join(enginetest.TempDir(t), ".canopy")
	dir := nodeDir(t, stateDir, "n1")
	port := porttest.Free(t)
	node := launchNode(t, stateDir, "n1", "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	waitPing(t, port)
	require.NoError(t, os.RemoveAll(stateDir))

	var out bytes.Buffer
	cfg := allinone.Config{StateDir: stateDir, MySQLDSN: storetest.DSN(), DatabasePrefix: fmt.Sprintf("canopy_test_resetdel%d_", time.Now().UnixNano()%1_000_000_000)}
	require.NoError(t, allinone.Reset(ctx, cfg, allinone.ResetOptions{Force: true, NodeTimeout: 20 * time.Second}, nil, &out), out.String())
	require.Contains(t, out.String(), "stopped redis-server (pid "+strconv.Itoa(node.Process.Pid)+")")
	require.False(t, alive(node.Process.Pid), "the node of the deleted state dir still runs")
}

// TestResetIgnoresARecycledPID: a pid file naming a pid that now belongs to
// another process (same pid, other start time) stops nothing.
func TestResetIgnoresARecycledPID(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), ".canopy")
	require.NoError(t, os.MkdirAll(stateDir, 0o700))
	other := start(t, "", "sleep", "300")
	started, err := strconv.ParseUint(statFields(t, other.Process.Pid)[19], 10, 64)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(stateDir, allinone.PIDFile), fmt.Appendf(nil, "%d %d\n", other.Process.Pid, started+1), 0o600))
	var out bytes.Buffer
	cfg := allinone.Config{StateDir: stateDir, MySQLDSN: storetest.DSN(), DatabasePrefix: fmt.Sprintf("canopy_test_resetpid%d_", time.Now().UnixNano()%1_000_000_000)}
	require.NoError(t, allinone.Reset(context.Background(), cfg, allinone.ResetOptions{Force: true}, nil, &out), out.String())
	require.NotContains(t, out.String(), "platform")
	require.True(t, alive(other.Process.Pid), "a process with a recycled pid was stopped")
	require.NoDirExists(t, stateDir)
}

func TestResetRefusesAnUnquotablePrefix(t *testing.T) {
	cfg := allinone.Config{StateDir: t.TempDir(), MySQLDSN: storetest.DSN(), DatabasePrefix: "canopy_x`; DROP DATABASE mysql; --"}
	err := allinone.Reset(context.Background(), cfg, allinone.ResetOptions{Force: true}, nil, io.Discard)
	require.ErrorContains(t, err, "only letters")
	require.DirExists(t, cfg.StateDir)
}

// nodeDir makes a node's engine data directory as the local driver lays it
// out: <state dir>/nodes/<id>/data.
func nodeDir(t *testing.T, stateDir, id string) string {
	t.Helper()
	dir := filepath.Join(stateDir, "nodes", id, "data")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	return dir
}

// launchNode starts bin the way the local driver does: in its own session,
// working in the node's data directory, its pid in the node's canopy.pid.
func launchNode(t *testing.T, stateDir, id, bin string, args ...string) *exec.Cmd {
	t.Helper()
	dir := filepath.Join(stateDir, "nodes", id)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o700))
	cmd := start(t, filepath.Join(dir, "data"), bin, args...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "canopy.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600))
	return cmd
}

// start runs bin in dir ("" for the test's own) in its own session; it is
// killed when the test ends if still running, and reaped either way.
func start(t *testing.T, dir, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd
}

// recordPlatform writes the platform pid file for pid as the platform
// writes it for itself: pid and start time.
func recordPlatform(t *testing.T, stateDir string, pid int) {
	t.Helper()
	f := statFields(t, pid)
	require.NoError(t, os.WriteFile(filepath.Join(stateDir, allinone.PIDFile), fmt.Appendf(nil, "%d %s\n", pid, f[19]), 0o600))
}

// statFields are the fields of /proc/PID/stat after the command name
// (fields[0] is the state, fields[19] the start time).
func statFields(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// alive reports whether pid runs and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// waitPing waits until a redis-server answers PING on port.
func waitPing(t *testing.T, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := waitFor(ctx, func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if line != "+PONG\r\n" {
			return errors.New("answered " + line)
		}
		return nil
	})
	require.NoError(t, err, "redis-server on %d did not answer", port)
}

// waitFor calls try every 20 ms until it succeeds or ctx ends.
func waitFor(ctx context.Context, try func(context.Context) error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func serverDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", storetest.DSN())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// databases lists the databases whose names start with prefix, sorted.
func databases(t *testing.T, db *sql.DB, prefix string) []string {
	t.Helper()
	rows, err := db.Query("SELECT schema_name FROM information_schema.schemata WHERE LEFT(schema_name, ?) = ? ORDER BY schema_name", len(prefix), prefix)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestSecondPlatformOnAStateDirIsRefused: a state directory whose pid file
// names a running platform (here a stand-in process with the recorded
// start time, as split mode's script writes it) refuses a second all-in-one
// before it starts anything.
func TestSecondPlatformOnAStateDirIsRefused(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), ".canopy")
	require.NoError(t, os.MkdirAll(stateDir, 0o700))
	other := start(t, "", "sleep", "300")
	started := statFields(t, other.Process.Pid)[19]
	require.NoError(t, os.WriteFile(filepath.Join(stateDir, allinone.PIDFile), fmt.Appendf(nil, "%d %s\n", other.Process.Pid, started), 0o600))
	cfg := allinone.Config{
		DatabasePrefix:    fmt.Sprintf("canopy_test_second%d_", time.Now().UnixNano()%1_000_000_000),
		StateDir:          stateDir,
		EmbeddedKafkaAddr: "127.0.0.1:0",
		MySQLDSN:          storetest.DSN(),
		RedisAddr:         "127.0.0.1:6379",
		GatewayAddr:       "127.0.0.1:0",
	}
	p, err := allinone.New(cfg, allinone.Deps{Logger: obs.NopLogger()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Run(ctx)
	require.ErrorIs(t, err, allinone.ErrPlatformRunning)
	require.Contains(t, err.Error(), strconv.Itoa(other.Process.Pid))
	require.True(t, alive(other.Process.Pid), "the running platform was touched")
}
