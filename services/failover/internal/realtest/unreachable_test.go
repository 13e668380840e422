package realtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/nodetest"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// unreachablePrimary blocks the failover service's view of the primary
// while its replicas keep streaming from it: the watcher, over many checks
// and full analyses, records no recovery and acts on no node, and the
// primary keeps taking acknowledged writes.
func unreachablePrimary(t *testing.T, e *env) {
	e.healthy(t)
	before := len(e.records(t))
	p, pi := e.primary(t)
	nodes := newSpy(e.adapter(t))
	nodes.block(p.Address)
	w := e.watcher(t, "actor-1", nodes, e.recoverer(t, "actor-1", 5*time.Second, nodes, nil))
	w.Own(e.in)

	// Every 10 ms check fails and starts a full analysis: wait for
	// a couple of seconds' worth of both.
	r1 := e.in.Nodes[(pi+1)%3]
	nodetest.Eventually(t, 30*time.Second, "the watcher looked many times", func() (bool, string) {
		a, b := nodes.observations(p.Address), nodes.observations(r1.Address)
		return a >= 150 && b >= 100, fmt.Sprintf("primary looked at %d times, replica %d", a, b)
	})
	// What the watcher saw: the primary unreachable from here, alive by
	// its replicas' account.
	views := recovery.ObserveAll(ctxFor(t, 5*time.Second), nodes, e.in, time.Second)
	list := make([]topology.NodeView, 0, len(views))
	for _, v := range views {
		list = append(list, v)
	}
	if ps := analysis.Analyze(e.in, list, nil); ps[0].Code != analysis.UnreachablePrimary {
		t.Fatalf("analysis of the blocked view: %+v", ps)
	}
	if acts := nodes.actions(); len(acts) > 0 {
		t.Fatalf("the watcher acted on nodes of an alive primary: %v", acts)
	}
	if rs := e.records(t)[before:]; len(rs) > 0 {
		t.Fatalf("recoveries recorded: %+v", rs)
	}
	e.w.waitMore(t, 20, pi, 10*time.Second)
	e.oneWritable(t)
	e.noneLost(t, p.ID)
}
