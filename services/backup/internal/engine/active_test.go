package engine_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/engine"
)

// Work tied to the engine with WhileActive (restore jobs, drills) runs on
// the active replica only and moves with the lock: of two engines on one
// database only the first runs it, the standby's starts once the first
// stopped and its work returned, never both at once.
func TestWhileActiveFollowsTheLock(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{Policy: backup.DefaultPolicy(), SyncEvery: 200 * time.Millisecond}, newInstances())
	first, stopFirst := h.run(t)

	waiting := &signalWriter{match: "waiting for the active lock", seen: make(chan struct{})}
	second, err := engine.New(h.cfg, h.db, h.st, h.inst, h.blobs, nil, h.box, h.phys, slog.New(slog.NewTextHandler(waiting, nil)), h.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	secondDone := make(chan error, 1)
	go func() { secondDone <- second.Run(ctx) }()

	// work records who runs and how many run at once, until its context ends.
	var running, most atomic.Int32
	started := make(chan string, 2)
	work := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			started <- name
			<-ctx.Done()
			running.Add(-1)
			return nil
		}
	}
	firstDone, secondTied := make(chan error, 1), make(chan error, 1)
	go func() { firstDone <- first.WhileActive(ctx, work("first")) }()
	go func() { secondTied <- second.WhileActive(ctx, work("second")) }()
	t.Cleanup(func() {
		cancel()
		for _, ch := range []chan error{secondTied, secondDone} {
			select {
			case <-ch:
			case <-time.After(60 * time.Second):
				t.Error("the second engine or its work did not stop within 60s")
			}
		}
	})

	select {
	case who := <-started:
		if who != "first" {
			t.Fatalf("%s engine's work started while the first holds the lock", who)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the active engine's work did not start within 30s")
	}
	select {
	case <-waiting.seen:
	case err := <-secondDone:
		t.Fatalf("standby stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the second engine did not wait for the lock")
	}
	if second.Active() || !first.Active() {
		t.Fatalf("active: first %v, second %v; want only the first", first.Active(), second.Active())
	}
	select {
	case who := <-started:
		t.Fatalf("%s engine's work started while the first's runs", who)
	default:
	}

	stopped := time.Now()
	stopFirst()
	select {
	case err := <-firstDone:
		if err != nil {
			t.Fatalf("first WhileActive: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the first engine's work did not stop with it")
	}
	if first.Active() {
		t.Fatal("a stopped engine is still active")
	}
	select {
	case who := <-started:
		if who != "second" {
			t.Fatalf("%s engine's work started again", who)
		}
	case err := <-secondDone:
		t.Fatalf("standby stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the standby's work did not start within 30s of the first stopping")
	}
	t.Logf("takeover: the standby's work started %s after the active engine was stopped", time.Since(stopped).Round(time.Millisecond))
	if !second.Active() {
		t.Fatal("the engine running the work is not active")
	}
	if m := most.Load(); m != 1 {
		t.Fatalf("%d engines ran the work at once, want 1", m)
	}
}
