package recovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Failover runs the automatic recovery of a confirmed problem whose action
// is failover: lease → hold-off → record (failover.started) → fence the old
// primary (best effort) → choose the candidate on a fresh look → promote →
// re-point the others in parallel → record completed with every node's
// role. It returns the recovery as recorded. ErrLeaseHeld: another actor
// acts. A recovery left open by a crashed actor is resumed instead.
func (r *Recoverer) Failover(ctx context.Context, in topology.Instance, p analysis.Problem) (topology.Recovery, error) {
	old, ok := in.Primary()
	if !ok {
		return topology.Recovery{}, fmt.Errorf("failover %s: no assigned primary", in.ID)
	}
	x, err := r.start(ctx, in)
	if err != nil {
		return topology.Recovery{}, err
	}
	defer x.end()
	if open, err := r.store.Open(ctx, in.ID); err == nil {
		return x.resume(ctx, open)
	} else if !errors.Is(err, topology.ErrNotFound) {
		return topology.Recovery{}, fmt.Errorf("failover %s: open recovery: %w", in.ID, err)
	}

	// The analysis was made before the lease: another actor may have
	// recovered the instance since. Look again under the lease and act
	// only if a failover is still called for.
	if !stillFailover(in, x.observeAll(ctx)) {
		x.log.Info("failover no longer needed", "problem", string(p.Code))
		return topology.Recovery{}, fmt.Errorf("failover %s: %w", in.ID, ErrProblemGone)
	}

	now := r.now()
	detected := p.DetectedAt
	if detected.IsZero() {
		detected = now
	}
	kind := topology.KindAutomatic
	if r.kind != nil {
		kind = r.kind(ctx, in.ID)
	}
	x.rec = topology.Recovery{
		ID: ulid.Make().String(), InstanceID: in.ID, Tenant: in.Tenant, Engine: in.Engine,
		Kind: kind, Problem: string(p.Code), State: topology.StateStarted, Step: topology.StepDetected,
		OldPrimary: old.ID, DetectedAt: detected,
	}
	if !p.Since.IsZero() {
		x.rec.DetectionMS = ms(detected.Sub(p.Since))
	}
	x.log = x.log.With("recovery", x.rec.ID, "problem", string(p.Code), "old_primary", old.ID)

	last, err := r.store.LastAutomatic(ctx, in.ID)
	switch {
	case err == nil && !last.Acknowledged && last.CompletedAt != nil && now.Sub(*last.CompletedAt) < r.cfg.HoldOff:
		if err := r.store.Begin(ctx, x.lease, x.rec); err != nil {
			return x.rec, fmt.Errorf("record held-off failover of %s: %w", in.ID, err)
		}
		reason := fmt.Sprintf("hold-off: automatic failover %s completed %s ago (hold-off %s) and is not acknowledged",
			last.ID, now.Sub(*last.CompletedAt).Round(time.Second), r.cfg.HoldOff)
		return x.rec, x.fail(ctx, reason, fmt.Errorf("failover %s: %w", in.ID, topology.ErrHoldOff))
	case err != nil && !errors.Is(err, topology.ErrNotFound):
		return topology.Recovery{}, fmt.Errorf("failover %s: last automatic: %w", in.ID, err)
	}

	if err := r.store.Begin(ctx, x.lease, x.rec); err != nil {
		if errors.Is(err, topology.ErrFenced) {
			x.keep = true
		}
		return x.rec, fmt.Errorf("record failover of %s: %w", in.ID, err)
	}
	x.log.Info("failover started", "detail", p.Detail, "detection_ms", x.rec.DetectionMS)
	if err := x.point(AfterBegin); err != nil {
		return x.rec, err
	}

	// Fence first so that a primary we can still reach takes no more
	// writes while the candidate is chosen; a dead one fails fast.
	ferr := bounded(ctx, r.cfg.FenceTimeout, func(c context.Context) error { return x.nodes.Fence(c, in, old) })
	if ferr != nil {
		x.log.Info("old primary not fenced (best effort)", "err", ferr)
	}
	x.rec.Step = topology.StepFenced
	if err := x.save(ctx); err != nil {
		return x.rec, err
	}
	if err := x.point(AfterFence); err != nil {
		return x.rec, err
	}

	views := x.observeAll(ctx)
	choice, err := analysis.Choose(in, list(views), analysis.ChooseOptions{CandidateConfig: r.cfg.Candidate})
	if err != nil {
		x.rollback(ctx, views)
		return x.rec, x.fail(ctx, err.Error(), fmt.Errorf("failover %s: %w", in.ID, err))
	}
	// A reachable old primary is fenced and final: give the candidate a
	// bounded chance to apply everything it has, so nothing is lost.
	if ov := views[old.ID]; ov.Reachable && choice.Behind > 0 {
		err := bounded(ctx, r.cfg.CatchUpTimeout, func(c context.Context) error {
			return x.nodes.WaitCaughtUp(c, in, choice.Node, ov.Position)
		})
		if err != nil {
			lost, _ := analysis.Lost(in.Engine, choice.View.Position, ov.Position)
			x.rec.LostTransactions = lost
			x.log.Warn("candidate did not catch up with the fenced old primary", "candidate", choice.Node.ID, "lost", lost)
		}
	}
	return x.promoteAndFinish(ctx, choice.Node, views)
}

func stillFailover(in topology.Instance, views map[string]topology.NodeView) bool {
	for _, q := range analysis.Analyze(in, list(views), nil) {
		if q.Action == analysis.ActionFailover {
			return true
		}
	}
	return false
}

// promoteAndFinish fences every other writable node, promotes cand,
// re-points the others and records the completion.
func (x *run) promoteAndFinish(ctx context.Context, cand topology.Node, views map[string]topology.NodeView) (topology.Recovery, error) {
	in, r := x.in, x.r
	old, _ := in.Node(x.rec.OldPrimary)
	// Never two writable nodes: before the candidate takes writes, every
	// other node that still does is fenced.
	for _, n := range in.Nodes {
		if v := views[n.ID]; n.ID != cand.ID && v.Reachable && v.Writable {
			if err := bounded(ctx, r.cfg.FenceTimeout, func(c context.Context) error { return x.nodes.Fence(c, in, n) }); err != nil {
				return x.rec, x.fail(ctx, fmt.Sprintf("cannot fence writable node %s: %v", n.ID, err), fmt.Errorf("fence %s: %w", n.ID, err))
			}
		}
	}
	x.rec.Step, x.rec.Candidate, x.rec.CandidateAddress = topology.StepPromoting, cand.ID, cand.Address
	if err := x.save(ctx); err != nil {
		return x.rec, err
	}
	if err := x.point(BeforePromote); err != nil {
		return x.rec, err
	}
	if err := x.confirm(ctx); err != nil {
		return x.rec, err
	}
	promoteStart := r.now()
	if err := bounded(ctx, r.cfg.StepTimeout, func(c context.Context) error { return x.nodes.Promote(c, in, cand) }); err != nil {
		x.rollback(ctx, x.observeAll(ctx))
		return x.rec, x.fail(ctx, fmt.Sprintf("promote %s: %v", cand.ID, err), fmt.Errorf("promote %s: %w", cand.ID, err))
	}
	if err := x.point(AfterPromote); err != nil {
		return x.rec, err
	}
	promoted := r.now()
	if x.rec.PromotedAt == nil {
		x.rec.PromotedAt = &promoted
	}
	x.rec.Step = topology.StepPromoted
	if err := x.save(ctx); err != nil {
		return x.rec, err
	}

	roles := x.repointOthers(ctx, cand, old, views)
	if err := x.point(AfterRepoint); err != nil {
		return x.rec, err
	}
	done := r.now()
	x.rec.State, x.rec.Step, x.rec.CompletedAt, x.rec.Roles = topology.StateCompleted, topology.StepDone, &done, roles
	x.rec.PromotionMS = ms(done.Sub(promoteStart))
	since := x.rec.DetectedAt.Add(-time.Duration(x.rec.DetectionMS) * time.Millisecond)
	x.rec.RTOMS = ms(done.Sub(since))
	if err := x.save(ctx); err != nil {
		return x.rec, err
	}
	x.log.Info("recovery completed", "kind", string(x.rec.Kind), "new_primary", cand.ID,
		"rto_ms", x.rec.RTOMS, "detection_ms", x.rec.DetectionMS, "promotion_ms", x.rec.PromotionMS, "lost", x.rec.LostTransactions)
	return x.rec, nil
}

// repointOthers makes every other replica (and the old primary, when it is
// reachable and has nothing the new primary lacks) a replica of cand, in
// parallel, and returns every node's role after the recovery. A replica
// whose re-point fails keeps the replica role: the ReplicationStopped heal
// retries it.
func (x *run) repointOthers(ctx context.Context, cand, old topology.Node, views map[string]topology.NodeView) map[string]topology.Role {
	in, r := x.in, x.r
	roles := make(map[string]topology.Role, len(in.Nodes))
	var targets []topology.Node
	for _, n := range in.Nodes {
		switch {
		case n.ID == cand.ID:
			roles[n.ID] = topology.RolePrimary
		case n.Role == topology.RoleFenced:
			roles[n.ID] = topology.RoleFenced
		case n.ID == old.ID:
			// Fenced unless it is reachable and re-pointed below.
			roles[n.ID] = topology.RoleFenced
			if views[n.ID].Reachable {
				targets = append(targets, n)
			}
		default:
			roles[n.ID] = topology.RoleReplica
			targets = append(targets, n)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := bounded(ctx, r.cfg.StepTimeout, func(c context.Context) error {
				if n.ID == old.ID {
					errant, err := x.nodes.Errant(c, in, n, cand)
					if err != nil {
						return fmt.Errorf("errant check: %w", err)
					}
					if len(errant) > 0 {
						mu.Lock()
						x.rec.LostTransactions = errant
						mu.Unlock()
						return fmt.Errorf("%d errant transactions: %w", len(errant), ErrErrant)
					}
				}
				return x.nodes.Repoint(c, in, n, cand)
			})
			if err != nil {
				x.log.Warn("re-point after promotion", "node", n.ID, "new_primary", cand.ID, "err", err)
				return
			}
			if n.ID == old.ID {
				mu.Lock()
				roles[n.ID] = topology.RoleReplica
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	x.rec.Step = topology.StepRepointed
	return roles
}

// rollback leaves the topology as it was before the recovery: when the old
// primary is reachable, read-only, at least as advanced as every reachable
// replica and no other node is writable, its writes go back on and the
// replicas that stopped following it are re-pointed. Otherwise nothing is
// touched: the next analysis finds the problem again.
func (x *run) rollback(ctx context.Context, views map[string]topology.NodeView) {
	in, r := x.in, x.r
	old, ok := in.Node(x.rec.OldPrimary)
	if !ok {
		return
	}
	ov := views[old.ID]
	if !ov.Reachable {
		return
	}
	for _, n := range in.Nodes {
		v := views[n.ID]
		if n.ID == old.ID || !v.Reachable {
			continue
		}
		if v.Writable {
			x.log.Warn("rollback: another node is writable; old primary left read-only", "node", n.ID)
			return
		}
		if ahead, err := analysis.AtLeast(in.Engine, ov.Position, v.Position); err != nil || !ahead {
			x.log.Warn("rollback: old primary behind a replica; left read-only", "node", n.ID)
			return
		}
	}
	if !ov.Writable {
		if err := x.confirm(ctx); err != nil {
			x.log.Warn("rollback: lease lost; old primary left read-only", "err", err)
			return
		}
		if err := bounded(ctx, r.cfg.StepTimeout, func(c context.Context) error { return x.nodes.Promote(c, in, old) }); err != nil {
			x.log.Warn("rollback: old primary writes back on", "err", err)
			return
		}
	}
	for _, n := range in.Nodes {
		v := views[n.ID]
		if n.Role != topology.RoleReplica || !v.Reachable || (v.Replicating && v.Source == old.Address && v.SQLRunning) {
			continue
		}
		if err := bounded(ctx, r.cfg.StepTimeout, func(c context.Context) error { return x.nodes.Repoint(c, in, n, old) }); err != nil {
			x.log.Warn("rollback: re-point replica to the old primary", "node", n.ID, "err", err)
		}
	}
	x.log.Info("rolled back: old primary writable again", "old_primary", old.ID)
}

// Resume finishes or rolls back the instance's recovery that a crashed
// actor left open: it takes the lease (a new token fences the crashed
// actor out), looks at every node, and completes the recovery if its
// candidate was promoted (fencing every other writable node first), or
// rolls it back otherwise. ErrNotFound: nothing was open.
func (r *Recoverer) Resume(ctx context.Context, in topology.Instance) (topology.Recovery, error) {
	x, err := r.start(ctx, in)
	if err != nil {
		return topology.Recovery{}, err
	}
	defer x.end()
	open, err := r.store.Open(ctx, in.ID)
	if err != nil {
		return topology.Recovery{}, fmt.Errorf("resume %s: %w", in.ID, err)
	}
	return x.resume(ctx, open)
}

func (x *run) resume(ctx context.Context, open topology.Recovery) (topology.Recovery, error) {
	x.rec = open
	x.log = x.log.With("recovery", open.ID, "step", string(open.Step), "previous_holder", open.Holder)
	x.log.Info("resuming recovery left open")
	// Record the takeover under the new token before acting, so the
	// crashed actor, should it come back, is fenced out of every write.
	if err := x.save(ctx); err != nil {
		return x.rec, err
	}
	views := x.observeAll(ctx)
	cand, hasCand := x.in.Node(open.Candidate)
	cv := views[open.Candidate]
	promoted := hasCand && cv.Reachable &&
		(cv.Writable || open.Step == topology.StepPromoted || open.Step == topology.StepRepointed)
	if promoted {
		return x.promoteAndFinish(ctx, cand, views)
	}
	x.rollback(ctx, views)
	return x.rec, x.fail(ctx, fmt.Sprintf("interrupted at step %s by the crash of %s; rolled back", open.Step, open.Holder), nil)
}
