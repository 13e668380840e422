// Package recovery acts on an instance's nodes when analysis finds a
// problem: the automatic failover, the planned switchover, the resumption
// of a recovery a crashed actor left open, the rejoin of a fenced node and
// the small heals (writes back on, fence, re-point). Every recovery takes
// the instance's lease, records itself before touching a node, records each
// step before taking it, and stops at once when its fencing token is
// superseded. It reaches nodes and the store only through the topology
// ports; it knows nothing of SQL, Redis or Kafka.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Errors callers branch on (beside the topology ones).
var (
	// ErrStopped: the test hook stopped the recovery at a point, as if the
	// actor had crashed there (nothing more recorded, lease not released).
	ErrStopped = errors.New("recovery stopped by hook")
	// ErrRecoveryOpen: another recovery of the instance is unfinished;
	// Resume it first.
	ErrRecoveryOpen = errors.New("a recovery of the instance is open")
	// ErrCatchUp: the switchover target did not reach the old primary's
	// position in time; the old primary was made writable again.
	ErrCatchUp = errors.New("switchover target did not catch up")
	// ErrNotSwitchable: a switchover needs a reachable, writable primary.
	ErrNotSwitchable = errors.New("primary not reachable and writable")
	// ErrProblemGone: looked at again under the lease, the instance no
	// longer needs the recovery (another actor did it, or it healed).
	ErrProblemGone = errors.New("problem no longer present")
	// ErrErrant: a returning fenced node has transactions the primary
	// lacks; it stays fenced until rebuilt.
	ErrErrant = errors.New("node has errant transactions")
	// ErrNotReplica: only a replica is rebuilt on request.
	ErrNotReplica = errors.New("node is not a replica")
	// ErrNoRebuilder: the engine's nodes cannot be rebuilt (no Rebuilder,
	// or a Redis replica, which resynchronises by itself).
	ErrNoRebuilder = errors.New("nodes cannot be rebuilt here")
)

// ProblemSwitchover is the Problem of a planned switchover's record.
const ProblemSwitchover = "Switchover"

// Point is a place in a recovery where the test hook may stop it.
type Point string

// Hook points, in the order a failover passes them.
const (
	// AfterBegin: recorded (failover.started), nothing done on the nodes.
	AfterBegin Point = "after-begin"
	// AfterFence: the old primary fenced (or found unreachable), recorded.
	AfterFence Point = "after-fence"
	// BeforePromote: step promoting recorded, candidate not yet touched.
	BeforePromote Point = "before-promote"
	// AfterPromote: the candidate promoted on the node, not yet recorded.
	AfterPromote Point = "after-promote"
	// AfterRepoint: the others re-pointed, completion not yet recorded.
	AfterRepoint Point = "after-repoint"
)

// Points lists every hook point, in order.
func Points() []Point {
	return []Point{AfterBegin, AfterFence, BeforePromote, AfterPromote, AfterRepoint}
}

// Hook, when it returns an error at a point, stops the recovery there
// (tests use it to simulate a crash at a chosen step).
type Hook func(Point) error

// Config configures a Recoverer.
type Config struct {
	// Holder identifies this actor in leases and records (the replica id).
	Holder string `yaml:"holder" env:"HOLDER"`
	// LeaseTTL bounds how long a crashed actor blocks others (default 15s);
	// a running recovery renews it between steps.
	LeaseTTL time.Duration `yaml:"lease_ttl" env:"LEASE_TTL"`
	// HoldOff: no second automatic failover of an instance within this
	// time of the last one unless acknowledged (default 10m).
	HoldOff time.Duration `yaml:"hold_off" env:"HOLD_OFF"`
	// FenceTimeout bounds fencing an old primary that may be gone
	// (default 500ms): fencing it is best effort.
	FenceTimeout time.Duration `yaml:"fence_timeout" env:"FENCE_TIMEOUT"`
	// ObserveTimeout bounds each look at a node (default 500ms).
	ObserveTimeout time.Duration `yaml:"observe_timeout" env:"OBSERVE_TIMEOUT"`
	// StepTimeout bounds a promotion or a re-point (default 10s).
	StepTimeout time.Duration `yaml:"step_timeout" env:"STEP_TIMEOUT"`
	// CatchUpTimeout bounds a switchover's wait for the target, and a
	// failover's best-effort wait when the old primary is still reachable
	// (default 5s).
	CatchUpTimeout time.Duration `yaml:"catch_up_timeout" env:"CATCH_UP_TIMEOUT"`
	// Candidate bounds candidate lag.
	Candidate analysis.CandidateConfig `yaml:"candidate" envPrefix:"CANDIDATE_"`
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.LeaseTTL, 15*time.Second)
	def(&c.HoldOff, 10*time.Minute)
	def(&c.FenceTimeout, 500*time.Millisecond)
	def(&c.ObserveTimeout, 500*time.Millisecond)
	def(&c.StepTimeout, 10*time.Second)
	def(&c.CatchUpTimeout, 5*time.Second)
	c.Candidate = c.Candidate.WithDefaults()
	return c
}

// Validate reports a config the Recoverer cannot run with.
func (c Config) Validate() error {
	if c.Holder == "" {
		return errors.New("recovery: holder is required")
	}
	if c.LeaseTTL < 0 || c.HoldOff < 0 || c.FenceTimeout < 0 || c.ObserveTimeout < 0 || c.StepTimeout < 0 || c.CatchUpTimeout < 0 {
		return errors.New("recovery: durations must not be negative")
	}
	return nil
}

// Deps are the Recoverer's collaborators.
type Deps struct {
	Store topology.Store
	// Nodes acts on nodes, per engine.
	Nodes map[topology.Engine]topology.Nodes
	// Now is the clock (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Hook stops a recovery at a point (tests); nil in production.
	Hook Hook
	// KindOf names what an automatic failover answers: KindDrill while a
	// drill of the instance runs (a drill imposes no hold-off), else
	// KindAutomatic (nil: always automatic).
	KindOf func(ctx context.Context, instanceID string) topology.Kind
	// Rebuilder rebuilds a returning old primary that has errant
	// transactions from the primary (provclient); nil keeps such a node
	// fenced and reported.
	Rebuilder topology.Rebuilder
}

// Recoverer runs recoveries. It is safe for concurrent use; recoveries of
// one instance exclude each other through the store's lease, even across
// processes.
type Recoverer struct {
	cfg   Config
	store topology.Store
	nodes map[topology.Engine]topology.Nodes
	now   func() time.Time
	log   *slog.Logger
	hook  Hook
	kind  func(ctx context.Context, instanceID string) topology.Kind
	// rebuild is nil when returning nodes with errant transactions stay fenced.
	rebuild topology.Rebuilder

	// busy holds the instances a recovery of this Recoverer is acting on.
	// The lease excludes other replicas, but this replica renews its own
	// lease: without busy, the watcher would "resume" a switchover this
	// same process is still running.
	mu   sync.Mutex
	busy map[string]bool
}

// New returns a Recoverer.
func New(cfg Config, deps Deps) (*Recoverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || len(deps.Nodes) == 0 || deps.Logger == nil {
		return nil, errors.New("recovery: store, nodes and logger are required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Recoverer{cfg: cfg.withDefaults(), store: deps.Store, nodes: deps.Nodes, now: deps.Now, log: deps.Logger, hook: deps.Hook, kind: deps.KindOf,
		rebuild: deps.Rebuilder, busy: map[string]bool{}}, nil
}

// run is one recovery under one lease.
type run struct {
	r     *Recoverer
	in    topology.Instance
	nodes topology.Nodes
	lease topology.Lease
	rec   topology.Recovery
	log   *slog.Logger
	// keep: do not release the lease (stopped by the hook, or fenced).
	keep bool
}

func (r *Recoverer) start(ctx context.Context, in topology.Instance) (*run, error) {
	nodes, ok := r.nodes[in.Engine]
	if !ok {
		return nil, fmt.Errorf("instance %s: no node adapter for engine %q", in.ID, in.Engine)
	}
	r.mu.Lock()
	if r.busy[in.ID] {
		r.mu.Unlock()
		return nil, fmt.Errorf("lease of %s: a recovery of this replica is running: %w", in.ID, topology.ErrLeaseHeld)
	}
	r.busy[in.ID] = true
	r.mu.Unlock()
	l, err := r.store.Acquire(ctx, in.ID, r.cfg.Holder, r.cfg.LeaseTTL)
	if err != nil {
		r.idle(in.ID)
		return nil, fmt.Errorf("lease of %s: %w", in.ID, err)
	}
	return &run{r: r, in: in, nodes: nodes, lease: l,
		log: r.log.With("tenant", in.Tenant, "instance", in.ID, "engine", string(in.Engine), "token", l.Token)}, nil
}

// end releases the lease unless the run must keep it; a release failure
// only shortens nobody's wait (the lease expires), so it is logged.
func (x *run) end() {
	defer x.r.idle(x.in.ID)
	if x.keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), x.r.cfg.ObserveTimeout)
	defer cancel()
	if err := x.r.store.Release(ctx, x.lease); err != nil {
		x.log.Warn("release lease", "err", err)
	}
}

func (r *Recoverer) idle(instanceID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, instanceID)
}

func (x *run) point(p Point) error {
	if x.r.hook == nil {
		return nil
	}
	if err := x.r.hook(p); err != nil {
		x.keep = true
		return fmt.Errorf("%s at %s: %w", x.rec.ID, p, ErrStopped)
	}
	return nil
}

// renew extends the lease once a third of it is used, so a long recovery
// keeps it; losing it means another actor took over.
func (x *run) renew(ctx context.Context) error {
	if x.r.now().Before(x.lease.Expires.Add(-2 * x.r.cfg.LeaseTTL / 3)) {
		return nil
	}
	return x.confirm(ctx)
}

// confirm renews the lease now and fails with ErrFenced if another actor
// took it: the store checks the token on every write, but a node cannot,
// so the irreversible node actions (a promotion, writes back on) are
// preceded by this check.
func (x *run) confirm(ctx context.Context) error {
	l, err := x.r.store.Acquire(ctx, x.in.ID, x.r.cfg.Holder, x.r.cfg.LeaseTTL)
	if err == nil && l.Token != x.lease.Token {
		// The lease had lapsed and was free: this actor was superseded
		// meanwhile (its token is stale), so it hands the new lease back
		// rather than act under it.
		if rerr := x.r.store.Release(ctx, l); rerr != nil {
			x.log.Warn("release lease taken while superseded", "err", rerr)
		}
		err = fmt.Errorf("token %d superseded by %d", x.lease.Token, l.Token)
	}
	if err != nil {
		x.keep = true
		return fmt.Errorf("renew lease of %s: %v: %w", x.in.ID, err, topology.ErrFenced)
	}
	x.lease = l
	return nil
}

// save records the recovery's step; ErrFenced stops the run at once.
func (x *run) save(ctx context.Context) error {
	if err := x.renew(ctx); err != nil {
		return err
	}
	if err := x.r.store.Save(ctx, x.lease, x.rec); err != nil {
		if errors.Is(err, topology.ErrFenced) {
			x.keep = true
		}
		return fmt.Errorf("record %s step %s: %w", x.rec.ID, x.rec.Step, err)
	}
	return nil
}

// fail records the recovery failed with reason and returns cause.
func (x *run) fail(ctx context.Context, reason string, cause error) error {
	x.rec.State, x.rec.Reason = topology.StateFailed, reason
	now := x.r.now()
	x.rec.CompletedAt = &now
	x.log.Warn("recovery failed", "recovery", x.rec.ID, "kind", string(x.rec.Kind), "reason", reason)
	if err := x.save(ctx); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// observeAll looks at every node in parallel, each bounded.
func (x *run) observeAll(ctx context.Context) map[string]topology.NodeView {
	return ObserveAll(ctx, x.nodes, x.in, x.r.cfg.ObserveTimeout)
}

// ObserveAll looks at every node of in in parallel, each look bounded by
// timeout, and returns the views by node id.
func ObserveAll(ctx context.Context, nodes topology.Nodes, in topology.Instance, timeout time.Duration) map[string]topology.NodeView {
	views := make([]topology.NodeView, len(in.Nodes))
	var wg sync.WaitGroup
	for i, n := range in.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			octx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			views[i] = nodes.Observe(octx, in, n)
			views[i].NodeID = n.ID
		}()
	}
	wg.Wait()
	out := make(map[string]topology.NodeView, len(views))
	for _, v := range views {
		out[v.NodeID] = v
	}
	return out
}

func list(m map[string]topology.NodeView) []topology.NodeView {
	out := make([]topology.NodeView, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// bounded runs f with its own deadline.
func bounded(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(c)
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
