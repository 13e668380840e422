// Package fakenodes is an in-memory replication topology implementing
// topology.Nodes for the recovery's and the watcher's tests: nodes that
// can be killed, restarted (always read-only), cut off from the failover
// service only, or left lagging; replicas follow their source instantly
// unless told not to. It checks the one invariant that matters at every
// change: never two writable nodes.
package fakenodes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// ErrRefused is what a dead node answers.
var ErrRefused = errors.New("connection refused")

type node struct {
	id, addr   string
	alive      bool
	writable   bool
	source     string // address it replicates from
	sqlStopped bool
	seq        int64
	// lagging: does not apply what its source has.
	lagging bool
	// hidden: the failover service cannot reach it (replicas still can).
	hidden bool
}

// Cluster is the fake topology. The zero value is not usable; use New.
type Cluster struct {
	engine topology.Engine

	mu          sync.Mutex
	nodes       map[string]*node
	byAddr      map[string]*node
	calls       []string
	violations  []string
	fail        map[string]error
	observeHook func(id string)
}

var _ topology.Nodes = (*Cluster)(nil)

// New builds a cluster for in: the primary writable, replicas streaming
// from it, fenced nodes dead.
func New(in topology.Instance) *Cluster {
	c := &Cluster{engine: in.Engine, nodes: map[string]*node{}, byAddr: map[string]*node{}, fail: map[string]error{}}
	p, _ := in.Primary()
	for _, n := range in.Nodes {
		x := &node{id: n.ID, addr: n.Address, alive: n.Role != topology.RoleFenced}
		switch n.Role {
		case topology.RolePrimary:
			x.writable = true
		case topology.RoleReplica:
			x.source = p.Address
		}
		c.nodes[n.ID] = x
		c.byAddr[n.Address] = x
	}
	return c
}

// sync lets every replica apply what its live source has (twice, for a
// chain of two).
func (c *Cluster) sync() {
	for range 2 {
		for _, n := range c.nodes {
			if !n.alive || n.source == "" || n.sqlStopped || n.lagging {
				continue
			}
			if s := c.byAddr[n.source]; s != nil && s.alive && s.seq > n.seq {
				n.seq = s.seq
			}
		}
	}
}

func (c *Cluster) check(op string) {
	var w []string
	for _, n := range c.nodes {
		if n.alive && n.writable {
			w = append(w, n.id)
		}
	}
	if len(w) > 1 {
		c.violations = append(c.violations, fmt.Sprintf("after %s: writable %v", op, w))
	}
}

// Write commits one transaction on id, as a client would.
func (c *Cluster) Write(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	if !n.alive {
		return ErrRefused
	}
	if !n.writable {
		return fmt.Errorf("%s: read-only", id)
	}
	n.seq++
	c.sync()
	return nil
}

// Kill kills the node's process.
func (c *Cluster) Kill(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[id].alive = false
	c.calls = append(c.calls, "kill "+id)
}

// Restart brings a killed node back, read-only, as the local driver does.
func (c *Cluster) Restart(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	n.alive, n.writable = true, false
	c.sync()
	c.check("restart " + id)
}

// Hide cuts (or restores) the failover service's path to the node only.
func (c *Cluster) Hide(id string, hidden bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[id].hidden = hidden
}

// Lag stops (or resumes) the node's applying of its source.
func (c *Cluster) Lag(id string, lagging bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[id].lagging = lagging
	c.sync()
}

// StopSQL stops the replica's applier thread.
func (c *Cluster) StopSQL(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[id].sqlStopped = true
}

// SetWritable turns writes on or off behind Canopy's back (a fault the
// test injects, so not counted as a violation; Promote is).
func (c *Cluster) SetWritable(id string, w bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[id].writable = w
}

// FailOn makes the next calls of op ("promote", "repoint", "fence") on id
// fail with err (nil clears).
func (c *Cluster) FailOn(op, id string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		delete(c.fail, op+" "+id)
		return
	}
	c.fail[op+" "+id] = err
}

// OnObserve calls f (outside the lock) at every Observe, for tests that
// act at a chosen moment.
func (c *Cluster) OnObserve(f func(id string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observeHook = f
}

// Seq returns how many transactions the node has.
func (c *Cluster) Seq(id string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sync()
	return c.nodes[id].seq
}

// Writable lists the live writable nodes.
func (c *Cluster) Writable() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var w []string
	for _, n := range c.nodes {
		if n.alive && n.writable {
			w = append(w, n.id)
		}
	}
	return w
}

// Source returns the node id the node replicates from ("" for none).
func (c *Cluster) Source(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.byAddr[c.nodes[id].source]; s != nil {
		return s.id
	}
	return ""
}

// Violations lists every moment two nodes were writable.
func (c *Cluster) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// Calls lists the mutating calls made ("promote b", "repoint c→b", ...).
func (c *Cluster) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// Count returns how many calls started with prefix.
func (c *Cluster) Count(call string) int {
	n := 0
	for _, x := range c.Calls() {
		if x == call {
			n++
		}
	}
	return n
}

func (c *Cluster) pos(n *node) topology.Position {
	if c.engine == topology.EngineRedis {
		return topology.Position{ReplID: "r", Offset: n.seq}
	}
	if n.seq == 0 {
		return topology.Position{}
	}
	return topology.Position{GTID: fmt.Sprintf("0-1-%d", n.seq)}
}

// Observe implements topology.Nodes.
func (c *Cluster) Observe(ctx context.Context, in topology.Instance, tn topology.Node) topology.NodeView {
	c.mu.Lock()
	hook := c.observeHook
	c.mu.Unlock()
	if hook != nil {
		hook(tn.ID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sync()
	n := c.nodes[tn.ID]
	v := topology.NodeView{NodeID: tn.ID, ObservedAt: time.Now()}
	if !n.alive || n.hidden {
		v.Err = ErrRefused.Error()
		return v
	}
	v.Reachable, v.Writable = true, n.writable
	v.Position = c.pos(n)
	if n.source != "" {
		s := c.byAddr[n.source]
		v.Replicating, v.Source = true, n.source
		v.LinkUp = s != nil && s.alive
		v.SQLRunning = !n.sqlStopped
	}
	return v
}

func (c *Cluster) op(ctx context.Context, name, id string) (*node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := c.nodes[id]
	if err := c.fail[name+" "+id]; err != nil {
		return nil, err
	}
	if !n.alive || n.hidden {
		return nil, fmt.Errorf("%s %s: %w", name, id, ErrRefused)
	}
	return n, nil
}

// Fence implements topology.Nodes.
func (c *Cluster) Fence(ctx context.Context, in topology.Instance, tn topology.Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.op(ctx, "fence", tn.ID)
	if err != nil {
		return err
	}
	n.writable = false
	c.calls = append(c.calls, "fence "+tn.ID)
	return nil
}

// Promote implements topology.Nodes.
func (c *Cluster) Promote(ctx context.Context, in topology.Instance, tn topology.Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.op(ctx, "promote", tn.ID)
	if err != nil {
		return err
	}
	c.sync()
	n.source, n.writable, n.sqlStopped, n.lagging = "", true, false, false
	c.calls = append(c.calls, "promote "+tn.ID)
	c.check("promote " + tn.ID)
	return nil
}

// Repoint implements topology.Nodes.
func (c *Cluster) Repoint(ctx context.Context, in topology.Instance, tn, primary topology.Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.op(ctx, "repoint", tn.ID)
	if err != nil {
		return err
	}
	n.writable, n.source, n.sqlStopped = false, primary.Address, false
	c.sync()
	c.calls = append(c.calls, "repoint "+tn.ID+"→"+primary.ID)
	return nil
}

// WaitCaughtUp implements topology.Nodes.
func (c *Cluster) WaitCaughtUp(ctx context.Context, in topology.Instance, tn topology.Node, pos topology.Position) error {
	want := pos.Offset
	if c.engine != topology.EngineRedis {
		if _, err := fmt.Sscanf(pos.GTID, "0-1-%d", &want); err != nil && pos.GTID != "" {
			return fmt.Errorf("fake position %q: %w", pos.GTID, err)
		}
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		c.mu.Lock()
		c.sync()
		got := c.nodes[tn.ID].seq
		c.mu.Unlock()
		if got >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait %s at %d for %d: %w", tn.ID, got, want, ctx.Err())
		case <-t.C:
		}
	}
}

// Errant implements topology.Nodes.
func (c *Cluster) Errant(ctx context.Context, in topology.Instance, old, primary topology.Node) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.op(ctx, "errant", old.ID); err != nil {
		return nil, err
	}
	o, p := c.nodes[old.ID], c.nodes[primary.ID]
	if c.engine == topology.EngineRedis || o.seq <= p.seq {
		return nil, nil
	}
	return []string{fmt.Sprintf("0-1-%d..0-1-%d", p.seq+1, o.seq)}, nil
}
