package cache

import (
	"context"
	"database/sql"
	"fmt"
)

// ColumnTypesFrom is a Config.ColumnTypes that reads information_schema of
// the source through db. A table the source no longer has gives no types
// (its rows are then written by their values' Go types) rather than an
// error that would stop the job on a dropped table's last changes.
func ColumnTypesFrom(db *sql.DB) func(ctx context.Context, schema, table string) (map[string]string, error) {
	return func(ctx context.Context, schema, table string) (map[string]string, error) {
		rows, err := db.QueryContext(ctx,
			"SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
			schema, table)
		if err != nil {
			return nil, fmt.Errorf("read column types of %s.%s: %w", schema, table, err)
		}
		defer rows.Close()
		types := map[string]string{}
		for rows.Next() {
			var col, typ string
			if err := rows.Scan(&col, &typ); err != nil {
				return nil, fmt.Errorf("read column types of %s.%s: %w", schema, table, err)
			}
			types[col] = typ
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read column types of %s.%s: %w", schema, table, err)
		}
		return types, nil
	}
}
