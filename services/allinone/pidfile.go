package allinone

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PIDFile is the file in the state directory that names the running
// all-in-one process, so that Reset can stop it before it stops the node
// processes the platform would otherwise restart. It holds the pid and the
// process's start time, so a pid the kernel recycled for another process is
// never taken for Canopy. It is not a lock.
const PIDFile = "canopy.pid"

// ErrPlatformRunning: another Canopy (the all-in-one or split mode) already
// runs on the state directory.
var ErrPlatformRunning = errors.New("canopy already runs on this state directory")

// procID names one process for good: its pid and its start time in clock
// ticks after boot (field 22 of /proc/PID/stat).
type procID struct {
	pid   int
	start uint64
}

// writePIDFile records the calling process in dir and returns a release
// function that removes the file if it still names this process (another
// platform may have started on the same directory since).
func writePIDFile(dir string) (release func(), err error) {
	self, err := procStat(os.Getpid())
	if err != nil {
		return nil, err
	}
	// One platform per state directory: two would share keys, nodes and
	// the broker's data, and reset would know only the last one.
	if other, ok, err := readPIDFile(dir); err != nil {
		return nil, err
	} else if ok && other.pid != self.pid {
		return nil, fmt.Errorf("%w: pid %d runs on %s (%s); stop it first (Ctrl-C, or make reset)", ErrPlatformRunning, other.pid, dir, PIDFile)
	}
	path := filepath.Join(dir, PIDFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %d\n", self.pid, self.start), 0o600); err != nil {
		return nil, fmt.Errorf("record pid: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("record pid: %w", err)
	}
	return func() {
		if p, ok, _ := readPIDFile(dir); ok && p == self {
			_ = os.Remove(path)
		}
	}, nil
}

// readPIDFile returns the process recorded in dir when it still runs; ok is
// false when no file exists, the process is gone or its pid now names
// another process.
func readPIDFile(dir string) (p procID, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, PIDFile))
	if errors.Is(err, os.ErrNotExist) {
		return procID{}, false, nil
	}
	if err != nil {
		return procID{}, false, fmt.Errorf("read pid file: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return procID{}, false, nil // torn or foreign: nothing to trust
	}
	pid, err1 := strconv.Atoi(fields[0])
	start, err2 := strconv.ParseUint(fields[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return procID{}, false, nil
	}
	live, err := procStat(pid)
	if err != nil || live.start != start {
		return procID{}, false, nil
	}
	return live, true, nil
}

// procStat reads pid's start time from /proc; an error means it does not
// run (a zombie is as good as gone).
func procStat(pid int) (procID, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procID{}, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name is parenthesised and may hold spaces: fields are
	// counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procID{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), fields[1] the parent; the start time is field 22.
	if len(fields) < 20 {
		return procID{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return procID{}, fmt.Errorf("process %d: exited", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procID{}, fmt.Errorf("process %d: start time: %w", pid, err)
	}
	return procID{pid: pid, start: start}, nil
}

// parentOf returns pid's parent (0 when unknown).
func parentOf(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
