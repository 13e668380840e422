package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/porttest"
)

// TestBenchListeningPID checks how BenchmarkFailover finds the process to kill:
// the redis-server working under <state>/nodes/<id> that listens on the
// node's port, and nothing for a port no node listens on.
func TestBenchListeningPID(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server")
	}
	state := t.TempDir()
	dir := filepath.Join(state, "nodes", "n1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	port := porttest.Free(t)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Skipf("redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	waitFor(t, "redis-server to listen on "+strconv.Itoa(port), 10*time.Second, func() (bool, string) {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	pid, err := benchListeningPID(state, port)
	if err != nil || pid != cmd.Process.Pid {
		t.Errorf("benchListeningPID(port %d) = %d, %v; want %d", port, pid, err, cmd.Process.Pid)
	}
	if pid, err := benchListeningPID(state, porttest.Free(t)); err == nil {
		t.Errorf("benchListeningPID of a free port = %d, want an error", pid)
	}
}
