package syncrun

import (
	"context"
	"errors"
	"fmt"
	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
	"log/slog"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/pipeline"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// settlePoll is how often Settle looks again besides each watermark move
// (for the own-transaction grace).
const settlePoll = 100 * time.Millisecond

// Verify runs the stored (running) verification v of job j in the
// background and stores its outcome; Run owns it and ends it when Run's
// context ends.
func (m *Manager) Verify(ctx context.Context, j syncjob.Job, v syncjob.Verification) error {
	m.mu.Lock()
	if m.ctx == nil || m.ctx.Err() != nil {
		m.mu.Unlock()
		return fmt.Errorf("verify job %s: %w", j.ID, ErrNotRunning)
	}
	base := m.ctx
	m.verifying[j.ID]++
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			if m.verifying[j.ID]--; m.verifying[j.ID] <= 0 {
				delete(m.verifying, j.ID)
			}
			m.mu.Unlock()
		}()
		m.runVerify(base, j, v)
	}()
	return nil
}

// scheduledVerify stores and starts a verification of j unless one runs.
func (m *Manager) scheduledVerify(ctx context.Context, j syncjob.Job) error {
	m.mu.Lock()
	busy := m.verifying[j.ID] > 0
	m.mu.Unlock()
	if busy {
		return nil
	}
	v := syncjob.Verification{ID: m.newID(), JobID: j.ID, Tenant: j.Tenant, State: syncjob.VerifyRunning,
		StartedAt: time.Now().UTC()}
	if err := m.repo.CreateVerification(ctx, v); err != nil {
		return fmt.Errorf("store scheduled verification of job %s: %w", j.ID, err)
	}
	return m.Verify(ctx, j, v)
}

func (m *Manager) runVerify(ctx context.Context, j syncjob.Job, v syncjob.Verification) {
	log := m.logger.With("job_id", j.ID, "tenant", j.Tenant, "verification_id", v.ID)
	log.Info("verification started", "repair", v.Repair)
	rep, err := m.verifyJob(ctx, j, v, log)
	done := time.Now().UTC()
	v.FinishedAt = &done
	if err != nil {
		v.State, v.Error = syncjob.VerifyFailed, err.Error()
		log.Warn("verification failed", "err", err)
	} else {
		v.State, v.Report = syncjob.VerifyDone, rep
		log.Info("verification done", "consistent", rep.Consistent, "rows", rep.RowsChecked,
			"differing", rep.DifferingRows, "repaired", rep.Repaired)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := m.repo.FinishVerification(wctx, v); err != nil {
		log.Error("store verification outcome", "err", err)
	}
}

func (m *Manager) verifyJob(ctx context.Context, j syncjob.Job, v syncjob.Verification, log *slog.Logger) (syncjob.Report, error) {
	if j.Spec.Target.Instance == "" {
		return syncjob.Report{}, errors.New("verification compares MySQL tables; this job's target is a Redis cache")
	}
	in, err := m.nodes.Instance(ctx, j.Spec.SourceInstance)
	if err != nil {
		return syncjob.Report{}, fmt.Errorf("resolve source %s: %w", j.Spec.SourceInstance, err)
	}
	n, err := pipeline.PickSource(in, "", "")
	if err != nil {
		return syncjob.Report{}, err
	}
	src := capture.Source{Addr: n.Address, User: in.CDC.Username, Password: in.CDC.Password}
	tin, err := m.nodes.Instance(ctx, j.Spec.Target.Instance)
	if err != nil {
		return syncjob.Report{}, fmt.Errorf("resolve target %s: %w", j.Spec.Target.Instance, err)
	}
	tp, err := primaryOf(tin)
	if err != nil {
		return syncjob.Report{}, err
	}
	tables, err := m.tables(ctx, src, includes(j.Spec.Tables))
	if err != nil {
		return syncjob.Report{}, err
	}
	log.Info("verifying", "source", src.Addr, "target", tp.Address, "tables", len(tables))
	return m.verify(ctx, VerifySpec{Source: src,
		Target: capture.Source{Addr: tp.Address, User: tin.CDC.Username, Password: tin.CDC.Password},
		Tables: tables, TargetDB: route{forward: true}.targetDB(j.Spec), Repair: v.Repair, RepairServerID: j.ServerID,
		Settle: func(ctx context.Context, pos string) error { return m.settle(ctx, j, pos) },
		Logger: m.logger.With("job_id", j.ID, "tenant", j.Tenant, "verification_id", v.ID)})
}

// settle returns once the job's forward direction applied the source up to
// pos (per GTID domain, sequence ≥). A domain whose last transaction at pos
// is the job's own (its reverse direction's write, skipped by the forward
// capture) counts as reached after OwnGrace: the capture passes it only at
// its next checkpoint, which an idle source may not send soon.
func (m *Manager) settle(ctx context.Context, j syncjob.Job, pos string) error {
	want, err := gtidpos.Parse(pos)
	if err != nil {
		return fmt.Errorf("settle job %s: position %q: %w", j.ID, pos, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.SettleTimeout)
	defer cancel()
	started := time.Now()
	t := time.NewTicker(settlePoll)
	defer t.Stop()
	for {
		r := m.runner(j.ID)
		if r == nil {
			return fmt.Errorf("settle job %s at %s: %w", j.ID, pos, ErrNotRunning)
		}
		applied, streaming, moved := r.dirs[0].settled()
		if streaming {
			a, err := gtidpos.Parse(applied)
			if err != nil {
				return fmt.Errorf("settle job %s: watermark %q: %w", j.ID, applied, err)
			}
			if a.Covers(want, 0) || a.Covers(want, j.ServerID) && time.Since(started) >= m.cfg.OwnGrace {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("settle job %s at %s (applied %s): %w", j.ID, pos, applied, ctx.Err())
		case <-moved:
		case <-t.C:
		}
	}
}

// Resolve settles a pending manual conflict: use source forces the stored
// change onto the direction's target (with the job's server id, through the
// applier), use target keeps the target's row. Then the conflict is stored
// resolved.
func (m *Manager) Resolve(ctx context.Context, j syncjob.Job, c syncjob.Conflict, use syncjob.Resolution) error {
	if c.Resolution != "" && c.Resolution != syncjob.ResolvedPending {
		return fmt.Errorf("conflict %s is resolved already (%s): %w", c.ID, c.Resolution, syncjob.ErrConflict)
	}
	switch use {
	case syncjob.ResolvedTarget:
	case syncjob.ResolvedSource:
		if j.Spec.Target.Instance == "" {
			return fmt.Errorf("conflict %s: a cache target has no conflicts to resolve: %w", c.ID, syncjob.ErrConflict)
		}
		rt := route{from: c.From, to: c.To, forward: c.From == j.Spec.SourceInstance}
		tgt, err := m.openDirection(ctx, j, rt)
		if err != nil {
			return fmt.Errorf("resolve conflict %s: %w", c.ID, err)
		}
		defer tgt.Close()
		res, ok := tgt.(Resolver)
		if !ok {
			return fmt.Errorf("resolve conflict %s: target %s cannot force a change", c.ID, c.To)
		}
		if err := res.Resolve(ctx, c, use); err != nil {
			return fmt.Errorf("resolve conflict %s on %s: %w", c.ID, c.To, err)
		}
	default:
		return fmt.Errorf("resolve conflict %s: use %q: want source or target", c.ID, use)
	}
	if err := m.repo.ResolveConflict(ctx, c.ID, use); err != nil {
		return fmt.Errorf("store resolution of conflict %s: %w", c.ID, err)
	}
	m.logger.Info("conflict resolved", "job_id", j.ID, "tenant", j.Tenant, "conflict_id", c.ID, "use", use)
	return nil
}

func splitTable(t string) (db, table string) {
	db, table, _ = strings.Cut(t, ".")
	return db, table
}
