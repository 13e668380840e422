package redissnap

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Bounds of a scratch server: loading a large RDB takes a while.
const (
	inspectStartTimeout = 10 * time.Minute
	inspectStopTimeout  = time.Minute
	maxSocketPath       = 107
)

// Inspect starts a scratch redis-server (no TCP, a unix socket under
// scratchDir) on the RDB file at path and returns its key count; an RDB
// that does not load is an error.
func Inspect(ctx context.Context, redisServer, scratchDir, path string) (keys int64, err error) {
	if redisServer == "" {
		redisServer = "redis-server"
	}
	bin, err := exec.LookPath(redisServer)
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %s not found: install the Debian package redis-server: %w", path, redisServer, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return 0, fmt.Errorf("inspect %s: %w", path, err)
	}
	if scratchDir == "" {
		scratchDir = os.TempDir()
	}
	if err := os.MkdirAll(scratchDir, 0o700); err != nil {
		return 0, fmt.Errorf("inspect %s: scratch dir: %w", path, err)
	}
	work, err := os.MkdirTemp(scratchDir, "r")
	if err != nil {
		return 0, fmt.Errorf("inspect %s: scratch dir: %w", path, err)
	}
	defer os.RemoveAll(work)
	sock := filepath.Join(work, "r.sock")
	if len(sock) > maxSocketPath {
		sd, err := os.MkdirTemp("", "r")
		if err != nil {
			return 0, fmt.Errorf("inspect %s: socket dir: %w", path, err)
		}
		defer os.RemoveAll(sd)
		sock = filepath.Join(sd, "r.sock")
	}
	logFile := filepath.Join(work, "redis.log")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", filepath.Dir(abs), "--dbfilename", filepath.Base(abs), "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", logFile, "--protected-mode", "no")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("inspect %s: start redis-server: %w", path, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	kill := func() { _ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); <-done }
	c := goredis.NewClient(&goredis.Options{Network: "unix", Addr: sock, DialTimeout: time.Second,
		ReadTimeout: 30 * time.Second, PoolSize: 1, DisableIdentity: true,
		// SHUTDOWN closes the connection: a retry would only dial a server gone.
		MaxRetries: -1})
	defer c.Close()
	tail := func() string {
		b, _ := os.ReadFile(logFile)
		if len(b) > 1500 {
			b = b[len(b)-1500:]
		}
		return string(b)
	}
	// The socket accepts once the server is up (a plain dial: the client
	// pool logs every failed dial); PING answers -LOADING until the RDB is
	// loaded.
	deadline := time.Now().Add(inspectStartTimeout)
	for {
		perr := error(nil)
		if conn, err := net.DialTimeout("unix", sock, time.Second); err != nil {
			perr = err
		} else {
			conn.Close()
			perr = c.Ping(ctx).Err()
		}
		if perr == nil {
			break
		}
		select {
		case <-done:
			return 0, fmt.Errorf("inspect %s: the snapshot does not load: redis-server exited (%v): %s", path, waitErr, tail())
		case <-ctx.Done():
			kill()
			return 0, fmt.Errorf("inspect %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			kill()
			return 0, fmt.Errorf("inspect %s: redis-server did not load within %s: %v: %s", path, inspectStartTimeout, perr, tail())
		}
	}
	keys, err = keyCount(ctx, c)
	if err != nil {
		kill()
		return 0, fmt.Errorf("inspect %s: %w", path, err)
	}
	// SHUTDOWN NOSAVE ends the connection instead of answering.
	_ = c.ShutdownNoSave(ctx).Err()
	select {
	case <-done:
	case <-time.After(inspectStopTimeout):
		kill()
	}
	return keys, nil
}
