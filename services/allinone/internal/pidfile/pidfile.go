// Package pidfile records which process runs the all-in-one platform on a
// state directory (<state dir>/canopy.pid), so `canopy reset` can stop it
// before it stops the node processes the platform would otherwise restart.
// The file holds the pid and the process's start time, so a pid the kernel
// recycled for another process is never taken for Canopy. It is not a lock:
// two platforms on one state directory are not prevented here.
package pidfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Name is the file's name inside the state directory.
const Name = "canopy.pid"

// Process is a live process as /proc shows it.
type Process struct {
	PID int
	// Start is the process's start time in clock ticks after boot (field 22
	// of /proc/PID/stat): with the pid, it names one process for good.
	Start uint64
}

// Write records the calling process in dir and returns a release function
// that removes the file if it still names this process (another platform
// may have started on the same directory since).
func Write(dir string) (release func(), err error) {
	self, err := Stat(os.Getpid())
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, Name)
	tmp := path + ".tmp"
	body := fmt.Sprintf("%d %d\n", self.PID, self.Start)
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return nil, fmt.Errorf("record pid: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("record pid: %w", err)
	}
	return func() {
		if p, ok, _ := Read(dir); ok && p == self {
			_ = os.Remove(path)
		}
	}, nil
}

// Read returns the process recorded in dir when it still runs; ok is false
// when no file exists, the process is gone or its pid now names another
// process.
func Read(dir string) (p Process, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, Name))
	if errors.Is(err, os.ErrNotExist) {
		return Process{}, false, nil
	}
	if err != nil {
		return Process{}, false, fmt.Errorf("read pid file: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return Process{}, false, nil // not ours, or torn: nothing to trust
	}
	pid, err1 := strconv.Atoi(fields[0])
	start, err2 := strconv.ParseUint(fields[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return Process{}, false, nil
	}
	live, err := Stat(pid)
	if err != nil || live.Start != start {
		return Process{}, false, nil
	}
	return live, true, nil
}

// Stat reads pid's start time from /proc; an error means it does not run
// (or is a zombie, which is as good as gone).
func Stat(pid int) (Process, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Process{}, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name is parenthesised and may hold spaces: fields are
	// counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Process{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 {
		return Process{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return Process{}, fmt.Errorf("process %d: exited", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return Process{}, fmt.Errorf("process %d: start time: %w", pid, err)
	}
	return Process{PID: pid, Start: start}, nil
}
