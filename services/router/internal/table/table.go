// Package table is the router's view of the instances it serves: per
// instance its endpoint ports, its nodes and their roles, the bindings'
// password verifiers and whether a recovery is under way. Provisioning's
// events and resyncs, the failover service's recoveries and the health
// checker's transitions write it; the proxy and the Sentinel server read it
// and wait on its changes. It knows nothing of Kafka, HTTP or sockets.
package table

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"sort"
	"sync"
	"time"
)

// Engine is an instance's engine.
type Engine string

// Engines.
const (
	MySQL Engine = "mysql"
	Redis Engine = "redis"
)

// Role is a node's role.
type Role string

// Roles. A fenced node is a former primary that must serve nobody until it
// rejoins as a replica.
const (
	Primary Role = "primary"
	Replica Role = "replica"
	Fenced  Role = "fenced"
)

// Node is one node of an instance.
type Node struct {
	ID      string
	Address string // host:port of the engine
	Role    Role
	// Down is set by a health.node.down transition and cleared by up (or
	// by a resync that says the node runs).
	Down bool
}

// Binding is one binding's account, as the Sentinel port checks it: the
// password is never stored, only its SHA-256 (the passwords are 32 random
// characters, so a fast hash is enough).
type Binding struct {
	Username       string
	PasswordSHA256 [32]byte
}

// Instance is an instance as provisioning knows it.
type Instance struct {
	ID     string
	Tenant string
	// Name is unique within the tenant: the Sentinel master name.
	Name   string
	Engine Engine
	State  string
	// RWPort and ROPort are the router ports provisioning allocated (0:
	// none, the instance is not served).
	RWPort int
	ROPort int
	Nodes  []Node
	// FailoverToken is the fencing token of the last recovery applied to
	// the roles: a state with a smaller token is older than the roles the
	// table holds.
	FailoverToken int64
	Bindings      []Binding
}

// View is an instance with what the table adds to it.
type View struct {
	Instance
	// Switching: a recovery started (failover.started) and has not ended;
	// new read-write connections wait for its outcome.
	Switching bool
	// Gen grows at every change of the instance.
	Gen uint64
}

// Primary returns the node that takes writes, if one is known.
func (v View) Primary() (Node, bool) {
	for _, n := range v.Nodes {
		if n.Role == Primary && n.Address != "" {
			return n, true
		}
	}
	return Node{}, false
}

// Replicas returns the replicas that serve reads: not fenced, not down.
func (v View) Replicas() []Node {
	var out []Node
	for _, n := range v.Nodes {
		if n.Role == Replica && !n.Down && n.Address != "" {
			out = append(out, n)
		}
	}
	return out
}

// Change is a primary change, as the Sentinel port announces it
// (+switch-master).
type Change struct {
	InstanceID string
	Tenant     string
	Name       string
	Old, New   string // host:port
}

// SwitchingTimeout bounds how long a started recovery holds new
// connections when its outcome never arrives (a lost failover replica):
// after it, the roles the table holds are served again.
const SwitchingTimeout = 15 * time.Second

type entry struct {
	in          Instance
	switchToken int64
	switchSince time.Time
	gen         uint64
	changed     chan struct{}
}

// Table is safe for concurrent use.
type Table struct {
	now func() time.Time

	mu      sync.Mutex
	byID    map[string]*entry
	gen     uint64
	changed chan struct{}
	subs    map[int]func(Change)
	nextSub int
}

// New returns an empty table.
func New() *Table {
	return &Table{now: time.Now, byID: map[string]*entry{}, changed: make(chan struct{}), subs: map[int]func(Change){}}
}

// touch records a change of e (nil: of the table only) under t.mu.
func (t *Table) touch(e *entry) {
	t.gen++
	if e != nil {
		e.gen = t.gen
		close(e.changed)
		e.changed = make(chan struct{})
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Table) view(e *entry) View {
	v := View{Instance: clone(e.in), Gen: e.gen}
	v.Switching = e.switchToken > 0 && t.now().Sub(e.switchSince) < SwitchingTimeout
	return v
}

func clone(in Instance) Instance {
	in.Nodes = slices.Clone(in.Nodes)
	in.Bindings = slices.Clone(in.Bindings)
	return in
}

func primaryAddr(nodes []Node) string {
	for _, n := range nodes {
		if n.Role == Primary {
			return n.Address
		}
	}
	return ""
}

// Apply sets an instance's state from provisioning (an event or a resync).
// When the state is older than the roles the table holds (a smaller
// FailoverToken: an event written before a failover the table already
// applied), everything but the roles is taken.
func (t *Table) Apply(in Instance) {
	in = clone(in)
	var announce *Change
	t.mu.Lock()
	e, ok := t.byID[in.ID]
	if !ok {
		e = &entry{changed: make(chan struct{})}
		t.byID[in.ID] = e
	} else {
		old := e.in
		if in.FailoverToken < old.FailoverToken {
			keepRoles(&in, old)
		}
		// Down comes from the health checker; provisioning's state does
		// not know it.
		for i := range in.Nodes {
			for _, o := range old.Nodes {
				if o.ID == in.Nodes[i].ID && o.Down && o.Address == in.Nodes[i].Address {
					in.Nodes[i].Down = true
				}
			}
		}
		if a, b := primaryAddr(old.Nodes), primaryAddr(in.Nodes); a != b && a != "" && b != "" {
			announce = &Change{InstanceID: in.ID, Tenant: in.Tenant, Name: in.Name, Old: a, New: b}
		}
		if in.FailoverToken >= e.switchToken && e.switchToken > 0 && in.FailoverToken > old.FailoverToken {
			e.switchToken = 0
		}
	}
	e.in = in
	t.touch(e)
	subs := t.subscribers()
	t.mu.Unlock()
	publish(subs, announce)
}

func keepRoles(in *Instance, held Instance) {
	in.FailoverToken = held.FailoverToken
	for i := range in.Nodes {
		for _, o := range held.Nodes {
			if o.ID == in.Nodes[i].ID {
				in.Nodes[i].Role = o.Role
			}
		}
	}
}

// Remove forgets a deleted instance.
func (t *Table) Remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok {
		return
	}
	delete(t.byID, id)
	t.touch(e)
}

// Retain forgets every instance not in ids (a resync's answer) and reports
// how many it forgot.
func (t *Table) Retain(ids map[string]bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for id, e := range t.byID {
		if !ids[id] {
			delete(t.byID, id)
			t.touch(e)
			n++
		}
	}
	return n
}

// Switching records that a recovery with token started on the instance.
func (t *Table) Switching(id string, token int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok || token <= e.in.FailoverToken || token < e.switchToken {
		return
	}
	e.switchToken, e.switchSince = token, t.now()
	t.touch(e)
}

// RecoveryEnded records that the recovery with token stopped without
// changing the roles (failover.failed).
func (t *Table) RecoveryEnded(id string, token int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok || e.switchToken == 0 || token < e.switchToken {
		return
	}
	e.switchToken = 0
	t.touch(e)
}

// Promoted applies a completed recovery's roles (node id → primary,
// replica or fenced). An outcome older than the roles held is ignored.
func (t *Table) Promoted(id string, token int64, roles map[string]string) {
	var announce *Change
	t.mu.Lock()
	e, ok := t.byID[id]
	if !ok || token <= e.in.FailoverToken {
		t.mu.Unlock()
		return
	}
	old := primaryAddr(e.in.Nodes)
	in := clone(e.in)
	for i := range in.Nodes {
		if r, ok := roles[in.Nodes[i].ID]; ok {
			in.Nodes[i].Role = Role(r)
		}
	}
	in.FailoverToken = token
	e.in = in
	if token >= e.switchToken {
		e.switchToken = 0
	}
	if b := primaryAddr(in.Nodes); b != old && b != "" {
		announce = &Change{InstanceID: id, Tenant: in.Tenant, Name: in.Name, Old: old, New: b}
	}
	t.touch(e)
	subs := t.subscribers()
	t.mu.Unlock()
	publish(subs, announce)
}

// NodeHealth records a health transition of a node (down true: the
// checker declared it down).
func (t *Table) NodeHealth(id, nodeID string, down bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok {
		return
	}
	for i := range e.in.Nodes {
		if e.in.Nodes[i].ID == nodeID && e.in.Nodes[i].Down != down {
			in := clone(e.in)
			in.Nodes[i].Down = down
			e.in = in
			t.touch(e)
			return
		}
	}
}

// Get returns an instance's view.
func (t *Table) Get(id string) (View, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok {
		return View{}, false
	}
	return t.view(e), true
}

// Watch returns a channel closed at the instance's next change (or its
// removal), and the instance's view now.
func (t *Table) Watch(id string) (View, bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok {
		return View{}, false, t.changed
	}
	return t.view(e), true, e.changed
}

// List returns every instance, by id.
func (t *Table) List() []View {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]View, 0, len(t.byID))
	for _, e := range t.byID {
		out = append(out, t.view(e))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Changed returns a channel closed at the table's next change.
func (t *Table) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// ByName returns the tenant's instance called name.
func (t *Table) ByName(tenant, name string) (View, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.byID {
		if e.in.Tenant == tenant && e.in.Name == name {
			return t.view(e), true
		}
	}
	return View{}, false
}

// Tenant returns the tenant's instances of engine, by name.
func (t *Table) Tenant(tenant string, engine Engine) []View {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []View
	for _, e := range t.byID {
		if e.in.Tenant == tenant && e.in.Engine == engine {
			out = append(out, t.view(e))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Authenticate returns the tenant whose binding on an instance of engine
// has username and password. The comparison is constant-time.
func (t *Table) Authenticate(engine Engine, username, password string) (tenant string, ok bool) {
	sum := sha256.Sum256([]byte(password))
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.byID {
		if e.in.Engine != engine {
			continue
		}
		for _, b := range e.in.Bindings {
			if b.Username == username && subtle.ConstantTimeCompare(b.PasswordSHA256[:], sum[:]) == 1 {
				return e.in.Tenant, true
			}
		}
	}
	return "", false
}

// Subscribe calls fn with every primary change until cancel is called. fn
// runs on the writer's goroutine and must not block.
func (t *Table) Subscribe(fn func(Change)) (cancel func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.nextSub
	t.nextSub++
	t.subs[id] = fn
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.subs, id)
	}
}

func (t *Table) subscribers() []func(Change) {
	out := make([]func(Change), 0, len(t.subs))
	for _, fn := range t.subs {
		out = append(out, fn)
	}
	return out
}

func publish(subs []func(Change), c *Change) {
	if c == nil {
		return
	}
	for _, fn := range subs {
		fn(*c)
	}
}
