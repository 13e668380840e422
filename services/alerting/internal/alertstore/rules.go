package alertstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
)

func scanRule(sc store.Scanner) (rules.Rule, error) {
	var (
		r      rules.Rule
		tenant string
		body   []byte
	)
	if err := sc.Scan(&tenant, &body); err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("rule %s/%s: %w", tenant, r.ID, err)
	}
	// The columns are the key; the body's copies could only disagree if
	// someone edited the table.
	r.Tenant = tenant
	return r, nil
}

// CreateRule stores a tenant rule (ErrConflict on a duplicate id).
// Validation is the caller's (rules.Rule.Validate).
func (s *Store) CreateRule(ctx context.Context, r rules.Rule) (rules.Rule, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return r, fmt.Errorf("create rule %s: %w", r.ID, err)
	}
	now := dbTime(time.Now())
	_, err = s.db.SQL().ExecContext(ctx, "INSERT INTO rules (tenant, id, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
		r.Tenant, r.ID, string(body), now, now)
	if isDuplicate(err) {
		return r, fmt.Errorf("create rule %s: %w: id taken", r.ID, ErrConflict)
	}
	if err != nil {
		return r, fmt.Errorf("create rule %s: %w", r.ID, err)
	}
	return r, nil
}

// UpdateRule replaces it (the rule of r.Tenant with r.ID; ErrNotFound when
// there is none).
func (s *Store) UpdateRule(ctx context.Context, r rules.Rule) (rules.Rule, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return r, fmt.Errorf("update rule %s: %w", r.ID, err)
	}
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		ok, err := exists(ctx, tx, "SELECT 1 FROM rules WHERE tenant = ? AND id = ? FOR UPDATE", r.Tenant, r.ID)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, "UPDATE rules SET body = ?, updated_at = ? WHERE tenant = ? AND id = ?",
			string(body), dbTime(time.Now()), r.Tenant, r.ID)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("update rule %s: %w", r.ID, err)
	}
	return r, nil
}

// DeleteRule deletes it (ErrNotFound when the tenant has no such rule).
func (s *Store) DeleteRule(ctx context.Context, tenant, id string) error {
	res, err := s.db.SQL().ExecContext(ctx, "DELETE FROM rules WHERE tenant = ? AND id = ?", tenant, id)
	if err != nil {
		return fmt.Errorf("delete rule %s: %w", id, err)
	}
	return affectedOrNotFound(res, "delete rule "+id)
}

// ListRules lists stored rules (tenant's; all: every one), by tenant and
// id. Overrides of a default rule for a tenant (action_enabled, disabled)
// are stored as rules with the default's id and the tenant set.
func (s *Store) ListRules(ctx context.Context, tenant string, all bool) ([]rules.Rule, error) {
	cond, args := tenantClause("tenant", tenant, all)
	return store.QueryAll(ctx, s.db.SQL(), "list rules", scanRule,
		"SELECT tenant, body FROM rules WHERE TRUE"+cond+" ORDER BY tenant, id", args...)
}

// Remediation reports whether a tenant allows remediation actions (off
// unless set).
func (s *Store) Remediation(ctx context.Context, tenant string) (bool, error) {
	var on bool
	err := s.db.SQL().QueryRowContext(ctx, "SELECT remediation FROM settings WHERE tenant = ?", tenant).Scan(&on)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read remediation setting of %q: %w", tenant, err)
	}
	return on, nil
}

// SetRemediation switches it.
func (s *Store) SetRemediation(ctx context.Context, tenant string, on bool) error {
	_, err := s.db.SQL().ExecContext(ctx, "INSERT INTO settings (tenant, remediation, updated_at) VALUES (?, ?, ?)"+
		" ON DUPLICATE KEY UPDATE remediation = VALUES(remediation), updated_at = VALUES(updated_at)",
		tenant, on, dbTime(time.Now()))
	if err != nil {
		return fmt.Errorf("set remediation of %q: %w", tenant, err)
	}
	return nil
}
