// Package enginetest runs real mariadbd and redis-server processes on free
// loopback ports for integration tests, and kills them by pid when the test
// ends (also on failure). It provides the process (start, wait, kill,
// restart on the same port and data), the MariaDB data-directory template
// and the waits; the command lines, accounts and topologies stay with each
// test-support package that uses it. It is test support: import it only
// from _test files and test-support packages.
package enginetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/porttest"
)

// ReadyFunc waits until a started server answers; exited is closed if the
// process exits meanwhile.
type ReadyFunc func(p *Proc, exited <-chan struct{}) error

// Proc is one server process that can be killed and started again on the
// same port and data.
type Proc struct {
	t    testing.TB
	name string
	// args returns the command line of the next start; restart is true
	// from the second start on (a node may come back differently, e.g. a
	// MariaDB node read-only).
	args  func(p *Proc, restart bool) []string
	ready ReadyFunc
	// Port and Addr are where it listens.
	Port int
	Addr string
	// Dir holds the process's data and log.
	Dir string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process was reaped
	started bool
}

// New prepares the process name on a free loopback port with its own
// directory; nothing runs until Start. ready may be nil (an accepting TCP
// port is then enough). The process is killed and its directory removed
// when the test ends.
func New(t testing.TB, name string, args func(p *Proc, restart bool) []string, ready ReadyFunc) *Proc {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skip(name + " not installed")
	}
	dir := TempDir(t)
	port := porttest.Free(t)
	p := &Proc{t: t, name: name, args: args, ready: ready, Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir}
	// Registered after TempDir's cleanup so it runs first (LIFO).
	t.Cleanup(p.Kill)
	return p
}

// TempDir returns a short directory under /tmp (unix socket paths are
// limited to 108 bytes), removed when the test ends.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "et-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Start runs the process (again, after Kill: on the same port and data) and
// waits until it answers; it fails the test otherwise.
func (p *Proc) Start() {
	p.t.Helper()
	if err := p.TryStart(); err != nil {
		p.t.Fatal(err)
	}
}

// TryStart is Start returning the error instead of failing the test, for
// starts from other goroutines.
func (p *Proc) TryStart() error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return fmt.Errorf("%s on %s already running", p.name, p.Addr)
	}
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(p.name, p.args(p, p.started)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The test binary dying must not leave servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.cmd, p.done, p.started = cmd, done, true
	p.mu.Unlock()

	err = WaitUntil(p, done, 60*time.Second, func(context.Context) error {
		c, err := net.DialTimeout("tcp", p.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil || p.ready == nil {
		return err
	}
	return p.ready(p, done)
}

// WaitUntil calls try (each call bounded to 5s) until it succeeds, the
// process exits or timeout passes, and says which with the log's tail.
func WaitUntil(p *Proc, exited <-chan struct{}, timeout time.Duration, try func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := try(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start; log %s: %s", p.name, p.logPath(), p.Tail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s within %s: %v: %s", p.name, p.Addr, timeout, err, p.Tail())
		}
	}
}

// StartAll starts the processes at once (a MariaDB start is mostly waiting
// on its own disk) and fails the test if any start fails.
func StartAll(t testing.TB, ps []*Proc) {
	t.Helper()
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = p.TryStart() }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (p *Proc) logPath() string { return filepath.Join(p.Dir, p.name+".log") }

// Tail returns the end of the process's log, for failure messages.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.logPath())
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// PID returns the running process id (0 when not running).
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL to the process (by its pid) and waits until it is
// reaped. A no-op when it does not run.
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
