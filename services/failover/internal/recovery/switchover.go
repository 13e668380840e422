package recovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Switchover moves the primary role to target (empty: the best candidate)
// without losing a write: the old primary is fenced (read-only), the target
// waits until it has the old primary's exact position (bounded by
// CatchUpTimeout; on timeout the old primary's writes go back on and the
// switchover is recorded failed with ErrCatchUp), then it is promoted and
// every other node, the old primary included, re-pointed to it. With force
// a target that does not catch up (a DR node in another region) is
// promoted anyway and what it lacks is recorded as lost transactions;
// force also lifts the lag bound and a "never" promotion rule.
func (r *Recoverer) Switchover(ctx context.Context, in topology.Instance, target string, force bool) (topology.Recovery, error) {
	old, ok := in.Primary()
	if !ok {
		return topology.Recovery{}, fmt.Errorf("switchover %s: no assigned primary", in.ID)
	}
	x, err := r.start(ctx, in)
	if err != nil {
		return topology.Recovery{}, err
	}
	defer x.end()
	if open, err := r.store.Open(ctx, in.ID); err == nil {
		return topology.Recovery{}, fmt.Errorf("switchover %s: recovery %s at step %s: %w", in.ID, open.ID, open.Step, ErrRecoveryOpen)
	} else if !errors.Is(err, topology.ErrNotFound) {
		return topology.Recovery{}, fmt.Errorf("switchover %s: open recovery: %w", in.ID, err)
	}
	now := r.now()
	x.rec = topology.Recovery{
		ID: ulid.Make().String(), InstanceID: in.ID, Tenant: in.Tenant, Engine: in.Engine,
		Kind: topology.KindSwitchover, Problem: ProblemSwitchover, State: topology.StateStarted, Step: topology.StepDetected,
		OldPrimary: old.ID, DetectedAt: now,
	}
	x.log = x.log.With("recovery", x.rec.ID, "old_primary", old.ID, "target", target, "force", force)

	views := x.observeAll(ctx)
	if ov := views[old.ID]; !ov.Reachable || !ov.Writable {
		return topology.Recovery{}, fmt.Errorf("switchover %s: primary %s (reachable %t, writable %t): %w", in.ID, old.ID, ov.Reachable, ov.Writable, ErrNotSwitchable)
	}
	choice, cerr := analysis.Choose(in, list(views), analysis.ChooseOptions{CandidateConfig: r.cfg.Candidate, Target: target, Force: force})
	if err := r.store.Begin(ctx, x.lease, x.rec); err != nil {
		if errors.Is(err, topology.ErrFenced) {
			x.keep = true
		}
		return x.rec, fmt.Errorf("record switchover of %s: %w", in.ID, err)
	}
	if cerr != nil {
		return x.rec, x.fail(ctx, cerr.Error(), fmt.Errorf("switchover %s: %w", in.ID, cerr))
	}
	cand := choice.Node
	x.rec.Candidate, x.rec.CandidateAddress = cand.ID, cand.Address
	crossRegion := in.Region != "" && cand.Region != in.Region
	// A DR replica that is not even streaming will not catch up: refuse
	// before the primary stops taking writes.
	if cv := views[cand.ID]; crossRegion && !force && !(cv.Replicating && cv.LinkUp && cv.Source == old.Address) {
		return x.rec, x.fail(ctx, fmt.Sprintf("target %s in region %s is not streaming from the primary; use force to accept losing what it lacks", cand.ID, cand.Region),
			fmt.Errorf("switchover %s to %s: %w", in.ID, cand.ID, ErrCatchUp))
	}
	if err := x.point(AfterBegin); err != nil {
		return x.rec, err
	}

	if err := bounded(ctx, r.cfg.StepTimeout, func(c context.Context) error { return x.nodes.Fence(c, in, old) }); err != nil {
		x.rollback(ctx, x.observeAll(ctx))
		return x.rec, x.fail(ctx, fmt.Sprintf("fence old primary %s: %v", old.ID, err), fmt.Errorf("switchover %s: fence: %w", in.ID, err))
	}
	x.rec.Step = topology.StepFenced
	if err := x.save(ctx); err != nil {
		return x.rec, err
	}
	if err := x.point(AfterFence); err != nil {
		return x.rec, err
	}
	octx, cancel := context.WithTimeout(ctx, r.cfg.ObserveTimeout)
	ov := x.nodes.Observe(octx, in, old)
	cancel()
	if !ov.Reachable {
		x.rollback(ctx, x.observeAll(ctx))
		return x.rec, x.fail(ctx, "old primary unreachable after fencing: "+ov.Err, fmt.Errorf("switchover %s: old primary lost", in.ID))
	}
	err = bounded(ctx, r.cfg.CatchUpTimeout, func(c context.Context) error { return x.nodes.WaitCaughtUp(c, in, cand, ov.Position) })
	if err != nil {
		if !force {
			x.rollback(ctx, x.observeAll(ctx))
			return x.rec, x.fail(ctx, fmt.Sprintf("target %s did not reach %+v within %s; old primary writable again", cand.ID, ov.Position, r.cfg.CatchUpTimeout),
				fmt.Errorf("switchover %s to %s: %w", in.ID, cand.ID, ErrCatchUp))
		}
		cctx, cancel := context.WithTimeout(ctx, r.cfg.ObserveTimeout)
		cv := x.nodes.Observe(cctx, in, cand)
		cancel()
		lost, lerr := analysis.Lost(in.Engine, cv.Position, ov.Position)
		if lerr != nil {
			lost = []string{"unknown: " + lerr.Error()}
		}
		x.rec.LostTransactions = lost
		x.log.Warn("forced switchover: target behind the old primary", "lost", lost)
	}
	views = x.observeAll(ctx)
	return x.promoteAndFinish(ctx, cand, views)
}
