package sentinel

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// startRedis runs a redis-server on a free loopback port with the account
// app/apppw, for the test's lifetime.
func startRedis(t *testing.T, extra ...string) (string, *redis.Client) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, port := splitAddr(addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--user", "app", "on", ">apppw", "~*", "&*", "+@all"}, extra...)
	cmd := exec.Command("redis-server", args...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: addr, Username: "app", Password: "apppw", Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	require.Eventually(t, func() bool { return c.Ping(context.Background()).Err() == nil },
		10*time.Second, 20*time.Millisecond, "redis-server on %s did not start", addr)
	return addr, c
}

// A go-redis failover client keeps writing through a promotion: the
// table's new primary reaches it by +switch-master and it writes to B.
func TestFailoverFollowsPromotion(t *testing.T) {
	t.Parallel()
	aAddr, a := startRedis(t)
	aHost, aPort := splitAddr(aAddr)
	bAddr, b := startRedis(t, "--replicaof", aHost, aPort, "--masteruser", "app", "--masterauth", "apppw")
	bHost, bPort := splitAddr(bAddr)

	tbl := fixture()
	tbl.Apply(table.Instance{
		ID: "i-live", Tenant: "t-a", Name: "live", Engine: table.Redis, State: "ready",
		Nodes: []table.Node{
			{ID: "a", Address: aAddr, Role: table.Primary},
			{ID: "b", Address: bAddr, Role: table.Replica},
		},
		Bindings: []table.Binding{binding("app", "apppw")},
	})
	addr, srv := start(t, Config{}, tbl)

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	// Subscribers: tenant A over RESP2, tenant B on every channel.
	subA := sentinelClient(t, addr, "app", "apppw", 2).Subscribe(ctx, "+switch-master")
	t.Cleanup(func() { _ = subA.Close() })
	_, err := subA.Receive(ctx)
	require.NoError(t, err)
	subB := sentinelClient(t, addr, "ub", "pb", 3).PSubscribe(ctx, "*")
	t.Cleanup(func() { _ = subB.Close() })
	_, err = subB.Receive(ctx)
	require.NoError(t, err)

	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: "live", SentinelAddrs: []string{addr},
		SentinelUsername: "app", SentinelPassword: "apppw",
		Username: "app", Password: "apppw",
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	t.Cleanup(func() { _ = fc.Close() })

	var lastOK atomic.Int64
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := int64(1); ; i++ {
			if err := fc.Set(wctx, "last", i, 0).Err(); err == nil {
				lastOK.Store(i)
			}
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	require.Eventually(t, func() bool { return lastOK.Load() > 0 }, 10*time.Second, 10*time.Millisecond, "no write reached A")

	require.NoError(t, b.ReplicaOf(ctx, "no", "one").Err())
	require.NoError(t, a.ConfigSet(ctx, "masteruser", "app").Err())
	require.NoError(t, a.ConfigSet(ctx, "masterauth", "apppw").Err())
	require.NoError(t, a.ReplicaOf(ctx, bHost, bPort).Err())
	// A rejects writes from here on: a value above n0 on B was written
	// to B by the client.
	n0 := lastOK.Load()
	tbl.Promoted("i-live", 1, map[string]string{"a": "replica", "b": "primary"})

	require.Eventually(t, func() bool {
		v, err := b.Get(ctx, "last").Result()
		if err != nil {
			return false
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		return n > n0
	}, 15*time.Second, 20*time.Millisecond, "the failover client's writes did not land on B")

	msg, err := subA.ReceiveMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, "+switch-master", msg.Channel)
	require.Equal(t, fmt.Sprintf("live %s %s %s %s", aHost, aPort, bHost, bPort), msg.Payload)

	// Tenant B's subscriber got nothing of A's: its first message is its
	// own instance's switch, published after A's.
	tbl.Apply(table.Instance{
		ID: "i-other", Tenant: "t-b", Name: "other", Engine: table.Redis, State: "ready",
		Nodes:    []table.Node{{ID: "o2", Address: "10.0.2.2:6379", Role: table.Primary}},
		Bindings: []table.Binding{binding("ub", "pb")},
	})
	msgB, err := subB.ReceiveMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, "other 10.0.2.1 6379 10.0.2.2 6379", msgB.Payload)
	require.Equal(t, "*", msgB.Pattern)
	// subA, the failover client's own subscription, subB.
	require.Eventually(t, func() bool { return testutil.ToFloat64(srv.switches) == 3 }, 5*time.Second, 10*time.Millisecond)
	require.Positive(t, testutil.ToFloat64(srv.commands.WithLabelValues("sentinel|get-master-addr-by-name", "ok")))
}
