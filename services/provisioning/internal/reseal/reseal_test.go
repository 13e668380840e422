package reseal

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
)

// fakeStore answers passes from a script, one result per call, repeating
// the last.
type fakeStore struct {
	mu     sync.Mutex
	script []result
	calls  int
	batch  int
}

type result struct {
	res mysqlrepo.ResealResult
	err error
}

func (f *fakeStore) Reseal(_ context.Context, batch int) (mysqlrepo.ResealResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.script[min(f.calls, len(f.script)-1)]
	f.calls++
	f.batch = batch
	return r.res, r.err
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func TestPass(t *testing.T) {
	tests := []struct {
		name           string
		script         []result
		wantUnresealed float64
		wantResealed   float64
		wantFailures   float64
	}{
		{"moves everything", []result{{res: mysqlrepo.ResealResult{Resealed: 3}}}, 0, 3, 0},
		{"values that do not open", []result{{res: mysqlrepo.ResealResult{Resealed: 1, Remaining: 2}, err: errors.New("2 values cannot be opened")}}, 2, 1, 1},
		{"database down", []result{{err: errors.New("connection refused")}}, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{script: tt.script}
			r, err := New(Config{}, store, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			r.Pass(context.Background())
			if store.batch != DefaultBatch {
				t.Fatalf("batch = %d, want default %d", store.batch, DefaultBatch)
			}
			if got := testutil.ToFloat64(r.unresealed); got != tt.wantUnresealed {
				t.Errorf("unresealed = %v, want %v", got, tt.wantUnresealed)
			}
			if got := testutil.ToFloat64(r.resealed); got != tt.wantResealed {
				t.Errorf("resealed = %v, want %v", got, tt.wantResealed)
			}
			if got := testutil.ToFloat64(r.failures); got != tt.wantFailures {
				t.Errorf("failures = %v, want %v", got, tt.wantFailures)
			}
		})
	}
}

func TestRun(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("once without interval", func(t *testing.T) {
		store := &fakeStore{script: []result{{}}}
		r, err := New(Config{}, store, logger, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run(context.Background()); err != nil || store.count() != 1 {
			t.Fatalf("run = %v after %d passes, want one pass", err, store.count())
		}
	})
	t.Run("at start and every interval until stopped", func(t *testing.T) {
		// A failing pass does not stop the loop.
		store := &fakeStore{script: []result{{err: errors.New("boom")}, {res: mysqlrepo.ResealResult{Resealed: 1}}, {}}}
		r, err := New(Config{Interval: time.Millisecond}, store, logger, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for store.count() < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d passes before the deadline", store.count())
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not stop")
		}
		if got := testutil.ToFloat64(r.resealed); got != 1 {
			t.Fatalf("resealed = %v, want 1", got)
		}
	})
	if _, err := New(Config{Interval: -1}, &fakeStore{}, logger, prometheus.NewRegistry()); err == nil {
		t.Fatal("negative interval accepted")
	}
}
