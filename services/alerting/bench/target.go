package alertbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Timers are the route's grouping timers both servers get.
type Timers struct {
	GroupWait, GroupInterval, RepeatInterval time.Duration
}

// Target starts a fresh server (own state) for one step.
type Target interface {
	Name() string
	Start(ctx context.Context, receiverURL string, t Timers) (Server, error)
}

// Server is one running server of a step.
type Server interface {
	// PushURL is its POST /api/v2/alerts.
	PushURL() string
	// Sign signs a push (nil when the server takes unsigned pushes).
	Signer() func(req *http.Request, body []byte)
	// CPU is the CPU seconds so far of the server process and, separately,
	// of what it needs besides (MariaDB for Canopy; 0 for Alertmanager).
	CPU() (own, deps float64, err error)
	// Stop ends it and removes its state.
	Stop()
	// LogTail is the end of its log, for a failed step.
	LogTail() string
}

// freePort returns a loopback address with a port free right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// proc is a child server process with its log kept in memory.
type proc struct {
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
}

// startProc starts name with args and extra environment.
func startProc(name string, args, env []string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that a kill reaches nothing else of ours.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after 10s, and waits for the exit.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitHTTP waits until url answers 200, the process exits or timeout.
func (p *proc) waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited before %s answered: %s", url, p.log.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling the server's readiness
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %v: %s", url, timeout, err, p.log.tail())
		}
	}
}

// lockedBuffer is a log sink the process writes and the harness reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps at most the last 64 KiB or so.
func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > 128<<10 {
		tail := append([]byte(nil), b.buf.Bytes()[b.buf.Len()-(64<<10):]...)
		b.buf.Reset()
		b.buf.Write(tail)
	}
	return len(p), nil
}

// tail is the last 4000 bytes.
func (b *lockedBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}
