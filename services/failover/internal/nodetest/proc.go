// Package nodetest starts real replicated topologies (three mariadbd or three
// redis-server processes on free loopback ports) for the failover service's
// integration tests, and hands them back as a topology.Instance plus one
// killable, restartable process per node. It is test support: import it only
// from _test files. Everything it starts is killed by pid when the test ends,
// also on failure.
//
// It overlaps with services/healthcheck/internal/testproc (process handling,
// the MariaDB template); the two could merge into a libs package once a third
// user appears.
package nodetest

import (
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

// Proc is one server process that can be killed and started again on the
// same port and data.
type Proc struct {
	t    testing.TB
	name string
	// args returns the command line of the next start (Restart may change
	// how a node comes back, e.g. a MariaDB node returns read-only).
	args func(restart bool) []string
	// Port and Addr are where it listens.
	Port int
	Addr string
	// Dir holds the node's data and log.
	Dir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process was reaped
	// ready waits until the server answers after a start; exited is
	// closed if the process exits meanwhile.
	ready func(p *Proc, exited <-chan struct{}) error
}

func newProc(t testing.TB, name string, args func(restart bool) []string) *Proc {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "fo-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	port := porttest.Free(t)
	p := &Proc{t: t, name: name, args: args, Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir}
	// Registered before the process starts so it runs after Kill (LIFO).
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Cleanup(p.Kill)
	return p
}

// start runs the process and waits until it answers. It returns errors
// instead of failing the test so that several nodes can start at once.
func (p *Proc) start(restart bool) error {
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
	cmd := exec.Command(p.name, p.args(restart)...)
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
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited at start; log %s: %s", p.name, p.logPath(), p.Tail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within 60s: %s", p.name, p.Addr, p.Tail())
		}
	}
	if p.ready != nil {
		return p.ready(p, done)
	}
	return nil
}

// startAll starts the processes at once (a MariaDB start is mostly waiting
// on its own disk) and fails the test if any start fails.
func startAll(t testing.TB, ps []*Proc) {
	t.Helper()
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = p.start(false) }()
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

// Restart starts the killed process again on the same port and data, the
// way a supervisor would. A MariaDB node comes back read-only, as a
// semi-sync replica-to-be (init_rpl_role=SLAVE), never as a writable
// primary; a Redis node comes back as it was configured at first start
// (its replicaof, if any, from the command line).
func (p *Proc) Restart() {
	p.t.Helper()
	if err := p.start(true); err != nil {
		p.t.Fatal(err)
	}
}
