package allinone

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
)

// stateProc is a process working in the state directory: a node server the
// local driver started (its working directory is the node's data
// directory), a child it forked, or a tool the platform ran there.
type stateProc struct {
	procID
	// name is the process's command name (redis-server rewrites its command
	// line, not this).
	name string
	// dir is its working directory.
	dir string
}

func (p stateProc) String() string {
	return fmt.Sprintf("%s (pid %d) in %s", p.name, p.pid, p.dir)
}

// procsUnder lists the processes of the current user whose working
// directory is dir or below it, itself and its ancestors excepted. The
// working directory identifies them where a command line does not
// (redis-server rewrites its own), and it survives the directory's removal
// (as "<path> (deleted)"), so the nodes of a deleted state directory are
// found too.
func procsUnder(dir string) ([]stateProc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	skip := lineage()
	uid := os.Getuid()
	var out []stateProc
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
		id, err := procStat(pid)
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(base, "comm"))
		out = append(out, stateProc{procID: id, name: strings.TrimSpace(string(comm)), dir: cwd})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// lineage is this process and its ancestors: a reset run from a shell
// inside the state directory must not stop that shell.
func lineage() map[int]bool {
	out := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !out[pid]; pid = parentOf(pid) {
		out[pid] = true
	}
	return out
}

// stopProcs sends SIGTERM to every process, waits up to grace for them to
// exit, then sends SIGKILL to those left and waits for them to go. A
// process is signalled only while it is still the one that was found (same
// pid and start time), so a recycled pid is never hit.
func stopProcs(ctx context.Context, procs []procID, grace time.Duration) error {
	signal := func(sig syscall.Signal) {
		for _, p := range procs {
			if running(p) {
				_ = syscall.Kill(p.pid, sig)
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
		return fmt.Errorf("after SIGKILL: %w", err)
	}
	return nil
}

// running reports whether p still runs as the process that was found.
func running(p procID) bool {
	live, err := procStat(p.pid)
	return err == nil && live.start == p.start
}

// errRunning is waitGone's error while a process still runs.
var errRunning = errors.New("still running")

// waitGone polls until none of procs runs, for at most d.
func waitGone(ctx context.Context, procs []procID, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		left := 0
		for _, p := range procs {
			if running(p) {
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
