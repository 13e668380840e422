package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
)

// DefaultStopTimeout bounds the stop of one stage when NewLifecycle is given
// none: longer than an HTTP server's default drain (15s), so a drain that
// respects its own bound is never cut short.
const DefaultStopTimeout = 30 * time.Second

// ErrRunTwice is returned by a second call of Lifecycle.Run.
var ErrRunTwice = errors.New("lifecycle already ran")

// Stage is one part of a service's lifetime: what it prepares at start,
// what it runs in the background and what it releases at stop. Every field
// but Name is optional.
type Stage struct {
	// Name names the stage in logs and errors: "database", "migrate",
	// "outbox relay", "http".
	Name string
	// Start runs to completion before the next stage starts: open, migrate,
	// seed, build. Its error aborts the start.
	Start func(ctx context.Context) error
	// Run runs in the background from the end of Start until its context
	// is cancelled, which happens only once every later stage has stopped.
	// Returning nil earlier ends the stage (its work is done); returning an
	// error stops the service, and that error is what Lifecycle.Run returns.
	Run func(ctx context.Context) error
	// Stop releases what Start acquired (close the database), after Run
	// has returned; it shares the stage's stop timeout.
	Stop func(ctx context.Context) error

	// server is the HTTP server of a stage made by Serve, set by its Start.
	server *serverRef
}

// serverRef holds the server a Serve stage builds at start.
type serverRef struct{ srv *httpx.Server }

// Serve is a stage that builds an HTTP server at start (after the stages
// before it, whose results build may use) and serves until stopped. The
// next stage starts, and the lifecycle counts as ready, only once it
// listens; Lifecycle.Addr(name) is then its address. When the service
// stops, every Serve stage's readiness turns false before any stage stops.
func Serve(name string, build func(ctx context.Context) (*httpx.Server, error)) Stage {
	ref := &serverRef{}
	return Stage{
		Name: name,
		Start: func(ctx context.Context) error {
			srv, err := build(ctx)
			if err != nil {
				return err
			}
			if srv == nil {
				return errors.New("nil server")
			}
			ref.srv = srv
			return nil
		},
		Run:    func(ctx context.Context) error { return ref.srv.Run(ctx) },
		server: ref,
	}
}

// Lifecycle starts a service's stages in order and stops them in reverse,
// each within a bounded time, the way grafana/dskit's services manager and
// Alertmanager's main do: readiness off first, then HTTP drains, then the
// workers stop, then what they wrote is flushed, then connections close. It
// is built in the service's constructor, so Ready can be waited on before
// Run is called. It is not a supervisor: a failed stage is not restarted,
// the whole service stops.
type Lifecycle struct {
	name        string
	logger      *slog.Logger
	stopTimeout time.Duration

	ran   atomic.Bool
	ready chan struct{}
	mu    sync.Mutex
	addrs map[string]string
}

// NewLifecycle returns the lifecycle of the service name (which prefixes
// Run's errors). Each stage gets stopTimeout to stop; DefaultStopTimeout
// when it is not positive.
func NewLifecycle(name string, stopTimeout time.Duration, logger *slog.Logger) *Lifecycle {
	if stopTimeout <= 0 {
		stopTimeout = DefaultStopTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Lifecycle{name: name, logger: logger, stopTimeout: stopTimeout, ready: make(chan struct{}), addrs: map[string]string{}}
}

// Ready is closed once every stage has started and every HTTP stage listens.
func (l *Lifecycle) Ready() <-chan struct{} { return l.ready }

// Addr is the listen address of the Serve stage named stage, once it
// listens; "" before or for another name.
func (l *Lifecycle) Addr(stage string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs[stage]
}

// running is a started stage.
type running struct {
	stage  Stage
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, readable once done is closed
	// reported is set when err was already returned as the cause of the stop.
	reported bool
}

// failure is a stage's Run ending with an error before it was asked to stop.
type failure struct{ r *running }

// cause is the failure as the reason the service stops.
func (f failure) cause() error {
	f.r.reported = true
	return fmt.Errorf("%s: %w", f.r.stage.Name, f.r.err)
}

// Run starts the stages in order and runs them until ctx ends or a stage
// fails, then stops the started ones in reverse order. A failed start or
// stage and every stop that fails or overruns its timeout are in the
// returned error; a clean stop returns nil. Run may be called once.
func (l *Lifecycle) Run(ctx context.Context, stages ...Stage) error {
	if !l.ran.CompareAndSwap(false, true) {
		return fmt.Errorf("%s: %w", l.name, ErrRunTwice)
	}
	// Buffered for every stage, so a failing Run never blocks on a send.
	failed := make(chan failure, len(stages))
	var started []*running
	var errs []error
	cause := l.start(ctx, stages, failed, &started)
	if cause == nil {
		close(l.ready)
		l.logger.Debug("all stages started", "service", l.name)
		select {
		case <-ctx.Done():
		case f := <-failed:
			cause = f.cause()
		}
	}
	if cause != nil && !errors.Is(cause, errStopRequested) {
		errs = append(errs, cause)
	}
	errs = append(errs, l.stop(started)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", l.name, err)
	}
	return nil
}

// errStopRequested ends the start when ctx ends between stages: a stop,
// not a failure.
var errStopRequested = errors.New("stop requested during start")

// start starts stages in order, appending each to started, and returns why
// it stopped early, if it did.
func (l *Lifecycle) start(ctx context.Context, stages []Stage, failed chan failure, started *[]*running) error {
	for _, st := range stages {
		select {
		case f := <-failed:
			return f.cause()
		case <-ctx.Done():
			return errStopRequested
		default:
		}
		if st.Start != nil {
			if err := st.Start(ctx); err != nil {
				// A start cut short because ctx ended (SIGTERM while
				// migrating) is a stop, not a failure of the stage.
				if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
					return errStopRequested
				}
				return fmt.Errorf("%s: %w", st.Name, err)
			}
		}
		r := &running{stage: st, done: make(chan struct{})}
		*started = append(*started, r)
		if st.Run == nil {
			close(r.done)
			l.logger.Debug("stage started", "service", l.name, "stage", st.Name)
			continue
		}
		// Each stage has its own context, cancelled only by stop, so that
		// the end of ctx stops the stages one by one in reverse order.
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r.cancel = cancel
		go func() {
			defer close(r.done)
			r.err = st.Run(rctx)
			if r.err != nil && rctx.Err() == nil {
				failed <- failure{r: r}
			}
		}()
		if st.server != nil {
			select {
			case <-st.server.srv.Ready():
				l.mu.Lock()
				l.addrs[st.Name] = st.server.srv.Addr()
				l.mu.Unlock()
			case f := <-failed:
				return f.cause()
			case <-r.done:
				if r.err != nil {
					return failure{r: r}.cause()
				}
				return fmt.Errorf("%s: stopped before it listened", st.Name)
			case <-ctx.Done():
				return errStopRequested
			}
		}
		l.logger.Debug("stage started", "service", l.name, "stage", st.Name)
	}
	return nil
}

// stop turns every HTTP stage unready, then stops the started stages last
// first, each within the stop timeout, and returns what went wrong.
func (l *Lifecycle) stop(started []*running) []error {
	for _, r := range started {
		if r.stage.server != nil && r.stage.server.srv != nil {
			r.stage.server.srv.Unready()
		}
	}
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		if err := l.stopStage(started[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// stopStage cancels r's Run, waits for it and runs its Stop, all before one
// deadline; a stage still busy then is abandoned (its goroutine is left to
// end on its own) and reported by name.
func (l *Lifecycle) stopStage(r *running) error {
	name := r.stage.Name
	// One deadline for Run and Stop together: the timer ends the wait, the
	// context tells Stop how long it has.
	sctx, cancel := context.WithTimeout(context.Background(), l.stopTimeout)
	defer cancel()
	if r.cancel != nil {
		r.cancel()
	}
	var errs []error
	select {
	case <-r.done:
		if r.err != nil && !r.reported && !errors.Is(r.err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s: %w", name, r.err))
		}
	case <-sctx.Done():
		l.logger.Warn("stage did not stop in time; abandoned", "service", l.name, "stage", name, "timeout", l.stopTimeout)
		return fmt.Errorf("%s: did not stop within %s", name, l.stopTimeout)
	}
	if r.stage.Stop != nil {
		stopped := make(chan error, 1)
		go func() { stopped <- r.stage.Stop(sctx) }()
		select {
		case err := <-stopped:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: stop: %w", name, err))
			}
		case <-sctx.Done():
			l.logger.Warn("stage did not stop in time; abandoned", "service", l.name, "stage", name, "timeout", l.stopTimeout)
			errs = append(errs, fmt.Errorf("%s: did not stop within %s", name, l.stopTimeout))
		}
	}
	l.logger.Debug("stage stopped", "service", l.name, "stage", name)
	return errors.Join(errs...)
}

// Together runs fns as one stage's Run: concurrently, stopped together (the
// members of a consumer group), the first error cancelling the others. It
// returns once all have returned, with their errors joined.
func Together(fns ...func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errs := make([]error, len(fns))
		var wg sync.WaitGroup
		for i, fn := range fns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if errs[i] = fn(ctx); errs[i] != nil {
					cancel()
				}
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
}
