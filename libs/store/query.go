package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Scanner is what a row scan needs: both *sql.Row and *sql.Rows are one.
type Scanner interface{ Scan(dest ...any) error }

// QueryAll runs q and returns every row through scan, never nil; errors are
// wrapped with what (the read, for the caller's error message).
func QueryAll[T any](ctx context.Context, db *sql.DB, what string, scan func(Scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Placeholders returns "(?,?,…)" with n marks, for an IN list or one row of
// a multi-row INSERT; with n 0 it is "(NULL)", which an IN matches nothing
// with (where "()" would be a syntax error).
func Placeholders(n int) string {
	if n == 0 {
		return "(NULL)"
	}
	return "(" + strings.Repeat("?,", n-1) + "?)"
}
