// Package nodes keeps the platform's nodes as the alerting service sees
// them — topology from canopy.instances.v1 (tenant, instance, node, role,
// az, region, engine, address) and each node's latest sample from
// canopy.health.samples.v1 — and serves them to Prometheus: HTTP service
// discovery targets and a collector of per-node gauges. It holds no
// history: the latest topology and the latest sample per node only.
package nodes

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
)

// Defaults of Options.
const (
	// DefaultStaleAfter is how old a sample may be and still be exported
	// (healthcheck samples every few seconds).
	DefaultStaleAfter = 5 * time.Minute
	// DefaultTombstoneTTL is how long a deleted instance is remembered, so
	// that a sample batch still in flight does not bring it back.
	DefaultTombstoneTTL = time.Hour
)

// Options tune a registry; the zero value is the defaults.
type Options struct {
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// StaleAfter: a sample older than this is not exported and the node
	// counts as not up; the node stays listed (topology wins).
	StaleAfter time.Duration
	// TombstoneTTL: how long samples of a deleted instance are ignored.
	TombstoneTTL time.Duration
}

// Registry is safe for concurrent use.
type Registry struct {
	now          func() time.Time
	staleAfter   time.Duration
	tombstoneTTL time.Duration

	mu        sync.RWMutex
	instances map[string]*instance
	nodes     map[string]*node     // by node id
	deleted   map[string]time.Time // instance id → when deleted

	descs descCache
}

// instance is one instance's topology.
type instance struct {
	id, tenant, engine string
	// token is the failover fencing token of the topology applied last.
	token int64
	// topology is true once an instances event listed the nodes; before,
	// nodes come from samples and samples may add nodes.
	topology bool
	nodes    map[string]*node
}

// node is a node's labels and its latest sample. metrics is replaced,
// never mutated, so a snapshot may keep the map after unlocking.
type node struct {
	Node
	status  string
	metrics map[string]int64
}

// New returns an empty registry.
func New() *Registry { return NewWithOptions(Options{}) }

// NewWithOptions returns an empty registry with a clock and staleness of
// the caller's choosing (tests use a fake clock).
func NewWithOptions(o Options) *Registry {
	r := &Registry{
		now:          o.Now,
		staleAfter:   o.StaleAfter,
		tombstoneTTL: o.TombstoneTTL,
		instances:    map[string]*instance{},
		nodes:        map[string]*node{},
		deleted:      map[string]time.Time{},
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.staleAfter <= 0 {
		r.staleAfter = DefaultStaleAfter
	}
	if r.tombstoneTTL <= 0 {
		r.tombstoneTTL = DefaultTombstoneTTL
	}
	return r
}

// Event folds an instances or samples event in (others ignored). An event
// whose payload does not decode is dropped; Apply reports it.
func (r *Registry) Event(ev eventbus.Event) { _ = r.Apply(ev) }

// Apply is Event returning the decode error, for callers that count or
// log poison events.
func (r *Registry) Apply(ev eventbus.Event) error {
	switch {
	case ev.Type == events.TypeNodeSampled:
		var b events.SampleBatch
		if err := ev.Decode(&b); err != nil {
			return err
		}
		r.applySamples(ev, b)
	case ev.Type == events.TypeInstanceDeleted:
		var in events.Instance
		if err := ev.Decode(&in); err != nil {
			return err
		}
		r.deleteInstance(cmp.Or(in.InstanceID, ev.Subject))
	case strings.HasPrefix(ev.Type, "provisioning.instance."):
		var in events.Instance
		if err := ev.Decode(&in); err != nil {
			return err
		}
		r.applyInstance(ev, in)
	}
	return nil
}

// applyInstance takes the topology of any instance event that lists nodes
// (ready, updated, and the others when they carry them), unless it is older
// than the one applied by failover token.
func (r *Registry) applyInstance(ev eventbus.Event, p events.Instance) {
	if p.InstanceID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.goneLocked(p.InstanceID) {
		return
	}
	in := r.instanceLocked(p.InstanceID)
	in.tenant = cmp.Or(p.TenantID, ev.Tenant, in.tenant)
	in.engine = cmp.Or(p.Engine, in.engine)
	if len(p.Nodes) == 0 || (in.topology && p.FailoverToken < in.token) {
		r.relabelLocked(in)
		return
	}
	in.token = p.FailoverToken
	in.topology = true
	keep := make(map[string]*node, len(p.Nodes))
	for _, pn := range p.Nodes {
		if pn.ID == "" {
			continue
		}
		n := in.nodes[pn.ID]
		if n == nil {
			n = &node{}
		}
		n.Node.Node = pn.ID
		n.Role = pn.Role
		n.AZ = pn.AZ
		n.Region = pn.Region
		n.Address = cmp.Or(pn.Address, pn.Host)
		keep[pn.ID] = n
	}
	for id := range in.nodes {
		if _, ok := keep[id]; !ok {
			delete(r.nodes, id)
		}
	}
	in.nodes = keep
	r.relabelLocked(in)
}

// relabelLocked copies the instance's labels onto its nodes and indexes
// them by id.
func (r *Registry) relabelLocked(in *instance) {
	for id, n := range in.nodes {
		n.Tenant, n.Instance, n.Engine = in.tenant, in.id, in.engine
		r.nodes[id] = n
	}
}

func (r *Registry) instanceLocked(id string) *instance {
	in := r.instances[id]
	if in == nil {
		in = &instance{id: id, nodes: map[string]*node{}}
		r.instances[id] = in
	}
	return in
}

// deleteInstance forgets the instance and its nodes and remembers the
// deletion for a while.
func (r *Registry) deleteInstance(id string) {
	if id == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for gone, at := range r.deleted {
		if now.Sub(at) > r.tombstoneTTL {
			delete(r.deleted, gone)
		}
	}
	r.deleted[id] = now
	in := r.instances[id]
	if in == nil {
		return
	}
	for nid := range in.nodes {
		if r.nodes[nid] == in.nodes[nid] {
			delete(r.nodes, nid)
		}
	}
	delete(r.instances, id)
}

// goneLocked reports whether the instance was deleted within the
// tombstone TTL; events about it are late or replayed and are ignored.
func (r *Registry) goneLocked(id string) bool {
	at, ok := r.deleted[id]
	return ok && r.now().Sub(at) <= r.tombstoneTTL
}

// applySamples stores each node's sample unless it is older than the one
// held. Samples of an instance with known topology do not add nodes.
func (r *Registry) applySamples(ev eventbus.Event, b events.SampleBatch) {
	if b.InstanceID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.goneLocked(b.InstanceID) {
		return
	}
	in := r.instanceLocked(b.InstanceID)
	in.tenant = cmp.Or(in.tenant, b.TenantID, ev.Tenant)
	in.engine = cmp.Or(in.engine, b.Engine)
	for _, s := range b.Nodes {
		if s.NodeID == "" {
			continue
		}
		n := in.nodes[s.NodeID]
		if n == nil {
			if in.topology {
				continue
			}
			n = &node{Node: Node{Node: s.NodeID}}
			in.nodes[s.NodeID] = n
		}
		if n.Role == "" || !in.topology {
			n.Role = cmp.Or(s.Role, n.Role)
		}
		at := s.At
		if at.IsZero() {
			at = cmp.Or(b.WindowEnd, ev.Time)
		}
		if at.Before(n.SampledAt) {
			continue
		}
		n.SampledAt = at
		n.status = s.Status
		n.metrics = maps.Clone(s.Metrics)
	}
	r.relabelLocked(in)
}

// Node is one node's labels.
type Node struct {
	Tenant, Instance, Node, Role, AZ, Region, Engine, Address string
	SampledAt                                                 time.Time
}

// Lookup returns a node's labels (rules use it to label alerts with az and
// region).
func (r *Registry) Lookup(nodeID string) (Node, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.nodes[nodeID]
	if !ok {
		return Node{}, false
	}
	return n.Node, true
}

// InstanceNodes lists an instance's node ids once its topology is known
// (nil before, and for a deleted instance): an instance is down only when
// every node it has is.
func (r *Registry) InstanceNodes(instanceID string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	in, ok := r.instances[instanceID]
	if !ok || !in.topology {
		return nil
	}
	ids := make([]string, 0, len(in.nodes))
	for id := range in.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Sample is a node's latest sample.
type Sample struct {
	Status  string
	At      time.Time
	Metrics map[string]int64
}

// Latest returns a node's latest sample (false when it has none).
func (r *Registry) Latest(nodeID string) (Sample, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.nodes[nodeID]
	if !ok || n.SampledAt.IsZero() {
		return Sample{}, false
	}
	return Sample{Status: n.status, At: n.SampledAt, Metrics: maps.Clone(n.metrics)}, true
}

// snapshot is a node as read under the lock.
type snapshot struct {
	Node
	status  string
	metrics map[string]int64
}

// list returns the nodes the filter keeps, sorted by tenant, instance and
// node so that outputs are stable.
func (r *Registry) list(keep func(*node) bool) []snapshot {
	r.mu.RLock()
	out := make([]snapshot, 0, len(r.nodes))
	for _, n := range r.nodes {
		if keep(n) {
			out = append(out, snapshot{Node: n.Node, status: n.status, metrics: n.metrics})
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b snapshot) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Node.Node, b.Node.Node))
	})
	return out
}
