package backupstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

const instanceColumns = "id, tenant_id, name, engine, plan_id, state, deleted_at"

// UpsertInstances records instances provisioning lists (id, tenant, name,
// engine, plan, state; nodes and credentials are not stored) and clears
// their DeletedAt. Rows are written in id order so concurrent syncs lock
// alike.
func (s *Store) UpsertInstances(ctx context.Context, ins []backup.Instance) error {
	if len(ins) == 0 {
		return nil
	}
	sorted := slices.Clone(ins)
	slices.SortFunc(sorted, func(a, b backup.Instance) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	now := dbTime(time.Now())
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		for part := range slices.Chunk(sorted, 200) {
			q := "INSERT INTO instances (id, tenant_id, name, engine, plan_id, state, deleted_at, created_at, updated_at) VALUES "
			args := make([]any, 0, len(part)*8)
			for i, in := range part {
				if i > 0 {
					q += ", "
				}
				q += "(?, ?, ?, ?, ?, ?, NULL, ?, ?)"
				args = append(args, in.ID, in.TenantID, in.Name, string(in.Engine), in.PlanID, in.State, now, now)
			}
			q += " ON DUPLICATE KEY UPDATE tenant_id = VALUES(tenant_id), name = VALUES(name), engine = VALUES(engine)," +
				" plan_id = VALUES(plan_id), state = VALUES(state), deleted_at = NULL, updated_at = VALUES(updated_at)"
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("upsert %d instances: %w", len(part), err)
			}
		}
		return nil
	})
}

// MarkDeleted sets DeletedAt of the instances not yet marked.
func (s *Store) MarkDeleted(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	q := "UPDATE instances SET deleted_at = ?, updated_at = ? WHERE deleted_at IS NULL AND id IN " + store.Placeholders(len(ids))
	args := append([]any{dbTime(at), dbTime(time.Now())}, anys(ids)...)
	if _, err := s.db.SQL().ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mark %d instances deleted: %w", len(ids), err)
	}
	return nil
}

// ListInstances returns every known instance, deleted ones included, by id.
func (s *Store) ListInstances(ctx context.Context) ([]backup.Instance, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list instances", scanInstance,
		"SELECT "+instanceColumns+" FROM instances ORDER BY id")
}

// GetInstance returns the instance of tenant ("" for any); ErrNotFound
// when unknown or another tenant's.
func (s *Store) GetInstance(ctx context.Context, tenant, id string) (backup.Instance, error) {
	q := "SELECT " + instanceColumns + " FROM instances WHERE id = ?"
	args := []any{id}
	if tenant != "" {
		q += " AND tenant_id = ?"
		args = append(args, tenant)
	}
	in, err := scanInstance(s.db.SQL().QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return backup.Instance{}, fmt.Errorf("instance %s: %w", id, backup.ErrNotFound)
	}
	if err != nil {
		return backup.Instance{}, fmt.Errorf("get instance %s: %w", id, err)
	}
	return in, nil
}

func scanInstance(r store.Scanner) (backup.Instance, error) {
	var in backup.Instance
	var engine string
	var deleted sql.NullTime
	if err := r.Scan(&in.ID, &in.TenantID, &in.Name, &engine, &in.PlanID, &in.State, &deleted); err != nil {
		return backup.Instance{}, err
	}
	in.Engine, in.DeletedAt = backup.Engine(engine), fromNull(deleted)
	return in, nil
}

// PolicyOverride returns the override of a plan or instance (zero, false
// when none).
func (s *Store) PolicyOverride(ctx context.Context, scope, id string) (backup.PolicyOverride, bool, error) {
	var raw sql.NullString
	err := s.db.SQL().QueryRowContext(ctx, "SELECT body FROM policy_overrides WHERE scope = ? AND id = ?", scope, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return backup.PolicyOverride{}, false, nil
	}
	if err != nil {
		return backup.PolicyOverride{}, false, fmt.Errorf("get %s %s policy override: %w", scope, id, err)
	}
	var o backup.PolicyOverride
	if err := jsonScan("policy override", raw, &o); err != nil {
		return backup.PolicyOverride{}, false, fmt.Errorf("get %s %s policy override: %w", scope, id, err)
	}
	return o, true, nil
}

// SetPolicyOverride stores (replaces) an override.
func (s *Store) SetPolicyOverride(ctx context.Context, scope, id string, o backup.PolicyOverride) error {
	if scope != ScopePlan && scope != ScopeInstance {
		return fmt.Errorf("set policy override: %w: scope %q", backup.ErrInvalid, scope)
	}
	body, err := jsonArg("policy override", o)
	if err != nil {
		return err
	}
	_, err = s.db.SQL().ExecContext(ctx, "INSERT INTO policy_overrides (scope, id, body, updated_at) VALUES (?, ?, ?, ?)"+
		" ON DUPLICATE KEY UPDATE body = VALUES(body), updated_at = VALUES(updated_at)", scope, id, body, dbTime(time.Now()))
	if err != nil {
		return fmt.Errorf("set %s %s policy override: %w", scope, id, err)
	}
	return nil
}
