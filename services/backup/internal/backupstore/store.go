// Package backupstore keeps the backup service's state in MySQL: the
// instances it knows (no credentials), policy overrides, backups, archived
// segments, restore jobs and drills, with outbox events written in the same
// transaction as the change they announce.
//
// It stores what it is given: planning, retention and validation are the
// domain's (internal/backup). The tables come from store.OutboxMigrations()
// and services/backup/migrations.
package backupstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
)

// ErrSeq: a segment's Seq is not the instance's last one + 1 (another
// archiver appended first, or the caller skipped one).
var ErrSeq = errors.New("segment out of sequence")

// Store is the MySQL state of the backup service. It is safe for
// concurrent use.
type Store struct{ db *store.DB }

// New returns a store over a migrated database.
func New(db *store.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("backupstore: nil db")
	}
	return &Store{db: db}, nil
}

// Scope of a policy override.
const (
	ScopePlan     = "plan"
	ScopeInstance = "instance"
)

// Emit writes outbox events on their own (the archive's lag transitions).
func (s *Store) Emit(ctx context.Context, evs ...eventbus.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		if err := tx.Emit(ctx, events.TopicBackups, evs...); err != nil {
			return fmt.Errorf("emit backup events: %w", err)
		}
		return nil
	})
}

// dbTime is t in UTC at the column's microsecond precision.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return dbTime(t)
}

// fromNull maps NULL back to the zero time.
func fromNull(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// nullBytes maps an empty slice to NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// jsonArg encodes v for a JSON column.
func jsonArg(what string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(b), nil
}

// jsonScan decodes a JSON column into v; NULL leaves v as it is.
func jsonScan(what string, raw sql.NullString, v any) error {
	if !raw.Valid || raw.String == "" || raw.String == "null" {
		return nil
	}
	if err := json.Unmarshal([]byte(raw.String), v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// isDuplicate reports a duplicate key error (ER_DUP_ENTRY).
func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// lockRow reads one row FOR UPDATE (so events of one aggregate are written
// in commit order) and reports whether it exists.
func lockRow(ctx context.Context, tx *store.Tx, query string, args ...any) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// anys converts a slice for a query's arguments.
func anys[T any](vs []T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}
