// Package storetest gives tests a fresh, uniquely named database on the
// development MariaDB (or the server in CANOPY_TEST_MYSQL_DSN) that is
// dropped when the test ends, pass or fail. It is for tests only.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/store"
)

// DSNEnv names the environment variable that overrides the server DSN.
const DSNEnv = "CANOPY_TEST_MYSQL_DSN"

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// DSN returns the server DSN tests use: $CANOPY_TEST_MYSQL_DSN or store.DefaultDSN.
func DSN() string {
	if dsn := os.Getenv(DSNEnv); dsn != "" {
		return dsn
	}
	return store.DefaultDSN
}

// NewConfig reserves a unique database name canopy_test_<name>_<random> and
// returns a store.Config for it; the database (created by store.Open) is
// dropped in t.Cleanup. Use it when the code under test opens the store
// itself; otherwise use NewDB.
func NewConfig(t testing.TB, name string) store.Config {
	t.Helper()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("storetest: random suffix: %v", err)
	}
	suffix := "_" + hex.EncodeToString(rnd[:])
	name = strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(name), "_"), "_")
	if name == "" {
		name = "db"
	}
	const prefix = "canopy_test_"
	if max := 64 - len(prefix) - len(suffix); len(name) > max {
		name = name[:max]
	}
	cfg := store.Config{DSN: DSN(), Database: prefix + name + suffix, MaxOpenConns: 10, MaxIdleConns: 5}
	t.Cleanup(func() { dropDatabase(t, cfg) })
	return cfg
}

// NewDB opens (and creates) a fresh database for t, closed and dropped in
// t.Cleanup.
func NewDB(t testing.TB, name string) *store.DB {
	t.Helper()
	cfg := NewConfig(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("storetest: open %s: %v", cfg.Database, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storetest: %v", err)
		}
	})
	return db
}

func dropDatabase(t testing.TB, cfg store.Config) {
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		t.Errorf("storetest: parse dsn: %v", err)
		return
	}
	mc.DBName = ""
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		t.Errorf("storetest: %v", err)
		return
	}
	server := sql.OpenDB(conn)
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := server.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+cfg.Database+"`"); err != nil {
		t.Errorf("storetest: drop database %s: %v", cfg.Database, err)
	}
}
