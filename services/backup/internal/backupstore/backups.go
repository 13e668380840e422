package backupstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

const backupColumns = "id, tenant_id, instance_id, engine, kind, trigger_kind, status, node_id, from_replica, started_at," +
	" finished_at, data_bytes, stored_bytes, gtid, consistent_at, repl_offset, verified, verified_at, stats, objects," +
	" wrapped_key, copies, monthly, error"

// backupArgs are b's values in backupColumns' order.
func backupArgs(b backup.Backup) ([]any, error) {
	var stats any
	if b.Stats != nil {
		s, err := jsonArg("backup stats", b.Stats)
		if err != nil {
			return nil, err
		}
		stats = s
	}
	objects, err := jsonArg("backup objects", nonNil(b.Objects))
	if err != nil {
		return nil, err
	}
	copies, err := jsonArg("backup copies", nonNil(b.Copies))
	if err != nil {
		return nil, err
	}
	return []any{b.ID, b.TenantID, b.InstanceID, string(b.Engine), string(b.Kind), string(b.Trigger), string(b.Status),
		b.NodeID, b.FromReplica, dbTime(b.StartedAt), nullTime(b.FinishedAt), b.DataBytes, b.StoredBytes, b.GTID,
		nullTime(b.ConsistentAt), b.Offset, b.Verified, nullTime(b.VerifiedAt), stats, objects, nullBytes(b.WrappedKey),
		copies, b.Monthly, b.Error}, nil
}

func nonNil[T any](vs []T) []T {
	if vs == nil {
		return []T{}
	}
	return vs
}

func scanBackup(r store.Scanner) (backup.Backup, error) {
	var b backup.Backup
	var engine, kind, trigger, status string
	var finished, consistent, verified sql.NullTime
	var stats, objects, copies sql.NullString
	err := r.Scan(&b.ID, &b.TenantID, &b.InstanceID, &engine, &kind, &trigger, &status, &b.NodeID, &b.FromReplica,
		&b.StartedAt, &finished, &b.DataBytes, &b.StoredBytes, &b.GTID, &consistent, &b.Offset, &b.Verified, &verified,
		&stats, &objects, &b.WrappedKey, &copies, &b.Monthly, &b.Error)
	if err != nil {
		return backup.Backup{}, err
	}
	b.Engine, b.Kind, b.Trigger, b.Status = backup.Engine(engine), backup.Kind(kind), backup.Trigger(trigger), backup.Status(status)
	b.StartedAt, b.FinishedAt, b.ConsistentAt, b.VerifiedAt = b.StartedAt.UTC(), fromNull(finished), fromNull(consistent), fromNull(verified)
	if stats.Valid {
		b.Stats = &backup.DataStats{}
		if err := jsonScan("backup stats", stats, b.Stats); err != nil {
			return backup.Backup{}, err
		}
	}
	if err := jsonScan("backup objects", objects, &b.Objects); err != nil {
		return backup.Backup{}, err
	}
	if err := jsonScan("backup copies", copies, &b.Copies); err != nil {
		return backup.Backup{}, err
	}
	if len(b.Objects) == 0 {
		b.Objects = nil
	}
	if len(b.Copies) == 0 {
		b.Copies = nil
	}
	if len(b.WrappedKey) == 0 {
		b.WrappedKey = nil
	}
	return b, nil
}

// isRunningDuplicate reports a second running backup of an instance: a
// duplicate in the backups_one_running key (the server names the key).
func isRunningDuplicate(err error) bool {
	return isDuplicate(err) && strings.Contains(err.Error(), "backups_one_running")
}

// CreateBackup records a running backup; ErrBusy when the instance has one
// running already (the backups_one_running unique key decides, so two
// processes cannot both start one).
func (s *Store) CreateBackup(ctx context.Context, b backup.Backup) error {
	args, err := backupArgs(b)
	if err != nil {
		return fmt.Errorf("create backup %s: %w", b.ID, err)
	}
	_, err = s.db.SQL().ExecContext(ctx, "INSERT INTO backups ("+backupColumns+") VALUES "+store.Placeholders(len(args)), args...)
	if isRunningDuplicate(err) {
		return fmt.Errorf("create backup of instance %s: %w", b.InstanceID, backup.ErrBusy)
	}
	if err != nil {
		return fmt.Errorf("create backup %s: %w", b.ID, err)
	}
	return nil
}

// UpdateBackup stores b (by id) and emits events (on events.TopicBackups)
// in the same transaction; ErrNotFound when no such backup.
func (s *Store) UpdateBackup(ctx context.Context, b backup.Backup, evs ...eventbus.Event) error {
	args, err := backupArgs(b)
	if err != nil {
		return fmt.Errorf("update backup %s: %w", b.ID, err)
	}
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		ok, err := lockRow(ctx, tx, "SELECT 1 FROM backups WHERE id = ? FOR UPDATE", b.ID)
		if err != nil {
			return fmt.Errorf("update backup %s: %w", b.ID, err)
		}
		if !ok {
			return fmt.Errorf("update backup %s: %w", b.ID, backup.ErrNotFound)
		}
		// id, tenant, instance, engine and kind never change.
		_, err = tx.ExecContext(ctx, "UPDATE backups SET trigger_kind = ?, status = ?, node_id = ?, from_replica = ?,"+
			" started_at = ?, finished_at = ?, data_bytes = ?, stored_bytes = ?, gtid = ?, consistent_at = ?, repl_offset = ?,"+
			" verified = ?, verified_at = ?, stats = ?, objects = ?, wrapped_key = ?, copies = ?, monthly = ?, error = ?"+
			" WHERE id = ?", append(args[5:], b.ID)...)
		if isRunningDuplicate(err) {
			return fmt.Errorf("update backup %s: %w", b.ID, backup.ErrBusy)
		}
		if err != nil {
			return fmt.Errorf("update backup %s: %w", b.ID, err)
		}
		if err := tx.Emit(ctx, events.TopicBackups, evs...); err != nil {
			return fmt.Errorf("update backup %s: %w", b.ID, err)
		}
		return nil
	})
}

// GetBackup returns a backup of the tenant's instance ("" tenant: any; ""
// instance: any of the tenant's); ErrNotFound otherwise.
func (s *Store) GetBackup(ctx context.Context, tenant, instanceID, id string) (backup.Backup, error) {
	q := "SELECT " + backupColumns + " FROM backups WHERE id = ?"
	args := []any{id}
	if instanceID != "" {
		q += " AND instance_id = ?"
		args = append(args, instanceID)
	}
	if tenant != "" {
		q += " AND tenant_id = ?"
		args = append(args, tenant)
	}
	b, err := scanBackup(s.db.SQL().QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return backup.Backup{}, fmt.Errorf("backup %s: %w", id, backup.ErrNotFound)
	}
	if err != nil {
		return backup.Backup{}, fmt.Errorf("get backup %s: %w", id, err)
	}
	return b, nil
}

// ListBackups returns an instance's backups, newest first (by StartedAt,
// then id), after the cursor (a backup id, "" from the start), at most
// limit. ErrNotFound when the instance is another tenant's or unknown to
// the tenant; ErrInvalid for a cursor that is not a backup of the
// instance.
func (s *Store) ListBackups(ctx context.Context, tenant, instanceID, after string, limit int) ([]backup.Backup, error) {
	if tenant != "" {
		if _, err := s.GetInstance(ctx, tenant, instanceID); err != nil {
			return nil, fmt.Errorf("list backups: %w", err)
		}
	}
	if limit <= 0 {
		limit = 50
	}
	q := "SELECT " + backupColumns + " FROM backups WHERE instance_id = ?"
	args := []any{instanceID}
	if tenant != "" {
		q += " AND tenant_id = ?"
		args = append(args, tenant)
	}
	if after != "" {
		var startedAt sql.NullTime
		err := s.db.SQL().QueryRowContext(ctx, "SELECT started_at FROM backups WHERE id = ? AND instance_id = ?", after, instanceID).Scan(&startedAt)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("list backups: %w: cursor %s is not a backup of instance %s", backup.ErrInvalid, after, instanceID)
		}
		if err != nil {
			return nil, fmt.Errorf("list backups of %s: %w", instanceID, err)
		}
		q += " AND (started_at < ? OR (started_at = ? AND id < ?))"
		args = append(args, startedAt.Time, startedAt.Time, after)
	}
	q += " ORDER BY started_at DESC, id DESC LIMIT ?"
	args = append(args, limit)
	return store.QueryAll(ctx, s.db.SQL(), "list backups of "+instanceID, scanBackup, q, args...)
}

// AllBackups returns every backup of an instance (any tenant), oldest
// first, for retention and planning.
func (s *Store) AllBackups(ctx context.Context, instanceID string) ([]backup.Backup, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list all backups of "+instanceID, scanBackup,
		"SELECT "+backupColumns+" FROM backups WHERE instance_id = ? ORDER BY started_at, id", instanceID)
}

// RunningBackups returns backups left running (by a process that died).
func (s *Store) RunningBackups(ctx context.Context) ([]backup.Backup, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list running backups", scanBackup,
		"SELECT "+backupColumns+" FROM backups WHERE status = ? ORDER BY started_at, id", string(backup.StatusRunning))
}
