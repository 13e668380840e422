package sentinel

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func sentinelClient(t *testing.T, addr, user, pass string, proto int) *redis.SentinelClient {
	t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: user, Password: pass, Protocol: proto, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// go-redis's Sentinel client over both protocol versions (go-redis sends
// HELLO 3 AUTH first; with Protocol 2, HELLO 2 AUTH).
func TestGoRedisSentinelClient(t *testing.T) {
	t.Parallel()
	addr, srv := start(t, Config{Peers: []string{"10.9.0.1:26380"}}, fixture())
	for _, proto := range []int{2, 3} {
		t.Run(map[int]string{2: "resp2", 3: "resp3"}[proto], func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c := sentinelClient(t, addr, "ua", "pa", proto)

			got, err := c.GetMasterAddrByName(ctx, "cache").Result()
			require.NoError(t, err)
			require.Equal(t, []string{"10.0.0.1", "6379"}, got)

			m, err := c.Master(ctx, "cache").Result()
			require.NoError(t, err)
			require.Equal(t, "cache", m["name"])
			require.Equal(t, "master", m["flags"])
			require.Equal(t, "2", m["num-slaves"])
			require.Equal(t, "1", m["num-other-sentinels"])
			require.Equal(t, "7", m["config-epoch"])

			masters, err := c.Masters(ctx).Result()
			require.NoError(t, err)
			require.Len(t, masters, 1)

			replicas, err := c.Replicas(ctx, "cache").Result()
			require.NoError(t, err)
			require.Len(t, replicas, 2, "the fenced node is not a replica")
			require.Equal(t, "10.0.0.2", replicas[0]["ip"])
			require.Equal(t, "6380", replicas[0]["port"])
			require.Equal(t, "slave", replicas[0]["flags"])
			require.Equal(t, "10.0.0.1", replicas[0]["master-host"])
			require.Equal(t, "10.0.0.3", replicas[1]["ip"])
			require.Equal(t, "s_down,slave,disconnected", replicas[1]["flags"])

			sentinels, err := c.Sentinels(ctx, "cache").Result()
			require.NoError(t, err)
			require.Len(t, sentinels, 1)
			require.Equal(t, "10.9.0.1", sentinels[0]["ip"])
			require.Equal(t, "26380", sentinels[0]["port"])

			myid := redis.NewStringCmd(ctx, "sentinel", "myid")
			require.NoError(t, c.Process(ctx, myid))
			require.Equal(t, srv.myID, myid.Val())
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	addr, _ := start(t, Config{}, fixture())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	b := sentinelClient(t, addr, "ub", "pb", 3)
	_, err := b.GetMasterAddrByName(ctx, "cache").Result()
	require.ErrorIs(t, err, redis.Nil, "tenant B sees no master named cache")
	_, err = b.Master(ctx, "cache").Result()
	require.EqualError(t, err, "ERR No such master with that name")
	_, err = b.Replicas(ctx, "cache").Result()
	require.EqualError(t, err, "ERR No such master with that name")
	masters, err := b.Masters(ctx).Result()
	require.NoError(t, err)
	require.Len(t, masters, 1)
	got, err := b.GetMasterAddrByName(ctx, "other").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.2.1", "6379"}, got)

	anon := sentinelClient(t, addr, "", "", 3)
	_, err = anon.GetMasterAddrByName(ctx, "cache").Result()
	require.EqualError(t, err, "NOAUTH Authentication required.")

	wrong := sentinelClient(t, addr, "ua", "pb", 3)
	_, err = wrong.GetMasterAddrByName(ctx, "cache").Result()
	require.Error(t, err)
	require.Contains(t, err.Error(), "WRONGPASS")
}

func TestRedisCLI(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not on PATH")
	}
	addr, _ := start(t, Config{}, fixture())
	_, port := splitAddr(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := func(args ...string) string {
		out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", "127.0.0.1", "-p", port, "--no-auth-warning"}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("redis-cli: %v", err)
		}
		return string(out)
	}
	require.Equal(t, "10.0.0.1\n6379\n", run("--user", "ua", "--pass", "pa", "SENTINEL", "get-master-addr-by-name", "cache"))
	require.Equal(t, "\n", run("--user", "ub", "--pass", "pb", "SENTINEL", "get-master-addr-by-name", "cache"))
	require.Contains(t, run("SENTINEL", "get-master-addr-by-name", "cache"), "NOAUTH Authentication required.")
}
