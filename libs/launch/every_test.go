package launch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// TestEveryKeepsGoingAfterAFailedPass: a failing pass is retried at the next
// tick, and the loop ends cleanly with its context.
func TestEveryKeepsGoingAfterAFailedPass(t *testing.T) {
	var passes atomic.Int32
	third := make(chan struct{})
	run := Every(time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), "resync", func(context.Context) error {
		if passes.Add(1) == 3 {
			close(third)
		}
		return errors.New("provisioning unreachable")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	select {
	case <-third:
	case <-time.After(10 * time.Second):
		t.Fatal("no third pass after two failed ones")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Every returned %v after its context ended, want nil", err)
	}
}
