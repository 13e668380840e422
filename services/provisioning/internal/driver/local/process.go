package local

import (
	"bytes"
	"context"
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
	"time"

	"github.com/canopy-platform/canopy/libs/retry"
)

// pollPolicy paces the waits on a condition (server answers, process gone).
// A failed probe costs a refused connection, so polling is tight: it is what
// separates "the server is ready" from "the driver noticed". A redis-server
// answers 5–15 ms after its launch; with probes at 5, 12.5, 23.8, 40.6 ms
// (5 ms growing ×1.5 to 25 ms) the driver noticed one ready at 13 ms only at
// 24 ms. Capped at 10 ms the notice comes at most 10 ms late, for a few
// dozen refused dials over a MariaDB start of hundreds of milliseconds.
var pollPolicy = retry.Policy{Initial: 2 * time.Millisecond, Max: 10 * time.Millisecond, Multiplier: 1.5}

// errWaiting is returned by a condition that does not hold yet.
var errWaiting = errors.New("not yet")

// termRepeat is how often terminate repeats SIGTERM while a server lives.
const termRepeat = 500 * time.Millisecond

// launch starts bin detached from Canopy's process group (so the server
// survives a Canopy restart) with its working directory in dir and its
// stdout/stderr appended to logPath. The returned channel is closed once the
// process exits; a goroutine reaps it, and ends with it.
func launch(bin string, args []string, dir, logPath string) (int, <-chan struct{}, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("open %s: %w", logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = privateEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return 0, nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is read from the server's own log
		logf.Close()
		close(exited)
	}()
	return cmd.Process.Pid, exited, nil
}

// privateEnv is the environment of engine processes: Canopy's own, plus the
// file modes mariadbd creates with (its default 0660 would give the group
// read access to data files); other engines ignore them.
func privateEnv() []string {
	return append(os.Environ(), "UMASK=0600", "UMASK_DIR=0700")
}

// alive reports whether pid names a live (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}

// isServer reports whether pid is a live process of binary bin working in
// dir: the checks that keep a recycled pid from being mistaken for a node.
// Servers rewrite their command line (redis-server does), so the executable
// and the working directory are compared instead.
func isServer(pid int, bin, dir string) bool {
	if !alive(pid) {
		return false
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	exe, err := os.Readlink(filepath.Join(proc, "exe"))
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	want := bin
	if resolved, err := filepath.EvalSymlinks(bin); err == nil {
		want = resolved
	}
	if filepath.Base(exe) != filepath.Base(want) {
		return false
	}
	cwd, err := os.Readlink(filepath.Join(proc, "cwd"))
	if err != nil {
		return false
	}
	wantDir := dir
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		wantDir = resolved
	}
	return filepath.Clean(cwd) == filepath.Clean(wantDir)
}

// terminate stops pid: SIGTERM, then SIGKILL to its process group once
// grace has passed, and waits until it is gone or ctx ends. exited, when not
// nil, is closed by the reaper of a process this driver started.
func terminate(ctx context.Context, pid int, exited <-chan struct{}, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	// A server may refuse a shutdown for a moment (Redis right after a full
	// sync: "Writing initial AOF, can't exit") and then forgets the signal,
	// so SIGTERM is repeated until the grace period ends.
	graceCtx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	for {
		waitCtx, waitCancel := context.WithTimeout(graceCtx, termRepeat)
		err := waitGone(waitCtx, pid, exited)
		waitCancel()
		if err == nil {
			return nil
		}
		if graceCtx.Err() != nil {
			break
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("wait for %d to exit: %w", pid, ctx.Err())
	}
	// The server ignored SIGTERM for too long; kill it and any children
	// (Redis forks for snapshots) through its session's process group.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if err := waitGone(ctx, pid, exited); err != nil {
		return fmt.Errorf("wait for %d to die: %w", pid, err)
	}
	return nil
}

// waitGone waits until pid no longer runs.
func waitGone(ctx context.Context, pid int, exited <-chan struct{}) error {
	if exited != nil {
		select {
		case <-exited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return retry.Do(ctx, pollPolicy, func(context.Context) error {
		if alive(pid) {
			return errWaiting
		}
		return nil
	})
}

// portFree reports whether nothing listens on 127.0.0.1:port.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// tail returns up to the last n bytes of the file at path, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		if _, err := f.Seek(-n, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}
