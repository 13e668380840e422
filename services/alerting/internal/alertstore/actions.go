package alertstore

import (
	"context"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
)

const actionColumns = "id, fingerprint, tenant, instance_id, node_id, action, status, detail, at"

func scanAction(sc store.Scanner) (ActionRun, error) {
	var r ActionRun
	err := sc.Scan(&r.ID, &r.Fingerprint, &r.Tenant, &r.InstanceID, &r.NodeID, &r.Action, &r.Status, &r.Detail, &r.At)
	r.At = r.At.UTC()
	return r, err
}

// RecordAction stores a run (ID assigned; a zero At is now).
func (s *Store) RecordAction(ctx context.Context, r ActionRun) (ActionRun, error) {
	if r.At.IsZero() {
		r.At = time.Now()
	}
	r.At = dbTime(r.At)
	res, err := s.db.SQL().ExecContext(ctx, "INSERT INTO action_runs (fingerprint, tenant, instance_id, node_id, action, status, detail, at)"+
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?)", r.Fingerprint, r.Tenant, r.InstanceID, r.NodeID, r.Action, r.Status, r.Detail, r.At)
	if err != nil {
		return r, fmt.Errorf("record %s action on %s: %w", r.Action, r.InstanceID, err)
	}
	if r.ID, err = res.LastInsertId(); err != nil {
		return r, fmt.Errorf("record %s action on %s: %w", r.Action, r.InstanceID, err)
	}
	return r, nil
}

// ActionsSince counts an instance's runs (not skipped) since.
func (s *Store) ActionsSince(ctx context.Context, instanceID string, since time.Time) (int, error) {
	var n int
	if err := s.db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM action_runs WHERE instance_id = ? AND at >= ? AND status <> 'skipped'",
		instanceID, dbTime(since)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count actions on %s: %w", instanceID, err)
	}
	return n, nil
}

// ListActions lists runs (tenant's or all), newest first. A limit of 0 or
// less means 100.
func (s *Store) ListActions(ctx context.Context, tenant string, all bool, limit int) ([]ActionRun, error) {
	if limit <= 0 {
		limit = 100
	}
	cond, args := tenantClause("tenant", tenant, all)
	return store.QueryAll(ctx, s.db.SQL(), "list action runs", scanAction,
		"SELECT "+actionColumns+" FROM action_runs WHERE TRUE"+cond+" ORDER BY id DESC LIMIT ?", append(args, limit)...)
}
