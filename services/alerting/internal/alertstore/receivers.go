package alertstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/canopy-platform/canopy/libs/store"
)

const receiverColumns = "id, tenant, name, url, secret, matchers, group_by, group_wait_ms, group_interval_ms," +
	" repeat_interval_ms, send_resolved, continue_flag, position, created_at, updated_at"

func scanReceiver(sc store.Scanner) (Receiver, error) {
	var (
		r                        Receiver
		matchers, groupBy        []byte
		wait, interval, repeatMS int64
	)
	if err := sc.Scan(&r.ID, &r.Tenant, &r.Name, &r.URL, &r.Secret, &matchers, &groupBy, &wait, &interval, &repeatMS,
		&r.SendResolved, &r.Continue, &r.Position, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return r, err
	}
	if err := json.Unmarshal(matchers, &r.Matchers); err != nil {
		return r, fmt.Errorf("receiver %s matchers: %w", r.ID, err)
	}
	if err := json.Unmarshal(groupBy, &r.GroupBy); err != nil {
		return r, fmt.Errorf("receiver %s group_by: %w", r.ID, err)
	}
	r.GroupWait = time.Duration(wait) * time.Millisecond
	r.GroupInterval = time.Duration(interval) * time.Millisecond
	r.RepeatInterval = time.Duration(repeatMS) * time.Millisecond
	r.HasSecret = r.Secret != ""
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, nil
}

// encodeLists encodes a receiver's matchers and group_by; nil stays null
// (group_by null and [] differ for the API's defaults).
func encodeLists(r Receiver) (matchers, groupBy string, err error) {
	m, err := json.Marshal(r.Matchers)
	if err != nil {
		return "", "", fmt.Errorf("encode matchers: %w", err)
	}
	g, err := json.Marshal(r.GroupBy)
	if err != nil {
		return "", "", fmt.Errorf("encode group_by: %w", err)
	}
	return string(m), string(g), nil
}

// CreateReceiver stores a receiver (ID assigned, position last). A name
// its owner already uses is ErrConflict. Validation and defaults are the
// API's.
func (s *Store) CreateReceiver(ctx context.Context, r Receiver) (Receiver, error) {
	r.ID = uuid.NewString()
	now := dbTime(time.Now())
	r.CreatedAt, r.UpdatedAt = now, now
	r.HasSecret = r.Secret != ""
	matchers, groupBy, err := encodeLists(r)
	if err != nil {
		return r, fmt.Errorf("create receiver %s: %w", r.Name, err)
	}
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(position), 0) + 1 FROM receivers WHERE tenant = ? FOR UPDATE",
			r.Tenant).Scan(&r.Position); err != nil {
			return fmt.Errorf("next position: %w", err)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO receivers ("+receiverColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			r.ID, r.Tenant, r.Name, r.URL, r.Secret, matchers, groupBy, r.GroupWait.Milliseconds(), r.GroupInterval.Milliseconds(),
			r.RepeatInterval.Milliseconds(), r.SendResolved, r.Continue, r.Position, r.CreatedAt, r.UpdatedAt)
		return err
	})
	if isDuplicate(err) {
		return r, fmt.Errorf("create receiver %s: %w: name taken", r.Name, ErrConflict)
	}
	if err != nil {
		return r, fmt.Errorf("create receiver %s: %w", r.Name, err)
	}
	return r, nil
}

// UpdateReceiver replaces a receiver's fields (tenant-checked: r.Tenant
// must be the stored receiver's, else ErrNotFound). The secret is replaced
// too (an API PATCH without one passes the stored one on); a Position of 0
// keeps the stored position; CreatedAt is kept.
func (s *Store) UpdateReceiver(ctx context.Context, r Receiver) (Receiver, error) {
	matchers, groupBy, err := encodeLists(r)
	if err != nil {
		return r, fmt.Errorf("update receiver %s: %w", r.ID, err)
	}
	r.UpdatedAt = dbTime(time.Now())
	r.HasSecret = r.Secret != ""
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		var pos int64
		err := tx.QueryRowContext(ctx, "SELECT position, created_at FROM receivers WHERE id = ? AND tenant = ? FOR UPDATE",
			r.ID, r.Tenant).Scan(&pos, &r.CreatedAt)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		r.CreatedAt = r.CreatedAt.UTC()
		if r.Position == 0 {
			r.Position = pos
		}
		_, err = tx.ExecContext(ctx, "UPDATE receivers SET name = ?, url = ?, secret = ?, matchers = ?, group_by = ?,"+
			" group_wait_ms = ?, group_interval_ms = ?, repeat_interval_ms = ?, send_resolved = ?, continue_flag = ?,"+
			" position = ?, updated_at = ? WHERE id = ?",
			r.Name, r.URL, r.Secret, matchers, groupBy, r.GroupWait.Milliseconds(), r.GroupInterval.Milliseconds(),
			r.RepeatInterval.Milliseconds(), r.SendResolved, r.Continue, r.Position, r.UpdatedAt, r.ID)
		return err
	})
	if isDuplicate(err) {
		return r, fmt.Errorf("update receiver %s: %w: name taken", r.ID, ErrConflict)
	}
	if err != nil {
		return r, fmt.Errorf("update receiver %s: %w", r.ID, err)
	}
	return r, nil
}

// DeleteReceiver deletes it (its queued deliveries are dead-lettered with
// reason "receiver deleted"; its notification log goes too).
func (s *Store) DeleteReceiver(ctx context.Context, tenant string, all bool, id string) error {
	now := dbTime(time.Now())
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		cond, args := tenantClause("tenant", tenant, all)
		res, err := tx.ExecContext(ctx, "DELETE FROM receivers WHERE id = ?"+cond, append([]any{id}, args...)...)
		if err != nil {
			return fmt.Errorf("delete receiver %s: %w", id, err)
		}
		if err := affectedOrNotFound(res, "delete receiver "+id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE deliveries SET dead_at = ?, claimed_until = NULL, last_error = 'receiver deleted'"+
			" WHERE receiver = ? AND delivered_at IS NULL AND dead_at IS NULL", now, id); err != nil {
			return fmt.Errorf("delete receiver %s: dead-letter its deliveries: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM nflog WHERE receiver = ?", id); err != nil {
			return fmt.Errorf("delete receiver %s: notification log: %w", id, err)
		}
		return nil
	})
}

// GetReceiver returns one receiver, secret included, tenant-checked.
func (s *Store) GetReceiver(ctx context.Context, tenant string, all bool, id string) (Receiver, error) {
	cond, args := tenantClause("tenant", tenant, all)
	r, err := scanReceiver(s.db.SQL().QueryRowContext(ctx,
		"SELECT "+receiverColumns+" FROM receivers WHERE id = ?"+cond, append([]any{id}, args...)...))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("receiver %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read receiver %s: %w", id, err)
	}
	return r, nil
}

// ListReceivers lists a tenant's receivers (all: every receiver, grouped
// by owner), in route order, secrets included (callers never serialise
// Secret).
func (s *Store) ListReceivers(ctx context.Context, tenant string, all bool) ([]Receiver, error) {
	cond, args := tenantClause("tenant", tenant, all)
	return store.QueryAll(ctx, s.db.SQL(), "list receivers", scanReceiver,
		"SELECT "+receiverColumns+" FROM receivers WHERE TRUE"+cond+" ORDER BY tenant, position, created_at, id", args...)
}
