package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/services/failover/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// drillStore is what the drill runner keeps its reports in; *mysqlstore.Store fits.
type drillStore interface {
	CreateDrill(ctx context.Context, d mysqlstore.Drill) error
	FinishDrill(ctx context.Context, id, state, recoveryID, reason string, at time.Time) error
	RunningDrills(ctx context.Context) ([]mysqlstore.Drill, error)
	DueSchedules(ctx context.Context, now time.Time) ([]mysqlstore.Schedule, error)
	ClaimSchedule(ctx context.Context, sc mysqlstore.Schedule, next time.Time) (bool, error)
	List(ctx context.Context, instanceID, after string, limit int) ([]topology.Recovery, error)
}

// instanceSource reads an instance from provisioning; *provclient.Client fits.
type instanceSource interface {
	Get(ctx context.Context, instanceID string) (topology.Instance, error)
}

// switcher starts planned switchovers: the recoverer.
type switcher interface {
	Switchover(ctx context.Context, instanceID, target string, force bool) (topology.Recovery, error)
}

// drills runs DR drills: it records the report, injects the fault on the
// primary through provisioning's driver (or starts a switchover), and then
// settles the report from the recovery that answered it. The failover
// itself is the watcher's business, exactly as for a real failure.
//
// Every failover replica runs the loop on the shared database: a due
// schedule is claimed by a conditional write before its drill starts, and
// a drill's outcome is written only while it is running, so two replicas
// start one drill per due schedule and record one outcome per drill.
type drills struct {
	store     drillStore
	faults    topology.Faults
	instances instanceSource
	recover   switcher
	logger    *slog.Logger
	// timeout is how long a drill may wait for its recovery.
	timeout time.Duration
	// scheduleEvery is how often due schedules are looked for (default 1m).
	scheduleEvery time.Duration
	now           func() time.Time
}

// Drill records a drill of in and starts it.
func (d *drills) Drill(ctx context.Context, in topology.Instance, kind, requestedBy string) (mysqlstore.Drill, error) {
	p, ok := in.Primary()
	if !ok {
		return mysqlstore.Drill{}, fmt.Errorf("drill on %s: no primary: %w", in.ID, topology.ErrNoCandidate)
	}
	rep := mysqlstore.Drill{ID: ulid.Make().String(), InstanceID: in.ID, Tenant: in.Tenant, Kind: kind, State: mysqlstore.DrillRunning,
		RequestedBy: requestedBy, RequestedAt: d.now().UTC().Truncate(time.Microsecond)}
	if err := d.store.CreateDrill(ctx, rep); err != nil {
		return rep, err
	}
	log := d.logger.With("instance_id", in.ID, "tenant", in.Tenant, "drill_id", rep.ID, "kind", kind)
	var err error
	switch kind {
	case mysqlstore.DrillSwitchover:
		var r topology.Recovery
		if r, err = d.recover.Switchover(ctx, in.ID, "", false); err == nil {
			rep.RecoveryID = r.ID
		}
	case mysqlstore.DrillStopPrimary:
		err = d.faults.Inject(ctx, in.ID, p.ID, topology.FaultStop)
	default:
		err = d.faults.Inject(ctx, in.ID, p.ID, topology.FaultKill)
	}
	if err != nil {
		log.Warn("drill could not start", "err", err)
		at := d.now().UTC()
		if ferr := d.store.FinishDrill(ctx, rep.ID, mysqlstore.DrillFailed, rep.RecoveryID, err.Error(), at); ferr != nil {
			return rep, errors.Join(err, ferr)
		}
		rep.State, rep.Reason, rep.FinishedAt = mysqlstore.DrillFailed, err.Error(), &at
		return rep, nil
	}
	log.Info("drill started", "primary", p.ID)
	return rep, nil
}

// Run settles running drills from the instances' recoveries and, when
// scheduling is on, starts the scheduled drills that are due, until ctx ends.
func (d *drills) Run(ctx context.Context, schedule bool) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastSchedule := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := d.settle(ctx); err != nil && ctx.Err() == nil {
			d.logger.Warn("settle drills", "err", err)
		}
		every := d.scheduleEvery
		if every <= 0 {
			every = time.Minute
		}
		if schedule && time.Since(lastSchedule) >= every {
			lastSchedule = time.Now()
			if err := d.scheduled(ctx); err != nil && ctx.Err() == nil {
				d.logger.Warn("scheduled drills", "err", err)
			}
		}
	}
}

// settle finishes each running drill whose recovery finished: the first
// recovery of the instance recorded as a drill's (its kind was decided
// while the drill was running) and detected after the drill was requested,
// give or take a second of clock skew between replicas. The kind matters:
// a switchover that ended just before the drill was asked for lies within
// that second.
func (d *drills) settle(ctx context.Context) error {
	running, err := d.store.RunningDrills(ctx)
	if err != nil {
		return err
	}
	for _, rep := range running {
		recs, err := d.store.List(ctx, rep.InstanceID, "", 20)
		if err != nil {
			return err
		}
		var answer *topology.Recovery
		for i := range recs { // newest first: the last match is the earliest
			r := recs[i]
			if r.ID == rep.RecoveryID || (rep.RecoveryID == "" && r.Kind == topology.KindDrill && !r.DetectedAt.Before(rep.RequestedAt.Add(-time.Second))) {
				answer = &r
			}
		}
		now := d.now().UTC()
		switch {
		case answer != nil && answer.State == topology.StateCompleted:
			err = d.store.FinishDrill(ctx, rep.ID, mysqlstore.DrillPassed, answer.ID, "", now)
		case answer != nil && answer.State == topology.StateFailed:
			err = d.store.FinishDrill(ctx, rep.ID, mysqlstore.DrillFailed, answer.ID, answer.Reason, now)
		case now.Sub(rep.RequestedAt) > d.timeout:
			err = d.store.FinishDrill(ctx, rep.ID, mysqlstore.DrillFailed, "", fmt.Sprintf("no recovery completed within %s", d.timeout), now)
		default:
			continue
		}
		if errors.Is(err, mysqlstore.ErrDrillFinished) {
			continue // another replica settled it first
		}
		if err != nil {
			return err
		}
		d.logger.Info("drill finished", "instance_id", rep.InstanceID, "tenant", rep.Tenant, "drill_id", rep.ID)
	}
	return nil
}

// scheduled starts the due scheduled drills and moves their schedules on.
func (d *drills) scheduled(ctx context.Context) error {
	due, err := d.store.DueSchedules(ctx, d.now())
	if err != nil {
		return err
	}
	for _, sc := range due {
		every, ok := mysqlstore.CadencePeriod(sc.Cadence)
		if !ok {
			continue
		}
		// Claimed (moved on) first, so a drill that fails to start is not
		// retried every minute, and a replica that lost the claim to
		// another starts nothing.
		won, err := d.store.ClaimSchedule(ctx, sc, d.now().UTC().Add(every))
		if err != nil {
			return err
		}
		if !won {
			continue
		}
		in, err := d.instances.Get(ctx, sc.InstanceID)
		if err != nil {
			d.logger.Warn("scheduled drill skipped", "instance_id", sc.InstanceID, "tenant", sc.Tenant, "err", err)
			continue
		}
		if _, err := d.Drill(ctx, in, sc.DrillKind, "schedule:"+sc.Cadence); err != nil {
			d.logger.Warn("scheduled drill failed", "instance_id", sc.InstanceID, "tenant", sc.Tenant, "err", err)
		}
	}
	return nil
}
