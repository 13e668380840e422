package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// controlLoop syncs instances every SyncEvery and evaluates schedules and
// retention every TickEvery, one after the other, until ctx ends. The
// engine is ready after the first successful sync.
func (e *Engine) controlLoop(ctx context.Context) {
	synced := false
	syncT := time.NewTimer(0)
	defer syncT.Stop()
	var tickC <-chan time.Time // nil until the first sync
	tick := time.NewTicker(e.cfg.TickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-syncT.C:
			if err := e.sync(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				e.log.ErrorContext(ctx, "sync instances", slog.Any("err", err))
			} else if !synced {
				synced = true
				tickC = tick.C
				e.readyOnce.Do(func() { close(e.ready) })
				e.tick(ctx)
			}
			syncT.Reset(e.cfg.SyncEvery)
		case <-tickC:
			e.tick(ctx)
		}
	}
}

// sync records provisioning's instances, marks the ones it no longer
// lists deleted, and starts or stops archivers to match.
func (e *Engine) sync(ctx context.Context) error {
	list, err := e.inst.List(ctx)
	if err != nil {
		return fmt.Errorf("list instances: %w", err)
	}
	if err := e.st.UpsertInstances(ctx, list); err != nil {
		return fmt.Errorf("record instances: %w", err)
	}
	live := make(map[string]backup.Instance, len(list))
	for _, in := range list {
		live[in.ID] = in
	}
	known, err := e.st.ListInstances(ctx)
	if err != nil {
		return fmt.Errorf("known instances: %w", err)
	}
	var gone []string
	for _, in := range known {
		if _, ok := live[in.ID]; !ok && in.DeletedAt.IsZero() {
			gone = append(gone, in.ID)
		}
	}
	if len(gone) > 0 {
		if err := e.st.MarkDeleted(ctx, gone, e.now().UTC()); err != nil {
			return fmt.Errorf("mark instances deleted: %w", err)
		}
		e.log.InfoContext(ctx, "instances deleted", slog.Any("instances", gone))
	}
	e.mu.Lock()
	e.live = live
	e.mu.Unlock()

	// Archive every live instance whose policy is enabled: MySQL binlogs,
	// Redis AOFs.
	want := make(map[string]backup.Instance)
	for _, in := range list {
		p, err := e.policyOf(ctx, in)
		if err != nil {
			return err
		}
		if p.Enabled {
			want[in.ID] = in
		}
	}
	e.reconcileArchivers(ctx, want)
	return nil
}

// tick starts the backups that are due and applies retention to every
// instance, the deleted ones included. An instance's failure is logged
// and does not stop the others'.
func (e *Engine) tick(ctx context.Context) {
	known, err := e.st.ListInstances(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.ErrorContext(ctx, "backup tick: list instances", slog.Any("err", err))
		}
		return
	}
	for _, in := range known {
		if ctx.Err() != nil {
			return
		}
		if err := e.tickInstance(ctx, in); err != nil && ctx.Err() == nil {
			e.log.ErrorContext(ctx, "backup tick", slog.String("tenant", in.TenantID), slog.String("instance", in.ID),
				slog.Any("err", err))
		}
	}
}

func (e *Engine) tickInstance(ctx context.Context, in backup.Instance) error {
	p, err := e.policyOf(ctx, in)
	if err != nil {
		return err
	}
	backups, err := e.st.AllBackups(ctx, in.ID)
	if err != nil {
		return fmt.Errorf("backups: %w", err)
	}
	var lastSuccess time.Time
	for _, b := range backups {
		if b.Status == backup.StatusCompleted && b.FinishedAt.After(lastSuccess) {
			lastSuccess = b.FinishedAt
		}
	}
	if !lastSuccess.IsZero() {
		e.m.lastSuccess.WithLabelValues(in.ID).Set(float64(lastSuccess.Unix()))
	}
	if err := e.schedule(ctx, in, p, backups); err != nil {
		return err
	}
	return e.retain(ctx, in, p, backups)
}

// schedule starts the instance's scheduled backup when it is due and a
// slot is free (a due backup that finds none starts at a later tick).
func (e *Engine) schedule(ctx context.Context, known backup.Instance, p backup.Policy, backups []backup.Backup) error {
	if !p.Enabled || !known.DeletedAt.IsZero() {
		return nil
	}
	e.mu.Lock()
	in, live := e.live[known.ID]
	_, busy := e.inflight[known.ID]
	full := len(e.inflight) >= e.cfg.MaxConcurrentBackups
	e.mu.Unlock()
	if !live || busy || full {
		return nil
	}
	var last time.Time
	for _, b := range backups {
		if (b.Trigger == backup.TriggerScheduled || b.Status == backup.StatusCompleted) && b.StartedAt.After(last) {
			last = b.StartedAt
		}
	}
	now := e.now().UTC()
	if backup.NextFull(p, in.Engine, last, now).After(now) {
		return nil
	}
	if _, err := e.start(ctx, in, backup.TriggerScheduled); err != nil && !errors.Is(err, backup.ErrBusy) {
		return fmt.Errorf("scheduled backup: %w", err)
	}
	return nil
}

// retain applies the policy's retention: the objects of dropped backups
// and segments leave both repositories first, then dropped backups are
// marked expired (kept for audit) and dropped segments' rows removed.
func (e *Engine) retain(ctx context.Context, in backup.Instance, p backup.Policy, all []backup.Backup) error {
	segs, err := e.st.Segments(ctx, in.ID, 0)
	if err != nil {
		return fmt.Errorf("segments: %w", err)
	}
	var backups []backup.Backup
	byID := make(map[string]backup.Backup)
	for _, b := range all {
		if b.Status == backup.StatusExpired {
			continue
		}
		backups = append(backups, b)
		byID[b.ID] = b
	}
	r := backup.Retain(p, backups, segs, e.now().UTC())

	dropped := make(map[string]bool, len(r.DropBackups))
	for _, id := range r.DropBackups {
		dropped[id] = true
	}
	for _, id := range r.Monthly {
		b, ok := byID[id]
		if !ok || b.Monthly || dropped[id] {
			continue
		}
		b.Monthly = true
		if err := e.st.UpdateBackup(ctx, b); err != nil {
			return fmt.Errorf("mark backup %s monthly: %w", id, err)
		}
	}
	for _, id := range r.DropBackups {
		b, ok := byID[id]
		if !ok || b.Status == backup.StatusRunning {
			continue // a running backup is never retention's
		}
		ok = e.deleteObjects(ctx, e.blobs, b.TenantID, b.InstanceID, b.ID, b.Objects)
		if e.secondary != nil {
			ok = e.deleteObjects(ctx, e.secondary, b.TenantID, b.InstanceID, b.ID, b.Objects) && ok
		}
		if !ok {
			continue // retried at the next tick
		}
		b.Status = backup.StatusExpired
		if err := e.st.UpdateBackup(ctx, b); err != nil {
			return fmt.Errorf("expire backup %s: %w", id, err)
		}
		e.log.InfoContext(ctx, "backup expired", slog.String("tenant", b.TenantID), slog.String("instance", b.InstanceID),
			slog.String("backup", b.ID))
	}

	if len(r.DropSegments) == 0 {
		return nil
	}
	bySeq := make(map[int64]backup.Segment, len(segs))
	for _, s := range segs {
		bySeq[s.Seq] = s
	}
	var gone []int64
	for _, seq := range r.DropSegments {
		s, ok := bySeq[seq]
		if !ok {
			continue
		}
		if err := e.blobs.Delete(ctx, s.Object.Key); err != nil {
			e.log.WarnContext(ctx, "delete segment object", slog.String("key", s.Object.Key), slog.Any("err", err))
			continue
		}
		if e.secondary != nil {
			if err := e.secondary.Delete(ctx, s.Object.Key); err != nil {
				e.log.WarnContext(ctx, "delete segment copy", slog.String("key", s.Object.Key), slog.Any("err", err))
				continue
			}
		}
		gone = append(gone, seq)
	}
	if len(gone) == 0 {
		return nil
	}
	if err := e.st.DeleteSegments(ctx, in.ID, gone); err != nil {
		return fmt.Errorf("delete segments: %w", err)
	}
	e.log.InfoContext(ctx, "segments expired", slog.String("tenant", in.TenantID), slog.String("instance", in.ID),
		slog.Int("segments", len(gone)))
	return nil
}
