package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver/drivertest"
)

func TestRestartDelayBacksOff(t *testing.T) {
	d := newDriver(t, Config{RestartDelay: time.Second, RestartDelayMax: 5 * time.Second})
	for crashes, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		if got := d.restartDelay(crashes); got != want {
			t.Errorf("restartDelay(%d) = %s, want %s", crashes, got, want)
		}
	}
	if got := d.restartDelay(1000); got != 5*time.Second {
		t.Errorf("restartDelay(1000) = %s, want the cap", got)
	}
}

// supervised starts one primary of engine with a running supervisor and
// writes a key on it.
func supervised(t *testing.T, ctx context.Context, engine driver.Engine) (*Driver, driver.NodeSpec, driver.Node) {
	t.Helper()
	spec := testSpec(dataRoot(t), engine, freePort(t))
	spec.NodeID += "-sup"
	d := newDriver(t, Config{RestartDelay: 200 * time.Millisecond, RestartDelayMax: time.Second, SuperviseInterval: 20 * time.Millisecond})
	supCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Supervise(supCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("supervise: %v", err)
		}
		_ = d.Destroy(context.Background(), spec.NodeID)
	})
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	n, err := d.Start(ctx, spec.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ConfigurePrimary(ctx, spec.NodeID, driver.PrimaryOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := drivertest.VerifyReplication(ctx, []driver.Node{n}, []driver.NodeSpec{spec}); err != nil {
		t.Fatalf("write on the primary: %v", err)
	}
	return d, spec, n
}

// waitRestarted waits until the node runs and answers with a pid other than old.
func waitRestarted(t *testing.T, ctx context.Context, d *Driver, id string, old int) driver.Node {
	t.Helper()
	var st driver.NodeStatus
	err := retry.Do(ctx, retry.Policy{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}, func(ctx context.Context) error {
		var err error
		if st, err = d.Status(ctx, id); err != nil {
			return retry.Permanent(err)
		}
		if st.State != driver.StateRunning || st.Node.PID == old {
			return errors.New("not restarted yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("node %s not restarted: %v (last %+v)", id, err, st)
	}
	return st.Node
}

// A node process killed with SIGKILL (or stopped with SIGTERM) behind the
// driver's back is restarted by the supervisor, keeps its data and comes
// back refusing writes until ConfigurePrimary; a Stop is left alone.
func TestSupervisorRestartsKilledNodeReadOnly(t *testing.T) {
	requireBinaries(t)
	for _, engine := range []driver.Engine{driver.EngineRedis, driver.EngineMySQL} {
		t.Run(string(engine), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			d, spec, n := supervised(t, ctx, engine)

			for _, fault := range []struct {
				name   string
				inject func(context.Context, string) error
			}{{"kill -9", d.Kill}, {"sigterm", d.Terminate}} {
				began := time.Now()
				if err := fault.inject(ctx, spec.NodeID); err != nil {
					t.Fatalf("%s: %v", fault.name, err)
				}
				if alive(n.PID) {
					t.Fatalf("%s: pid %d still alive", fault.name, n.PID)
				}
				n = waitRestarted(t, ctx, d, spec.NodeID, n.PID)
				t.Logf("%s: restarted as pid %d after %s", fault.name, n.PID, time.Since(began).Round(time.Millisecond))
				if err := drivertest.RefusesWrites(ctx, n, spec); err != nil {
					t.Fatalf("after %s: %v", fault.name, err)
				}
				if err := d.ConfigurePrimary(ctx, spec.NodeID, driver.PrimaryOpts{}); err != nil {
					t.Fatal(err)
				}
				if err := drivertest.VerifyReplication(ctx, []driver.Node{n}, []driver.NodeSpec{spec}); err != nil {
					t.Fatalf("write after ConfigurePrimary: %v", err)
				}
			}

			// A stop is meant: the supervisor leaves the node down.
			if err := d.Stop(ctx, spec.NodeID); err != nil {
				t.Fatal(err)
			}
			if err := d.Kill(ctx, spec.NodeID); !errors.Is(err, driver.ErrNotRunning) {
				t.Fatalf("kill a stopped node: err = %v, want ErrNotRunning", err)
			}
			if err := d.Kill(ctx, "no-such-node"); !errors.Is(err, driver.ErrNotFound) {
				t.Fatalf("kill an unknown node: err = %v, want ErrNotFound", err)
			}
			// Several supervisor rounds and a whole restart delay pass.
			deadline := time.Now().Add(3 * d.cfg.RestartDelay)
			for time.Now().Before(deadline) {
				d.superviseOnce(time.Now())
				if st, err := d.Status(ctx, spec.NodeID); err != nil || st.State != driver.StateStopped {
					t.Fatalf("stopped node: %+v, %v; want it left stopped", st, err)
				}
				time.Sleep(d.cfg.SuperviseInterval)
			}
		})
	}
}

// A node that crashed while no driver ran (its pid file left behind) is
// supervised once adopted, and restarted.
func TestSupervisorRestartsNodeCrashedWhileAway(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := testSpec(dataRoot(t), driver.EngineRedis, freePort(t))
	d := newDriver(t, Config{})
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	n, err := d.Start(ctx, spec.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Kill(ctx, spec.NodeID); err != nil {
		t.Fatal(err)
	}
	d2 := newDriver(t, Config{RestartDelay: 50 * time.Millisecond, SuperviseInterval: 10 * time.Millisecond})
	t.Cleanup(func() { _ = d2.Destroy(context.Background(), spec.NodeID) })
	st, err := d2.Adopt(ctx, spec, n)
	if err != nil || st.State != driver.StateStopped {
		t.Fatalf("adopt crashed node = %+v, %v; want stopped", st, err)
	}
	supCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d2.Supervise(supCtx) }()
	defer func() { stop(); <-done }()
	n = waitRestarted(t, ctx, d2, spec.NodeID, n.PID)
	if err := drivertest.RefusesWrites(ctx, n, spec); err != nil {
		t.Fatal(err)
	}
}

// The Redis hazard made impossible: a primary without persistence that is
// killed comes back empty, but as a replica of nothing reachable, so its
// replicas never resynchronise to its empty dataset and keep their data.
func TestSupervisorRedisPrimaryWithoutPersistence(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := dataRoot(t)
	specs := drivertest.Specs("nop", driver.EngineRedis, "", root, func() int { return freePort(t) })
	for i := range specs {
		specs[i].Settings = map[string]string{"appendonly": "no", "save": `""`}
	}
	d := newDriver(t, Config{RestartDelay: 100 * time.Millisecond, SuperviseInterval: 20 * time.Millisecond})
	supCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Supervise(supCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
		for _, s := range specs {
			_ = d.Destroy(context.Background(), s.NodeID)
		}
	})
	nodes, err := drivertest.StartReplicated(ctx, d, specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := drivertest.VerifyReplication(ctx, nodes, specs); err != nil {
		t.Fatal(err)
	}
	if err := d.Kill(ctx, specs[0].NodeID); err != nil {
		t.Fatal(err)
	}
	restarted := waitRestarted(t, ctx, d, specs[0].NodeID, nodes[0].PID)
	if err := drivertest.RefusesWrites(ctx, restarted, specs[0]); err != nil {
		t.Fatal(err)
	}
	// Each replica retries its primary once a second: once both report the
	// link down for 3 s, they have tried the restarted, empty node.
	for i := 1; i < len(nodes); i++ {
		c := drivertest.RedisClient(nodes[i].Address, specs[i].Admin)
		defer c.Close()
		err := retry.Do(ctx, retry.Policy{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond}, func(ctx context.Context) error {
			info, err := c.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			m := parseInfo(info)
			if m["master_link_status"] == "up" {
				return retry.Permanent(errors.New("replica linked to the restarted empty primary"))
			}
			if s := m["master_link_down_since_seconds"]; s == "" || s == "0" || s == "1" || s == "2" || s == "-1" {
				return errors.New("link not down long enough yet: " + s)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("replica %s: %v", nodes[i].ID, err)
		}
		if n, err := c.DBSize(ctx).Result(); err != nil || n == 0 {
			t.Fatalf("replica %s has %d keys (%v): it resynchronised to the empty primary", nodes[i].ID, n, err)
		}
	}
}

// Assign records the role a failover gave a node for its next start,
// without a server: a Redis replica follows its new primary, a primary or a
// fenced node nothing reachable.
func TestAssignRecordsRoleForNextStart(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := testSpec(dataRoot(t), driver.EngineRedis, freePort(t))
	d := newDriver(t, Config{})
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	conf := func() string {
		b, err := os.ReadFile(filepath.Join(nodeDir(spec), "redis.conf"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	src := driver.Endpoint{Host: loopback, Port: 7001}
	if err := d.Assign(ctx, spec.NodeID, driver.RoleReplica, &src); err != nil {
		t.Fatal(err)
	}
	if c := conf(); !strings.Contains(c, "replicaof 127.0.0.1 7001\n") {
		t.Fatalf("replica's redis.conf:\n%s", c)
	}
	if err := d.Assign(ctx, spec.NodeID, driver.RolePrimary, nil); err != nil {
		t.Fatal(err)
	}
	if c := conf(); !strings.Contains(c, "replicaof 127.0.0.1 1\n") {
		t.Fatalf("primary's redis.conf:\n%s", c)
	}
	if st, err := d.Status(ctx, spec.NodeID); err != nil || st.Node.Role != driver.RolePrimary {
		t.Fatalf("status after assign = %+v, %v", st, err)
	}
	if err := d.Assign(ctx, "no-such-node", driver.RolePrimary, nil); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("assign an unknown node: %v", err)
	}
}
