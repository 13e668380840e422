package backupstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

const drillColumns = "id, tenant_id, instance_id, backup_id, status, scratch_instance_id, started_at, finished_at, expected," +
	" measured, mismatches, restore_seconds, error"

func scanDrill(r store.Scanner) (backup.Drill, error) {
	var d backup.Drill
	var status string
	var finished sql.NullTime
	var expected, measured, mismatches sql.NullString
	err := r.Scan(&d.ID, &d.TenantID, &d.InstanceID, &d.BackupID, &status, &d.ScratchInstanceID, &d.StartedAt, &finished,
		&expected, &measured, &mismatches, &d.RestoreSeconds, &d.Error)
	if err != nil {
		return backup.Drill{}, err
	}
	d.Status, d.StartedAt, d.FinishedAt = backup.DrillStatus(status), d.StartedAt.UTC(), fromNull(finished)
	if expected.Valid {
		d.Expected = &backup.DataStats{}
		if err := jsonScan("drill expected", expected, d.Expected); err != nil {
			return backup.Drill{}, err
		}
	}
	if measured.Valid {
		d.Measured = &backup.DataStats{}
		if err := jsonScan("drill measured", measured, d.Measured); err != nil {
			return backup.Drill{}, err
		}
	}
	if err := jsonScan("drill mismatches", mismatches, &d.Mismatches); err != nil {
		return backup.Drill{}, err
	}
	if len(d.Mismatches) == 0 {
		d.Mismatches = nil
	}
	return d, nil
}

// drillJSON encodes a drill's JSON columns.
func drillJSON(d backup.Drill) (expected, measured any, mismatches string, err error) {
	if d.Expected != nil {
		if expected, err = jsonArg("drill expected", d.Expected); err != nil {
			return nil, nil, "", err
		}
	}
	if d.Measured != nil {
		if measured, err = jsonArg("drill measured", d.Measured); err != nil {
			return nil, nil, "", err
		}
	}
	mismatches, err = jsonArg("drill mismatches", nonNil(d.Mismatches))
	return expected, measured, mismatches, err
}

// CreateDrill records a running drill.
func (s *Store) CreateDrill(ctx context.Context, d backup.Drill) error {
	expected, measured, mismatches, err := drillJSON(d)
	if err != nil {
		return fmt.Errorf("create drill %s: %w", d.ID, err)
	}
	_, err = s.db.SQL().ExecContext(ctx, "INSERT INTO drills ("+drillColumns+") VALUES "+store.Placeholders(13),
		d.ID, d.TenantID, d.InstanceID, d.BackupID, string(d.Status), d.ScratchInstanceID, dbTime(d.StartedAt),
		nullTime(d.FinishedAt), expected, measured, mismatches, d.RestoreSeconds, d.Error)
	if err != nil {
		return fmt.Errorf("create drill %s: %w", d.ID, err)
	}
	return nil
}

// UpdateDrill stores a drill and emits events in the same transaction;
// ErrNotFound when no such drill.
func (s *Store) UpdateDrill(ctx context.Context, d backup.Drill, evs ...eventbus.Event) error {
	expected, measured, mismatches, err := drillJSON(d)
	if err != nil {
		return fmt.Errorf("update drill %s: %w", d.ID, err)
	}
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		ok, err := lockRow(ctx, tx, "SELECT 1 FROM drills WHERE id = ? FOR UPDATE", d.ID)
		if err != nil {
			return fmt.Errorf("update drill %s: %w", d.ID, err)
		}
		if !ok {
			return fmt.Errorf("update drill %s: %w", d.ID, backup.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, "UPDATE drills SET backup_id = ?, status = ?, scratch_instance_id = ?, started_at = ?,"+
			" finished_at = ?, expected = ?, measured = ?, mismatches = ?, restore_seconds = ?, error = ? WHERE id = ?",
			d.BackupID, string(d.Status), d.ScratchInstanceID, dbTime(d.StartedAt), nullTime(d.FinishedAt), expected, measured,
			mismatches, d.RestoreSeconds, d.Error, d.ID)
		if err != nil {
			return fmt.Errorf("update drill %s: %w", d.ID, err)
		}
		if err := tx.Emit(ctx, events.TopicBackups, evs...); err != nil {
			return fmt.Errorf("update drill %s: %w", d.ID, err)
		}
		return nil
	})
}

// ListDrills returns an instance's drills of the tenant ("" for any),
// newest first, at most limit (50 when not positive).
func (s *Store) ListDrills(ctx context.Context, tenant, instanceID string, limit int) ([]backup.Drill, error) {
	if limit <= 0 {
		limit = 50
	}
	q := "SELECT " + drillColumns + " FROM drills WHERE instance_id = ?"
	args := []any{instanceID}
	if tenant != "" {
		q += " AND tenant_id = ?"
		args = append(args, tenant)
	}
	q += " ORDER BY started_at DESC, id DESC LIMIT ?"
	return store.QueryAll(ctx, s.db.SQL(), "list drills of "+instanceID, scanDrill, q, append(args, limit)...)
}

// RunningDrills returns drills left running.
func (s *Store) RunningDrills(ctx context.Context) ([]backup.Drill, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list running drills", scanDrill,
		"SELECT "+drillColumns+" FROM drills WHERE status = ? ORDER BY started_at, id", string(backup.DrillRunning))
}

// IsScratch reports whether the instance is a drill's scratch instance: it
// lives for the drill only, so it gets no backups, archiving or drills of
// its own.
func (s *Store) IsScratch(ctx context.Context, instanceID string) (bool, error) {
	var n int
	if err := s.db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM drills WHERE scratch_instance_id = ?", instanceID).Scan(&n); err != nil {
		return false, fmt.Errorf("is %s a scratch instance: %w", instanceID, err)
	}
	return n > 0, nil
}
