package monitor

import (
	"context"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/detector"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

// node is one target's probe task. The scheduler runs at most one Run at a
// time, so checker and machine need no lock; mu guards what readers see.
type node struct {
	m       *Monitor
	stopped chan struct{}
	checker probe.Checker
	machine *detector.Machine
	n       int

	mu           sync.Mutex
	t            target.Target
	status       detector.Status
	reason       string
	evidence     string
	observedRole probe.Role
	lastOK       bool
	lastProbe    time.Time
	lastTrans    time.Time
	sample       probe.Sample
	sampleAt     time.Time
	sampleFresh  bool
}

func (n *node) target() target.Target {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.t
}

func (n *node) setTarget(t target.Target) {
	n.mu.Lock()
	n.t = t
	if n.status == "" {
		n.status = detector.StatusUnknown
	}
	n.mu.Unlock()
}

func (n *node) sameProbe(t target.Target) bool { return n.target().SameProbe(t) }

// Run does one probe and feeds the verdict to the state machine.
func (n *node) Run(ctx context.Context, _ time.Time) {
	t := n.target()
	n.n++
	pctx, cancel := context.WithTimeout(ctx, t.Policy.Timeout)
	res := n.checker.Check(pctx, n.n%t.Policy.SampleEvery == 1 || t.Policy.SampleEvery == 1)
	cancel()
	if ctx.Err() != nil {
		return // stopping: a cancelled probe says nothing about the node
	}
	v := detector.Judge(n.m.rules, detector.ExpectationOf(t), res)
	tr, changed := n.machine.Observe(v, res.Started)

	n.mu.Lock()
	roleChanged := res.OK && res.Observation.Role != n.observedRole
	n.lastProbe, n.lastOK = res.Started, res.OK
	if res.OK {
		n.observedRole = res.Observation.Role
		if res.Sample != nil {
			n.sample, n.sampleAt, n.sampleFresh = res.Sample, res.Started, true
		}
	}
	n.status, n.reason = n.machine.Status()
	if changed {
		n.lastTrans = tr.At
		n.evidence = tr.Evidence
	} else if n.status == detector.StatusDown && !res.OK {
		n.evidence = res.Detail
	}
	n.mu.Unlock()

	if roleChanged && res.Observation.Role == probe.RolePrimary {
		n.m.checkSplitBrain(t)
	}
	if changed {
		n.m.transition(ctx, n, t, tr, res)
	}
}

// Stop closes the monitor connection.
func (n *node) Stop() {
	_ = n.checker.Close()
	close(n.stopped)
}

func (n *node) view() NodeView {
	n.mu.Lock()
	defer n.mu.Unlock()
	return NodeView{
		NodeID: n.t.NodeID, InstanceID: n.t.InstanceID, Tenant: n.t.Tenant, Engine: n.t.Engine, Address: n.t.Address,
		Role: n.t.Role, Partition: n.t.Partition, Status: n.status, Reason: n.reason, Evidence: n.evidence,
		ObservedRole: n.observedRole, LastProbeAt: n.lastProbe, LastTransitionAt: n.lastTrans, LastProbeOK: n.lastOK,
		Sample: n.sample, SampleAt: n.sampleAt,
	}
}

// takeSample returns the node's sample if one was taken since the last call.
func (n *node) takeSample() (events.NodeSample, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.sampleFresh {
		return events.NodeSample{}, false
	}
	n.sampleFresh = false
	return events.NodeSample{NodeID: n.t.NodeID, Role: string(n.t.Role), Status: string(n.status), At: n.sampleAt.UTC(),
		Metrics: n.sample}, true
}
