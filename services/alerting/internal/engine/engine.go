// Package engine is the alerting service's core: it consumes the platform's
// topics, evaluates the rules, accepts pushed alerts, keeps the alerts,
// silences and routes, drives the dispatcher, stores notifications and
// delivers them, runs remediation actions, and recovers all of it from the
// store after a restart. One engine is active per database (a MySQL named
// lock); a standby waits for the lock.
//
// It is not the HTTP API (that lives in httpapi and calls Push, Reload and
// Muting) and holds no grouping or routing logic of its own (dispatch does).
//
// Goroutines, each with one owner and one stop path (all started by Run):
//   - the state owner (state.go): the alert map, the evaluator's results,
//     group commits of pushes and events into the store, the ticks;
//   - the dispatch loop (loop.go): the only user of the dispatcher; flushes
//     groups into stored notifications;
//   - the delivery poller and workers (deliver.go): stored notifications to
//     webhooks, with retries and dead letters;
//   - the Kafka subscriber (consume.go);
//   - remediation runs (remediate.go), bounded and waited for.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
	"github.com/canopy-platform/canopy/services/alerting/internal/remediation"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
	"github.com/canopy-platform/canopy/services/alerting/internal/webhook"
)

// Config configures the engine.
type Config struct {
	Brokers []string
	GroupID string // consumer group, "canopy-alerting"
	// ExternalURL is the payload's externalURL (the gateway's URL).
	ExternalURL string
	// GeneratorURL is the base of rule alerts' generatorURL.
	GeneratorURL string
	// InhibitRules, default DefaultInhibitRules().
	InhibitRules []alert.InhibitRule
	// DeliveryWorkers posting concurrently (default 32).
	DeliveryWorkers int
	// MaxAttempts before a delivery becomes a dead letter (default 12), or
	// when the receiver's breaker stays open past DeadAfter (default 1h).
	MaxAttempts int
	DeadAfter   time.Duration
	// StaleAfter resolves sample alerts of nodes no longer sampled (5m).
	StaleAfter time.Duration
	// ResolvedRetention keeps resolved alerts listable (24h).
	ResolvedRetention time.Duration
	// MaxAlertsPerMessage truncates a payload (0: no limit).
	MaxAlertsPerMessage int
	// BatchWait bounds how long a pushed alert waits for its batch's
	// commit (group commit of concurrent pushes, default 5ms).
	BatchWait time.Duration
	// DLQEvery is how often the dead-letter topics are looked at for
	// growth (default 30s).
	DLQEvery time.Duration
	// LockName is the MySQL named lock of the single active engine.
	LockName string
	// RefreshEvery is how often silences, receivers and rules are re-read
	// from the database (default 30s): the API of another replica (a
	// standby reached while the gateway's view of readiness lags) stores
	// changes this engine was not told about. Receivers and rules are
	// re-read only when their table changed.
	RefreshEvery time.Duration
}

// Tunables that are not configuration: they follow from the design's
// numbers (thousands of alerts per second, delivery well under 100ms).
const (
	defaultDeliveryWorkers = 32
	defaultMaxAttempts     = 12
	defaultDeadAfter       = time.Hour
	defaultStaleAfter      = 5 * time.Minute
	defaultRetention       = 24 * time.Hour
	defaultBatchWait       = 5 * time.Millisecond
	// maxBatchAlerts caps one group commit (one UpsertAlerts transaction).
	maxBatchAlerts = 4096
	// tickEvery drives the evaluator's Tick and the expiry of pushed alerts.
	tickEvery = time.Second
	// pruneEvery prunes resolved alerts and delivered notifications.
	pruneEvery = time.Minute
	// defaultRefreshEvery re-reads what another API replica may write.
	defaultRefreshEvery = 30 * time.Second
	// pollEvery is the delivery poller's idle period (retries come due
	// without a wake-up).
	pollEvery = 500 * time.Millisecond
	// lockRetry is the wait between tries for the engine lock, lockCheck
	// the period of the check that the lock's session still lives.
	lockRetry = time.Second
	lockCheck = 5 * time.Second
	// remediationParallel bounds concurrent remediation runs.
	remediationParallel = 4
)

func (c Config) withDefaults() Config {
	if c.InhibitRules == nil {
		c.InhibitRules = DefaultInhibitRules()
	}
	if c.DeliveryWorkers <= 0 {
		c.DeliveryWorkers = defaultDeliveryWorkers
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = defaultMaxAttempts
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = defaultDeadAfter
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = defaultStaleAfter
	}
	if c.ResolvedRetention <= 0 {
		c.ResolvedRetention = defaultRetention
	}
	if c.BatchWait <= 0 {
		c.BatchWait = defaultBatchWait
	}
	if c.RefreshEvery <= 0 {
		c.RefreshEvery = defaultRefreshEvery
	}
	if c.GroupID == "" {
		c.GroupID = "canopy-alerting"
	}
	if c.DLQEvery <= 0 {
		c.DLQEvery = defaultDLQEvery
	}
	return c
}

// DefaultInhibitRules: an instance-wide alert (severity critical with
// alertname InstanceDown) inhibits that instance's node-level alerts; a
// node-down alert inhibits the same node's other alerts.
func DefaultInhibitRules() []alert.InhibitRule {
	eq := func(name, value string) *alert.Matcher {
		m, err := alert.NewMatcher(alert.MatchEqual, name, value)
		if err != nil {
			panic(err) // constant matchers: unreachable
		}
		return m
	}
	ne := func(name, value string) *alert.Matcher {
		m, err := alert.NewMatcher(alert.MatchNotEqual, name, value)
		if err != nil {
			panic(err)
		}
		return m
	}
	return []alert.InhibitRule{
		{
			Source: alert.Matchers{eq(alert.LabelAlertName, "NodeDown")},
			Target: alert.Matchers{ne(alert.LabelAlertName, "NodeDown")},
			Equal:  []string{alert.LabelInstance, alert.LabelNode},
		},
		{
			Source: alert.Matchers{eq(alert.LabelSeverity, "critical"), eq(alert.LabelAlertName, "InstanceDown")},
			Target: alert.Matchers{eq(alert.LabelSeverity, "warning")},
			Equal:  []string{alert.LabelInstance},
		},
	}
}

// ErrStopped is returned by Push when the engine is not running (not yet
// ready, stopping or stopped).
var ErrStopped = errors.New("alerting engine not running")

// Engine is the running core.
type Engine struct {
	cfg     Config
	db      *store.DB
	st      *alertstore.Store
	send    *webhook.Sender
	act     *remediation.Runner
	reg     *nodes.Registry
	log     *slog.Logger
	metrics *metrics
	promReg prometheus.Registerer
	now     func() time.Time

	ready     chan struct{}
	readyOnce sync.Once
	running   atomic.Bool

	// reqs carries pushes and event results to the state owner; stopped
	// closes when the state owner stops.
	reqs    chan *commitReq
	stopped chan struct{}

	// evalMu guards the evaluator (not safe for concurrent use).
	evalMu sync.Mutex
	eval   *rules.Evaluator

	// state is owned by the state goroutine; alertsMu guards the map for
	// the readers (Muting) while the owner replaces entries.
	alertsMu sync.RWMutex
	alerts   map[alert.Fingerprint]*alert.Alert
	carry    []*alert.Alert // evaluator results whose store write failed
	// inhibSources are the alerts that match an inhibit rule's source
	// (owned by the state goroutine).
	inhibSources map[alert.Fingerprint]*alert.Alert
	inhibDirty   bool

	// mute is the muting state the dispatcher and the API read.
	silences  atomic.Pointer[[]alert.Silence]
	inhibitor atomic.Pointer[inhibSnapshot]

	// Hand-offs to the dispatch loop.
	loopMu      sync.Mutex
	loopPuts    []*alert.Alert
	loopRoutes  []dispatch.Route
	routesDirty bool
	loopWake    chan struct{}
	// groupsReq asks the dispatch loop for its groups (Groups).
	groupsReq chan chan []dispatch.GroupInfo

	// receivers by id (URL, secret) for the delivery workers.
	receivers atomic.Pointer[map[string]alertstore.Receiver]

	// deliverWake wakes the delivery poller after a flush.
	deliverWake chan struct{}

	// remediation runs.
	remWG  sync.WaitGroup
	remSem chan struct{}
}

// New builds an engine (no I/O). act may be nil (no remediation).
func New(cfg Config, db *store.DB, st *alertstore.Store, send *webhook.Sender, act *remediation.Runner,
	reg *nodes.Registry, log *slog.Logger, metrics prometheus.Registerer) (*Engine, error) {
	switch {
	case db == nil:
		return nil, errors.New("alerting engine: nil db")
	case st == nil:
		return nil, errors.New("alerting engine: nil store")
	case send == nil:
		return nil, errors.New("alerting engine: nil webhook sender")
	case reg == nil:
		return nil, errors.New("alerting engine: nil node registry")
	case log == nil:
		return nil, errors.New("alerting engine: nil logger")
	}
	cfg = cfg.withDefaults()
	if cfg.LockName == "" {
		cfg.LockName = db.ActiveLockName("alerting.engine")
	}
	m, err := newMetrics(metrics)
	if err != nil {
		return nil, fmt.Errorf("alerting engine metrics: %w", err)
	}
	e := &Engine{
		cfg: cfg, db: db, st: st, send: send, act: act, reg: reg,
		log:          log.With(slog.String("component", "alerting.engine")),
		metrics:      m,
		promReg:      metrics,
		now:          time.Now,
		ready:        make(chan struct{}),
		reqs:         make(chan *commitReq, 1024),
		stopped:      make(chan struct{}),
		alerts:       make(map[alert.Fingerprint]*alert.Alert),
		inhibSources: make(map[alert.Fingerprint]*alert.Alert),
		loopWake:     make(chan struct{}, 1),
		groupsReq:    make(chan chan []dispatch.GroupInfo),
		deliverWake:  make(chan struct{}, 1),
		remSem:       make(chan struct{}, remediationParallel),
	}
	e.silences.Store(&[]alert.Silence{})
	e.inhibitor.Store(&inhibSnapshot{})
	e.receivers.Store(&map[string]alertstore.Receiver{})
	return e, nil
}

// Ready is closed once the engine holds the lock and loaded its state.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Run runs until ctx ends: takes the lock, loads state, then consumes,
// evaluates, dispatches and delivers. It returns nil on ctx's end.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("alerting engine already running")
	}
	lock, err := e.db.AcquireActive(ctx, e.cfg.LockName, lockRetry, e.log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() {
		if err := lock.Release(ctx); err != nil {
			e.log.WarnContext(ctx, "release alerting engine lock", slog.Any("err", err))
		}
	}()

	d, err := e.load(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("load alerting state: %w", err)
	}

	loaded := len(e.alerts) // before the state owner starts changing it

	// The components stop when ctx ends or the lock is lost.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		if err := lock.Watch(runCtx, lockCheck); err != nil {
			e.log.ErrorContext(ctx, "alerting engine lock lost", slog.Any("err", err))
		}
		cancel()
	}()

	var wg sync.WaitGroup
	start := func(name string, fn func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(runCtx)
			e.log.Debug("engine component stopped", slog.String("component", name))
		}()
	}
	start("dispatch", func(ctx context.Context) { e.dispatchLoop(ctx, d) })
	start("state", e.stateLoop)
	start("delivery", e.deliverLoop)
	start("consumer", e.consume)
	start("housekeeping", e.housekeeping)
	start("dead letters", e.watchDLQ)
	start("instances down", e.watchInstances)

	e.readyOnce.Do(func() { close(e.ready) })
	e.log.Info("alerting engine ready", slog.Int("alerts", loaded))

	wg.Wait()
	e.remWG.Wait()
	<-lost
	if ctx.Err() == nil {
		return errors.New("alerting engine lost its lock")
	}
	return nil
}
