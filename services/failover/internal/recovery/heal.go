package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Rejoin brings a fenced node that returned back as a read-only replica of
// the current primary: if it has nothing the primary lacks it is
// re-pointed and failover.node.rejoined emitted. If it has errant
// transactions (writes of an old primary that never reached the new one,
// possible on async links) it is kept read-only and, with a Rebuilder,
// rebuilt from the primary, recorded rejoined with rebuilt=true and the
// lost transactions, re-pointed and checked to replicate (see rebuild).
// Without a Rebuilder it stays fenced, the rejoin is recorded with
// rebuilt=false and the lost transactions, and ErrErrant is returned.
func (r *Recoverer) Rejoin(ctx context.Context, in topology.Instance, nodeID string) error {
	n, ok := in.Node(nodeID)
	if !ok {
		return fmt.Errorf("rejoin %s/%s: %w", in.ID, nodeID, topology.ErrNotFound)
	}
	p, ok := in.Primary()
	if !ok || p.ID == nodeID {
		return fmt.Errorf("rejoin %s/%s: no other primary to follow", in.ID, nodeID)
	}
	x, err := r.start(ctx, in)
	if err != nil {
		return err
	}
	defer x.end()
	if err := x.noOpen(ctx); err != nil {
		return err
	}
	log := x.log.With("node", nodeID, "primary", p.ID)
	var errant []string
	err = bounded(ctx, r.cfg.StepTimeout, func(c context.Context) error {
		var err error
		errant, err = x.nodes.Errant(c, in, n, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("rejoin %s/%s: errant check: %w", in.ID, nodeID, err)
	}
	if len(errant) > 0 {
		// Keep it read-only: it must never serve the writes it has alone.
		if ferr := bounded(ctx, r.cfg.FenceTimeout, func(c context.Context) error { return x.nodes.Fence(c, in, n) }); ferr != nil {
			log.Warn("fence errant node", "err", ferr)
		}
		if r.rebuild != nil {
			return x.rebuild(ctx, n, p, errant, log)
		}
		if err := r.store.Rejoined(ctx, in, nodeID, p.ID, false, errant); err != nil {
			return fmt.Errorf("rejoin %s/%s: record: %w", in.ID, nodeID, err)
		}
		log.Error("fenced node has errant transactions; kept read-only and fenced, rebuild from the primary required", "lost", errant)
		return fmt.Errorf("rejoin %s/%s: %d transactions: %w", in.ID, nodeID, len(errant), ErrErrant)
	}
	if err := bounded(ctx, r.cfg.StepTimeout, func(c context.Context) error { return x.nodes.Repoint(c, in, n, p) }); err != nil {
		return fmt.Errorf("rejoin %s/%s: re-point: %w", in.ID, nodeID, err)
	}
	if err := r.store.Rejoined(ctx, in, nodeID, p.ID, false, nil); err != nil {
		return fmt.Errorf("rejoin %s/%s: record: %w", in.ID, nodeID, err)
	}
	log.Info("fenced node rejoined as replica")
	return nil
}

// RebuildReplica replaces a replica's data with a copy of the primary's and
// makes it replicate again: the remedy (an alert's rebuild-replica action,
// or an operator's) for a replica whose replication broke beyond a
// re-point, such as a purged binlog or diverged rows. It runs under the
// instance's lease like every recovery: the replica is fenced, rebuilt
// through the Rebuilder, recorded rejoined with rebuilt=true, re-pointed and
// checked to replicate. ErrNotReplica for another role, ErrNoRebuilder
// without a Rebuilder.
func (r *Recoverer) RebuildReplica(ctx context.Context, in topology.Instance, nodeID string) error {
	n, ok := in.Node(nodeID)
	if !ok {
		return fmt.Errorf("rebuild %s/%s: %w", in.ID, nodeID, topology.ErrNotFound)
	}
	if n.Role != topology.RoleReplica {
		return fmt.Errorf("rebuild %s/%s (a %s): %w", in.ID, nodeID, n.Role, ErrNotReplica)
	}
	p, ok := in.Primary()
	if !ok {
		return fmt.Errorf("rebuild %s/%s: no primary to copy: %w", in.ID, nodeID, topology.ErrNoCandidate)
	}
	if r.rebuild == nil || in.Engine != topology.EngineMySQL {
		return fmt.Errorf("rebuild %s/%s: %w", in.ID, nodeID, ErrNoRebuilder)
	}
	x, err := r.start(ctx, in)
	if err != nil {
		return err
	}
	defer x.end()
	if err := x.noOpen(ctx); err != nil {
		return err
	}
	// The copy needs a node that neither replicates nor takes writes.
	if err := bounded(ctx, r.cfg.FenceTimeout, func(c context.Context) error { return x.nodes.Fence(c, in, n) }); err != nil {
		return fmt.Errorf("rebuild %s/%s: fence: %w", in.ID, nodeID, err)
	}
	return x.rebuild(ctx, n, p, nil, x.log.With("node", nodeID, "primary", p.ID))
}

// rebuild replaces the data of n, a returning old primary with errant
// transactions, with a copy of primary's, then makes it a replica of
// primary and checks that it replicates. The errant transactions are logged
// before the copy destroys them and recorded (failover.node.rejoined with
// rebuilt=true and the lost list) as soon as the rebuild succeeded, before
// the re-point: from then on the node is a clean copy, safe to call a
// replica even if the re-point fails (the watcher re-points a replica whose
// replication stopped), while the lost list exists nowhere else. A failed
// rebuild leaves the node fenced with its data (provisioning restores it)
// and is retried by the caller; nothing is recorded then.
func (x *run) rebuild(ctx context.Context, n, primary topology.Node, errant []string, log *slog.Logger) error {
	in := x.in
	if len(errant) > 0 {
		log.Error("fenced node has errant transactions; rebuilding it from the primary, they are lost", "lost", errant)
	} else {
		log.Warn("rebuilding replica from the primary")
	}
	// The rebuild destroys data: only the current lease holder may ask.
	if err := x.confirm(ctx); err != nil {
		return err
	}
	began := x.r.now()
	if err := x.rebuildLeased(ctx, n, primary); err != nil {
		return fmt.Errorf("rejoin %s/%s: rebuild from %s: %w", in.ID, n.ID, primary.ID, err)
	}
	if err := x.r.store.Rejoined(ctx, in, n.ID, primary.ID, true, errant); err != nil {
		return fmt.Errorf("rejoin %s/%s: record rebuild (lost %v): %w", in.ID, n.ID, errant, err)
	}
	if err := x.confirm(ctx); err != nil {
		return err
	}
	if err := bounded(ctx, x.r.cfg.StepTimeout, func(c context.Context) error { return x.nodes.Repoint(c, in, n, primary) }); err != nil {
		return fmt.Errorf("rejoin %s/%s: re-point rebuilt node: %w", in.ID, n.ID, err)
	}
	if err := bounded(ctx, x.r.cfg.StepTimeout, func(c context.Context) error { return x.replicates(c, n, primary) }); err != nil {
		return fmt.Errorf("rejoin %s/%s: rebuilt node: %w", in.ID, n.ID, err)
	}
	log.Warn("fenced node rebuilt from the primary and rejoined as replica", "lost", len(errant), "took", x.r.now().Sub(began))
	return nil
}

// rebuildLeased asks for the rebuild and, while it runs (a copy of the
// primary's data can outlast the lease), renews the lease every third of
// its TTL; losing the lease cancels the request, and provisioning then puts
// the node back as it was.
func (x *run) rebuildLeased(ctx context.Context, n, primary topology.Node) error {
	rctx, cancel := context.WithTimeout(ctx, rebuildTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- x.r.rebuild.Rebuild(rctx, x.in.ID, n.ID, primary.Address) }()
	renew := time.NewTicker(max(x.r.cfg.LeaseTTL/3, time.Millisecond))
	defer renew.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-renew.C:
			if err := x.confirm(ctx); err != nil {
				cancel()
				<-done
				return err
			}
		}
	}
}

// rebuildTimeout bounds a rebuild (a copy of the primary's data and a
// restart of the node); the caller's context usually ends it first.
const rebuildTimeout = 10 * time.Minute

// replicatePoll paces the check that a re-pointed node replicates.
const replicatePoll = 20 * time.Millisecond

// replicates waits until n replicates from primary with both threads
// running, or ctx ends.
func (x *run) replicates(ctx context.Context, n, primary topology.Node) error {
	t := time.NewTicker(replicatePoll)
	defer t.Stop()
	for {
		oc, cancel := context.WithTimeout(ctx, x.r.cfg.ObserveTimeout)
		v := x.nodes.Observe(oc, x.in, n)
		cancel()
		if v.Reachable && v.Replicating && v.Source == primary.Address && v.LinkUp && v.SQLRunning && !v.Writable {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not replicating from %s (reachable %t, source %q, link up %t, applier %t, err %q): %w",
				primary.Address, v.Reachable, v.Source, v.LinkUp, v.SQLRunning, v.Err, ctx.Err())
		case <-t.C:
		}
	}
}

func (x *run) noOpen(ctx context.Context) error {
	open, err := x.r.store.Open(ctx, x.in.ID)
	switch {
	case err == nil:
		return fmt.Errorf("instance %s: recovery %s at step %s: %w", x.in.ID, open.ID, open.Step, ErrRecoveryOpen)
	case errors.Is(err, topology.ErrNotFound):
		return nil
	default:
		return fmt.Errorf("instance %s: open recovery: %w", x.in.ID, err)
	}
}

// Heal runs the recovery of a problem whose action is not a failover:
// writes back on for a read-only primary, fence a writable replica or a
// second primary, re-point a replica whose replication stopped, rejoin a
// fenced node (failover actions are passed to Failover). Under the lease it
// looks at every node again and acts only if the same problem still holds,
// so a stale analysis never acts.
func (r *Recoverer) Heal(ctx context.Context, in topology.Instance, p analysis.Problem) error {
	switch p.Action {
	case analysis.ActionFailover:
		_, err := r.Failover(ctx, in, p)
		return err
	case analysis.ActionRejoin:
		return r.Rejoin(ctx, in, p.Node)
	case analysis.ActionNone, "":
		return nil
	}
	x, err := r.start(ctx, in)
	if err != nil {
		return err
	}
	defer x.end()
	if err := x.noOpen(ctx); err != nil {
		return err
	}
	views := x.observeAll(ctx)
	still := false
	for _, q := range analysis.Analyze(in, list(views), nil) {
		if q.Code == p.Code && q.Node == p.Node && q.Action == p.Action {
			still = true
			break
		}
	}
	if !still {
		x.log.Info("problem gone before heal", "problem", string(p.Code), "node", p.Node)
		return nil
	}
	n, ok := in.Node(p.Node)
	if !ok {
		return fmt.Errorf("heal %s: node %s: %w", in.ID, p.Node, topology.ErrNotFound)
	}
	primary, _ := in.Primary()
	var act func(context.Context) error
	switch p.Action {
	case analysis.ActionMakeWritable:
		act = func(c context.Context) error { return x.nodes.Promote(c, in, n) }
	case analysis.ActionFence:
		act = func(c context.Context) error { return x.nodes.Fence(c, in, n) }
	case analysis.ActionRepoint:
		act = func(c context.Context) error { return x.nodes.Repoint(c, in, n, primary) }
	default:
		return fmt.Errorf("heal %s: unknown action %q", in.ID, p.Action)
	}
	if err := x.confirm(ctx); err != nil {
		return err
	}
	if err := bounded(ctx, r.cfg.StepTimeout, act); err != nil {
		return fmt.Errorf("heal %s: %s %s: %w", in.ID, p.Action, p.Node, err)
	}
	x.log.Info("healed", "problem", string(p.Code), "action", string(p.Action), "node", p.Node, "detail", p.Detail)
	return nil
}

// Apply returns in with the roles a completed recovery assigned, so a
// caller can follow the new topology before provisioning republishes it.
func Apply(in topology.Instance, roles map[string]topology.Role) topology.Instance {
	out := in
	out.Nodes = append([]topology.Node(nil), in.Nodes...)
	for i, n := range out.Nodes {
		if role, ok := roles[n.ID]; ok {
			out.Nodes[i].Role = role
		}
	}
	return out
}
