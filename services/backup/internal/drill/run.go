package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
)

// cleanupTimeout bounds deleting a scratch instance and recording the
// report once the drill itself ended (timed out or shut down).
const cleanupTimeout = 2 * time.Minute

// interrupted is the error of a drill its process did not finish.
const interrupted = "interrupted"

// Run runs scheduled drills until ctx ends. It first finishes the drills a
// dead process left running, and at its end waits for the drills under
// way (each deletes its scratch instance and records "interrupted").
func (r *Runner) Run(ctx context.Context) error {
	defer r.wg.Wait()
	defer r.stop()
	if err := r.finishInterrupted(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return err
	}
	tick := time.NewTicker(r.cfg.TickEvery)
	defer tick.Stop()
	for {
		r.schedule(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// finishInterrupted deletes the scratch instances of drills left running
// and fails them "interrupted".
func (r *Runner) finishInterrupted(ctx context.Context) error {
	running, err := r.st.RunningDrills(ctx)
	if err != nil {
		return fmt.Errorf("drill: running drills: %w", err)
	}
	for _, d := range running {
		if r.isBusy(d.InstanceID) {
			continue // ours: started before Run
		}
		log := r.log.With("drill", d.ID, "tenant", d.TenantID, "instance", d.InstanceID, "scratch", d.ScratchInstanceID)
		d.Status, d.Error = backup.DrillFailed, interrupted
		if d.ScratchInstanceID != "" {
			if err := r.deleteScratch(ctx, d.TenantID, d.ScratchInstanceID); err != nil {
				// The drill stays running: the next start tries again
				// rather than forget an instance we created.
				log.ErrorContext(ctx, "delete scratch instance of an interrupted drill", "err", err)
				continue
			}
		}
		if err := r.finish(ctx, d); err != nil {
			log.ErrorContext(ctx, "record interrupted drill", "err", err)
			continue
		}
		log.WarnContext(ctx, "drill interrupted by a restart; scratch instance deleted")
	}
	return nil
}

// schedule starts the drills that are due.
func (r *Runner) schedule(ctx context.Context) {
	ins, err := r.st.ListInstances(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.ErrorContext(ctx, "list instances for drills", "err", err)
		}
		return
	}
	now := r.now()
	for _, in := range ins {
		if !in.DeletedAt.IsZero() || r.isBusy(in.ID) {
			continue
		}
		p, err := r.policy(ctx, in)
		if err != nil {
			r.log.ErrorContext(ctx, "drill policy", "tenant", in.TenantID, "instance", in.ID, "err", err)
			continue
		}
		if !p.Enabled || p.DrillEvery <= 0 {
			continue
		}
		last, err := r.st.ListDrills(ctx, in.TenantID, in.ID, 1)
		if err != nil {
			r.log.ErrorContext(ctx, "last drill", "tenant", in.TenantID, "instance", in.ID, "err", err)
			continue
		}
		var lastAt time.Time
		if len(last) > 0 {
			lastAt = last[0].StartedAt
		} else if lastAt, err = r.firstBackupAt(ctx, in.ID); err != nil || lastAt.IsZero() {
			// No drill yet: the first comes a period after the first
			// completed backup, not at once (a new instance's first
			// backup would otherwise be drilled within seconds).
			continue
		}
		next := backup.NextDrill(p, lastAt, now)
		if next.IsZero() || now.Before(next) {
			continue
		}
		switch _, err := r.start(ctx, in); {
		case errors.Is(err, backup.ErrNoBackup), errors.Is(err, backup.ErrBusy):
			r.log.DebugContext(ctx, "scheduled drill skipped", "tenant", in.TenantID, "instance", in.ID, "reason", err)
		case err != nil:
			r.log.ErrorContext(ctx, "start scheduled drill", "tenant", in.TenantID, "instance", in.ID, "err", err)
		}
	}
}

// policy is the instance's effective policy: the platform's, the plan's
// override, the instance's.
func (r *Runner) policy(ctx context.Context, in backup.Instance) (backup.Policy, error) {
	var overrides []backup.PolicyOverride
	for _, s := range []struct{ scope, id string }{{backupstore.ScopePlan, in.PlanID}, {backupstore.ScopeInstance, in.ID}} {
		if s.id == "" {
			continue
		}
		o, ok, err := r.st.PolicyOverride(ctx, s.scope, s.id)
		if err != nil {
			return backup.Policy{}, fmt.Errorf("%s override %s: %w", s.scope, s.id, err)
		}
		if ok {
			overrides = append(overrides, o)
		}
	}
	return backup.Resolve(r.cfg.Policy, overrides...), nil
}

// run carries a recorded drill through: order the scratch instance, wait
// for it, measure, compare, delete it, report.
func (r *Runner) run(ctx context.Context, in backup.Instance, b backup.Backup, d backup.Drill) {
	log := r.log.With("drill", d.ID, "tenant", in.TenantID, "instance", in.ID, "backup", b.ID)
	d = r.restoreAndMeasure(ctx, log, in, b, d)
	// The report and the scratch instance's removal must happen even when
	// the drill's own time ran out or the process is stopping.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if d.ScratchInstanceID != "" {
		if err := r.deleteScratch(cctx, in.TenantID, d.ScratchInstanceID); err != nil {
			log.ErrorContext(cctx, "delete scratch instance", "scratch", d.ScratchInstanceID, "err", err)
			if d.Error == "" {
				d.Error = fmt.Sprintf("scratch instance %s not deleted: %v", d.ScratchInstanceID, err)
			}
			// Left running, the next start deletes it and reports
			// the drill interrupted.
			d.Status = backup.DrillRunning
			if err := r.st.UpdateDrill(cctx, d); err != nil {
				log.ErrorContext(cctx, "record drill", "err", err)
			}
			return
		}
	}
	if err := r.finish(cctx, d); err != nil {
		log.ErrorContext(cctx, "record drill report", "err", err)
		return
	}
	log.InfoContext(cctx, "drill finished", "status", d.Status, "restore_seconds", d.RestoreSeconds,
		"mismatches", len(d.Mismatches), "error", d.Error)
}

// restoreAndMeasure returns the drill with its outcome and the scratch
// instance (if one was ordered), which the caller deletes.
func (r *Runner) restoreAndMeasure(ctx context.Context, log *slog.Logger, in backup.Instance, b backup.Backup, d backup.Drill) backup.Drill {
	failed := func(format string, args ...any) backup.Drill {
		d.Status, d.Error = backup.DrillFailed, fmt.Sprintf(format, args...)
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			d.Error = interrupted
		}
		return d
	}
	if b.Stats == nil {
		return failed("backup %s has no verification stats to compare with", b.ID)
	}
	started := r.now()
	scratch, err := r.prov.CreateRestored(ctx, in.TenantID, ScratchName(in.Name, d.ID), in.PlanID, in.ID, b.ID)
	if err != nil {
		return failed("order scratch instance: %v", err)
	}
	d.ScratchInstanceID = scratch
	if err := r.st.UpdateDrill(ctx, d); err != nil {
		return failed("record scratch instance %s: %v", scratch, err)
	}
	log.InfoContext(ctx, "scratch instance ordered", "scratch", scratch)
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	ready, err := r.waitReady(wctx, scratch)
	if err != nil {
		return failed("restore into scratch instance %s: %v", scratch, err)
	}
	d.RestoreSeconds = r.now().Sub(started).Seconds()
	measured, err := r.measure(wctx, ready, *b.Stats, r.cfg.Sample)
	if err != nil {
		return failed("measure scratch instance %s: %v", scratch, err)
	}
	d.Measured = &measured
	d.Mismatches = backup.CompareStats(*b.Stats, measured)
	if len(d.Mismatches) > 0 {
		return failed("restored data differs from the backup's verification in %d places", len(d.Mismatches))
	}
	d.Status = backup.DrillSucceeded
	return d
}

// waitReady polls the scratch instance until provisioning reports it
// ready; failed, or the context's end, is an error. Not found is waited
// on: provisioning shows an instance once it has nodes.
func (r *Runner) waitReady(ctx context.Context, id string) (backup.Instance, error) {
	tick := time.NewTicker(r.cfg.PollEvery)
	defer tick.Stop()
	var lastErr error
	state := "unknown"
	for {
		in, err := r.prov.Get(ctx, id)
		switch {
		case err == nil && in.State == stateReady:
			return in, nil
		case err == nil && (in.State == stateFailed || in.State == stateDeleting || in.State == stateDeleted):
			return backup.Instance{}, fmt.Errorf("provisioning reports it %s", in.State)
		case err == nil:
			state = in.State
		case errors.Is(err, backup.ErrNotFound):
			state = "not yet listed"
		default:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return backup.Instance{}, fmt.Errorf("not ready (%s) when the drill ended: %w; last error: %v", state, ctx.Err(), lastErr)
			}
			return backup.Instance{}, fmt.Errorf("not ready (%s) when the drill ended: %w", state, ctx.Err())
		case <-tick.C:
		}
	}
}

// deleteScratch deletes a scratch instance, retrying while provisioning is
// busy with it (still creating) or unreachable.
func (r *Runner) deleteScratch(ctx context.Context, tenant, id string) error {
	return retry.Do(ctx, retry.Policy{Initial: r.cfg.PollEvery, Max: 30 * time.Second, MaxElapsed: cleanupTimeout},
		func(ctx context.Context) error { return r.prov.Delete(ctx, tenant, id) })
}

// finish records the drill's end and publishes its outcome.
func (r *Runner) finish(ctx context.Context, d backup.Drill) error {
	if d.Status == backup.DrillRunning {
		d.Status = backup.DrillFailed
	}
	d.FinishedAt = r.now().UTC()
	typ := events.TypeDrillCompleted
	if d.Status != backup.DrillSucceeded {
		typ = events.TypeDrillFailed
	}
	out := events.DrillOutcome{DrillID: d.ID, TenantID: d.TenantID, InstanceID: d.InstanceID, BackupID: d.BackupID,
		ScratchInstanceID: d.ScratchInstanceID, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt,
		RestoreSeconds: d.RestoreSeconds, Mismatches: d.Mismatches, Error: d.Error}
	if d.Measured != nil {
		out.Tables = d.Measured.Tables
	}
	ev, err := eventbus.NewEvent(typ, events.SourceBackup, d.InstanceID, out)
	if err != nil {
		return fmt.Errorf("drill %s event: %w", d.ID, err)
	}
	ev.Tenant = d.TenantID
	if err := r.st.UpdateDrill(ctx, d, ev); err != nil {
		return fmt.Errorf("record drill %s: %w", d.ID, err)
	}
	return nil
}

// firstBackupAt is when the instance's oldest completed backup finished
// (zero: none yet).
func (r *Runner) firstBackupAt(ctx context.Context, instanceID string) (time.Time, error) {
	all, err := r.st.AllBackups(ctx, instanceID)
	if err != nil {
		return time.Time{}, fmt.Errorf("backups of %s: %w", instanceID, err)
	}
	for _, b := range all {
		if b.Status == backup.StatusCompleted || b.Status == backup.StatusExpired {
			return b.FinishedAt, nil
		}
	}
	return time.Time{}, nil
}
