package mysqlphys

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// tenantTables lists the tenant's base tables (every schema but the
// system ones and Canopy's own: canopy_meta, which provisioning's verify
// step writes on every new instance, and cdc's _canopy_sync watermarks),
// ordered, so that a sample is the same on every measure.
const tenantTables = `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys', 'canopy_meta', '_canopy_sync')
  AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')
ORDER BY TABLE_SCHEMA, TABLE_NAME`

// Inspect starts a scratch server on a prepared dir (no TCP, its own
// socket, binlog off), measures the tenant tables (every schema but the
// system ones: count; a sample of up to sample tables: rows, CHECKSUM
// TABLE, CHECK TABLE) and stops it cleanly.
func (t *Tools) Inspect(ctx context.Context, dir string, sample int) (backup.DataStats, error) {
	began := time.Now()
	s, err := t.startScratch(ctx, dir)
	if err != nil {
		return backup.DataStats{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	stats, err := StatsOf(ctx, s.db, nil, sample)
	if err != nil {
		s.kill()
		return backup.DataStats{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	if err := s.stop(ctx); err != nil {
		return backup.DataStats{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	t.cfg.Log.Info("mysql backup inspected", "dir", dir, "tables", stats.Tables, "sampled", len(stats.Sample),
		"took", time.Since(began).Round(time.Millisecond))
	return stats, nil
}

// StatsOf measures the same stats as Inspect over a live server (a drill's
// scratch instance); sample picks the same tables when given Inspect's
// sample, else the first limit tables (by schema and name).
func StatsOf(ctx context.Context, db *sql.DB, sample []backup.TableStat, limit int) (backup.DataStats, error) {
	tables, err := listTables(ctx, db)
	if err != nil {
		return backup.DataStats{}, err
	}
	stats := backup.DataStats{Tables: len(tables)}
	pick := make([]backup.TableStat, 0, len(sample))
	if len(sample) > 0 {
		for _, ts := range sample {
			pick = append(pick, backup.TableStat{Schema: ts.Schema, Table: ts.Table})
		}
	} else {
		for i := 0; i < len(tables) && i < limit; i++ {
			pick = append(pick, tables[i])
		}
	}
	present := make(map[[2]string]bool, len(tables))
	for _, ts := range tables {
		present[[2]string{ts.Schema, ts.Table}] = true
	}
	for _, ts := range pick {
		if !present[[2]string{ts.Schema, ts.Table}] {
			// A sampled table missing here is a finding (rows 0, check
			// failed), not a reason to stop measuring.
			stats.Sample = append(stats.Sample, ts)
			continue
		}
		m, err := measureTable(ctx, db, ts.Schema, ts.Table)
		if err != nil {
			return backup.DataStats{}, err
		}
		stats.Sample = append(stats.Sample, m)
	}
	return stats, nil
}

func listTables(ctx context.Context, db *sql.DB) ([]backup.TableStat, error) {
	rows, err := db.QueryContext(ctx, tenantTables)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var out []backup.TableStat
	for rows.Next() {
		var ts backup.TableStat
		if err := rows.Scan(&ts.Schema, &ts.Table); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return out, nil
}

// measureTable counts, checksums and checks one table.
func measureTable(ctx context.Context, db *sql.DB, schema, table string) (backup.TableStat, error) {
	ts := backup.TableStat{Schema: schema, Table: table}
	name := ident(schema) + "." + ident(table)
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+name).Scan(&ts.Rows); err != nil {
		return ts, fmt.Errorf("count %s: %w", name, err)
	}
	var (
		tbl string
		sum sql.NullInt64
	)
	// CHECKSUM TABLE answers (Table, Checksum); NULL for a table that
	// cannot be read, which CHECK TABLE reports below.
	var raw sql.RawBytes
	rows, err := db.QueryContext(ctx, "CHECKSUM TABLE "+name+" EXTENDED")
	if err != nil {
		return ts, fmt.Errorf("checksum %s: %w", name, err)
	}
	for rows.Next() {
		if err := rows.Scan(&tbl, &raw); err != nil {
			rows.Close()
			return ts, fmt.Errorf("checksum %s: %w", name, err)
		}
		if raw != nil {
			var v uint64
			if _, err := fmt.Sscan(string(raw), &v); err == nil {
				ts.Checksum, sum.Valid = v, true
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ts, fmt.Errorf("checksum %s: %w", name, err)
	}
	ok, err := checkTable(ctx, db, name)
	if err != nil {
		return ts, err
	}
	ts.CheckOK = ok && sum.Valid
	return ts, nil
}

// checkTable runs CHECK TABLE: its verdict is the last row's; the table
// is fine when that is "status OK" (or the engine does not support
// checks, which is no finding about the data).
func checkTable(ctx context.Context, db *sql.DB, name string) (bool, error) {
	rows, err := db.QueryContext(ctx, "CHECK TABLE "+name)
	if err != nil {
		return false, fmt.Errorf("check %s: %w", name, err)
	}
	defer rows.Close()
	var (
		tbl, op, typ, text string
		ok                 = false
		errorsSeen         = false
	)
	for rows.Next() {
		if err := rows.Scan(&tbl, &op, &typ, &text); err != nil {
			return false, fmt.Errorf("check %s: %w", name, err)
		}
		switch strings.ToLower(typ) {
		case "error":
			errorsSeen = true
		case "status":
			ok = strings.EqualFold(text, "OK")
		case "note":
			if strings.Contains(text, "doesn't support check") {
				ok = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("check %s: %w", name, err)
	}
	return ok && !errorsSeen, nil
}

// ident quotes a MariaDB identifier.
func ident(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
