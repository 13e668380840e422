package reset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/canopy-platform/canopy/services/allinone/internal/pidfile"
)

// Proc is a process working in the state directory: a node server the local
// driver started (its working directory is the node's data directory), a
// child it forked, or a tool the platform ran there.
type Proc struct {
	pidfile.Process
	// Name is the process's command name (redis-server rewrites its command
	// line, not this).
	Name string
	// Dir is its working directory.
	Dir string
}

func (p Proc) String() string {
	return fmt.Sprintf("%s (pid %d) in %s", p.Name, p.PID, p.Dir)
}

// under lists the processes of the current user whose working directory is
// dir or below it, itself and its ancestors excepted. The working directory
// identifies them where a command line does not (redis-server rewrites its
// own), and a process's working directory survives the directory's removal
// (as "<path> (deleted)"), so nodes orphaned by a deleted state directory
// are found too.
func under(dir string) ([]Proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	skip := lineage()
	uid := os.Getuid()
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		base := filepath.Join("/proc", e.Name())
		info, err := os.Stat(base)
		if err != nil {
			continue // exited meanwhile
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
			continue
		}
		cwd, err := os.Readlink(filepath.Join(base, "cwd"))
		if err != nil {
			continue
		}
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if !within(cwd, dir) {
			continue
		}
		p, err := pidfile.Stat(pid)
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(base, "comm"))
		out = append(out, Proc{Process: p, Name: strings.TrimSpace(string(comm)), Dir: cwd})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// lineage is this process and its ancestors: a reset run from a shell inside
// the state directory must not stop that shell.
func lineage() map[int]bool {
	out := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !out[pid]; {
		out[pid] = true
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			break
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if i < 0 || len(f) < 2 {
			break
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return out
}

// stop sends SIGTERM to every process, waits up to grace for them to exit,
// then sends SIGKILL to those left and waits for them to go. A process is
// addressed only while it is still the one that was found (same pid and
// start time), so a recycled pid is never signalled.
func stop(ctx context.Context, procs []pidfile.Process, grace time.Duration) error {
	signal := func(sig syscall.Signal) {
		for _, p := range procs {
			if same(p) {
				_ = syscall.Kill(p.PID, sig)
			}
		}
	}
	signal(syscall.SIGTERM)
	if waitGone(ctx, procs, grace) == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	signal(syscall.SIGKILL)
	if err := waitGone(ctx, procs, 10*time.Second); err != nil {
		return fmt.Errorf("processes did not exit after SIGKILL: %w", err)
	}
	return nil
}

// same reports whether p still runs as the process that was found.
func same(p pidfile.Process) bool {
	live, err := pidfile.Stat(p.PID)
	return err == nil && live.Start == p.Start
}

// errRunning is waitGone's error while a process still runs.
var errRunning = errors.New("still running")

// waitGone polls until none of procs runs, for at most d.
func waitGone(ctx context.Context, procs []pidfile.Process, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		left := 0
		for _, p := range procs {
			if same(p) {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d %w: %w", left, len(procs), errRunning, ctx.Err())
		case <-tick.C:
		}
	}
}
