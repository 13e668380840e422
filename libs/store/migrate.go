package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ErrMigration is wrapped by every error about the migration files themselves
// (bad names, duplicate versions, a failing statement).
var ErrMigration = errors.New("migration failed")

// migrateLockWait bounds how long Migrate waits for a concurrent runner
// (unless ctx ends sooner).
const migrateLockWait = 2 * time.Minute

var migrationFile = regexp.MustCompile(`^(\d{4,})_([a-z0-9_]+)\.up\.sql$`)

// migration is one NNNN_name.up.sql file.
type migration struct {
	version  int64
	file     string
	sql      string
	checksum string
}

// Migrate applies the migrations in the roots of sets that are not applied
// yet, in version order (the sets form one ordered set; a version may appear
// once), and records each in schema_migrations by version (one row per file,
// written only after the file ran without error). A service passes
// OutboxMigrations() and its own files.
//
// Files are named NNNN_name.up.sql (at least four digits); .down.sql and
// files not ending in .sql are ignored, any other .sql name is an error.
// Pass fs.Sub(embedded, "migrations") when the files live in a directory.
// A file may hold several statements. MySQL commits DDL implicitly, so a file
// that fails halfway may leave its earlier statements applied: keep one DDL
// statement per file, or make them idempotent.
//
// Runners on the same database serialise on GET_LOCK('canopy_migrate_<db>'):
// a second runner waits, then finds the files applied and does nothing.
func (db *DB) Migrate(ctx context.Context, sets ...fs.FS) error {
	migs, err := readMigrationSets(sets)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.cfg.Database, err)
	}
	// A separate pool: only migrations may run multi-statement queries.
	mc, err := db.cfg.mysqlConfig(db.cfg.Database, true)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.cfg.Database, err)
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.cfg.Database, err)
	}
	mdb := sql.OpenDB(connector)
	defer mdb.Close()
	conn, err := mdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: connect: %w", db.cfg.Database, err)
	}
	defer conn.Close()

	name := lockName("canopy_migrate_", db.cfg.Database)
	wait := migrateLockWait
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = time.Until(dl)
	}
	if err := getLock(ctx, conn, name, wait); err != nil {
		return fmt.Errorf("migrate %s: %w", db.cfg.Database, err)
	}
	defer func() {
		if err := releaseLock(ctx, conn, name); err != nil {
			db.logger.Warn("release migration lock", "err", err)
		}
	}()

	if err := db.applyMigrations(ctx, conn, migs); err != nil {
		return fmt.Errorf("migrate %s: %w", db.cfg.Database, err)
	}
	return nil
}

func (db *DB) applyMigrations(ctx context.Context, conn *sql.Conn, migs []migration) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT UNSIGNED NOT NULL PRIMARY KEY,
		name       VARCHAR(255)    NOT NULL,
		checksum   CHAR(64)        NOT NULL,
		applied_at DATETIME(6)     NOT NULL
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn)
	if err != nil {
		return err
	}
	for _, m := range migs {
		if sum, ok := applied[m.version]; ok {
			if sum != m.checksum {
				db.logger.Warn("applied migration changed since it ran; not re-running it", "file", m.file)
			}
			continue
		}
		start := time.Now()
		if strings.TrimSpace(m.sql) != "" {
			if _, err := conn.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrMigration, m.file, err)
			}
		}
		if _, err := conn.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))",
			m.version, m.file, m.checksum); err != nil {
			return fmt.Errorf("record migration %s: %w", m.file, err)
		}
		db.logger.Info("migration applied", "file", m.file, "took", time.Since(start))
	}
	return nil
}

// appliedMigrations returns version → checksum of the applied migrations.
func appliedMigrations(ctx context.Context, conn *sql.Conn) (map[int64]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT version, checksum FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int64]string{}
	for rows.Next() {
		var v int64
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

// readMigrationSets lists the up migrations of every set, sorted by version.
func readMigrationSets(sets []fs.FS) ([]migration, error) {
	if len(sets) == 0 {
		return nil, fmt.Errorf("%w: no migrations given", ErrMigration)
	}
	if len(sets) == 1 {
		return readMigrations(sets[0])
	}
	var all []migration
	seen := map[int64]string{}
	for _, fsys := range sets {
		migs, err := readMigrations(fsys)
		if err != nil {
			return nil, err
		}
		for _, m := range migs {
			if prev, ok := seen[m.version]; ok {
				return nil, fmt.Errorf("%w: %s and %s have the same version", ErrMigration, prev, m.file)
			}
			seen[m.version] = m.file
		}
		all = append(all, migs...)
	}
	slices.SortFunc(all, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	return all, nil
}

// readMigrations lists the up migrations in the root of fsys, sorted by version.
func readMigrations(fsys fs.FS) ([]migration, error) {
	if fsys == nil {
		return nil, fmt.Errorf("%w: nil fs", ErrMigration)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var migs []migration
	seen := map[int64]string{}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".sql") || strings.HasSuffix(n, ".down.sql") {
			continue
		}
		m := migrationFile.FindStringSubmatch(n)
		if m == nil {
			return nil, fmt.Errorf("%w: %s: name must be NNNN_name.up.sql", ErrMigration, n)
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: version: %w", ErrMigration, n, err)
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("%w: %s and %s have the same version", ErrMigration, prev, n)
		}
		seen[v] = n
		body, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", n, err)
		}
		sum := sha256.Sum256(body)
		migs = append(migs, migration{version: v, file: n, sql: string(body), checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(migs, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	return migs, nil
}
