package store_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
)

func sqlFile(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// appliedVersions returns schema_migrations' versions in order.
func appliedVersions(t *testing.T, db *store.DB) []int64 {
	t.Helper()
	rows, err := db.SQL().QueryContext(context.Background(), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	var vs []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatalf("scan: %v", err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return vs
}

func tableExists(t *testing.T, db *store.DB, table string) bool {
	t.Helper()
	var n int
	err := db.SQL().QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?", table).Scan(&n)
	if err != nil {
		t.Fatalf("query information_schema: %v", err)
	}
	return n == 1
}

func equalVersions(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMigrateAppliesOnce(t *testing.T) {
	db := storetest.NewDB(t, "migrate_once")
	ctx := testCtx(t)
	fsys := fstest.MapFS{
		"0001_widgets.up.sql":   sqlFile("CREATE TABLE widgets (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL)"),
		"0002_seed.up.sql":      sqlFile("INSERT INTO widgets VALUES (1, 'a');\nINSERT INTO widgets VALUES (2, 'b');"),
		"0002_seed.down.sql":    sqlFile("DELETE FROM widgets"),
		"0003_add_color.up.sql": sqlFile("ALTER TABLE widgets ADD COLUMN color VARCHAR(16) NULL"),
	}
	for i := range 2 {
		if err := db.Migrate(ctx, fsys); err != nil {
			t.Fatalf("Migrate run %d: %v", i+1, err)
		}
	}
	if !tableExists(t, db, "widgets") {
		t.Fatal("widgets table missing")
	}
	if got := appliedVersions(t, db); !equalVersions(got, []int64{1, 2, 3}) {
		t.Fatalf("applied versions = %v, want [1 2 3]", got)
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM widgets").Scan(&n); err != nil {
		t.Fatalf("count widgets: %v", err)
	}
	if n != 2 {
		t.Fatalf("widgets rows = %d, want 2 (seed ran once)", n)
	}

	// A later file is picked up by the next run.
	fsys["0004_gadgets.up.sql"] = sqlFile("CREATE TABLE gadgets (id BIGINT PRIMARY KEY)")
	if err := db.Migrate(ctx, fsys); err != nil {
		t.Fatalf("Migrate with new file: %v", err)
	}
	if got := appliedVersions(t, db); !equalVersions(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("applied versions = %v, want [1 2 3 4]", got)
	}
}

func TestMigrateConcurrentRunners(t *testing.T) {
	cfg := storetest.NewConfig(t, "migrate_concurrent")
	ctx := testCtx(t)
	// The server-side SLEEP keeps the first runner inside the lock long
	// enough that the second one is certain to contend for it.
	fsys := fstest.MapFS{
		"0001_slow.up.sql":   sqlFile("DO SLEEP(0.3)"),
		"0002_things.up.sql": sqlFile("CREATE TABLE things (id BIGINT PRIMARY KEY)"),
		"0003_seed.up.sql":   sqlFile("INSERT INTO things VALUES (1)"),
	}
	const runners = 3
	dbs := make([]*store.DB, runners)
	for i := range dbs {
		db, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("open runner %d: %v", i, err)
		}
		t.Cleanup(func() { _ = db.Close() })
		dbs[i] = db
	}
	var wg sync.WaitGroup
	errs := make([]error, runners)
	for i, db := range dbs {
		wg.Go(func() { errs[i] = db.Migrate(ctx, fsys) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("runner %d: %v", i, err)
		}
	}
	if got := appliedVersions(t, dbs[0]); !equalVersions(got, []int64{1, 2, 3}) {
		t.Fatalf("applied versions = %v, want [1 2 3]", got)
	}
	var n int
	if err := dbs[0].SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM things").Scan(&n); err != nil {
		t.Fatalf("count things: %v", err)
	}
	if n != 1 {
		t.Fatalf("things rows = %d, want 1", n)
	}
}

func TestMigrateBrokenFile(t *testing.T) {
	tests := []struct {
		name   string
		broken string
	}{
		{name: "syntax error", broken: "CREATE TABLE broken (id INT PRIMARY KEY,, x INT)"},
		{name: "second statement fails", broken: "CREATE TABLE half (id INT PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.NewDB(t, "migrate_broken")
			ctx := testCtx(t)
			fsys := fstest.MapFS{
				"0001_a.up.sql":      sqlFile("CREATE TABLE a (id INT PRIMARY KEY)"),
				"0002_b.up.sql":      sqlFile("CREATE TABLE b (id INT PRIMARY KEY)"),
				"0003_broken.up.sql": sqlFile(tc.broken),
				"0004_d.up.sql":      sqlFile("CREATE TABLE d (id INT PRIMARY KEY)"),
			}
			err := db.Migrate(ctx, fsys)
			if err == nil {
				t.Fatal("Migrate succeeded with a broken file")
			}
			if !strings.Contains(err.Error(), "0003_broken.up.sql") || !errors.Is(err, store.ErrMigration) {
				t.Fatalf("err = %v, want ErrMigration naming 0003_broken.up.sql", err)
			}
			if got := appliedVersions(t, db); !equalVersions(got, []int64{1, 2}) {
				t.Fatalf("applied versions = %v, want [1 2]", got)
			}
			if !tableExists(t, db, "a") || !tableExists(t, db, "b") {
				t.Fatal("good migrations before the broken one were not applied")
			}
			if tableExists(t, db, "d") {
				t.Fatal("migration after the broken one ran")
			}

			// Fixed, the run resumes at the broken file.
			fsys["0003_broken.up.sql"] = sqlFile("CREATE TABLE IF NOT EXISTS half (id INT PRIMARY KEY)")
			if err := db.Migrate(ctx, fsys); err != nil {
				t.Fatalf("Migrate after fix: %v", err)
			}
			if got := appliedVersions(t, db); !equalVersions(got, []int64{1, 2, 3, 4}) {
				t.Fatalf("applied versions = %v, want [1 2 3 4]", got)
			}
		})
	}
}

func TestOpenCreatesDatabaseAndMigrateTheOutbox(t *testing.T) {
	cfg := storetest.NewConfig(t, "open")
	ctx := testCtx(t)
	for i := range 2 { // idempotent
		db, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		if db.Name() != cfg.Database {
			t.Fatalf("Name() = %q, want %q", db.Name(), cfg.Database)
		}
		// The outbox is a migration like every other table.
		if err := db.Migrate(ctx, store.OutboxMigrations()); err != nil {
			t.Fatalf("Migrate outbox %d: %v", i, err)
		}
		if !tableExists(t, db, store.OutboxTable) {
			t.Fatal("outbox table missing after its migration")
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if _, err := store.Open(ctx, store.Config{Database: "Bad-Name"}, slog.New(slog.DiscardHandler)); !errors.Is(err, store.ErrInvalidConfig) {
		t.Fatalf("Open with bad name: err = %v, want ErrInvalidConfig", err)
	}
}

// TestOutboxMigrationOnExistingDatabase: a database migrated before the
// outbox was a migration (Open created the table, schema_migrations holds
// only the service's versions) keeps its outbox rows; the outbox migration
// is recorded under its stable name and the service's next file runs.
func TestOutboxMigrationOnExistingDatabase(t *testing.T) {
	db := storetest.NewDB(t, "outbox_existing")
	ctx := testCtx(t)
	service := fstest.MapFS{"0001_widgets.up.sql": sqlFile("CREATE TABLE widgets (id BIGINT PRIMARY KEY)")}
	// The database as the earlier store left it.
	old, err := fs.ReadFile(store.OutboxMigrations(), store.OutboxMigrationFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, string(old)); err != nil {
		t.Fatalf("create outbox as Open did: %v", err)
	}
	if err := db.Migrate(ctx, service); err != nil {
		t.Fatalf("Migrate service: %v", err)
	}
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO outbox (topic, event_id, headers, created_at) VALUES ('t', 'e1', '{}', UTC_TIMESTAMP(6))`); err != nil {
		t.Fatalf("insert outbox row: %v", err)
	}

	service["0002_gadgets.up.sql"] = sqlFile("CREATE TABLE gadgets (id BIGINT PRIMARY KEY)")
	if err := db.Migrate(ctx, store.OutboxMigrations(), service); err != nil {
		t.Fatalf("Migrate with the outbox: %v", err)
	}
	if got := appliedVersions(t, db); !equalVersions(got, []int64{0, 1, 2}) {
		t.Fatalf("applied versions = %v, want [0 1 2]", got)
	}
	var name string
	if err := db.SQL().QueryRowContext(ctx, "SELECT name FROM schema_migrations WHERE version = 0").Scan(&name); err != nil || name != store.OutboxMigrationFile {
		t.Fatalf("outbox migration recorded as %q (%v), want %q", name, err, store.OutboxMigrationFile)
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox").Scan(&n); err != nil || n != 1 {
		t.Fatalf("outbox rows = %d (%v), want the 1 written before", n, err)
	}
	if !tableExists(t, db, "gadgets") {
		t.Fatal("the service's next migration did not run")
	}

	// A version in two sets is an error, before anything runs.
	err = db.Migrate(ctx, service, fstest.MapFS{"0002_other.up.sql": sqlFile("CREATE TABLE other (id INT)")})
	if !errors.Is(err, store.ErrMigration) {
		t.Fatalf("duplicate version across sets: err = %v, want ErrMigration", err)
	}
}
