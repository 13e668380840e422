package backupstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

const restoreColumns = "id, tenant_id, source_instance_id, target_instance_id, engine, target, plan, status, phase, seed," +
	" reached_gtid, error, created_at, updated_at"

func scanRestore(r store.Scanner) (backup.Restore, error) {
	var rs backup.Restore
	var engine, status string
	var target, plan sql.NullString
	err := r.Scan(&rs.ID, &rs.TenantID, &rs.SourceInstanceID, &rs.TargetInstanceID, &engine, &target, &plan, &status,
		&rs.Phase, &rs.Seed, &rs.ReachedGTID, &rs.Error, &rs.CreatedAt, &rs.UpdatedAt)
	if err != nil {
		return backup.Restore{}, err
	}
	rs.Engine, rs.Status = backup.Engine(engine), backup.RestoreStatus(status)
	rs.CreatedAt, rs.UpdatedAt = rs.CreatedAt.UTC(), rs.UpdatedAt.UTC()
	if err := jsonScan("restore target", target, &rs.Target); err != nil {
		return backup.Restore{}, err
	}
	var sp planJSON
	if err := jsonScan("restore plan", plan, &sp); err != nil {
		return backup.Restore{}, err
	}
	rs.Plan = sp.plan()
	return rs, nil
}

// planJSON is a restore plan as stored: the domain's JSON plus the wrapped
// data keys of the backup and segments, which their JSON leaves out (the
// API never shows them) but the job needs to open the objects.
type planJSON struct {
	backup.RestorePlan
	BackupKey   []byte   `json:"backup_wrapped_key,omitempty"`
	SegmentKeys [][]byte `json:"segment_wrapped_keys,omitempty"`
}

func storedPlan(p backup.RestorePlan) planJSON {
	sp := planJSON{RestorePlan: p, BackupKey: p.Backup.WrappedKey}
	for _, sg := range p.Segments {
		sp.SegmentKeys = append(sp.SegmentKeys, sg.WrappedKey)
	}
	return sp
}

func (sp planJSON) plan() backup.RestorePlan {
	p := sp.RestorePlan
	if len(sp.BackupKey) > 0 {
		p.Backup.WrappedKey = sp.BackupKey
	}
	for i := range p.Segments {
		if i < len(sp.SegmentKeys) && len(sp.SegmentKeys[i]) > 0 {
			p.Segments[i].WrappedKey = sp.SegmentKeys[i]
		}
	}
	return p
}

// restoreJSON encodes a job's target and plan. The plan's backup keeps its
// wrapped key: the job needs it to open the objects, and json:"-" would
// drop it.
func restoreJSON(r backup.Restore) (target, plan string, err error) {
	if target, err = jsonArg("restore target", r.Target); err != nil {
		return "", "", err
	}
	if plan, err = jsonArg("restore plan", storedPlan(r.Plan)); err != nil {
		return "", "", err
	}
	return target, plan, nil
}

// CreateRestore records a pending restore job. A zero CreatedAt is now; a
// zero UpdatedAt is CreatedAt.
func (s *Store) CreateRestore(ctx context.Context, r backup.Restore) error {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	target, plan, err := restoreJSON(r)
	if err != nil {
		return fmt.Errorf("create restore %s: %w", r.ID, err)
	}
	_, err = s.db.SQL().ExecContext(ctx, "INSERT INTO restores ("+restoreColumns+") VALUES "+store.Placeholders(14),
		r.ID, r.TenantID, r.SourceInstanceID, r.TargetInstanceID, string(r.Engine), target, plan, string(r.Status), r.Phase,
		r.Seed, r.ReachedGTID, r.Error, dbTime(r.CreatedAt), dbTime(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create restore %s: %w", r.ID, err)
	}
	return nil
}

// UpdateRestore stores a restore job (by id); a zero UpdatedAt is now.
// ErrNotFound when no such job.
func (s *Store) UpdateRestore(ctx context.Context, r backup.Restore) error {
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = time.Now()
	}
	target, plan, err := restoreJSON(r)
	if err != nil {
		return fmt.Errorf("update restore %s: %w", r.ID, err)
	}
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		ok, err := lockRow(ctx, tx, "SELECT 1 FROM restores WHERE id = ? FOR UPDATE", r.ID)
		if err != nil {
			return fmt.Errorf("update restore %s: %w", r.ID, err)
		}
		if !ok {
			return fmt.Errorf("update restore %s: %w", r.ID, backup.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, "UPDATE restores SET target = ?, plan = ?, status = ?, phase = ?, seed = ?, reached_gtid = ?,"+
			" error = ?, updated_at = ? WHERE id = ?",
			target, plan, string(r.Status), r.Phase, r.Seed, r.ReachedGTID, r.Error, dbTime(r.UpdatedAt), r.ID)
		if err != nil {
			return fmt.Errorf("update restore %s: %w", r.ID, err)
		}
		return nil
	})
}

// GetRestore returns a restore job; ErrNotFound when unknown.
func (s *Store) GetRestore(ctx context.Context, id string) (backup.Restore, error) {
	r, err := scanRestore(s.db.SQL().QueryRowContext(ctx, "SELECT "+restoreColumns+" FROM restores WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return backup.Restore{}, fmt.Errorf("restore %s: %w", id, backup.ErrNotFound)
	}
	if err != nil {
		return backup.Restore{}, fmt.Errorf("get restore %s: %w", id, err)
	}
	return r, nil
}

// ActiveRestores returns jobs pending, running or ready, oldest first.
func (s *Store) ActiveRestores(ctx context.Context) ([]backup.Restore, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list active restores", scanRestore,
		"SELECT "+restoreColumns+" FROM restores WHERE status IN (?, ?, ?) ORDER BY created_at, id",
		string(backup.RestorePending), string(backup.RestoreRunning), string(backup.RestoreReady))
}
