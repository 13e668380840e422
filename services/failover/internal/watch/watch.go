// Package watch is the failover service's fast detector for the instances
// this replica owns: one goroutine per instance looks at the assigned
// primary every interval; on a failed look it looks at every node at once,
// runs the analysis table and hands the first actionable problem to the
// recoverer, one recovery at a time per instance. A slower full analysis
// catches what the primary check cannot see (a read-only primary, a
// returned fenced node, a writable or stopped replica). It decides and
// delegates; it acts on no node itself.
package watch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Recoverer runs recoveries (recovery.Recoverer).
type Recoverer interface {
	Failover(ctx context.Context, in topology.Instance, p analysis.Problem) (topology.Recovery, error)
	Heal(ctx context.Context, in topology.Instance, p analysis.Problem) error
	Resume(ctx context.Context, in topology.Instance) (topology.Recovery, error)
}

var _ Recoverer = (*recovery.Recoverer)(nil)

// Config configures a Watcher.
type Config struct {
	// Interval between looks at an instance's primary (default 100ms).
	Interval time.Duration `yaml:"interval" env:"INTERVAL"`
	// CheckTimeout bounds each look at a node (default 250ms).
	CheckTimeout time.Duration `yaml:"check_timeout" env:"CHECK_TIMEOUT"`
	// FullEvery is the period of the full analysis of every node
	// (default 2s).
	FullEvery time.Duration `yaml:"full_every" env:"FULL_EVERY"`
	// RetryAfter: a problem whose recovery failed is not retried for this
	// long, unless Trigger or Update brings news (default 5s).
	RetryAfter time.Duration `yaml:"retry_after" env:"RETRY_AFTER"`
	// HoldOffRetry: the same after a hold-off refusal, which only an
	// acknowledgement lifts (default 30s; the API triggers on it).
	HoldOffRetry time.Duration `yaml:"hold_off_retry" env:"HOLD_OFF_RETRY"`
	// RecoveryTimeout bounds one recovery (default 60s).
	RecoveryTimeout time.Duration `yaml:"recovery_timeout" env:"RECOVERY_TIMEOUT"`
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, 100*time.Millisecond)
	def(&c.CheckTimeout, 250*time.Millisecond)
	def(&c.FullEvery, 2*time.Second)
	def(&c.RetryAfter, 5*time.Second)
	def(&c.HoldOffRetry, 30*time.Second)
	def(&c.RecoveryTimeout, 60*time.Second)
	return c
}

// Deps are the Watcher's collaborators.
type Deps struct {
	// Nodes looks at nodes, per engine.
	Nodes     map[topology.Engine]topology.Nodes
	Recoverer Recoverer
	Logger    *slog.Logger
	// Now is the clock for detection times (nil: time.Now).
	Now func() time.Time
	// Health returns the health checker's latest verdicts for an
	// instance's nodes (nil: none known).
	Health func(instanceID string) analysis.Health
}

// Watcher watches the instances this replica owns.
type Watcher struct {
	cfg  Config
	deps Deps

	// base is the watcher's own lifetime: every instance goroutine runs
	// under it, and Run cancels it.
	base   context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	workers map[string]*worker
	stopped bool
	wg      sync.WaitGroup
}

// New returns a Watcher; its goroutines start with Own and stop with
// Disown or when Run's context ends.
func New(cfg Config, deps Deps) (*Watcher, error) {
	if len(deps.Nodes) == 0 || deps.Recoverer == nil || deps.Logger == nil {
		return nil, errors.New("watch: nodes, recoverer and logger are required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	base, cancel := context.WithCancel(context.Background())
	return &Watcher{cfg: cfg.withDefaults(), deps: deps, base: base, cancel: cancel, workers: map[string]*worker{}}, nil
}

// Run returns when ctx ends, after every instance goroutine has stopped.
func (w *Watcher) Run(ctx context.Context) error {
	<-ctx.Done()
	w.mu.Lock()
	w.stopped = true
	w.workers = map[string]*worker{}
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	return nil
}

// Own starts watching in (an Update if it is already watched). It first
// resumes any recovery a crashed actor left open, then analyses the whole
// instance once.
func (w *Watcher) Own(in topology.Instance) {
	nodes, ok := w.deps.Nodes[in.Engine]
	if !ok {
		w.deps.Logger.Error("watch: no node adapter for engine", "tenant", in.Tenant, "instance", in.ID, "engine", string(in.Engine))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if wk, ok := w.workers[in.ID]; ok {
		wk.update(in)
		return
	}
	ctx, cancel := context.WithCancel(w.base)
	wk := &worker{w: w, nodes: nodes, in: in, cancel: cancel, done: make(chan struct{}), trigger: make(chan struct{}, 1),
		suppressed: map[string]time.Time{},
		log:        w.deps.Logger.With("tenant", in.Tenant, "instance", in.ID, "engine", string(in.Engine))}
	w.workers[in.ID] = wk
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		wk.run(ctx)
	}()
}

// Disown stops watching the instance and returns once its goroutine ended
// (a recovery in progress is cancelled; its record stays open for Resume).
func (w *Watcher) Disown(instanceID string) {
	w.mu.Lock()
	wk, ok := w.workers[instanceID]
	delete(w.workers, instanceID)
	w.mu.Unlock()
	if ok {
		wk.cancel()
		<-wk.done
	}
}

// Trigger asks for a full analysis of the instance now (a health.node.down
// event, an acknowledged hold-off); it lifts the retry back-off.
func (w *Watcher) Trigger(instanceID string) {
	w.mu.Lock()
	wk, ok := w.workers[instanceID]
	w.mu.Unlock()
	if ok {
		wk.poke(true)
	}
}

// Update replaces the instance's topology (new roles after a failover,
// nodes added or removed) and analyses it now. Unknown instances are
// ignored: Own decides what this replica watches.
func (w *Watcher) Update(in topology.Instance) {
	w.mu.Lock()
	wk, ok := w.workers[in.ID]
	w.mu.Unlock()
	if ok {
		wk.update(in)
	}
}

type worker struct {
	w       *Watcher
	nodes   topology.Nodes
	log     *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{}
	trigger chan struct{}

	mu    sync.Mutex
	in    topology.Instance
	clear bool // lift the back-off at the next analysis

	// Owned by the worker goroutine.
	since      time.Time            // first failed check of the current episode
	suppressed map[string]time.Time // problem key → not before
}

func (k *worker) update(in topology.Instance) {
	k.mu.Lock()
	k.in = in
	k.mu.Unlock()
	k.poke(true)
}

func (k *worker) poke(clear bool) {
	if clear {
		k.mu.Lock()
		k.clear = true
		k.mu.Unlock()
	}
	select {
	case k.trigger <- struct{}{}:
	default:
	}
}

func (k *worker) instance() topology.Instance {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.in
}

// setRoles follows a recovery's outcome at once, before provisioning
// republishes the topology: acting on the old roles would undo it.
func (k *worker) setRoles(roles map[string]topology.Role) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.in = recovery.Apply(k.in, roles)
}

// resume finishes (or rolls back) a recovery a crashed actor left open.
func (k *worker) resume(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, k.w.cfg.RecoveryTimeout)
	defer cancel()
	rec, err := k.w.deps.Recoverer.Resume(rctx, k.instance())
	switch {
	case err == nil:
		k.followed(rec)
	case errors.Is(err, topology.ErrNotFound), errors.Is(err, topology.ErrLeaseHeld), ctx.Err() != nil:
	default:
		k.log.Warn("resume open recovery", "err", err)
	}
}

func (k *worker) run(ctx context.Context) {
	defer close(k.done)
	k.resume(ctx)
	k.analyse(ctx)
	tick := time.NewTicker(k.w.cfg.Interval)
	defer tick.Stop()
	full := time.NewTicker(k.w.cfg.FullEvery)
	defer full.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			k.check(ctx)
		case <-full.C:
			k.analyse(ctx)
		case <-k.trigger:
			k.analyse(ctx)
		}
	}
}

// check looks at the primary only; anything but a reachable, writable
// primary starts (or continues) an episode and a full analysis.
func (k *worker) check(ctx context.Context) {
	in := k.instance()
	p, ok := in.Primary()
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, k.w.cfg.CheckTimeout)
	v := k.nodes.Observe(cctx, in, p)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if v.Reachable && v.Writable {
		k.since = time.Time{}
		return
	}
	if k.since.IsZero() {
		k.since = k.w.deps.Now()
		k.log.Info("primary check failed", "node", p.ID, "reachable", v.Reachable, "err", v.Err)
	}
	k.analyse(ctx)
}

func (k *worker) analyse(ctx context.Context) {
	k.mu.Lock()
	in, clear := k.in, k.clear
	k.clear = false
	k.mu.Unlock()
	if clear {
		k.suppressed = map[string]time.Time{}
	}
	views := recovery.ObserveAll(ctx, k.nodes, in, k.w.cfg.CheckTimeout)
	if ctx.Err() != nil {
		return
	}
	list := make([]topology.NodeView, 0, len(views))
	for _, v := range views {
		list = append(list, v)
	}
	var health analysis.Health
	if k.w.deps.Health != nil {
		health = k.w.deps.Health(in.ID)
	}
	now := k.w.deps.Now()
	var problem analysis.Problem
	found := false
	for _, p := range analysis.Analyze(in, list, health) {
		if until, ok := k.suppressed[key(p)]; ok && now.Before(until) {
			continue
		}
		if p.Code == analysis.PrimaryMoved {
			// Our topology is stale: either a crashed actor's recovery is
			// open (finish it) or a completed one's roles are on their way.
			k.suppressed[key(p)] = now.Add(k.w.cfg.RetryAfter)
			k.resume(ctx)
			return
		}
		if !p.Actionable() {
			continue
		}
		problem, found = p, true
		break
	}
	if !found {
		// A long episode without an actionable problem (a primary only we
		// cannot reach) is not the start of a later failure: restart the
		// detection clock so detection_ms stays the time to confirm.
		if !k.since.IsZero() && now.Sub(k.since) > k.w.cfg.FullEvery {
			k.since = time.Time{}
		}
		return
	}
	problem.DetectedAt = now
	problem.Since = k.since
	if problem.Since.IsZero() {
		problem.Since = now
	}
	k.recover(ctx, in, problem)
}

func key(p analysis.Problem) string { return string(p.Code) + "/" + p.Node }

func (k *worker) recover(ctx context.Context, in topology.Instance, p analysis.Problem) {
	rctx, cancel := context.WithTimeout(ctx, k.w.cfg.RecoveryTimeout)
	defer cancel()
	log := k.log.With("problem", string(p.Code), "node", p.Node, "action", string(p.Action))
	log.Info("problem confirmed", "detail", p.Detail, "detection_ms", p.DetectedAt.Sub(p.Since).Milliseconds())
	var err error
	if p.Action == analysis.ActionFailover {
		var rec topology.Recovery
		rec, err = k.w.deps.Recoverer.Failover(rctx, in, p)
		if err == nil {
			k.followed(rec)
		}
	} else {
		err = k.w.deps.Recoverer.Heal(rctx, in, p)
		if err == nil && p.Action == analysis.ActionRejoin {
			k.setRoles(map[string]topology.Role{p.Node: topology.RoleReplica})
		}
	}
	if err == nil {
		return
	}
	retry := k.w.cfg.RetryAfter
	switch {
	case ctx.Err() != nil:
		return
	case errors.Is(err, recovery.ErrProblemGone):
		log.Info("problem gone before recovery")
		return
	case errors.Is(err, recovery.ErrRecoveryOpen):
		// A crashed actor's recovery comes first.
		k.resume(ctx)
		return
	case errors.Is(err, topology.ErrHoldOff):
		retry = k.w.cfg.HoldOffRetry
	case errors.Is(err, recovery.ErrErrant):
		// Nothing changes until the node is rebuilt (an Update).
		retry = 24 * time.Hour
	case errors.Is(err, topology.ErrLeaseHeld):
		log.Info("another actor holds the instance", "err", err)
	}
	k.suppressed[key(p)] = k.w.deps.Now().Add(retry)
	if !errors.Is(err, topology.ErrLeaseHeld) {
		log.Warn("recovery failed", "err", err, "retry_in", retry.String())
	}
}

// followed applies a completed recovery's roles and ends the episode.
func (k *worker) followed(rec topology.Recovery) {
	if rec.State != topology.StateCompleted {
		return
	}
	k.setRoles(rec.Roles)
	k.since = time.Time{}
	k.log.Info("following recovery", "recovery", rec.ID, "new_primary", rec.Candidate, "rto_ms", rec.RTOMS)
}
