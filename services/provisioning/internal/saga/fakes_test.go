package saga

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// call is one recorded call of a fake: the operation and the node (or
// instance) it was for.
type call struct{ Op, ID string }

// failFunc injects a failure into a fake's call; nil means success. It may
// block until ctx ends, as a hung engine would.
type failFunc func(ctx context.Context, c call) error

// disk is what survives a restart of the fake driver: the nodes created and
// whether their (detached) processes run.
type disk struct {
	nodes map[string]*diskNode
	pid   int
}

type diskNode struct {
	spec    driver.NodeSpec
	running bool
	pid     int
}

// fakeDriver is an in-process driver.Driver: it records every call, keeps
// nodes on a disk that a restarted driver shares, and fails where told.
type fakeDriver struct {
	mu    *sync.Mutex
	disk  *disk
	known map[string]bool // nodes this driver process created or adopted
	calls []call
	fail  failFunc
}

var _ driver.Driver = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver {
	return &fakeDriver{mu: &sync.Mutex{}, disk: &disk{nodes: map[string]*diskNode{}, pid: 1000}, known: map[string]bool{}}
}

// restart returns the driver of a new provisioning process: the same disk
// and running processes, nothing adopted yet, no calls, no failures.
func (d *fakeDriver) restart() *fakeDriver {
	return &fakeDriver{mu: d.mu, disk: d.disk, known: map[string]bool{}}
}

func (d *fakeDriver) do(ctx context.Context, op, id string) error {
	d.mu.Lock()
	d.calls = append(d.calls, call{op, id})
	fail := d.fail
	d.mu.Unlock()
	if fail != nil {
		return fail(ctx, call{op, id})
	}
	return nil
}

func (d *fakeDriver) setFail(f failFunc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = f
}

// count returns how many times op was called on node (any node when empty).
func (d *fakeDriver) count(op, node string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c.matches(op, node) {
			n++
		}
	}
	return n
}

func (d *fakeDriver) callList() []call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]call(nil), d.calls...)
}

// onDisk returns how many nodes have data on the disk.
func (d *fakeDriver) onDisk() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.disk.nodes)
}

func (d *fakeDriver) record(n *diskNode) driver.Node {
	s := n.spec
	pid := 0
	if n.running {
		pid = n.pid
	}
	return driver.Node{ID: s.NodeID, InstanceID: s.InstanceID, Engine: s.Engine, Role: s.Role, PID: pid, Port: s.Port,
		Address: fmt.Sprintf("127.0.0.1:%d", s.Port), DataDir: s.DataRoot + "/nodes/" + s.NodeID}
}

func (d *fakeDriver) status(n *diskNode) driver.NodeStatus {
	st := driver.StateStopped
	if n.running {
		st = driver.StateRunning
	}
	return driver.NodeStatus{Node: d.record(n), State: st}
}

func (d *fakeDriver) Create(ctx context.Context, spec driver.NodeSpec) (driver.Node, error) {
	if err := d.do(ctx, "create", spec.NodeID); err != nil {
		return driver.Node{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.disk.nodes[spec.NodeID]; ok {
		if !reflect.DeepEqual(n.spec, spec) {
			return driver.Node{}, driver.ErrConflict
		}
		d.known[spec.NodeID] = true
		return d.record(n), nil
	}
	n := &diskNode{spec: spec}
	d.disk.nodes[spec.NodeID] = n
	d.known[spec.NodeID] = true
	return d.record(n), nil
}

func (d *fakeDriver) node(id string) (*diskNode, error) {
	n, ok := d.disk.nodes[id]
	if !ok || !d.known[id] {
		return nil, driver.ErrNotFound
	}
	return n, nil
}

func (d *fakeDriver) Start(ctx context.Context, id string) (driver.Node, error) {
	if err := d.do(ctx, "start", id); err != nil {
		return driver.Node{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.node(id)
	if err != nil {
		return driver.Node{}, err
	}
	if !n.running {
		d.disk.pid++
		n.running, n.pid = true, d.disk.pid
	}
	return d.record(n), nil
}

func (d *fakeDriver) Stop(ctx context.Context, id string) error {
	if err := d.do(ctx, "stop", id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.node(id)
	if err != nil {
		return err
	}
	n.running = false
	return nil
}

func (d *fakeDriver) Destroy(ctx context.Context, id string) error {
	if err := d.do(ctx, "destroy", id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.disk.nodes, id)
	delete(d.known, id)
	return nil
}

func (d *fakeDriver) Status(ctx context.Context, id string) (driver.NodeStatus, error) {
	if err := d.do(ctx, "status", id); err != nil {
		return driver.NodeStatus{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.node(id)
	if err != nil {
		return driver.NodeStatus{}, err
	}
	return d.status(n), nil
}

func (d *fakeDriver) running(id string) error {
	n, err := d.node(id)
	if err != nil {
		return err
	}
	if !n.running {
		return driver.ErrNotRunning
	}
	return nil
}

func (d *fakeDriver) ConfigurePrimary(ctx context.Context, id string, _ driver.PrimaryOpts) error {
	if err := d.do(ctx, "primary", id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running(id)
}

func (d *fakeDriver) ConfigureReplica(ctx context.Context, id string, _ driver.ReplicaOpts) error {
	if err := d.do(ctx, "replica", id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running(id)
}

func (d *fakeDriver) Adopt(ctx context.Context, spec driver.NodeSpec, _ driver.Node) (driver.NodeStatus, error) {
	if err := d.do(ctx, "adopt", spec.NodeID); err != nil {
		return driver.NodeStatus{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.disk.nodes[spec.NodeID]
	if !ok {
		return driver.NodeStatus{}, driver.ErrNotFound
	}
	if !reflect.DeepEqual(n.spec, spec) {
		return driver.NodeStatus{}, driver.ErrConflict
	}
	d.known[spec.NodeID] = true
	return d.status(n), nil
}

// fakeEngine is an in-process EngineAdmin recording its calls.
type fakeEngine struct {
	mu       sync.Mutex
	calls    []call
	settings []map[string]string
	fail     failFunc
}

func (e *fakeEngine) do(ctx context.Context, op, id string) error {
	e.mu.Lock()
	e.calls = append(e.calls, call{op, id})
	fail := e.fail
	e.mu.Unlock()
	if fail != nil {
		return fail(ctx, call{op, id})
	}
	return nil
}

func (e *fakeEngine) setFail(f failFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fail = f
}

func (e *fakeEngine) count(op string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.calls {
		if c.Op == op {
			n++
		}
	}
	return n
}

func (e *fakeEngine) Verify(ctx context.Context, in *instance.Instance, _ string) error {
	return e.do(ctx, "verify", in.ID)
}

// FakeServerVersion is what the fake engine reports as running.
const FakeServerVersion = "redis-7.0.15"

func (e *fakeEngine) ServerVersion(ctx context.Context, in *instance.Instance) (string, error) {
	return FakeServerVersion, e.do(ctx, "server_version", in.ID)
}

func (e *fakeEngine) Apply(ctx context.Context, in *instance.Instance, settings map[string]string) error {
	e.mu.Lock()
	e.settings = append(e.settings, settings)
	e.mu.Unlock()
	return e.do(ctx, "apply", in.ID)
}

func (e *fakeEngine) CreateUser(ctx context.Context, in *instance.Instance, _ instance.Credentials) error {
	return e.do(ctx, "create_user", in.ID)
}

func (e *fakeEngine) DropUser(ctx context.Context, in *instance.Instance, _ string) error {
	return e.do(ctx, "drop_user", in.ID)
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// failures are the ways a fake call fails.

// matches reports whether c is a call of op on a node whose id ends in
// node ("-n1"), or on any node when node is empty.
func (c call) matches(op, node string) bool {
	return c.Op == op && strings.HasSuffix(c.ID, node)
}

// failOn fails every call of op on node (any node when empty) with err.
func failOn(op, node string, err error) failFunc {
	return func(_ context.Context, c call) error {
		if c.matches(op, node) {
			return err
		}
		return nil
	}
}

// failTimes fails the first n calls of op on node (any node when empty)
// with err, then lets them through.
func failTimes(op, node string, n int, err error) failFunc {
	var mu sync.Mutex
	return func(_ context.Context, c call) error {
		if !c.matches(op, node) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if n > 0 {
			n--
			return err
		}
		return nil
	}
}

// hangOn blocks every call of op until its context ends, as an engine that
// accepts the connection but never answers.
func hangOn(op string) failFunc {
	return func(ctx context.Context, c call) error {
		if c.Op != op {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

func (e *fakeEngine) CreateCDCUser(ctx context.Context, in *instance.Instance, _ instance.Credentials) error {
	return e.do(ctx, "create_cdc_user", in.ID)
}
