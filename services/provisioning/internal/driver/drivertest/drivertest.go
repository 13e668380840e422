// Package drivertest is the conformance suite every driver.Driver passes:
// a primary and two replicas per engine, replication of a write, read-only
// replicas, semi-sync on MySQL, the least-privilege monitor account,
// idempotent Create/Destroy, Stop/Start keeping data (a restarted node
// refuses writes until ConfigurePrimary) and Adopt by a new driver instance
// (a restarted Canopy).
//
// It drives real servers through real clients (go-sql-driver/mysql,
// go-redis); it is not a unit test helper and has no fakes.
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// Harness adapts the suite to one driver.
type Harness struct {
	// NewDriver returns a driver instance. The suite calls it again to play
	// a restart of Canopy: the new instance must reach the same nodes once
	// it adopted them.
	NewDriver func(t *testing.T) driver.Driver
	// Port returns a free port for a new node.
	Port func(t *testing.T) int
	// DataRoot returns the data root for the nodes of one engine's test.
	DataRoot func(t *testing.T) string
	// Versions are the versions requested per engine; empty asks for the
	// driver's default.
	Versions map[driver.Engine]string
	// Engines to test; default MySQL and Redis.
	Engines []driver.Engine
	// Timeout bounds each engine's test; default 3 minutes.
	Timeout time.Duration
	// LocalAddresses says node addresses are on this machine, so a destroyed
	// node's port can be checked free by listening on it.
	LocalAddresses bool
}

// Run runs the conformance suite. Engines run in parallel.
func Run(t *testing.T, h Harness) {
	if h.NewDriver == nil || h.Port == nil || h.DataRoot == nil {
		t.Fatal("drivertest: Harness needs NewDriver, Port and DataRoot")
	}
	if len(h.Engines) == 0 {
		h.Engines = []driver.Engine{driver.EngineMySQL, driver.EngineRedis}
	}
	if h.Timeout == 0 {
		h.Timeout = 3 * time.Minute
	}
	for _, e := range h.Engines {
		t.Run(string(e), func(t *testing.T) {
			t.Parallel()
			runEngine(t, h, e)
		})
	}
}

// Secret returns a random password valid for a NodeSpec.
func Secret() string {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// Specs returns the specs of a three-node instance (one primary, two
// replicas) of engine, with fresh credentials; ports from port.
func Specs(instanceID string, engine driver.Engine, version, dataRoot string, port func() int) []driver.NodeSpec {
	admin := driver.Credentials{Username: "canopy-admin", Password: Secret()}
	monitor := driver.Credentials{Username: "canopy-monitor", Password: Secret()}
	repl := driver.Credentials{Username: "canopy-repl", Password: Secret()}
	zones := []string{"az-a", "az-b", "az-c"}
	specs := make([]driver.NodeSpec, 3)
	for i := range specs {
		role := driver.RoleReplica
		if i == 0 {
			role = driver.RolePrimary
		}
		specs[i] = driver.NodeSpec{
			InstanceID:       instanceID,
			NodeID:           fmt.Sprintf("%s-%d", instanceID, i),
			Engine:           engine,
			Version:          version,
			Role:             role,
			Port:             port(),
			DataRoot:         dataRoot,
			MemoryLimitBytes: 64 << 20,
			SemiSync:         engine == driver.EngineMySQL,
			Admin:            admin,
			Monitor:          monitor,
			Replication:      repl,
			Database:         "app",
			Placement:        driver.Placement{Region: "local", Zone: zones[i], Host: "localhost"},
		}
	}
	if engine == driver.EngineMySQL {
		cdc := driver.Credentials{Username: "canopy-cdc", Password: Secret()}
		for i := range specs {
			specs[i].CDC = cdc
		}
	}
	return specs
}

// StartReplicated creates and starts the nodes of specs concurrently, then
// makes specs[0] the primary and the others its replicas. It returns the
// nodes in the order of specs.
func StartReplicated(ctx context.Context, d driver.Driver, specs []driver.NodeSpec) ([]driver.Node, error) {
	nodes := make([]driver.Node, len(specs))
	if err := parallel(len(specs), func(i int) error {
		if _, err := d.Create(ctx, specs[i]); err != nil {
			return err
		}
		n, err := d.Start(ctx, specs[i].NodeID)
		nodes[i] = n
		return err
	}); err != nil {
		return nil, err
	}
	if err := d.ConfigurePrimary(ctx, specs[0].NodeID, driver.PrimaryOpts{SemiSync: specs[0].SemiSync}); err != nil {
		return nil, err
	}
	primary, err := driver.EndpointOf(nodes[0])
	if err != nil {
		return nil, err
	}
	if err := parallel(len(specs)-1, func(i int) error {
		return d.ConfigureReplica(ctx, specs[i+1].NodeID, driver.ReplicaOpts{Primary: primary, SemiSync: specs[i+1].SemiSync})
	}); err != nil {
		return nil, err
	}
	for i := range nodes {
		st, err := d.Status(ctx, specs[i].NodeID)
		if err != nil {
			return nil, err
		}
		nodes[i] = st.Node
	}
	return nodes, nil
}

// parallel runs fn(0..n-1) concurrently and returns their joined errors.
func parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// eventually calls cond until it succeeds or ctx ends.
func eventually(ctx context.Context, what string, cond func(ctx context.Context) error) error {
	var last error
	err := retry.Do(ctx, retry.Policy{Initial: 20 * time.Millisecond, Max: 250 * time.Millisecond}, func(ctx context.Context) error {
		last = cond(ctx)
		return last
	})
	if err != nil {
		return fmt.Errorf("%s: %w (last: %v)", what, err, last)
	}
	return nil
}

// instance is one engine's nodes under test.
type instance struct {
	h      Harness
	engine driver.Engine
	d      driver.Driver
	specs  []driver.NodeSpec
	nodes  []driver.Node
	client engineClient
}

func runEngine(t *testing.T, h Harness, e driver.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	root := h.DataRoot(t)
	d := h.NewDriver(t)
	specs := Specs("cnf"+string(e[0]), e, h.Versions[e], root, func() int { return h.Port(t) })
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		for _, s := range specs {
			if err := d.Destroy(cctx, s.NodeID); err != nil {
				t.Errorf("cleanup: destroy %s: %v", s.NodeID, err)
			}
		}
	})
	began := time.Now()
	nodes, err := StartReplicated(ctx, d, specs)
	if err != nil {
		t.Fatalf("start replicated %s: %v", e, err)
	}
	t.Logf("%s: primary + 2 replicas ready in %s", e, time.Since(began).Round(time.Millisecond))
	in := &instance{h: h, engine: e, d: d, specs: specs, nodes: nodes}
	if e == driver.EngineMySQL {
		in.client = mysqlClient{}
	} else {
		in.client = redisClient{}
	}

	steps := []struct {
		name string
		fn   func(ctx context.Context, t *testing.T, in *instance)
	}{
		{"rejects invalid spec", testInvalidSpec},
		{"replicates writes", testReplicates},
		{"replicas are read-only", testReadOnly},
		{"semi-sync on primary and replicas", testSemiSync},
		{"monitor account is least-privilege", testMonitor},
		{"cdc account snapshots and dumps the binlog", testCDC},
		{"no anonymous or root access", testNoAnonymous},
		{"create and configure are idempotent", testIdempotent},
		{"stop then start keeps data", testStopStart},
		{"adopt after restart", testAdopt},
		{"destroy removes data and frees the port", testDestroy},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.fn(ctx, t, in) }) {
			return // later steps build on earlier ones
		}
	}
}

func testInvalidSpec(ctx context.Context, t *testing.T, in *instance) {
	bad := in.specs[1]
	bad.NodeID = "../escape"
	if _, err := in.d.Create(ctx, bad); !driver.IsSpecError(err) {
		t.Fatalf("create with node id %q: err = %v, want a SpecError", bad.NodeID, err)
	}
	bad = in.specs[1]
	bad.Admin.Password = "short"
	if _, err := in.d.Create(ctx, bad); !driver.IsSpecError(err) {
		t.Fatalf("create with a short admin password: err = %v, want a SpecError", err)
	}
}

func testReplicates(ctx context.Context, t *testing.T, in *instance) {
	val := Secret()
	if err := in.client.write(ctx, in.nodes[0], in.specs[0], "replicates", val); err != nil {
		t.Fatalf("write on primary: %v", err)
	}
	in.waitEverywhere(ctx, t, "replicates", val)
}

// waitEverywhere waits until every node reads val under key.
func (in *instance) waitEverywhere(ctx context.Context, t *testing.T, key, val string) {
	t.Helper()
	if err := parallel(len(in.nodes), func(i int) error {
		return eventually(ctx, fmt.Sprintf("read %s on %s", key, in.nodes[i].ID), func(ctx context.Context) error {
			got, err := in.client.read(ctx, in.nodes[i], in.specs[i], key)
			if err != nil {
				return err
			}
			if got != val {
				return fmt.Errorf("read %q, want %q", got, val)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}

func testReadOnly(ctx context.Context, t *testing.T, in *instance) {
	if err := in.client.checkReadOnly(ctx, in); err != nil {
		t.Fatal(err)
	}
}

func testSemiSync(ctx context.Context, t *testing.T, in *instance) {
	if in.engine != driver.EngineMySQL {
		t.Skip("semi-sync is a MySQL feature")
	}
	if err := checkSemiSync(ctx, in); err != nil {
		t.Fatal(err)
	}
}

func testMonitor(ctx context.Context, t *testing.T, in *instance) {
	for i := range in.nodes {
		if err := in.client.checkMonitor(ctx, in.nodes[i], in.specs[i]); err != nil {
			t.Errorf("node %s: %v", in.nodes[i].ID, err)
		}
	}
}

func testNoAnonymous(ctx context.Context, t *testing.T, in *instance) {
	for i := range in.nodes {
		if err := in.client.checkNoAnonymous(ctx, in.nodes[i]); err != nil {
			t.Errorf("node %s: %v", in.nodes[i].ID, err)
		}
	}
}

func testIdempotent(ctx context.Context, t *testing.T, in *instance) {
	for i, s := range in.specs {
		n, err := in.d.Create(ctx, s)
		if err != nil {
			t.Fatalf("repeat create %s: %v", s.NodeID, err)
		}
		if n.ID != in.nodes[i].ID || n.Address != in.nodes[i].Address || n.DataDir != in.nodes[i].DataDir || n.PID != in.nodes[i].PID {
			t.Fatalf("repeat create %s = %+v, want %+v", s.NodeID, n, in.nodes[i])
		}
	}
	other := in.specs[1]
	other.Port = in.specs[2].Port
	if _, err := in.d.Create(ctx, other); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("create %s with another port: err = %v, want ErrConflict", other.NodeID, err)
	}
	n, err := in.d.Start(ctx, in.specs[1].NodeID)
	if err != nil {
		t.Fatalf("repeat start: %v", err)
	}
	if n.PID != in.nodes[1].PID {
		t.Fatalf("repeat start changed pid %d → %d", in.nodes[1].PID, n.PID)
	}
	primary, _ := driver.EndpointOf(in.nodes[0])
	if err := in.d.ConfigureReplica(ctx, in.specs[1].NodeID, driver.ReplicaOpts{Primary: primary, SemiSync: in.specs[1].SemiSync}); err != nil {
		t.Fatalf("repeat configure replica: %v", err)
	}
	if err := in.d.ConfigurePrimary(ctx, in.specs[0].NodeID, driver.PrimaryOpts{SemiSync: in.specs[0].SemiSync}); err != nil {
		t.Fatalf("repeat configure primary: %v", err)
	}
	val := Secret()
	if err := in.client.write(ctx, in.nodes[0], in.specs[0], "idempotent", val); err != nil {
		t.Fatalf("write on primary: %v", err)
	}
	in.waitEverywhere(ctx, t, "idempotent", val)
}

func testStopStart(ctx context.Context, t *testing.T, in *instance) {
	// A replica misses writes while down and catches up when back.
	r := 2
	if err := in.d.Stop(ctx, in.specs[r].NodeID); err != nil {
		t.Fatalf("stop replica: %v", err)
	}
	if err := in.d.Stop(ctx, in.specs[r].NodeID); err != nil {
		t.Fatalf("repeat stop: %v", err)
	}
	in.expectState(ctx, t, in.d, r, driver.StateStopped)
	missed := Secret()
	if err := in.client.write(ctx, in.nodes[0], in.specs[0], "missed", missed); err != nil {
		t.Fatalf("write while a replica is down: %v", err)
	}
	n, err := in.d.Start(ctx, in.specs[r].NodeID)
	if err != nil {
		t.Fatalf("start replica again: %v", err)
	}
	in.nodes[r] = n
	in.expectState(ctx, t, in.d, r, driver.StateRunning)
	in.waitEverywhere(ctx, t, "missed", missed)

	// The primary keeps its data and replicas reconnect to it.
	if err := in.d.Stop(ctx, in.specs[0].NodeID); err != nil {
		t.Fatalf("stop primary: %v", err)
	}
	if n, err = in.d.Start(ctx, in.specs[0].NodeID); err != nil {
		t.Fatalf("start primary again: %v", err)
	}
	in.nodes[0] = n
	got, err := in.client.read(ctx, in.nodes[0], in.specs[0], "replicates")
	if err != nil || got == "" {
		t.Fatalf("primary lost data over a restart: %q, %v", got, err)
	}
	// Every start comes up refusing writes until its role is assigned: a
	// restarted primary must never be a second writable one.
	if err := in.client.checkRefusesWrites(ctx, in.nodes[0], in.specs[0]); err != nil {
		t.Fatalf("primary after a restart: %v", err)
	}
	if err := in.d.ConfigurePrimary(ctx, in.specs[0].NodeID, driver.PrimaryOpts{SemiSync: in.specs[0].SemiSync}); err != nil {
		t.Fatalf("configure the restarted primary: %v", err)
	}
	after := Secret()
	if err := in.client.write(ctx, in.nodes[0], in.specs[0], "after-restart", after); err != nil {
		t.Fatalf("write after primary restart: %v", err)
	}
	in.waitEverywhere(ctx, t, "after-restart", after)
}

func (in *instance) expectState(ctx context.Context, t *testing.T, d driver.Driver, i int, want driver.State) {
	t.Helper()
	st, err := d.Status(ctx, in.specs[i].NodeID)
	if err != nil {
		t.Fatalf("status %s: %v", in.specs[i].NodeID, err)
	}
	if st.State != want {
		t.Fatalf("status %s = %s, want %s", in.specs[i].NodeID, st.State, want)
	}
}

func testAdopt(ctx context.Context, t *testing.T, in *instance) {
	// A restarted Canopy knows its nodes only from what it persisted.
	d2 := in.h.NewDriver(t)
	if _, err := d2.Status(ctx, in.specs[0].NodeID); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("status before adopt: err = %v, want ErrNotFound", err)
	}
	for i := range in.specs {
		st, err := d2.Adopt(ctx, in.specs[i], in.nodes[i])
		if err != nil {
			t.Fatalf("adopt %s: %v", in.specs[i].NodeID, err)
		}
		if st.State != driver.StateRunning {
			t.Fatalf("adopt %s: state %s, want running", in.specs[i].NodeID, st.State)
		}
		if st.Node.PID != in.nodes[i].PID || st.Node.Address != in.nodes[i].Address || st.Node.Role != in.nodes[i].Role {
			t.Fatalf("adopt %s = %+v, want %+v", in.specs[i].NodeID, st.Node, in.nodes[i])
		}
	}
	// A repeated Create after a crash finds the node instead of failing.
	if n, err := d2.Create(ctx, in.specs[1]); err != nil || n.PID != in.nodes[1].PID {
		t.Fatalf("create after restart = %+v, %v; want the running node", n, err)
	}
	// The new instance operates the adopted nodes.
	if err := d2.Stop(ctx, in.specs[1].NodeID); err != nil {
		t.Fatalf("stop through the new driver: %v", err)
	}
	in.expectState(ctx, t, in.d, 1, driver.StateStopped)
	val := Secret()
	if err := in.client.write(ctx, in.nodes[0], in.specs[0], "adopt", val); err != nil {
		t.Fatalf("write: %v", err)
	}

	// A third instance adopts the stopped node and starts it again.
	d3 := in.h.NewDriver(t)
	st, err := d3.Adopt(ctx, in.specs[1], in.nodes[1])
	if err != nil {
		t.Fatalf("adopt stopped node: %v", err)
	}
	if st.State != driver.StateStopped || st.Node.PID != 0 {
		t.Fatalf("adopt stopped node: %+v, want stopped without pid", st)
	}
	n, err := d3.Start(ctx, in.specs[1].NodeID)
	if err != nil {
		t.Fatalf("start adopted node: %v", err)
	}
	in.nodes[1] = n
	in.waitEverywhere(ctx, t, "adopt", val)
	// The original instance still sees the node running.
	in.expectState(ctx, t, in.d, 1, driver.StateRunning)
}

func testDestroy(ctx context.Context, t *testing.T, in *instance) {
	i := 2
	node, spec := in.nodes[i], in.specs[i]
	if err := in.d.Destroy(ctx, spec.NodeID); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if err := in.d.Destroy(ctx, spec.NodeID); err != nil {
		t.Fatalf("repeat destroy: %v", err)
	}
	if err := in.d.Destroy(ctx, "never-created"); err != nil {
		t.Fatalf("destroy unknown node: %v", err)
	}
	if _, err := in.d.Status(ctx, spec.NodeID); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("status after destroy: err = %v, want ErrNotFound", err)
	}
	if node.DataDir != "" {
		if _, err := os.Stat(node.DataDir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("data dir %s after destroy: %v, want it gone", node.DataDir, err)
		}
	}
	if c, err := net.DialTimeout("tcp", node.Address, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after destroy", node.Address)
	}
	if in.h.LocalAddresses {
		l, err := net.Listen("tcp", node.Address)
		if err != nil {
			t.Fatalf("port of destroyed node not free: %v", err)
		}
		l.Close()
	}
	d2 := in.h.NewDriver(t)
	if _, err := d2.Adopt(ctx, spec, node); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("adopt destroyed node: err = %v, want ErrNotFound", err)
	}
	// The rest of the instance is unaffected.
	val := Secret()
	if err := in.client.write(ctx, in.nodes[0], in.specs[0], "after-destroy", val); err != nil {
		t.Fatalf("write after destroying a replica: %v", err)
	}
	got, err := in.client.read(ctx, in.nodes[0], in.specs[0], "after-destroy")
	if err != nil || got != val {
		t.Fatalf("read after destroying a replica = %q, %v", got, err)
	}
}

// VerifyReplication writes a fresh value on nodes[0] (the primary) and waits
// until every node reads it: the check that an instance really replicates.
func VerifyReplication(ctx context.Context, nodes []driver.Node, specs []driver.NodeSpec) error {
	if len(nodes) == 0 || len(nodes) != len(specs) {
		return errors.New("verify replication: need one spec per node")
	}
	var c engineClient = redisClient{}
	if specs[0].Engine == driver.EngineMySQL {
		c = mysqlClient{}
	}
	val := Secret()
	if err := c.write(ctx, nodes[0], specs[0], "verify", val); err != nil {
		return fmt.Errorf("write on primary %s: %w", nodes[0].ID, err)
	}
	return parallel(len(nodes), func(i int) error {
		return eventually(ctx, "read on "+nodes[i].ID, func(ctx context.Context) error {
			got, err := c.read(ctx, nodes[i], specs[i], "verify")
			if err != nil {
				return err
			}
			if got != val {
				return fmt.Errorf("read %q, want %q", got, val)
			}
			return nil
		})
	})
}
