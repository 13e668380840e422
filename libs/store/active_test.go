package store_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
)

// One process is active per lock: a second waits until the first releases
// it, and the active one learns when its session is gone (the server then
// gave the lock to the standby).
func TestActiveLockHandsOver(t *testing.T) {
	cfg := storetest.NewConfig(t, "active_lock")
	ctx := testCtx(t)
	open := func() *store.DB {
		db, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	a, b := open(), open()
	name := a.ActiveLockName("engine")
	if name != cfg.Database+".engine" || b.ActiveLockName("engine") != name {
		t.Fatalf("lock names %q / %q, want %q", name, b.ActiveLockName("engine"), cfg.Database+".engine")
	}
	if long := a.ActiveLockName(strings.Repeat("r", 80)); len(long) > 64 {
		t.Fatalf("lock name of %d bytes: MySQL allows 64", len(long))
	}
	first, err := a.AcquireActive(ctx, name, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	// The standby waits.
	acquired := make(chan *store.ActiveLock, 1)
	waitCtx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	go func() {
		l, err := b.AcquireActive(waitCtx, name, 20*time.Millisecond, slog.New(slog.DiscardHandler))
		if err == nil {
			acquired <- l
		}
		close(acquired)
	}()
	select {
	case <-acquired:
		t.Fatal("the standby took a held lock")
	case <-time.After(1500 * time.Millisecond): // more than one server-side wait of a second
	}

	// The active one's session dies (as when its process crashes): its
	// watch says so and the standby takes over.
	var id int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	lost := make(chan error, 1)
	go func() { lost <- first.Watch(watchCtx, 20*time.Millisecond) }()
	if err := a.SQL().QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SQL().ExecContext(ctx, "KILL CONNECTION ?", id); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		if !errors.Is(err, store.ErrLockLost) {
			t.Fatalf("watch = %v, want ErrLockLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not notice the lost session")
	}
	_ = first.Release(ctx) // the session is gone: discarded, not pooled
	var second *store.ActiveLock
	select {
	case second = <-acquired:
	case <-time.After(10 * time.Second):
		t.Fatal("the standby never took the released lock")
	}
	if second == nil {
		t.Fatal("the standby stopped waiting without the lock")
	}

	// A watch of a held lock ends quietly with its context; a release hands
	// the lock back at once.
	quiet, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- second.Watch(quiet, 10*time.Millisecond) }()
	stop()
	if err := <-done; err != nil {
		t.Fatalf("watch after its context ended = %v, want nil", err)
	}
	if err := second.Release(ctx); err != nil {
		t.Fatal(err)
	}
	third, err := a.AcquireActive(ctx, name, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := third.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
