package nodetest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// RedisOptions shape a Redis topology.
type RedisOptions struct {
	// Mode is the instance's deployment mode (default multi-az).
	Mode string
}

// Redis starts three redis-server 7 nodes without persistence: node 0 the
// primary, nodes 1 and 2 replicas of it with the link up. Every node has
// the admin user (all commands), the replication user (what a replica
// sends) and masteruser/masterauth, as provisioning's local driver writes
// them; the default user is off.
func Redis(t testing.TB, opts RedisOptions) *Topology {
	t.Helper()
	if opts.Mode == "" {
		opts.Mode = "multi-az"
	}
	tp := &Topology{Instance: topology.Instance{
		ID: "inst-" + strings.ToLower(strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())), Tenant: "tenant-test",
		Engine: topology.EngineRedis, Mode: opts.Mode, Region: "local", Admin: Admin, Replication: Replication,
	}}
	for i := range 3 {
		p := enginetest.New(t, "redis-server", redisArgs, waitRedis)
		role := topology.RoleReplica
		if i == 0 {
			role = topology.RolePrimary
		}
		tp.Procs = append(tp.Procs, p)
		tp.Instance.Nodes = append(tp.Instance.Nodes, topology.Node{
			ID: "node-" + strconv.Itoa(i), Address: p.Addr, Region: "local", Zone: "zone-" + strconv.Itoa(i),
			Role: role, Promotion: topology.PromoteNeutral,
		})
	}
	enginetest.StartAll(t, tp.Procs)
	for _, p := range tp.Procs[1:] {
		RedisReplicateFrom(t, p, tp.Procs[0])
	}
	return tp
}

// FencePlaceholder is the address a Redis node that must not take writes
// replicates from: nothing listens on port 0, so the node stays a
// read-only replica of nothing until it is repointed.
const FencePlaceholder = "127.0.0.1:0"

// redisArgs is a node's command line. A restart comes back as a replica of
// nothing (FencePlaceholder), never as an empty writable primary whose
// replicas would resynchronise to nothing.
func redisArgs(p *Proc, restart bool) []string {
	args := []string{
		"--port", strconv.Itoa(p.Port), "--bind", "127.0.0.1", "--dir", p.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
		"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
		"--user", "default", "off",
		"--user", Admin.Username, "on", ">" + Admin.Password, "~*", "&*", "+@all",
		"--user", Replication.Username, "on", ">" + Replication.Password, "resetkeys", "resetchannels", "-@all", "+psync", "+replconf", "+ping",
		"--masteruser", Replication.Username, "--masterauth", Replication.Password,
	}
	if restart {
		args = append(args, "--replicaof", "127.0.0.1", "0")
	}
	return args
}

func waitRedis(p *Proc, exited <-chan struct{}) error {
	c := AdminRedis(p)
	defer c.Close()
	return enginetest.WaitUntil(p, exited, 30*time.Second, func(ctx context.Context) error { return c.Ping(ctx).Err() })
}

// AdminRedis returns an admin client of the node; the caller closes it.
func AdminRedis(p *Proc) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr: p.Addr, Username: Admin.Username, Password: Admin.Password,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1, DialerRetries: 1,
		PoolSize: 2, DisableIdentity: true,
	})
}

// RedisReplicateFrom makes replica replicate from primary and waits until
// its link is up.
func RedisReplicateFrom(t testing.TB, replica, primary *Proc) {
	t.Helper()
	c := AdminRedis(replica)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.SlaveOf(ctx, "127.0.0.1", strconv.Itoa(primary.Port)).Err(); err != nil {
		t.Fatalf("replicaof on %s: %v", replica.Addr, err)
	}
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica %s link to %s not up: %v %s", replica.Addr, primary.Addr, err, info)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
