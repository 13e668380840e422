// Package store is Canopy's MySQL/MariaDB access layer: it opens a service's
// database (creating it if missing), applies the service's embedded, numbered
// migrations under a named lock, runs transactions, and implements the
// transactional outbox (Tx.Emit writes events in the same transaction as the
// state change; a Relay publishes them in order and marks them sent).
//
// It is not an ORM or a query builder: repositories write plain SQL against
// DB.SQL() or Tx.Tx. It knows nothing of Kafka either: the Relay publishes
// through the small Publisher interface, which eventbus.Publisher satisfies.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/retry"
)

// DB is an open service database: a connection pool plus the outbox.
type DB struct {
	sql    *sql.DB
	cfg    Config
	logger *slog.Logger

	mu      sync.Mutex
	waiters map[chan struct{}]struct{} // relays to wake after a commit that emitted
}

// Open creates cfg.Database if it does not exist, opens a pool on it, waits
// (bounded by cfg.ConnectTimeout) until the server answers. Tables, the
// outbox too (OutboxMigrations), come from Migrate. The caller closes the DB.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		return nil, errors.New("open store: nil logger")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := createDatabase(ctx, cfg); err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Database, err)
	}
	mc, err := cfg.mysqlConfig(cfg.Database, false)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Database, err)
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Database, err)
	}
	sdb := sql.OpenDB(conn)
	sdb.SetMaxOpenConns(cfg.MaxOpenConns)
	sdb.SetMaxIdleConns(cfg.MaxIdleConns)
	sdb.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db := &DB{sql: sdb, cfg: cfg, logger: logger.With("database", cfg.Database), waiters: map[chan struct{}]struct{}{}}
	if err := pingWithRetry(ctx, sdb, cfg.ConnectTimeout); err != nil {
		_ = sdb.Close()
		return nil, fmt.Errorf("open store %s: %w", cfg.Database, err)
	}
	return db, nil
}

// createDatabase runs CREATE DATABASE IF NOT EXISTS on a short-lived
// server-level connection.
func createDatabase(ctx context.Context, cfg Config) error {
	mc, err := cfg.mysqlConfig("", false)
	if err != nil {
		return err
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return err
	}
	server := sql.OpenDB(conn)
	defer server.Close()
	if err := pingWithRetry(ctx, server, cfg.ConnectTimeout); err != nil {
		return err
	}
	// The name is validated against [a-z0-9_], so quoting it is safe.
	if _, err := server.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Database+"` CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	return nil
}

// pingWithRetry pings until the server answers, ctx ends or timeout passes.
func pingWithRetry(ctx context.Context, db *sql.DB, timeout time.Duration) error {
	p := retry.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second, MaxElapsed: timeout}
	if err := retry.Do(ctx, p, func(ctx context.Context) error { return db.PingContext(ctx) }); err != nil {
		return fmt.Errorf("ping mysql: %w", err)
	}
	return nil
}

// SQL returns the underlying pool for plain queries.
func (db *DB) SQL() *sql.DB { return db.sql }

// Name returns the database name.
func (db *DB) Name() string { return db.cfg.Database }

// Close closes the pool.
func (db *DB) Close() error {
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", db.cfg.Database, err)
	}
	return nil
}

// Tx is a transaction in progress; Tx.Tx is the *sql.Tx to query through.
type Tx struct {
	*sql.Tx
	emitted int
}

// Tx runs fn in a transaction. It commits when fn returns nil and rolls back
// when fn returns an error (returned unchanged) or panics (the panic is
// re-raised after the rollback). After a commit that emitted outbox rows it
// wakes the relays running on this DB.
func (db *DB) Tx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{Tx: stx}
	committed := false
	defer func() {
		if committed {
			return
		}
		if rerr := stx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			db.logger.Warn("rollback failed", "err", rerr)
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		committed = true // Commit already ended the transaction either way.
		return fmt.Errorf("commit transaction: %w", err)
	}
	committed = true
	if tx.emitted > 0 {
		db.notifyRelays()
	}
	return nil
}

// Conflict reports whether err is a transaction conflict that running the
// whole transaction again resolves: a deadlock (1213) or a lock wait
// timeout (1205). InnoDB picks a victim among transactions that take the
// same index gaps in different orders; the victim was rolled back whole.
func Conflict(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// conflictRetries is how often TxRetry runs a transaction that lost a
// conflict before it gives the error to the caller.
const conflictRetries = 4

// TxRetry is Tx, running fn again in a new transaction when the previous
// attempt lost a conflict (see Conflict), a few times. fn must be safe to
// run again: everything it did in a failed attempt was rolled back.
func (db *DB) TxRetry(ctx context.Context, fn func(tx *Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.Tx(ctx, fn)
		if err == nil || !Conflict(err) || attempt > conflictRetries || ctx.Err() != nil {
			return err
		}
		db.logger.Debug("transaction conflict; running it again", "attempt", attempt, "err", err)
	}
}

// subscribe registers ch to be signalled (without blocking) after commits that
// emitted events; the returned func unregisters it.
func (db *DB) subscribe(ch chan struct{}) func() {
	db.mu.Lock()
	db.waiters[ch] = struct{}{}
	db.mu.Unlock()
	return func() {
		db.mu.Lock()
		delete(db.waiters, ch)
		db.mu.Unlock()
	}
}

func (db *DB) notifyRelays() {
	db.mu.Lock()
	defer db.mu.Unlock()
	for ch := range db.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
