package nodetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Engine is what the shared topology.Nodes suite needs of one engine.
type Engine struct {
	// Start starts a three-node topology (node 0 the primary).
	Start func(t testing.TB) *Topology
	// Write makes a write of key on the node that counts as acknowledged
	// (MariaDB: a committed insert, semi-sync when the topology is; Redis:
	// SET then WAIT 1 answered by one replica).
	Write func(ctx context.Context, t testing.TB, p *Proc, key string) error
	// Has reports whether the node has key.
	Has func(ctx context.Context, t testing.TB, p *Proc, key string) (bool, error)
}

// MySQLEngine drives MariaDB topologies started with opts.
func MySQLEngine(opts MySQLOptions) Engine {
	return Engine{
		Start: func(t testing.TB) *Topology { return MySQL(t, opts) },
		Write: func(ctx context.Context, t testing.TB, p *Proc, key string) error {
			_, err := AppDB(t, p).ExecContext(ctx, "INSERT INTO kv (k, v) VALUES (?, 'x')", key)
			return err
		},
		Has: func(ctx context.Context, t testing.TB, p *Proc, key string) (bool, error) {
			var v string
			err := AppDB(t, p).QueryRowContext(ctx, "SELECT v FROM kv WHERE k = ?", key).Scan(&v)
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil
			}
			return err == nil, err
		},
	}
}

// RedisEngine drives Redis topologies started with opts.
func RedisEngine(opts RedisOptions) Engine {
	return Engine{
		Start: func(t testing.TB) *Topology { return Redis(t, opts) },
		Write: func(ctx context.Context, t testing.TB, p *Proc, key string) error {
			c := AdminRedis(p)
			defer c.Close()
			if err := c.Set(ctx, key, "x", 0).Err(); err != nil {
				return err
			}
			n, err := c.Wait(ctx, 1, time.Second).Result()
			if err == nil && n < 1 {
				err = fmt.Errorf("WAIT 1: %d replicas acknowledged", n)
			}
			return err
		},
		Has: func(ctx context.Context, t testing.TB, p *Proc, key string) (bool, error) {
			c := AdminRedis(p)
			defer c.Close()
			err := c.Get(ctx, key).Err()
			if errors.Is(err, goredis.Nil) {
				return false, nil
			}
			return err == nil, err
		},
	}
}

// RunNodesSuite checks what every topology.Nodes implementation promises,
// on real processes: views of a primary and its replicas, a kill -9 seen
// by the replicas, promote + repoint after it (timed, logged), a rejoin of
// the restarted old primary, and fencing.
func RunNodesSuite(t *testing.T, nodes topology.Nodes, e Engine) {
	t.Run("FailoverAndRejoin", func(t *testing.T) { suiteFailover(t, nodes, e) })
	t.Run("FenceRefusesWrites", func(t *testing.T) { suiteFence(t, nodes, e) })
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond every few milliseconds until it holds, failing the
// test with cond's last state when within passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not within %v: %s", what, within, state)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

func suiteFailover(t *testing.T, nodes topology.Nodes, e Engine) {
	tp := e.Start(t)
	in := tp.Instance
	primary, r1, r2 := in.Nodes[0], in.Nodes[1], in.Nodes[2]
	observe := func(n topology.Node) topology.NodeView { return nodes.Observe(ctxFor(t, time.Second), in, n) }

	if err := e.Write(ctxFor(t, 10*time.Second), t, tp.Procs[0], "before"); err != nil {
		t.Fatalf("write on the primary: %v", err)
	}
	pv := observe(primary)
	if !pv.Reachable || !pv.Writable || pv.Replicating {
		t.Fatalf("primary view %+v", pv)
	}
	Eventually(t, 10*time.Second, "primary lists both replicas", func() (bool, string) {
		v := observe(primary)
		return len(v.Replicas) == 2, fmt.Sprint(v.Replicas)
	})
	for _, r := range []topology.Node{r1, r2} {
		if err := nodes.WaitCaughtUp(ctxFor(t, 10*time.Second), in, r, pv.Position); err != nil {
			t.Fatal(err)
		}
		if v := observe(r); !v.Reachable || v.Writable || !v.Replicating || !v.LinkUp || !v.SQLRunning || v.Source != primary.Address {
			t.Fatalf("replica %s view %+v", r.ID, v)
		}
	}

	killed := time.Now()
	tp.Procs[0].Kill()
	for _, r := range []topology.Node{r1, r2} {
		Eventually(t, 5*time.Second, r.ID+" sees its link down", func() (bool, string) {
			v := observe(r)
			return v.Reachable && !v.LinkUp, fmt.Sprintf("%+v", v)
		})
	}
	t.Logf("replicas saw the link down %v after kill -9", time.Since(killed))
	if v := observe(primary); v.Reachable || v.Err == "" {
		t.Fatalf("dead primary view %+v", v)
	}

	began := time.Now()
	if err := nodes.Promote(ctxFor(t, 5*time.Second), in, r1); err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(began)
	if err := nodes.Repoint(ctxFor(t, 5*time.Second), in, r2, r1); err != nil {
		t.Fatal(err)
	}
	t.Logf("promote %v + repoint %v = %v", promoted, time.Since(began)-promoted, time.Since(began))
	var werr error
	Eventually(t, 10*time.Second, "an acknowledged write on the new primary", func() (bool, string) {
		werr = e.Write(ctxFor(t, 5*time.Second), t, tp.Procs[1], "after")
		return werr == nil, fmt.Sprint(werr)
	})
	t.Logf("first acknowledged write on the new primary %v after the promotion began", time.Since(began))
	np := observe(r1)
	if !np.Writable || np.Replicating {
		t.Fatalf("new primary view %+v", np)
	}
	if err := nodes.WaitCaughtUp(ctxFor(t, 10*time.Second), in, r2, np.Position); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.Has(ctxFor(t, 5*time.Second), t, tp.Procs[2], "after"); !ok {
		t.Fatalf("repointed replica lacks the new write: %v", err)
	}

	tp.Procs[0].Start()
	if v := observe(primary); !v.Reachable || v.Writable {
		t.Fatalf("restarted old primary view %+v", v)
	}
	if errant, err := nodes.Errant(ctxFor(t, 5*time.Second), in, primary, r1); err != nil || len(errant) != 0 {
		t.Fatalf("errant %v, %v", errant, err)
	}
	if err := nodes.Repoint(ctxFor(t, 5*time.Second), in, primary, r1); err != nil {
		t.Fatal(err)
	}
	np = observe(r1)
	if err := nodes.WaitCaughtUp(ctxFor(t, 10*time.Second), in, primary, np.Position); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"before", "after"} {
		if ok, err := e.Has(ctxFor(t, 5*time.Second), t, tp.Procs[0], k); !ok {
			t.Fatalf("rejoined old primary lacks %s: %v", k, err)
		}
	}
	Eventually(t, 5*time.Second, "old primary streams from the new one", func() (bool, string) {
		v := observe(primary)
		return v.LinkUp && v.Source == r1.Address && !v.Writable, fmt.Sprintf("%+v", v)
	})
	if err := nodes.Repoint(ctxFor(t, 5*time.Second), in, primary, r1); err != nil {
		t.Fatalf("repoint again: %v", err)
	}
}

func suiteFence(t *testing.T, nodes topology.Nodes, e Engine) {
	tp := e.Start(t)
	in := tp.Instance
	ctx := ctxFor(t, 20*time.Second)
	if err := e.Write(ctx, t, tp.Procs[0], "a"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := nodes.Fence(ctx, in, in.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("fence took %v", time.Since(began))
	if err := e.Write(ctx, t, tp.Procs[0], "b"); err == nil {
		t.Fatal("a fenced node took a write")
	}
	if ok, err := e.Has(ctx, t, tp.Procs[0], "a"); !ok {
		t.Fatalf("fenced node lost its data: %v", err)
	}
	if v := nodes.Observe(ctx, in, in.Nodes[0]); v.Writable || !v.Reachable {
		t.Fatalf("fenced view %+v", v)
	}
	if err := nodes.Fence(ctx, in, in.Nodes[0]); err != nil {
		t.Fatalf("fence again: %v", err)
	}
}
