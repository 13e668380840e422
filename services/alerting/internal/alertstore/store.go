// Package alertstore keeps the alerting service's state in MySQL: alerts,
// silences (expired ones kept for audit), receivers, tenant rules and
// settings, the notification log, the notification queue (deliveries,
// with attempts and dead letters) and remediation records. Everything the
// engine needs to restart without losing or re-sending notifications.
//
// It stores what it is given: merging alerts, deciding transitions and
// validating input are the engine's and the API's. The tables come from
// store.OutboxMigrations() and services/alerting/migrations.
package alertstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/store"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict") // duplicate name/id
)

// DefaultClaimLease is how long a delivery claimed by DueDeliveries stays
// hidden from the next call unless Delivered or Failed settles it first.
const DefaultClaimLease = time.Minute

// maxStatementBytes bounds the long values of one multi-row statement.
const maxStatementBytes = 4 << 20

// batchRows bounds the rows of one multi-row statement (placeholders stay
// far below MySQL's 65,535 and the packet small).
const batchRows = 500

// Store is the MySQL store. It is safe for concurrent use.
type Store struct {
	db         *store.DB
	claimLease time.Duration
}

// New wraps an open, migrated database.
func New(db *store.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("alertstore: nil db")
	}
	return &Store{db: db, claimLease: DefaultClaimLease}, nil
}

// SetClaimLease changes how long DueDeliveries hides a claimed delivery
// (DefaultClaimLease); it should exceed a send's timeout. Call it before
// use.
func (s *Store) SetClaimLease(d time.Duration) {
	if d > 0 {
		s.claimLease = d
	}
}

// tenantClause returns the SQL condition (with a leading " AND ") and its
// argument that limit rows of column col to tenant, or nothing when all.
func tenantClause(col, tenant string, all bool) (string, []any) {
	if all {
		return "", nil
	}
	return " AND " + col + " = ?", []any{tenant}
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

// isDuplicate reports a duplicate key error (ER_DUP_ENTRY).
func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// exists reports whether q (a SELECT 1 ...) finds a row.
func exists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
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

// chunks calls fn with consecutive pieces of at most n elements.
func chunks[T any](vs []T, n int, fn func([]T) error) error {
	for len(vs) > 0 {
		k := min(n, len(vs))
		if err := fn(vs[:k]); err != nil {
			return err
		}
		vs = vs[k:]
	}
	return nil
}

// statementChunks calls fn with consecutive pieces of vs for one multi-row
// statement each: at most batchRows rows and, past the first row, at most
// maxStatementBytes of the rows' size (their long values), so a statement
// stays well under the server's max_allowed_packet (16 MiB by default)
// even once escaped.
func statementChunks[T any](vs []T, size func(T) int, fn func([]T) error) error {
	for len(vs) > 0 {
		end, bytes := 0, 0
		for end < len(vs) && end < batchRows {
			bytes += size(vs[end])
			if end > 0 && bytes > maxStatementBytes {
				break
			}
			end++
		}
		if err := fn(vs[:end]); err != nil {
			return err
		}
		vs = vs[end:]
	}
	return nil
}

// affectedOrNotFound turns an update that matched no row into ErrNotFound.
func affectedOrNotFound(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// Stamp is a cheap fingerprint of a configuration table's content (its row
// count and newest updated_at): any insert, update or delete changes it,
// so the engine re-reads receivers or rules only when another replica's
// API changed them.
type Stamp struct {
	Rows    int64
	Updated time.Time
}

// Same reports whether o stamps the same content.
func (s Stamp) Same(o Stamp) bool { return s.Rows == o.Rows && s.Updated.Equal(o.Updated) }

// ReceiversStamp is the Stamp of the receivers.
func (s *Store) ReceiversStamp(ctx context.Context) (Stamp, error) {
	return s.stamp(ctx, "SELECT COUNT(*), MAX(updated_at) FROM receivers")
}

// RulesStamp is the Stamp of the tenant rules.
func (s *Store) RulesStamp(ctx context.Context) (Stamp, error) {
	return s.stamp(ctx, "SELECT COUNT(*), MAX(updated_at) FROM rules")
}

func (s *Store) stamp(ctx context.Context, query string) (Stamp, error) {
	var (
		st      Stamp
		updated sql.NullTime
	)
	if err := s.db.SQL().QueryRowContext(ctx, query).Scan(&st.Rows, &updated); err != nil {
		return Stamp{}, fmt.Errorf("stamp: %w", err)
	}
	st.Updated = updated.Time
	return st, nil
}
