// Package monitor is the healthcheck's engine on one replica: it keeps the
// targets this replica owns, schedules a probe task per target, feeds each
// result to the node's state machine, publishes transitions (health.node.*)
// and batched metric samples (health.node.sampled), and answers what the
// HTTP API shows. What it owns is decided elsewhere (the shard package);
// a target handed over starts in unknown and publishes only a transition
// that differs from what was last published for the node.
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/detector"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe/checker"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/scheduler"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

// Report is one event the monitor publishes — a node transition or an
// instance's sample batch — in the monitor's own terms; the healthcheck
// translates it for the event bus. ID and At are fixed when the report is
// made, so a retried publish repeats the same event rather than a new one.
type Report struct {
	// ID identifies the report (a ULID); it becomes the event id.
	ID string
	// Type is the event type, one of the events.TypeNode* constants.
	Type string
	// InstanceID is the instance reported on: the event's subject and key.
	InstanceID string
	// Tenant owns the instance.
	Tenant string
	// At is when the report was made.
	At time.Time
	// Data is the JSON payload (events.NodeTransition or events.SampleBatch).
	Data []byte
}

// newReport marshals payload into a Report of type typ on instanceID.
func newReport(typ, instanceID, tenant string, payload any) (Report, error) {
	data, err := json.Marshal(payload)
	if err != nil {
		return Report{}, fmt.Errorf("marshal %s payload: %w", typ, err)
	}
	return Report{ID: ulid.Make().String(), Type: typ, InstanceID: instanceID, Tenant: tenant, At: time.Now().UTC(), Data: data}, nil
}

// Publisher publishes reports to a topic.
type Publisher interface {
	Publish(ctx context.Context, topic string, reports ...Report) error
}

// Config configures a Monitor.
type Config struct {
	// Replica names this healthcheck replica in events.
	Replica string
	// SampleInterval is how often sample batches are published (default 10s).
	SampleInterval time.Duration
	// Workers bounds concurrent probes (default 512).
	Workers int
	// QueueSize bounds transitions waiting to be published (default 10000).
	QueueSize int
}

// Monitor probes the targets it is given.
type Monitor struct {
	cfg    Config
	logger *slog.Logger
	pub    Publisher
	dial   probe.Dialer
	rules  []detector.Rule
	sched  *scheduler.ProbeScheduler

	mu        sync.RWMutex
	nodes     map[string]*node // node id → node
	published map[string]publishedState

	queue      chan Report
	pending    atomic.Int64
	published_ prometheus.Counter
	suppressed prometheus.Counter
}

type publishedState struct{ status, reason string }

// New returns a monitor. Metrics go to reg (may be nil).
func New(cfg Config, pub Publisher, dial probe.Dialer, logger *slog.Logger, reg prometheus.Registerer) (*Monitor, error) {
	switch {
	case pub == nil:
		return nil, errors.New("monitor: nil publisher")
	case dial == nil:
		return nil, errors.New("monitor: nil dialer")
	case logger == nil:
		return nil, errors.New("monitor: nil logger")
	}
	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = 10 * time.Second
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 10000
	}
	sched, err := scheduler.New(scheduler.Config{Workers: cfg.Workers}, logger, reg, nil)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		cfg: cfg, logger: logger, pub: pub, dial: dial, rules: detector.Rules(), sched: sched,
		nodes: make(map[string]*node), published: make(map[string]publishedState),
		queue:      make(chan Report, cfg.QueueSize),
		published_: prometheus.NewCounter(prometheus.CounterOpts{Name: "canopy_healthcheck_transitions_published_total", Help: "Transitions published."}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{Name: "canopy_healthcheck_transitions_suppressed_total", Help: "First verdicts after a hand-over equal to what was already published."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.published_, m.suppressed} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("monitor metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Run probes until ctx ends, publishing transitions and sample batches;
// on return every connection is closed and queued transitions were given a
// bounded chance to go out.
func (m *Monitor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); m.publishLoop(pubCtx) }()
	wg.Add(1)
	go func() { defer wg.Done(); m.sampleLoop(ctx) }()
	err := m.sched.Run(ctx)
	wg.Wait()
	// Flush what the last probes decided, bounded.
	close(m.queue)
	select {
	case <-pubDone:
	case <-time.After(5 * time.Second):
		stopPub()
		<-pubDone
	}
	return err
}

// Upsert starts probing t, or updates it. A changed address, engine,
// credentials or policy restarts its probe (state back to unknown); a changed
// expectation (role, semi-sync) applies from the next probe.
func (m *Monitor) Upsert(t target.Target) error {
	t.Policy = t.Policy.WithDefaults()
	if err := t.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	if n, ok := m.nodes[t.NodeID]; ok && n.sameProbe(t) {
		n.setTarget(t)
		m.mu.Unlock()
		return nil
	}
	c, err := checker.New(probe.Spec{Engine: probe.Engine(t.Engine), Address: t.Address,
		Username: t.Monitor.Username, Password: t.Monitor.Password}, m.dial)
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("target %s: %w", t.NodeID, err)
	}
	n := &node{m: m, stopped: make(chan struct{}), checker: c, machine: detector.NewMachine(t.Policy.Fall, t.Policy.Rise)}
	n.setTarget(t)
	m.nodes[t.NodeID] = n
	m.mu.Unlock()
	if err := m.sched.Add(scheduler.Spec{ID: t.NodeID, Interval: t.Policy.Interval, Phase: t.Phase(), Task: n}); err != nil {
		m.mu.Lock()
		delete(m.nodes, t.NodeID)
		m.mu.Unlock()
		_ = c.Close()
		return err
	}
	m.logger.Debug("target added", "instance_id", t.InstanceID, "node_id", t.NodeID, "tenant", t.Tenant, "address", t.Address)
	return nil
}

// Remove stops probing a node, without publishing anything; it returns
// once a probe of the node that was running has ended.
func (m *Monitor) Remove(nodeID string) {
	m.RemoveWhere(func(t target.Target) bool { return t.NodeID == nodeID })
}

// RemoveWhere stops probing every node whose target matches and returns
// once their running probes have ended (a removed node publishes nothing).
func (m *Monitor) RemoveWhere(match func(target.Target) bool) int {
	m.mu.Lock()
	var gone []*node
	for id, n := range m.nodes {
		if match(n.target()) {
			delete(m.nodes, id)
			gone = append(gone, n)
		}
	}
	m.mu.Unlock()
	for _, n := range gone {
		m.sched.Remove(n.target().NodeID)
	}
	for _, n := range gone {
		select {
		case <-n.stopped:
		case <-time.After(n.target().Policy.Timeout + time.Second):
		}
	}
	return len(gone)
}

// Flush waits until every transition decided so far has been published, or
// ctx ends.
func (m *Monitor) Flush(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for m.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Targets returns the targets being probed.
func (m *Monitor) Targets() []target.Target {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]target.Target, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n.target())
	}
	return out
}

// SeedPublished records the last status published for a node (read back
// from the health topic by a new owner), so its first verdict is published
// only when it differs.
func (m *Monitor) SeedPublished(nodeID, status, reason string) {
	m.mu.Lock()
	m.published[nodeID] = publishedState{status: status, reason: reason}
	m.mu.Unlock()
}

// NodeView is what the API shows of one node.
type NodeView struct {
	NodeID           string
	InstanceID       string
	Tenant           string
	Engine           target.Engine
	Address          string
	Role             target.Role
	Partition        int
	Status           detector.Status
	Reason           string
	Evidence         string
	ObservedRole     probe.Role
	LastProbeAt      time.Time
	LastTransitionAt time.Time
	LastProbeOK      bool
	Sample           probe.Sample
	SampleAt         time.Time
}

// Instance returns the views of an instance's nodes (sorted by node id).
func (m *Monitor) Instance(instanceID string) []NodeView {
	m.mu.RLock()
	var out []NodeView
	for _, n := range m.nodes {
		if n.target().InstanceID == instanceID {
			out = append(out, n.view())
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b NodeView) int { return compare(a.NodeID, b.NodeID) })
	return out
}

// All returns the views of every node (sorted by instance, then node).
func (m *Monitor) All() []NodeView {
	m.mu.RLock()
	out := make([]NodeView, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n.view())
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b NodeView) int {
		if c := compare(a.InstanceID, b.InstanceID); c != 0 {
			return c
		}
		return compare(a.NodeID, b.NodeID)
	})
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Counts returns probes started and slots skipped.
func (m *Monitor) Counts() (runs, skipped int64) { return m.sched.Counts() }

// transition publishes a node's transition unless it repeats what was last
// published for the node (a hand-over's first verdict).
func (m *Monitor) transition(ctx context.Context, n *node, t target.Target, tr detector.Transition, res probe.Result) {
	m.mu.Lock()
	if m.nodes[t.NodeID] != n {
		m.mu.Unlock()
		return // removed (handed over) while probing: not ours to report
	}
	last, seen := m.published[t.NodeID]
	if tr.From == detector.StatusUnknown && seen && last.status == string(tr.To) && last.reason == tr.Reason {
		m.mu.Unlock()
		m.suppressed.Inc()
		m.logger.Info("node status confirmed after hand-over; not republished", "instance_id", t.InstanceID,
			"tenant", t.Tenant, "node_id", t.NodeID, "status", tr.To, "reason", tr.Reason)
		return
	}
	m.published[t.NodeID] = publishedState{status: string(tr.To), reason: tr.Reason}
	split := m.splitBrainLocked(t.InstanceID)
	m.mu.Unlock()

	payload := events.NodeTransition{
		InstanceID: t.InstanceID, TenantID: t.Tenant, NodeID: t.NodeID, Address: t.Address, Engine: string(t.Engine),
		Role: string(t.Role), Status: string(tr.To), PreviousStatus: string(tr.From), Reason: tr.Reason, Streak: tr.Streak,
		Evidence: evidenceOf(res, tr, split),
		Policy: events.Policy{IntervalMS: t.Policy.Interval.Milliseconds(), TimeoutMS: t.Policy.Timeout.Milliseconds(),
			Fall: t.Policy.Fall, Rise: t.Policy.Rise},
		ProbedAt: res.Started.UTC(), Replica: m.cfg.Replica,
	}
	typ := events.TypeNodeUp
	switch tr.To {
	case detector.StatusDown:
		typ = events.TypeNodeDown
	case detector.StatusDegraded:
		typ = events.TypeNodeDegraded
	}
	ev, err := newReport(typ, t.InstanceID, t.Tenant, payload)
	if err != nil {
		m.logger.Error("build transition event", "instance_id", t.InstanceID, "node_id", t.NodeID, "err", err)
		return
	}
	level := slog.LevelInfo
	if tr.To != detector.StatusUp {
		level = slog.LevelWarn
	}
	m.logger.Log(ctx, level, "node "+string(tr.To), "instance_id", t.InstanceID, "tenant", t.Tenant, "node_id", t.NodeID,
		"address", t.Address, "from", tr.From, "reason", tr.Reason, "evidence", tr.Evidence, "streak", tr.Streak)
	m.pending.Add(1)
	select {
	case m.queue <- ev:
	case <-ctx.Done():
		m.pending.Add(-1)
	}
}

func evidenceOf(res probe.Result, tr detector.Transition, split []string) events.Evidence {
	ev := events.Evidence{Detail: tr.Evidence, ProbeDurationMS: float64(res.Duration.Microseconds()) / 1000, SplitBrain: split}
	if !res.OK {
		ev.ProbeReason = string(res.Reason)
		return ev
	}
	o := res.Observation
	ev.ObservedRole, ev.ReadOnly, ev.SemiSync = string(o.Role), o.ReadOnly, o.SemiSync
	if r := o.Replication; r != nil {
		ev.Replication = &events.Replication{IORunning: r.IORunning, SQLRunning: r.SQLRunning, LagSeconds: r.LagSeconds,
			Position: r.Position, Source: r.Source, LastError: r.LastError}
	}
	return ev
}

// splitBrainLocked returns the nodes of an instance that claim primary when
// more than one does.
func (m *Monitor) splitBrainLocked(instanceID string) []string {
	var roles []detector.NodeRole
	for _, n := range m.nodes {
		t := n.target()
		if t.InstanceID != instanceID {
			continue
		}
		v := n.view()
		if !v.LastProbeOK {
			continue
		}
		roles = append(roles, detector.NodeRole{NodeID: t.NodeID, Expected: t.Role, Reported: v.ObservedRole})
	}
	split := detector.SplitBrain(roles)
	slices.Sort(split)
	return split
}

// checkSplitBrain logs loudly when an instance has two nodes claiming primary.
func (m *Monitor) checkSplitBrain(t target.Target) {
	m.mu.RLock()
	split := m.splitBrainLocked(t.InstanceID)
	m.mu.RUnlock()
	if len(split) > 1 {
		m.logger.Error("SPLIT-BRAIN EVIDENCE: more than one node of the instance reports itself primary",
			"instance_id", t.InstanceID, "tenant", t.Tenant, "nodes", split)
	}
}

func (m *Monitor) publishLoop(ctx context.Context) {
	p := retry.Default
	for ev := range m.queue {
		topic := events.TopicHealth
		if ev.Type == events.TypeNodeSampled {
			topic = events.TopicSamples
		}
		err := retry.Do(ctx, p, func(ctx context.Context) error { return m.pub.Publish(ctx, topic, ev) })
		m.pending.Add(-1)
		if err != nil {
			m.logger.Error("publish health event failed", "type", ev.Type, "instance_id", ev.InstanceID, "err", err)
			continue
		}
		if topic == events.TopicHealth {
			m.published_.Inc()
		}
	}
}

// sampleLoop publishes, every SampleInterval, one health.node.sampled event
// per instance with the samples its nodes took since the last batch, all in
// one produce call.
func (m *Monitor) sampleLoop(ctx context.Context) {
	tick := time.NewTicker(m.cfg.SampleInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if evs := m.sampleBatches(now); len(evs) > 0 {
				pctx, cancel := context.WithTimeout(ctx, m.cfg.SampleInterval)
				if err := m.pub.Publish(pctx, events.TopicSamples, evs...); err != nil && ctx.Err() == nil {
					// Samples are periodic: the next batch replaces a lost one.
					m.logger.Warn("publish sample batch failed", "events", len(evs), "err", err)
				}
				cancel()
			}
		}
	}
}

func (m *Monitor) sampleBatches(now time.Time) []Report {
	batches := map[string]*events.SampleBatch{}
	m.mu.RLock()
	for _, n := range m.nodes {
		t := n.target()
		s, ok := n.takeSample()
		if !ok {
			continue
		}
		b := batches[t.InstanceID]
		if b == nil {
			b = &events.SampleBatch{InstanceID: t.InstanceID, TenantID: t.Tenant, Engine: string(t.Engine), WindowEnd: now.UTC()}
			batches[t.InstanceID] = b
		}
		b.Nodes = append(b.Nodes, s)
	}
	m.mu.RUnlock()
	out := make([]Report, 0, len(batches))
	for id, b := range batches {
		slices.SortFunc(b.Nodes, func(a, c events.NodeSample) int { return compare(a.NodeID, c.NodeID) })
		ev, err := newReport(events.TypeNodeSampled, id, b.TenantID, b)
		if err != nil {
			continue
		}
		out = append(out, ev)
	}
	return out
}
