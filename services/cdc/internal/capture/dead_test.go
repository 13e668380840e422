package capture

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestFrozenSource: a source that stops answering without closing the
// connection (SIGSTOP: a hung or partitioned node) ends Run with an
// error within a few seconds, thanks to the heartbeat and read timeout.
func TestFrozenSource(t *testing.T) {
	s := startServer(t)
	s.exec(t, "CREATE DATABASE fz", "CREATE TABLE fz.t (id INT PRIMARY KEY)")
	cp := s.start(t, Config{Start: s.pos(t)}, 4)
	s.exec(t, "INSERT INTO fz.t VALUES (1)")
	cp.until(t, s.pos(t))

	// Idle longer than the read timeout: heartbeats keep it alive.
	select {
	case err := <-cp.errc:
		cp.errc <- err
		t.Fatalf("idle capture ended: %v", err)
	case <-time.After(2 * readTimeout):
	}

	pid := s.p.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Registered after the process's kill, so it runs before it.
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	frozen := time.Now()
	select {
	case err := <-cp.errc:
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrPositionLost) {
			t.Fatalf("Run ended with %v, want a connection error", err)
		}
		if d := time.Since(frozen); d > 8*time.Second {
			t.Errorf("detected after %v", d)
		}
		t.Logf("detected after %v: %v", time.Since(frozen).Round(time.Millisecond), err)
		cp.errc <- nil
	case <-time.After(15 * time.Second):
		t.Fatal("Run still running 15s after the source froze")
	}
}
