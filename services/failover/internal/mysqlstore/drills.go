package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Drill kinds: the fault a drill injects on the primary, or a switchover.
const (
	DrillKillPrimary = "kill-primary"
	DrillStopPrimary = "stop-primary"
	DrillSwitchover  = "switchover"
)

// Drill states.
const (
	DrillRunning = "running"
	DrillPassed  = "passed"
	DrillFailed  = "failed"
)

// Drill is the report of one DR drill: the fault it injected and the
// recovery that answered it.
type Drill struct {
	ID          string
	InstanceID  string
	Tenant      string
	Kind        string
	State       string
	RecoveryID  string
	Reason      string
	RequestedBy string
	RequestedAt time.Time
	FinishedAt  *time.Time
}

// Schedule is an instance's drill cadence.
type Schedule struct {
	InstanceID string
	Tenant     string
	// Cadence is weekly, monthly or quarterly (the DR plan's node, database
	// and region drills).
	Cadence   string
	DrillKind string
	NextAt    time.Time
}

const drillColumns = "id, instance_id, tenant_id, kind, state, recovery_id, reason, requested_by, requested_at, finished_at"

func scanDrill(row store.Scanner) (Drill, error) {
	var d Drill
	var fin sql.NullTime
	if err := row.Scan(&d.ID, &d.InstanceID, &d.Tenant, &d.Kind, &d.State, &d.RecoveryID, &d.Reason, &d.RequestedBy,
		&d.RequestedAt, &fin); err != nil {
		return Drill{}, err
	}
	d.RequestedAt = d.RequestedAt.UTC()
	if fin.Valid {
		t := fin.Time.UTC()
		d.FinishedAt = &t
	}
	return d, nil
}

// CreateDrill records a drill report.
func (s *Store) CreateDrill(ctx context.Context, d Drill) error {
	if _, err := s.db.SQL().ExecContext(ctx, "INSERT INTO drills ("+drillColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		d.ID, d.InstanceID, d.Tenant, d.Kind, d.State, d.RecoveryID, d.Reason, d.RequestedBy, d.RequestedAt.UTC(),
		nullTime(d.FinishedAt)); err != nil {
		return fmt.Errorf("record drill %s of %s: %w", d.ID, d.InstanceID, err)
	}
	return nil
}

// ErrDrillFinished is FinishDrill's answer when the drill has its outcome
// already: another replica's settle loop (or the drill's own start)
// recorded it first, and the first outcome stands.
var ErrDrillFinished = errors.New("drill already finished")

// FinishDrill sets a running drill's outcome and the recovery that answered
// it. It is conditional on the drill still running, so that two replicas
// settling the same drill record one outcome (ErrDrillFinished for the
// second).
func (s *Store) FinishDrill(ctx context.Context, id, state, recoveryID, reason string, at time.Time) error {
	res, err := s.db.SQL().ExecContext(ctx,
		"UPDATE drills SET state = ?, recovery_id = IF(? = '', recovery_id, ?), reason = ?, finished_at = ? WHERE id = ? AND state = ?",
		state, recoveryID, recoveryID, reason, at.UTC(), id, DrillRunning)
	if err != nil {
		return fmt.Errorf("finish drill %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.GetDrill(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("finish drill %s: %w", id, ErrDrillFinished)
	}
	return nil
}

// GetDrill returns one drill report.
func (s *Store) GetDrill(ctx context.Context, id string) (Drill, error) {
	d, err := scanDrill(s.db.SQL().QueryRowContext(ctx, "SELECT "+drillColumns+" FROM drills WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Drill{}, fmt.Errorf("drill %s: %w", id, topology.ErrNotFound)
	}
	if err != nil {
		return Drill{}, fmt.Errorf("drill %s: %w", id, err)
	}
	return d, nil
}

// ListDrills returns up to limit+1 drill reports, newest first, of one
// tenant (every tenant's when tenant is empty: platform-admin), after the
// cursor id.
func (s *Store) ListDrills(ctx context.Context, tenant, after string, limit int) ([]Drill, error) {
	q := "SELECT " + drillColumns + " FROM drills WHERE 1=1"
	var args []any
	if tenant != "" {
		q += " AND tenant_id = ?"
		args = append(args, tenant)
	}
	if after != "" {
		q += " AND id < ?"
		args = append(args, after)
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list drills: %w", err)
	}
	defer rows.Close()
	out := []Drill{}
	for rows.Next() {
		d, err := scanDrill(rows)
		if err != nil {
			return nil, fmt.Errorf("list drills: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list drills: %w", err)
	}
	return out, nil
}

// PutSchedule sets an instance's drill schedule.
func (s *Store) PutSchedule(ctx context.Context, sc Schedule) error {
	if _, err := s.db.SQL().ExecContext(ctx, `INSERT INTO drill_schedules (instance_id, tenant_id, cadence, drill_kind, next_at, updated_at)
		VALUES (?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE tenant_id = VALUES(tenant_id), cadence = VALUES(cadence),
		drill_kind = VALUES(drill_kind), next_at = VALUES(next_at), updated_at = NOW(6)`,
		sc.InstanceID, sc.Tenant, sc.Cadence, sc.DrillKind, sc.NextAt.UTC()); err != nil {
		return fmt.Errorf("set drill schedule of %s: %w", sc.InstanceID, err)
	}
	return nil
}

// ClaimSchedule moves a due schedule on to next if it still is as sc was
// read (same next_at): the conditional write that lets exactly one of
// several replicas start the drill it was due for. ok is false when
// another replica claimed it first, or the schedule was changed meanwhile.
func (s *Store) ClaimSchedule(ctx context.Context, sc Schedule, next time.Time) (ok bool, err error) {
	res, err := s.db.SQL().ExecContext(ctx,
		"UPDATE drill_schedules SET next_at = ?, updated_at = NOW(6) WHERE instance_id = ? AND next_at = ?",
		next.UTC(), sc.InstanceID, sc.NextAt.UTC())
	if err != nil {
		return false, fmt.Errorf("claim drill schedule of %s: %w", sc.InstanceID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim drill schedule of %s: %w", sc.InstanceID, err)
	}
	return n == 1, nil
}

// DueSchedules returns the schedules whose next drill is due at now.
func (s *Store) DueSchedules(ctx context.Context, now time.Time) ([]Schedule, error) {
	rows, err := s.db.SQL().QueryContext(ctx,
		"SELECT instance_id, tenant_id, cadence, drill_kind, next_at FROM drill_schedules WHERE next_at <= ? ORDER BY next_at LIMIT 100", now.UTC())
	if err != nil {
		return nil, fmt.Errorf("due drill schedules: %w", err)
	}
	defer rows.Close()
	var out []Schedule
	for rows.Next() {
		var sc Schedule
		if err := rows.Scan(&sc.InstanceID, &sc.Tenant, &sc.Cadence, &sc.DrillKind, &sc.NextAt); err != nil {
			return nil, fmt.Errorf("due drill schedules: %w", err)
		}
		sc.NextAt = sc.NextAt.UTC()
		out = append(out, sc)
	}
	return out, rows.Err()
}

// CadencePeriod is how often a drill of the cadence runs: the DR plan's node
// drill weekly, database drill monthly, region drill quarterly.
func CadencePeriod(cadence string) (time.Duration, bool) {
	switch cadence {
	case "weekly":
		return 7 * 24 * time.Hour, true
	case "monthly":
		return 30 * 24 * time.Hour, true
	case "quarterly":
		return 91 * 24 * time.Hour, true
	}
	return 0, false
}

// RunningDrills returns the drills still waiting for their outcome.
func (s *Store) RunningDrills(ctx context.Context) ([]Drill, error) {
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT "+drillColumns+" FROM drills WHERE state = ? ORDER BY id LIMIT 500", DrillRunning)
	if err != nil {
		return nil, fmt.Errorf("running drills: %w", err)
	}
	defer rows.Close()
	var out []Drill
	for rows.Next() {
		d, err := scanDrill(rows)
		if err != nil {
			return nil, fmt.Errorf("running drills: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ActiveDrill returns the instance's running drill, if any (ErrNotFound), so
// the recovery that answers it can be recorded as kind drill and impose no
// hold-off on the next real failure.
func (s *Store) ActiveDrill(ctx context.Context, instanceID string) (Drill, error) {
	d, err := scanDrill(s.db.SQL().QueryRowContext(ctx,
		"SELECT "+drillColumns+" FROM drills WHERE instance_id = ? AND state = ? ORDER BY id DESC LIMIT 1", instanceID, DrillRunning))
	if errors.Is(err, sql.ErrNoRows) {
		return Drill{}, fmt.Errorf("active drill of %s: %w", instanceID, topology.ErrNotFound)
	}
	if err != nil {
		return Drill{}, fmt.Errorf("active drill of %s: %w", instanceID, err)
	}
	return d, nil
}
