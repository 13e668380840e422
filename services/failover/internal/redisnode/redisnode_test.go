package redisnode_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/services/failover/internal/nodetest"
	"github.com/canopy-platform/canopy/services/failover/internal/redisnode"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

func newNodes(t *testing.T) *redisnode.Nodes {
	t.Helper()
	n, err := redisnode.New(redisnode.Config{}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
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
		time.Sleep(2 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func client(t *testing.T, p *nodetest.Proc) *goredis.Client {
	c := nodetest.AdminRedis(p)
	t.Cleanup(func() { c.Close() })
	return c
}

// ackedSet writes k=v and waits for one replica to acknowledge it (WAIT 1),
// what a writer that must not lose writes counts as acknowledged.
func ackedSet(ctx context.Context, c *goredis.Client, k, v string) error {
	if err := c.Set(ctx, k, v, 0).Err(); err != nil {
		return err
	}
	n, err := c.Wait(ctx, 1, time.Second).Result()
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("WAIT 1: %d replicas acknowledged", n)
	}
	return nil
}

// TestFailover drives a whole failover by hand: observe, kill -9 the
// primary, promote, repoint, write, rejoin the restarted old primary.
func TestFailover(t *testing.T) {
	tp := nodetest.Redis(t, nodetest.RedisOptions{Mode: "multi-az"})
	in := tp.Instance
	nodes := newNodes(t)
	primary, r1, r2 := in.Nodes[0], in.Nodes[1], in.Nodes[2]

	if err := ackedSet(ctxT(t, 5*time.Second), client(t, tp.Procs[0]), "before", "1"); err != nil {
		t.Fatal(err)
	}
	pv := nodes.Observe(ctxT(t, time.Second), in, primary)
	if !pv.Reachable || !pv.Writable || pv.Replicating || pv.Position.Offset == 0 || len(pv.Replicas) != 2 {
		t.Fatalf("primary view %+v", pv)
	}
	for _, r := range []topology.Node{r1, r2} {
		eventually(t, 5*time.Second, r.ID+" caught up", func() (bool, string) {
			v := nodes.Observe(ctxT(t, time.Second), in, r)
			return v.Position.Offset >= pv.Position.Offset, fmt.Sprintf("%+v", v)
		})
		v := nodes.Observe(ctxT(t, time.Second), in, r)
		if !v.Reachable || v.Writable || !v.Replicating || !v.LinkUp || v.Source != primary.Address {
			t.Fatalf("replica %s view %+v", r.ID, v)
		}
	}

	killed := time.Now()
	tp.Procs[0].Kill()
	for _, r := range []topology.Node{r1, r2} {
		eventually(t, 5*time.Second, r.ID+" sees its link down", func() (bool, string) {
			v := nodes.Observe(ctxT(t, time.Second), in, r)
			return v.Reachable && !v.LinkUp, fmt.Sprintf("%+v", v)
		})
	}
	t.Logf("replicas saw the primary's link down %v after kill -9", time.Since(killed))
	if v := nodes.Observe(ctxT(t, time.Second), in, primary); v.Reachable || v.Err == "" {
		t.Fatalf("dead primary view %+v", v)
	}

	began := time.Now()
	if err := nodes.Promote(ctxT(t, 2*time.Second), in, r1); err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(began)
	if err := nodes.Repoint(ctxT(t, 2*time.Second), in, r2, r1); err != nil {
		t.Fatal(err)
	}
	t.Logf("promote %v + repoint %v = %v", promoted, time.Since(began)-promoted, time.Since(began))

	// multi-az: the new primary refuses writes no replica receives, so the
	// first write waits for the repointed replica to be online.
	c1 := client(t, tp.Procs[1])
	var lastErr error
	eventually(t, 5*time.Second, "an acknowledged write on the new primary", func() (bool, string) {
		lastErr = ackedSet(ctxT(t, 2*time.Second), c1, "after", "2")
		return lastErr == nil, fmt.Sprint(lastErr)
	})
	t.Logf("first acknowledged write on the new primary %v after promotion began", time.Since(began))
	if got := c1.ConfigGet(ctxT(t, time.Second), "min-replicas-to-write").Val()["min-replicas-to-write"]; got != "1" {
		t.Fatalf("min-replicas-to-write %q on a multi-az primary", got)
	}
	np := nodes.Observe(ctxT(t, time.Second), in, r1)
	if !np.Writable || np.Replicating {
		t.Fatalf("new primary view %+v", np)
	}
	if err := nodes.WaitCaughtUp(ctxT(t, 5*time.Second), in, r2, np.Position); err != nil {
		t.Fatal(err)
	}
	if got := client(t, tp.Procs[2]).Get(ctxT(t, time.Second), "after").Val(); got != "2" {
		t.Fatalf("replica read %q", got)
	}

	// The old primary returns as a replica of nothing (never an empty
	// writable primary) and rejoins.
	tp.Procs[0].Start()
	ov := nodes.Observe(ctxT(t, time.Second), in, primary)
	if !ov.Reachable || ov.Writable || ov.Source != redisnode.FencePlaceholder {
		t.Fatalf("restarted old primary view %+v", ov)
	}
	if errant, err := nodes.Errant(ctxT(t, time.Second), in, primary, r1); err != nil || errant != nil {
		t.Fatalf("errant %v, %v", errant, err)
	}
	rejoin := time.Now()
	if err := nodes.Repoint(ctxT(t, 2*time.Second), in, primary, r1); err != nil {
		t.Fatal(err)
	}
	np = nodes.Observe(ctxT(t, time.Second), in, r1)
	if err := nodes.WaitCaughtUp(ctxT(t, 10*time.Second), in, primary, np.Position); err != nil {
		t.Fatal(err)
	}
	t.Logf("old primary rejoined and caught up in %v", time.Since(rejoin))
	c0 := client(t, tp.Procs[0])
	for k, want := range map[string]string{"before": "1", "after": "2"} {
		if got := c0.Get(ctxT(t, time.Second), k).Val(); got != want {
			t.Fatalf("old primary %s=%q, want %q", k, got, want)
		}
	}
	if v := nodes.Observe(ctxT(t, time.Second), in, primary); !v.LinkUp || v.Source != r1.Address || v.Writable {
		t.Fatalf("rejoined old primary view %+v", v)
	}
	if err := nodes.Repoint(ctxT(t, 2*time.Second), in, primary, r1); err != nil {
		t.Fatalf("repoint again: %v", err)
	}
}

// TestNodesSuite runs the shared topology.Nodes suite on a multi-az
// topology.
func TestNodesSuite(t *testing.T) {
	nodetest.RunNodesSuite(t, newNodes(t), nodetest.RedisEngine(nodetest.RedisOptions{Mode: "multi-az"}))
}

// TestFenceRefusesWrites: a fenced live primary refuses writes, keeps its
// data, and fencing again is harmless.
func TestFenceRefusesWrites(t *testing.T) {
	tp := nodetest.Redis(t, nodetest.RedisOptions{Mode: "single-az"})
	in := tp.Instance
	nodes := newNodes(t)
	c := client(t, tp.Procs[0])
	ctx := ctxT(t, 10*time.Second)
	if err := ackedSet(ctx, c, "a", "1"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := nodes.Fence(ctx, in, in.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("fence took %v", time.Since(began))
	if err := c.Set(ctx, "b", "2", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Fatalf("write after fence: %v, want READONLY", err)
	}
	if got := c.Get(ctx, "a").Val(); got != "1" {
		t.Fatalf("fenced node lost its data: a=%q", got)
	}
	if v := nodes.Observe(ctx, in, in.Nodes[0]); v.Writable || !v.Reachable || v.Source != redisnode.FencePlaceholder {
		t.Fatalf("fenced view %+v", v)
	}
	if err := nodes.Fence(ctx, in, in.Nodes[0]); err != nil {
		t.Fatalf("fence again: %v", err)
	}
	// Promote on a single-az instance leaves min-replicas-to-write at 0.
	if err := nodes.Promote(ctx, in, in.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "b", "2", 0).Err(); err != nil {
		t.Fatalf("write after promotion: %v", err)
	}
}

// TestFenceUnblocksWait: a writer blocked in WAIT when its primary is
// fenced gets no acknowledgement.
func TestFenceUnblocksWait(t *testing.T) {
	tp := nodetest.Redis(t, nodetest.RedisOptions{Mode: "single-az"})
	in := tp.Instance
	nodes := newNodes(t)
	ctx := ctxT(t, 10*time.Second)
	// Detach both replicas: nothing acknowledges any more.
	for _, p := range tp.Procs[1:] {
		if err := client(t, p).SlaveOf(ctx, "NO", "ONE").Err(); err != nil {
			t.Fatal(err)
		}
	}
	c := client(t, tp.Procs[0])
	if err := c.Set(ctx, "pending", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := c.Wait(context.Background(), 1, 0).Result() // 0: block until acknowledged
		res <- result{n, err}
	}()
	eventually(t, 5*time.Second, "a client blocked in WAIT", func() (bool, string) {
		info, err := c.Info(ctx, "clients").Result()
		return err == nil && strings.Contains(info, "blocked_clients:1"), info
	})
	if err := nodes.Fence(ctx, in, in.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		if r.err == nil && r.n >= 1 {
			t.Fatalf("WAIT acknowledged by %d replicas after the fence", r.n)
		}
		t.Logf("blocked WAIT returned %d, %v", r.n, r.err)
	case <-time.After(5 * time.Second):
		t.Fatal("WAIT still blocked after the fence")
	}
}

// TestNoAcknowledgedWriteLost: under a steady writer that counts a write as
// acknowledged after WAIT 1, kill -9 the primary, promote the replica with
// the highest offset and repoint the other: every acknowledged write is on
// both.
func TestNoAcknowledgedWriteLost(t *testing.T) {
	tp := nodetest.Redis(t, nodetest.RedisOptions{Mode: "multi-az"})
	in := tp.Instance
	nodes := newNodes(t)
	c := client(t, tp.Procs[0])
	acked := make(chan int, 1)
	go func() {
		for i := 0; ; i++ {
			if err := ackedSet(context.Background(), c, fmt.Sprintf("w%06d", i), "x"); err != nil {
				acked <- i
				return
			}
		}
	}()
	eventually(t, 5*time.Second, "the writer under way", func() (bool, string) {
		v := nodes.Observe(ctxT(t, time.Second), in, in.Nodes[1])
		return v.Position.Offset > 20000, fmt.Sprint(v.Position.Offset)
	})
	tp.Procs[0].Kill()
	n := <-acked
	offset := func(node topology.Node) int64 {
		var v topology.NodeView
		eventually(t, 5*time.Second, node.ID+" link down", func() (bool, string) {
			v = nodes.Observe(ctxT(t, time.Second), in, node)
			return v.Reachable && !v.LinkUp, fmt.Sprintf("%+v", v)
		})
		return v.Position.Offset
	}
	cand, other := in.Nodes[1], in.Nodes[2]
	if offset(other) > offset(cand) {
		cand, other = other, cand
	}
	began := time.Now()
	if err := nodes.Promote(ctxT(t, 2*time.Second), in, cand); err != nil {
		t.Fatal(err)
	}
	if err := nodes.Repoint(ctxT(t, 2*time.Second), in, other, cand); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged before the kill; promote+repoint %v", n, time.Since(began))
	np := nodes.Observe(ctxT(t, time.Second), in, cand)
	if err := nodes.WaitCaughtUp(ctxT(t, 10*time.Second), in, other, np.Position); err != nil {
		t.Fatal(err)
	}
	for _, node := range []topology.Node{cand, other} {
		rc := client(t, tp.Proc(node.ID))
		for i := 0; i < n; i++ {
			if err := rc.Get(ctxT(t, time.Second), fmt.Sprintf("w%06d", i)).Err(); err != nil {
				t.Fatalf("%s lacks acknowledged write %d of %d: %v", node.ID, i, n, err)
			}
		}
	}
}
