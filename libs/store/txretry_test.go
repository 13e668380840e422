package store_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
)

// Two transactions that lock the same rows in opposite orders deadlock;
// InnoDB rolls one back, and TxRetry runs it again, so both land.
func TestTxRetryRunsTheDeadlockVictimAgain(t *testing.T) {
	db := storetest.NewDB(t, "txretry")
	ctx := testCtx(t)
	if err := db.Migrate(ctx, fstest.MapFS{"0001_kv.up.sql": sqlFile("CREATE TABLE kv (k CHAR(1) PRIMARY KEY, v INT NOT NULL)")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, "INSERT INTO kv VALUES ('a', 0), ('b', 0)"); err != nil {
		t.Fatal(err)
	}
	errs, attempts := crossedUpdates(t, db, func(fn func(tx *store.Tx) error) error { return db.TxRetry(ctx, fn) })
	for i, err := range errs {
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	if attempts != 3 {
		t.Fatalf("%d attempts, want 3: two, and the deadlock victim's second", attempts)
	}
	for _, k := range []string{"a", "b"} {
		var v int
		if err := db.SQL().QueryRowContext(ctx, "SELECT v FROM kv WHERE k = ?", k).Scan(&v); err != nil || v != 2 {
			t.Fatalf("%s = %d (%v), want 2: both transactions applied once", k, v, err)
		}
	}
	// Plain Tx leaves the victim's error to the caller, and it is a Conflict.
	errs, _ = crossedUpdates(t, db, func(fn func(tx *store.Tx) error) error { return db.Tx(ctx, fn) })
	if (errs[0] == nil) == (errs[1] == nil) || !(store.Conflict(errs[0]) || store.Conflict(errs[1])) {
		t.Fatalf("plain Tx: errors %v, want exactly one deadlock", errs)
	}
}

// crossedUpdates runs two transactions through run that lock rows a and b
// in opposite orders, their first attempts meeting in the middle (each
// holds its first row before either asks for its second: a deadlock). It
// returns their errors and how many attempts ran.
func crossedUpdates(t *testing.T, db *store.DB, run func(fn func(tx *store.Tx) error) error) ([]error, int32) {
	t.Helper()
	ctx := testCtx(t)
	var attempts atomic.Int32
	firstLocked := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	var once [2]sync.Once
	bump := func(i int, first, second string) func(tx *store.Tx) error {
		return func(tx *store.Tx) error {
			attempts.Add(1)
			if _, err := tx.ExecContext(ctx, "UPDATE kv SET v = v + 1 WHERE k = ?", first); err != nil {
				return err
			}
			once[i].Do(func() {
				close(firstLocked[first])
				<-firstLocked[second]
			})
			_, err := tx.ExecContext(ctx, "UPDATE kv SET v = v + 1 WHERE k = ?", second)
			return err
		}
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = run(bump(0, "a", "b")) })
	wg.Go(func() { errs[1] = run(bump(1, "b", "a")) })
	wg.Wait()
	return errs, attempts.Load()
}
