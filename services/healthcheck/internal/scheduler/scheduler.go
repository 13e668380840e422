// Package scheduler runs periodic probes for many thousands of targets on
// one replica: a min-heap of next-due times drained by one dispatcher
// goroutine into a bounded pool of workers. Every task runs at a fixed rate
// (due times never drift), at most one run of a task is in flight, a run
// that is still busy when the next one is due skips that slot (counted), and
// the lateness of every start against its due time is measured.
//
// Phases are anchored to the wall clock (a task's phase is its offset within
// the interval), so a task that moves to another replica keeps its timing.
// The scheduler knows nothing of probes: a Task is anything that runs.
package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Task is one periodic job.
type Task interface {
	// Run does one run that was due at due; it must bound itself (the
	// probe timeout). ctx ends when the scheduler stops.
	Run(ctx context.Context, due time.Time)
	// Stop is called once, after the last Run has returned, when the task
	// is removed or the scheduler stops.
	Stop()
}

// Spec describes a task to schedule.
type Spec struct {
	// ID identifies the task; adding an existing id replaces it.
	ID string
	// Interval between due times.
	Interval time.Duration
	// Phase is the offset of due times within the interval, relative to
	// the Unix epoch (0 ≤ Phase < Interval).
	Phase time.Duration
	// Task is what runs.
	Task Task
}

// Config configures a ProbeScheduler.
type Config struct {
	// Workers is how many runs may be in flight at once (default 512). It
	// must exceed probes per second × the worst probe duration: 10,000
	// targets at 1 s with 1 % of them hanging for a 500 ms timeout keep 50
	// workers busy on the hung ones alone.
	Workers int
}

// Observer receives the lateness of every run's start against its due time.
type Observer func(due time.Time, lateness time.Duration)

type entry struct {
	id       string
	interval time.Duration
	next     time.Time
	task     Task
	index    int // in the heap; -1 when not in it
	running  bool
	removed  bool
}

type job struct {
	e   *entry
	due time.Time
}

// ProbeScheduler is the probe loop: it runs every task at its fixed rate.
type ProbeScheduler struct {
	cfg      Config
	logger   *slog.Logger
	observer Observer

	mu      sync.Mutex
	heap    entryHeap
	entries map[string]*entry
	stopped bool

	wake chan struct{}
	jobs chan job

	runs, skipped atomic.Int64

	lateness  prometheus.Histogram
	runsC     prometheus.Counter
	skippedC  prometheus.Counter
	tasksG    prometheus.Gauge
	inflightG prometheus.Gauge
}

// New returns a scheduler; observer may be nil. Metrics go to reg when it is
// not nil.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, observer Observer) (*ProbeScheduler, error) {
	if logger == nil {
		return nil, errors.New("scheduler: nil logger")
	}
	if cfg.Workers == 0 {
		cfg.Workers = 512
	}
	if cfg.Workers < 1 {
		return nil, fmt.Errorf("scheduler: workers %d: must be positive", cfg.Workers)
	}
	s := &ProbeScheduler{
		cfg: cfg, logger: logger, observer: observer,
		entries: make(map[string]*entry),
		wake:    make(chan struct{}, 1),
		jobs:    make(chan job, cfg.Workers),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "canopy_healthcheck_probe_lateness_seconds", Help: "Delay between a probe's due time and its start.",
			Buckets: []float64{0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		}),
		runsC:     prometheus.NewCounter(prometheus.CounterOpts{Name: "canopy_healthcheck_probes_total", Help: "Probes started."}),
		skippedC:  prometheus.NewCounter(prometheus.CounterOpts{Name: "canopy_healthcheck_probes_skipped_total", Help: "Probe slots skipped because the previous probe of the target was still running or the scheduler fell behind."}),
		tasksG:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "canopy_healthcheck_targets", Help: "Targets scheduled on this replica."}),
		inflightG: prometheus.NewGauge(prometheus.GaugeOpts{Name: "canopy_healthcheck_probes_in_flight", Help: "Probes running now."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.lateness, s.runsC, s.skippedC, s.tasksG, s.inflightG} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("scheduler metrics: %w", err)
			}
		}
	}
	return s, nil
}

// firstDue returns the first due time after now for interval and phase,
// anchored to the wall clock but carrying now's monotonic reading.
func firstDue(now time.Time, interval, phase time.Duration) time.Time {
	pos := time.Duration(now.UnixNano() % int64(interval))
	d := phase - pos
	for d <= 0 {
		d += interval
	}
	return now.Add(d)
}

// Add schedules a task, replacing (and stopping) one with the same id.
func (s *ProbeScheduler) Add(spec Spec) error {
	if spec.ID == "" || spec.Task == nil || spec.Interval <= 0 {
		return errors.New("scheduler: task needs an id, a task and a positive interval")
	}
	phase := spec.Phase % spec.Interval
	if phase < 0 {
		phase += spec.Interval
	}
	e := &entry{id: spec.ID, interval: spec.Interval, task: spec.Task, index: -1,
		next: firstDue(time.Now(), spec.Interval, phase)}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errors.New("scheduler: stopped")
	}
	old := s.detachLocked(spec.ID)
	s.entries[spec.ID] = e
	heap.Push(&s.heap, e)
	s.tasksG.Set(float64(len(s.entries)))
	s.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	s.poke()
	return nil
}

// Remove unschedules a task. Its Stop runs now, or after its running Run
// returns. Removing an unknown id does nothing.
func (s *ProbeScheduler) Remove(id string) {
	s.mu.Lock()
	t := s.detachLocked(id)
	s.tasksG.Set(float64(len(s.entries)))
	s.mu.Unlock()
	if t != nil {
		t.Stop()
	}
}

// detachLocked removes id and returns its task when it can be stopped now
// (nil when unknown or when a running Run will stop it).
func (s *ProbeScheduler) detachLocked(id string) Task {
	e, ok := s.entries[id]
	if !ok {
		return nil
	}
	delete(s.entries, id)
	e.removed = true
	if e.index >= 0 {
		heap.Remove(&s.heap, e.index)
	}
	if e.running {
		return nil
	}
	return e.task
}

// Len returns the number of scheduled tasks.
func (s *ProbeScheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Counts returns the runs started and the slots skipped so far.
func (s *ProbeScheduler) Counts() (runs, skipped int64) { return s.runs.Load(), s.skipped.Load() }

func (s *ProbeScheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run dispatches due tasks until ctx ends, then waits for running tasks and
// stops every task.
func (s *ProbeScheduler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx)
		}()
	}
	s.dispatch(ctx)
	close(s.jobs)
	wg.Wait()

	s.mu.Lock()
	s.stopped = true
	var tasks []Task
	for id, e := range s.entries {
		delete(s.entries, id)
		e.removed = true
		tasks = append(tasks, e.task)
	}
	s.heap = s.heap[:0]
	s.mu.Unlock()
	for _, t := range tasks {
		t.Stop()
	}
	return nil
}

func (s *ProbeScheduler) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []job
	for {
		now := time.Now()
		batch = batch[:0]
		wait := time.Hour
		s.mu.Lock()
		for len(s.heap) > 0 {
			e := s.heap[0]
			if e.next.After(now) {
				wait = e.next.Sub(now)
				break
			}
			if e.running {
				s.skipped.Add(1)
				s.skippedC.Inc()
			} else {
				e.running = true
				batch = append(batch, job{e: e, due: e.next})
			}
			e.next = e.next.Add(e.interval)
			if !e.next.After(now) {
				// Far behind (a stalled process): skip the missed slots
				// instead of bursting through them.
				missed := int64(now.Sub(e.next)/e.interval) + 1
				s.skipped.Add(missed)
				s.skippedC.Add(float64(missed))
				e.next = e.next.Add(time.Duration(missed) * e.interval)
			}
			heap.Fix(&s.heap, 0)
		}
		s.mu.Unlock()
		for _, j := range batch {
			select {
			case s.jobs <- j:
			case <-ctx.Done():
				s.release(batch)
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// release marks batched jobs that were never handed out as not running.
func (s *ProbeScheduler) release(batch []job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range batch {
		j.e.running = false
	}
}

func (s *ProbeScheduler) work(ctx context.Context) {
	for j := range s.jobs {
		if ctx.Err() != nil {
			s.finish(j.e)
			continue
		}
		start := time.Now()
		late := start.Sub(j.due)
		s.lateness.Observe(late.Seconds())
		s.runs.Add(1)
		s.runsC.Inc()
		if s.observer != nil {
			s.observer(j.due, late)
		}
		s.inflightG.Inc()
		j.e.task.Run(ctx, j.due)
		s.inflightG.Dec()
		s.finish(j.e)
	}
}

func (s *ProbeScheduler) finish(e *entry) {
	s.mu.Lock()
	e.running = false
	stop := e.removed
	s.mu.Unlock()
	if stop {
		e.task.Stop()
	}
}

// entryHeap orders entries by next due time.
type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}
