package drill

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/porttest"
)

// startRedis starts a redis-server on a free port (a replica of primary
// when set) and kills it by pid when the test ends.
func startRedis(t *testing.T, primary string) string {
	t.Helper()
	port := porttest.Free(t)
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}
	if primary != "" {
		h, p, _ := net.SplitHostPort(primary)
		args = append(args, "--replicaof", h, p)
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		t.Skipf("redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer within 10s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr
}

// TestCheckerCountsTwoWritable checks the checker itself: two independent
// masters are two writable nodes in every round; a master and its replica
// never are.
func TestCheckerCountsTwoWritable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	a, b := startRedis(t, ""), startRedis(t, "")
	replica := startRedis(t, a)
	for _, tc := range []struct {
		name  string
		nodes []string
		two   bool
	}{
		{"two masters", []string{a, b}, true},
		{"master and replica", []string{a, replica}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probe := NewRedisProber("drill:probe", RedisAuth{})
			defer probe.Close()
			c, err := NewChecker(probe, tc.nodes, 5*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_ = c.Run(ctx)
			moments, rounds, first := c.TwoWritable()
			if rounds < 5 {
				t.Fatalf("only %d rounds in 300ms", rounds)
			}
			if tc.two && moments != rounds {
				t.Errorf("two masters: two writable in %d of %d rounds, want all", moments, rounds)
			}
			if !tc.two && moments != 0 {
				t.Errorf("master and replica: two writable in %d of %d rounds (%s), want none", moments, rounds, first)
			}
		})
	}
}
