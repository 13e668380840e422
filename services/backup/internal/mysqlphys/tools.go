// Package mysqlphys runs MariaDB's physical backup tools on a node's host
// (the local driver: processes on this machine; the same steps fit a
// Kubernetes Job): mariadb-backup --backup streamed as xbstream, its
// extraction and --prepare, a scratch mariadbd on a prepared directory for
// verification (CHECK TABLE, row counts, checksums) and for point-in-time
// replay of archived binlog segments with mariadb-binlog, leaving a data
// directory a new node starts from. It does not store, encrypt or schedule
// anything: the engine does.
package mysqlphys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Config names the tools (found on PATH or in /usr/sbin, /usr/bin when
// empty) and the scratch directory for temporary servers' sockets.
type Config struct {
	BackupBin   string // mariadb-backup
	MbstreamBin string // mbstream
	ServerBin   string // mariadbd
	BinlogBin   string // mariadb-binlog
	ClientBin   string // mariadb
	// ScratchDir holds temporary servers' sockets, pid files and logs
	// (default: the system temporary directory).
	ScratchDir string
	// Parallel is mariadb-backup's --parallel (default 2).
	Parallel int
	Log      *slog.Logger
}

// Tools runs the backup tools.
type Tools struct{ cfg Config }

// ErrToolMissing is returned by New when a tool is not installed.
var ErrToolMissing = errors.New("tool not installed")

// tool is one binary the package runs and the Debian package it comes in.
type tool struct {
	field   *string
	name    string
	debPkg  string
	purpose string
}

// New checks the tools exist (a clear error naming the missing one and the
// Debian package, mariadb-backup) and returns Tools.
func New(cfg Config) (*Tools, error) {
	tools := []tool{
		{&cfg.BackupBin, "mariadb-backup", "mariadb-backup", "physical backups"},
		{&cfg.MbstreamBin, "mbstream", "mariadb-backup", "backup stream extraction"},
		{&cfg.ServerBin, "mariadbd", "mariadb-server", "verification and restore servers"},
		{&cfg.BinlogBin, "mariadb-binlog", "mariadb-client", "point-in-time replay"},
		{&cfg.ClientBin, "mariadb", "mariadb-client", "point-in-time replay"},
	}
	for _, tl := range tools {
		p, err := findTool(*tl.field, tl.name)
		if err != nil {
			return nil, fmt.Errorf("%s (for %s) not found: install the Debian package %s: %w", tl.name, tl.purpose, tl.debPkg, ErrToolMissing)
		}
		*tl.field = p
	}
	if cfg.ScratchDir == "" {
		cfg.ScratchDir = os.TempDir()
	}
	if err := os.MkdirAll(cfg.ScratchDir, 0o700); err != nil {
		return nil, fmt.Errorf("make scratch dir %s: %w", cfg.ScratchDir, err)
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 2
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Tools{cfg: cfg}, nil
}

// findTool resolves a configured path or name, then the name on PATH, then
// in the sbin/bin directories a service's PATH often lacks.
func findTool(configured, name string) (string, error) {
	if configured != "" {
		return exec.LookPath(configured)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// tailBuffer keeps the last lines a tool wrote to stderr, for errors.
type tailBuffer struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	max     int
}

func newTail(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(line)
}

func (t *tailBuffer) addLocked(line string) {
	if len(line) > 500 {
		line = line[:500] + "…"
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// Write makes tailBuffer an io.Writer for a tool's output: a line may
// come in several writes ("ERROR: ", then the message).
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(t.partial[:i]), "\r"); line != "" {
			t.addLocked(line)
		}
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > 4096 {
		t.addLocked(string(t.partial))
		t.partial = t.partial[:0]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(t.partial))
	}
	return strings.Join(lines, "\n")
}

// command is exec.CommandContext for a tool that also dies with the
// service: a tool orphaned by a crash would go on writing into a directory
// the restarted service wipes and works in again (a restore job's staging
// dir), or hold a node's backup locks.
func command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
