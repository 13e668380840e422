package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// Supervise restarts, until ctx ends, the node processes that exit without
// the driver stopping them (kill -9, a crash, a fault injected by a drill):
// RestartDelay after the exit, doubling up to RestartDelayMax while the
// node keeps dying before StableAfter. A restarted node comes up refusing
// writes like every start (see the package comment); the failover service
// assigns its role. Only nodes this driver started or adopted are watched,
// and a node whose pid file is gone was stopped on purpose (by this or
// another driver instance) and is left alone.
//
// Run it once per driver; it returns nil when ctx ends.
func (d *Driver) Supervise(ctx context.Context) error {
	tick := time.NewTicker(d.cfg.SuperviseInterval)
	defer tick.Stop()
	d.log.Info("supervising node processes", "restart_delay", d.cfg.RestartDelay, "restart_delay_max", d.cfg.RestartDelayMax)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			d.superviseOnce(time.Now())
		}
	}
}

// superviseOnce looks at every node once. A node busy with an operation
// (its lock held: a start, stop, reconfiguration) is looked at next time.
func (d *Driver) superviseOnce(now time.Time) {
	d.mu.Lock()
	nodes := make([]*node, 0, len(d.nodes))
	for _, n := range d.nodes {
		nodes = append(nodes, n)
	}
	d.mu.Unlock()
	for _, n := range nodes {
		if !n.mu.TryLock() {
			continue
		}
		d.supervise(n, now)
		n.mu.Unlock()
	}
}

// running reports whether the node's current process lives; n.mu is held.
func (n *node) running() bool {
	if n.pid == 0 {
		return false
	}
	if n.exited != nil {
		select {
		case <-n.exited:
			return false
		default:
			return true
		}
	}
	return alive(n.pid)
}

// restartDelay is the wait before the restart following crashes earlier
// quick deaths.
func (d *Driver) restartDelay(crashes int) time.Duration {
	delay := d.cfg.RestartDelay
	for range crashes {
		if delay >= d.cfg.RestartDelayMax/2 {
			return d.cfg.RestartDelayMax
		}
		delay *= 2
	}
	return min(delay, d.cfg.RestartDelayMax)
}

// supervise checks one node and restarts it when due; n.mu is held.
func (d *Driver) supervise(n *node, now time.Time) {
	if n.removed || !n.supervised {
		return
	}
	log := n.logger(d.log)
	if n.running() {
		if n.crashes > 0 && now.Sub(n.launchedAt) >= StableAfter {
			n.crashes = 0
		}
		return
	}
	// The process is gone. Its pid file says whether that was meant.
	if d.restartedElsewhere(n, log) {
		return
	}
	if n.restartAt.IsZero() {
		delay := d.restartDelay(n.crashes)
		log.Warn("node process exited without a stop; restarting it", "pid", n.pid, "in", delay, "restarts", n.crashes)
		n.pid, n.exited, n.restartAt = 0, nil, now.Add(delay)
		n.dropAdmin()
		return
	}
	if now.Before(n.restartAt) {
		return
	}
	// Several driver instances (provisioning replicas on one host) may
	// supervise the node: the restart is theirs one at a time, and the one
	// that comes second finds the node started (or stopped) already.
	unlock, ok := lockNode(n.dir)
	if !ok {
		return // another driver instance is restarting it: looked at next tick
	}
	defer unlock()
	if d.restartedElsewhere(n, log) {
		return
	}
	n.crashes++
	n.restartAt = time.Time{}
	pid, err := d.spawn(n, d.engine(n.spec.Engine))
	if err != nil {
		delay := d.restartDelay(n.crashes)
		n.pid, n.exited, n.restartAt = 0, nil, now.Add(delay)
		log.Error("restart node process", "err", err, "retry_in", delay)
		return
	}
	log.Info("node process restarted read-only; its role awaits assignment", "pid", pid, "restarts", n.crashes)
}

// Kill sends SIGKILL to the node's server process, as a crash would, and
// waits until it is gone. The stop is not recorded, so Supervise restarts
// the node: that is what a drill checks. Only a running server of a node
// this driver knows is signalled (its pid checked against the binary and
// data directory); ErrNotFound for an unknown node, ErrNotRunning when no
// server runs.
func (d *Driver) Kill(ctx context.Context, nodeID string) error {
	return d.fault(ctx, nodeID, syscall.SIGKILL)
}

// Terminate stops the node's server gracefully (SIGTERM), as an operator's
// kill or a host shutdown would, and waits until it is gone, without
// recording a stop: Supervise restarts it. Errors as Kill's.
func (d *Driver) Terminate(ctx context.Context, nodeID string) error {
	return d.fault(ctx, nodeID, syscall.SIGTERM)
}

func (d *Driver) fault(ctx context.Context, nodeID string, sig syscall.Signal) error {
	n, err := d.lookup(nodeID)
	if err != nil {
		return fmt.Errorf("signal node: %w", err)
	}
	defer n.mu.Unlock()
	pid := d.refresh(n, n.pid)
	if pid == 0 {
		return fmt.Errorf("signal node %s: %w", nodeID, driver.ErrNotRunning)
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal node %s (pid %d): %w", nodeID, pid, err)
	}
	if err := waitGone(ctx, pid, n.exited); err != nil {
		return fmt.Errorf("wait for node %s (pid %d) to exit: %w", nodeID, pid, err)
	}
	n.dropAdmin()
	n.logger(d.log).Warn("fault injected on node", "pid", pid, "signal", sig.String())
	return nil
}

// Assign records a role the failover service gave a node on the engine
// itself (a promotion, a re-pointed replica, a fenced old primary), without
// acting on the engine, so that the node's next start follows it: a Redis
// replica restarts following source (nil: nothing reachable). Every start
// stays read-only whatever the role.
func (d *Driver) Assign(_ context.Context, nodeID string, role driver.Role, source *driver.Endpoint) error {
	n, err := d.lookup(nodeID)
	if err != nil {
		return fmt.Errorf("assign role: %w", err)
	}
	defer n.mu.Unlock()
	if n.state.Role == role && sameEndpoint(n.state.Source, source) {
		return nil
	}
	if err := d.setRole(n, role, n.state.SemiSync, source); err != nil {
		return fmt.Errorf("assign node %s the role %s: %w", nodeID, role, err)
	}
	n.logger(d.log).Info("node role recorded", "role", string(role), "source", source)
	return nil
}

func sameEndpoint(a, b *driver.Endpoint) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// restartedElsewhere reads the node's pid file, whose process is gone: true
// when another driver instance stopped the node (no pid file: it is no
// longer supervised) or started it again (the file names a live server,
// which is now the node's process); n.mu is held.
func (d *Driver) restartedElsewhere(n *node, log *slog.Logger) bool {
	b, err := os.ReadFile(n.pidFile())
	if errors.Is(err, os.ErrNotExist) {
		log.Info("node stopped through another driver instance; no longer supervised", "pid", n.pid)
		n.supervised, n.pid, n.exited, n.restartAt = false, 0, nil, time.Time{}
		n.dropAdmin()
		return true
	}
	if err != nil {
		return false
	}
	bin, rerr := d.engine(n.spec.Engine).server().resolve()
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid != n.pid && rerr == nil && isServer(pid, bin, n.dataDir()) {
		// Started again by another driver instance meanwhile.
		n.pid, n.exited, n.restartAt = pid, nil, time.Time{}
		return true
	}
	return false
}

// lockNode takes the node directory's supervise.lock (flock, exclusive,
// without waiting) for a restart; false when another driver instance holds
// it. The kernel drops the lock with a process that dies holding it.
func lockNode(dir string) (unlock func(), ok bool) {
	f, err := os.OpenFile(filepath.Join(dir, "supervise.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, true
}
