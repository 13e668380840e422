package scheduler_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/scheduler"
)

type countTask struct {
	runs, stops, overlap atomic.Int64
	busy                 atomic.Bool
	sleep                time.Duration
	mu                   sync.Mutex
	dues                 []time.Time
}

func (c *countTask) Run(ctx context.Context, due time.Time) {
	if !c.busy.CompareAndSwap(false, true) {
		c.overlap.Add(1)
	}
	c.runs.Add(1)
	c.mu.Lock()
	c.dues = append(c.dues, due)
	c.mu.Unlock()
	if c.sleep > 0 {
		select {
		case <-time.After(c.sleep):
		case <-ctx.Done():
		}
	}
	c.busy.Store(false)
}

func (c *countTask) Stop() { c.stops.Add(1) }

func start(t *testing.T, cfg scheduler.Config) (*scheduler.ProbeScheduler, context.CancelFunc, chan struct{}) {
	t.Helper()
	s, err := scheduler.New(cfg, slog.New(slog.DiscardHandler), nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	return s, cancel, done
}

func TestFixedRateAndPhase(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, cancel, done := start(t, scheduler.Config{Workers: 4})
	task := &countTask{}
	const iv = 20 * time.Millisecond
	require.NoError(t, s.Add(scheduler.Spec{ID: "a", Interval: iv, Phase: 7 * time.Millisecond, Task: task}))
	require.Eventually(t, func() bool { return task.runs.Load() >= 10 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	require.Equal(t, int64(1), task.stops.Load(), "stopped once when the scheduler ends")
	task.mu.Lock()
	defer task.mu.Unlock()
	// Fixed rate: every due is on the interval's grid. A slot the scheduler
	// could not start in time (a loaded machine) is skipped and counted, so
	// a gap may span several intervals, never a fraction of one.
	_, skipped := s.Counts()
	var gaps int64
	for i, d := range task.dues {
		require.Equal(t, 7*time.Millisecond, time.Duration(d.UnixNano()%int64(iv)), "due %d keeps the phase", i)
		if i > 0 {
			gap := d.Sub(task.dues[i-1])
			require.Zero(t, gap%iv, "fixed rate: gap %s before due %d is not a whole number of intervals", gap, i)
			require.Positive(t, gap, "due %d after due %d", i, i-1)
			gaps += int64(gap/iv) - 1
		}
	}
	require.LessOrEqual(t, gaps, skipped, "every slot missing between two runs was counted as skipped")
}

func TestSlowTaskSkipsInsteadOfOverlapping(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, cancel, done := start(t, scheduler.Config{Workers: 8})
	task := &countTask{sleep: 35 * time.Millisecond}
	require.NoError(t, s.Add(scheduler.Spec{ID: "slow", Interval: 10 * time.Millisecond, Task: task}))
	require.Eventually(t, func() bool { _, sk := s.Counts(); return sk >= 5 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	require.Zero(t, task.overlap.Load(), "never two runs of one task at once")
}

func TestRemoveStopsAfterRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, cancel, done := start(t, scheduler.Config{Workers: 2})
	defer func() { cancel(); <-done }()
	task := &countTask{sleep: 30 * time.Millisecond}
	require.NoError(t, s.Add(scheduler.Spec{ID: "x", Interval: 10 * time.Millisecond, Task: task}))
	require.Eventually(t, func() bool { return task.busy.Load() }, 5*time.Second, time.Millisecond)
	s.Remove("x")
	require.Zero(t, task.stops.Load(), "not stopped while running")
	require.Eventually(t, func() bool { return task.stops.Load() == 1 }, 5*time.Second, time.Millisecond)
	runs := task.runs.Load()
	require.Never(t, func() bool { return task.runs.Load() != runs }, 50*time.Millisecond, 5*time.Millisecond)
	require.Equal(t, 0, s.Len())

	// Replacing a task stops the old one.
	a, b := &countTask{}, &countTask{}
	require.NoError(t, s.Add(scheduler.Spec{ID: "y", Interval: time.Second, Task: a}))
	require.NoError(t, s.Add(scheduler.Spec{ID: "y", Interval: time.Second, Task: b}))
	require.Equal(t, int64(1), a.stops.Load())
	require.Equal(t, 1, s.Len())
}

func TestManyTasksSpreadOverInterval(t *testing.T) {
	defer goleak.VerifyNone(t)
	var mu sync.Mutex
	var worst time.Duration
	s, err := scheduler.New(scheduler.Config{Workers: 16}, slog.New(slog.DiscardHandler), nil, func(_ time.Time, late time.Duration) {
		mu.Lock()
		worst = max(worst, late)
		mu.Unlock()
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	tasks := make([]*countTask, 500)
	const iv = 100 * time.Millisecond
	for i := range tasks {
		tasks[i] = &countTask{}
		require.NoError(t, s.Add(scheduler.Spec{ID: string(rune('a'+i%26)) + time.Duration(i).String(), Interval: iv,
			Phase: iv * time.Duration(i) / time.Duration(len(tasks)), Task: tasks[i]}))
	}
	require.Eventually(t, func() bool {
		for _, tk := range tasks {
			if tk.runs.Load() < 5 {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	runs, _ := s.Counts()
	require.GreaterOrEqual(t, runs, int64(2500))
}
