// Package metrics is the failover service's Prometheus metrics
// (canopy_failover_*). It counts through decorators of the ports the
// recovery and the watcher already use (topology.Store, topology.Nodes and
// the watcher's ownership calls), so those packages stay free of metrics
// and every recovery is counted where it is recorded, whoever ran it.
// It is not the recovery's audit trail: the failover history and the
// failover.* events are; metrics are their aggregate for dashboards and
// alerts.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Primary check results (the result label of canopy_failover_primary_checks_total).
const (
	ResultWritable    = "writable"
	ResultReadOnly    = "read_only"
	ResultUnreachable = "unreachable"
)

// durationBuckets cover what a recovery's phases take, in seconds: a
// promotion of ~10 ms, a detection of a few hundred ms, an RTO of about a
// second, and a switchover waiting tens of seconds for its target.
var durationBuckets = []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10, 20, 30}

// observeBuckets cover one look at a node, bounded by the check timeout
// (250 ms by default).
var observeBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// Metrics are the failover service's collectors, registered once by New.
type Metrics struct {
	recoveries     *prometheus.CounterVec
	rto            *prometheus.HistogramVec
	detection      *prometheus.HistogramVec
	promotion      *prometheus.HistogramVec
	checks         *prometheus.CounterVec
	observe        *prometheus.HistogramVec
	leaseConflicts prometheus.Counter
	watched        prometheus.Gauge
}

// New builds the collectors and registers them on reg; a second New on the
// same registry fails (one service, one set of metrics).
func New(reg prometheus.Registerer) (*Metrics, error) {
	hist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "canopy", Subsystem: "failover",
			Name: name, Help: help, Buckets: buckets}, labels)
	}
	m := &Metrics{
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "canopy", Subsystem: "failover",
			Name: "recoveries_total", Help: "Recoveries recorded, by engine, kind (automatic, switchover, drill) and state reached (started, completed, failed)."},
			[]string{"engine", "kind", "state"}),
		rto: hist("recovery_rto_seconds", "Completed recoveries' RTO: first failed look at the primary (or the switchover request) to the recovery completed.",
			durationBuckets, "engine", "kind"),
		detection: hist("recovery_detection_seconds", "Completed failovers' detection time: first failed look at the primary to the failure confirmed.",
			durationBuckets, "engine", "kind"),
		promotion: hist("recovery_promotion_seconds", "Completed recoveries' promotion time: promotion of the candidate started to every replica re-pointed.",
			durationBuckets, "engine", "kind"),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "canopy", Subsystem: "failover",
			Name: "primary_checks_total", Help: "The watcher's looks at an assigned primary, by engine and result (writable, read_only, unreachable)."},
			[]string{"engine", "result"}),
		observe: hist("node_observe_seconds", "Time of one look at a node by the watcher.", observeBuckets, "engine"),
		leaseConflicts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "canopy", Subsystem: "failover",
			Name: "lease_conflicts_total", Help: "Recovery leases refused because another actor held the instance's lease."}),
		watched: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "canopy", Subsystem: "failover",
			Name: "watched_instances", Help: "Instances this replica owns and watches."}),
	}
	for _, c := range []prometheus.Collector{m.recoveries, m.rto, m.detection, m.promotion, m.checks, m.observe, m.leaseConflicts, m.watched} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register failover metrics: %w", err)
		}
	}
	return m, nil
}

func seconds(ms int64) float64 { return float64(ms) / 1000 }

// recorded counts a recovery that reached r.State, and on completion
// observes its durations.
func (m *Metrics) recorded(r topology.Recovery) {
	engine, kind := string(r.Engine), string(r.Kind)
	m.recoveries.WithLabelValues(engine, kind, string(r.State)).Inc()
	if r.State != topology.StateCompleted {
		return
	}
	m.rto.WithLabelValues(engine, kind).Observe(seconds(r.RTOMS))
	// A switchover is requested, not detected: it has no detection time.
	if r.Kind != topology.KindSwitchover {
		m.detection.WithLabelValues(engine, kind).Observe(seconds(r.DetectionMS))
	}
	if r.PromotedAt != nil {
		m.promotion.WithLabelValues(engine, kind).Observe(seconds(r.PromotionMS))
	}
}

// Store counts recoveries as the store records them: started on Begin,
// completed or failed on the Save that records that state. Only writes the
// store accepted count, so a fenced actor's refused write is not counted
// and each recovery reaches each state once. It also counts lease
// conflicts on Acquire.
func (m *Metrics) Store(s topology.Store) topology.Store { return store{Store: s, m: m} }

type store struct {
	topology.Store
	m *Metrics
}

func (s store) Acquire(ctx context.Context, instanceID, holder string, ttl time.Duration) (topology.Lease, error) {
	l, err := s.Store.Acquire(ctx, instanceID, holder, ttl)
	if errors.Is(err, topology.ErrLeaseHeld) {
		s.m.leaseConflicts.Inc()
	}
	return l, err
}

func (s store) Begin(ctx context.Context, l topology.Lease, r topology.Recovery) error {
	if err := s.Store.Begin(ctx, l, r); err != nil {
		return err
	}
	s.m.recorded(r)
	return nil
}

func (s store) Save(ctx context.Context, l topology.Lease, r topology.Recovery) error {
	if err := s.Store.Save(ctx, l, r); err != nil {
		return err
	}
	if r.State == topology.StateCompleted || r.State == topology.StateFailed {
		s.m.recorded(r)
	}
	return nil
}

// Nodes times every Observe of engine's nodes and counts the looks at the
// node assigned the primary role by what they saw.
func (m *Metrics) Nodes(engine topology.Engine, n topology.Nodes) topology.Nodes {
	e := string(engine)
	return nodes{Nodes: n, m: m, engine: e, observe: m.observe.WithLabelValues(e)}
}

type nodes struct {
	topology.Nodes
	m       *Metrics
	engine  string
	observe prometheus.Observer
}

func (n nodes) Observe(ctx context.Context, in topology.Instance, node topology.Node) topology.NodeView {
	start := time.Now()
	v := n.Nodes.Observe(ctx, in, node)
	n.observe.Observe(time.Since(start).Seconds())
	if node.Role == topology.RolePrimary {
		result := ResultUnreachable
		switch {
		case v.Reachable && v.Writable:
			result = ResultWritable
		case v.Reachable:
			result = ResultReadOnly
		}
		n.m.checks.WithLabelValues(n.engine, result).Inc()
	}
	return v
}

// Ownership is what the watched-instances gauge follows: the watcher's
// ownership calls (consumers.Watcher) and its Run.
type Ownership interface {
	Own(in topology.Instance)
	Disown(instanceID string)
	Trigger(instanceID string)
	Update(in topology.Instance)
	Run(ctx context.Context) error
}

// Watcher returns w counting the instances it was told to own, those of
// an engine in engines only (the watcher ignores the others), until its Run
// returns (it then drops every instance).
func (m *Metrics) Watcher(w Ownership, engines ...topology.Engine) *Watched {
	ok := make(map[topology.Engine]bool, len(engines))
	for _, e := range engines {
		ok[e] = true
	}
	return &Watched{Ownership: w, m: m, engines: ok, owned: map[string]bool{}}
}

// Watched is a watcher whose owned instances are counted.
type Watched struct {
	Ownership
	m       *Metrics
	engines map[topology.Engine]bool

	mu      sync.Mutex
	owned   map[string]bool
	stopped bool
}

// Own counts the instance and watches it.
func (w *Watched) Own(in topology.Instance) {
	if w.engines[in.Engine] {
		w.mu.Lock()
		if !w.stopped {
			w.owned[in.ID] = true
			w.m.watched.Set(float64(len(w.owned)))
		}
		w.mu.Unlock()
	}
	w.Ownership.Own(in)
}

// Disown stops watching the instance and counting it.
func (w *Watched) Disown(instanceID string) {
	w.Ownership.Disown(instanceID)
	w.mu.Lock()
	delete(w.owned, instanceID)
	w.m.watched.Set(float64(len(w.owned)))
	w.mu.Unlock()
}

// Run runs the watcher; once it returns nothing is watched any more.
func (w *Watched) Run(ctx context.Context) error {
	err := w.Ownership.Run(ctx)
	w.mu.Lock()
	w.stopped = true
	clear(w.owned)
	w.m.watched.Set(0)
	w.mu.Unlock()
	return err
}
