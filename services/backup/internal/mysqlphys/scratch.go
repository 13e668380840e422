package mysqlphys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Bounds of a scratch server's start and clean stop: crash recovery of a
// large prepared dir and a slow shutdown on a busy disk take a while.
const (
	scratchStartTimeout = 5 * time.Minute
	scratchStopTimeout  = 5 * time.Minute
	// maxSocketPath is the length a unix socket path may have (sun_path
	// is 108 bytes with its terminating NUL).
	maxSocketPath = 107
)

// scratch is a temporary mariadbd on a data dir: no TCP, binlog and
// replication off, reachable by root over its own socket.
type scratch struct {
	work    string // pid file, error log, tmpdir
	sockDir string // the socket's dir when work's path is too long for it
	socket  string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	db      *sql.DB
	log     string
}

// startScratch starts a scratch server on dataDir and waits until root
// answers on its socket.
func (t *Tools) startScratch(ctx context.Context, dataDir string) (*scratch, error) {
	work, err := os.MkdirTemp(t.cfg.ScratchDir, "m")
	if err != nil {
		return nil, fmt.Errorf("scratch server dir: %w", err)
	}
	s := &scratch{work: work, socket: filepath.Join(work, "s.sock"), log: filepath.Join(work, "error.log")}
	if len(s.socket) > maxSocketPath {
		if s.sockDir, err = os.MkdirTemp("", "m"); err != nil {
			os.RemoveAll(work)
			return nil, fmt.Errorf("scratch socket dir: %w", err)
		}
		s.socket = filepath.Join(s.sockDir, "s.sock")
	}
	if err := os.Mkdir(filepath.Join(work, "tmp"), 0o700); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("scratch tmp dir: %w", err)
	}
	args := []string{"--no-defaults", "--datadir=" + dataDir, "--socket=" + s.socket, "--skip-networking",
		"--skip-log-bin", "--skip-slave-start", "--innodb-buffer-pool-size=128M", "--max-allowed-packet=1G",
		"--pid-file=" + filepath.Join(work, "m.pid"), "--log-error=" + s.log, "--tmpdir=" + filepath.Join(work, "tmp"),
		"--skip-name-resolve", "--performance-schema=OFF"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	s.cmd = exec.Command(t.cfg.ServerBin, args...)
	// The service dying must not leave a server on the data behind.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("start scratch mariadbd: %w", err)
	}
	s.done = make(chan struct{})
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()
	s.db = socketDB(s.socket)
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		return nil, err
	}
	t.cfg.Log.Debug("scratch mariadbd up", "data_dir", dataDir, "pid", s.cmd.Process.Pid)
	return s, nil
}

// socketDB opens a pool to a scratch server as root (the OS user running
// it when not root): the backup carries the source's accounts, whose
// root@localhost authenticates by unix socket (mariadb-install-db
// --auth-root-authentication-method=socket).
func socketDB(socket string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = osUser(), "unix", socket
	cfg.Timeout = 10 * time.Second
	cfg.MultiStatements = false
	conn, _ := mysql.NewConnector(cfg) // only fails on a bad config
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	return db
}

func osUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}

func (s *scratch) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(scratchStartTimeout)
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = s.db.PingContext(pctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("scratch mariadbd exited at start: %v: %s", s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("scratch mariadbd start: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("scratch mariadbd did not answer within %s: %v: %s", scratchStartTimeout, last, s.logTail())
		}
	}
}

// stop shuts the server down cleanly (SIGTERM, then the process's exit)
// so that its data dir needs no recovery; on the deadline it kills it and
// fails.
func (s *scratch) stop(ctx context.Context) error {
	defer s.cleanup()
	s.db.Close()
	// SIGTERM is mariadbd's normal shutdown (the SHUTDOWN statement's
	// path), without a client connection torn down mid-reply.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.killProcess()
		return fmt.Errorf("stop scratch mariadbd: %w", err)
	}
	select {
	case <-s.done:
	case <-time.After(scratchStopTimeout):
		s.killProcess()
		return fmt.Errorf("scratch mariadbd did not stop within %s: killed: %s", scratchStopTimeout, s.logTail())
	case <-ctx.Done():
		s.killProcess()
		return fmt.Errorf("stop scratch mariadbd: %w", ctx.Err())
	}
	if s.waitErr != nil {
		return fmt.Errorf("scratch mariadbd stopped with %v: %s", s.waitErr, s.logTail())
	}
	return nil
}

// kill stops the server without a clean shutdown (a failed run whose data
// dir is discarded anyway).
func (s *scratch) kill() {
	s.db.Close()
	s.killProcess()
	s.cleanup()
}

func (s *scratch) killProcess() {
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

func (s *scratch) cleanup() {
	os.RemoveAll(s.work)
	if s.sockDir != "" {
		os.RemoveAll(s.sockDir)
	}
}

func (s *scratch) logTail() string {
	b, err := os.ReadFile(s.log)
	if errors.Is(err, os.ErrNotExist) {
		return "(no log)"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
