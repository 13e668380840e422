// Package redisnode implements topology.Nodes for Redis 7 nodes: it
// observes replication through INFO, fences a primary by making it a
// replica of nothing, promotes with REPLICAOF NO ONE and repoints with
// REPLICAOF, over one kept admin client per node. It decides nothing: which
// node to promote and when is the recovery's.
package redisnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// FencePlaceholder is the primary a fenced node replicates from. Nothing
// listens on port 0 (a connect is refused at once), so the node stays a
// read-only replica of nothing, keeping its data, until it is repointed.
const FencePlaceholder = "127.0.0.1:0"

// Config tunes the adapter. Zero values take the defaults.
type Config struct {
	// DialTimeout bounds a connection attempt so that a dead node fails
	// fast (default 250ms).
	DialTimeout time.Duration `yaml:"dial_timeout" env:"DIAL_TIMEOUT"`
	// IOTimeout bounds one command (default 2s).
	IOTimeout time.Duration `yaml:"io_timeout" env:"IO_TIMEOUT"`
	// MinReplicasMaxLag is min-replicas-max-lag set on a promoted primary
	// of a mode that wants min-replicas-to-write (default 3s). Replicas ACK
	// once a second: 3 s tolerates two missed ACKs, and an isolated primary
	// refuses writes within about 3 s, bounding what it can acknowledge
	// alone.
	MinReplicasMaxLag time.Duration `yaml:"min_replicas_max_lag" env:"MIN_REPLICAS_MAX_LAG"`
	// PollInterval paces WaitCaughtUp's INFO polls (default 2ms: INFO on a
	// kept connection costs well under a millisecond).
	PollInterval time.Duration `yaml:"poll_interval" env:"POLL_INTERVAL"`
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 250 * time.Millisecond
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 2 * time.Second
	}
	if c.MinReplicasMaxLag <= 0 {
		c.MinReplicasMaxLag = 3 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Millisecond
	}
	return c
}

// MinReplicasToWrite is the min-replicas-to-write a promoted primary of an
// instance in that mode gets: multi-az primaries refuse writes no replica
// receives (an isolated primary stops accepting writes, as Redis documents
// for Sentinel setups); other modes keep Redis' default, 0.
func MinReplicasToWrite(mode string) int {
	if mode == "multi-az" {
		return 1
	}
	return 0
}

// Nodes acts on Redis nodes. Safe for concurrent use; Close releases its
// clients.
type Nodes struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	clients map[clientKey]*goredis.Client
	closed  bool
}

var _ topology.Nodes = (*Nodes)(nil)

// clientKey keys a client by address and account: credentials may rotate.
type clientKey struct {
	addr, user, password string
}

// New returns an adapter; log is required.
func New(cfg Config, log *slog.Logger) (*Nodes, error) {
	if log == nil {
		return nil, errors.New("redisnode: nil logger")
	}
	return &Nodes{cfg: cfg.withDefaults(), log: log, clients: map[clientKey]*goredis.Client{}}, nil
}

// Close closes every kept client. Calls after Close fail.
func (r *Nodes) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for k, c := range r.clients {
		errs = append(errs, c.Close())
		delete(r.clients, k)
	}
	return errors.Join(errs...)
}

var errClosed = errors.New("redisnode: closed")

func (r *Nodes) client(in topology.Instance, n topology.Node) (*goredis.Client, error) {
	k := clientKey{n.Address, in.Admin.Username, in.Admin.Password}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errClosed
	}
	if c, ok := r.clients[k]; ok {
		return c, nil
	}
	c := goredis.NewClient(&goredis.Options{
		Addr: n.Address, Username: in.Admin.Username, Password: in.Admin.Password,
		DialTimeout: r.cfg.DialTimeout, ReadTimeout: r.cfg.IOTimeout, WriteTimeout: r.cfg.IOTimeout,
		// The recovery decides about retries; one dial per call, so a
		// restarted node is seen at once.
		MaxRetries: -1, DialerRetries: 1,
		PoolSize: 2, DisableIdentity: true,
	})
	r.clients[k] = c
	return c, nil
}

// checked drops n's kept client after a connection-level error (not a
// reply from the server): a broken connection, or go-redis' back-off
// after refused dials, must not outlive the node's process.
func (r *Nodes) checked(in topology.Instance, n topology.Node, err error) error {
	if err == nil || isReply(err) {
		return err
	}
	k := clientKey{n.Address, in.Admin.Username, in.Admin.Password}
	r.mu.Lock()
	c, ok := r.clients[k]
	delete(r.clients, k)
	r.mu.Unlock()
	if ok {
		c.Close()
	}
	return err
}

// isReply reports whether err is an error reply from the server.
func isReply(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && !errors.Is(err, goredis.ErrClosed)
}

// do runs fn with n's client, dropping the client on connection errors.
func (r *Nodes) do(ctx context.Context, in topology.Instance, n topology.Node, fn func(ctx context.Context, c *goredis.Client) error) error {
	c, err := r.client(in, n)
	if err != nil {
		return err
	}
	return r.checked(in, n, fn(ctx, c))
}

func (r *Nodes) logger(in topology.Instance, n topology.Node) *slog.Logger {
	return r.log.With("tenant", in.Tenant, "instance", in.ID, "node", n.ID, "address", n.Address)
}

// info reads INFO replication as key → value.
func (r *Nodes) info(ctx context.Context, in topology.Instance, n topology.Node) (map[string]string, error) {
	var s string
	err := r.do(ctx, in, n, func(ctx context.Context, c *goredis.Client) error {
		var err error
		s, err = c.Info(ctx, "replication").Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("info replication of %s: %w", n.ID, err)
	}
	return parseInfo(s), nil
}

// parseInfo parses the "key:value" lines of an INFO reply.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Observe looks at one node through INFO replication. It never fails: an
// unreachable node is a view with Reachable false.
func (r *Nodes) Observe(ctx context.Context, in topology.Instance, n topology.Node) topology.NodeView {
	v := topology.NodeView{NodeID: n.ID}
	info, err := r.info(ctx, in, n)
	v.ObservedAt = time.Now()
	if err != nil {
		v.Err = err.Error()
		v.Reachable = isReply(err)
		return v
	}
	v.Reachable = true
	v.Position.ReplID = info["master_replid"]
	switch info["role"] {
	case "master":
		v.Writable = true
		v.Position.Offset, _ = strconv.ParseInt(info["master_repl_offset"], 10, 64)
		v.Replicas = replicas(info)
	case "slave":
		v.Replicating = true
		v.Source = net.JoinHostPort(info["master_host"], info["master_port"])
		v.LinkUp = info["master_link_status"] == "up"
		v.SQLRunning = true
		v.Position.Offset, _ = strconv.ParseInt(info["slave_repl_offset"], 10, 64)
		// Seconds since the primary last spoke (-1 while the link is down:
		// then 0, and positions say how far the node is).
		if lag, err := strconv.ParseInt(info["master_last_io_seconds_ago"], 10, 64); err == nil && lag > 0 {
			v.LagSeconds = lag
		}
		// A replica may have replicas of its own (chained, or a fenced
		// primary whose replicas still stream from it).
		v.Replicas = replicas(info)
	default:
		v.Err = fmt.Sprintf("unknown role %q", info["role"])
	}
	return v
}

// replicas lists the "slaveN:ip=...,port=...,..." lines of INFO
// replication as host:port.
func replicas(info map[string]string) []string {
	var out []string
	for k, val := range info {
		if !strings.HasPrefix(k, "slave") || strings.HasPrefix(k, "slave_") {
			continue
		}
		fields := map[string]string{}
		for _, f := range strings.Split(val, ",") {
			if fk, fv, ok := strings.Cut(f, "="); ok {
				fields[fk] = fv
			}
		}
		if fields["ip"] != "" && fields["port"] != "" {
			out = append(out, net.JoinHostPort(fields["ip"], fields["port"]))
		}
	}
	return out
}

// Fence makes n a replica of FencePlaceholder. A replica refuses client
// writes at once (READONLY), clients blocked in WAIT are unblocked with an
// error (Redis disconnects blocked clients when a master becomes a
// replica), paused writes are rejected when they resume, and the data
// stays (a replica flushes only when it syncs from a real primary). Unlike
// CLIENT PAUSE WRITE, which only holds writes until the pause ends, no
// write can be acknowledged by n afterwards.
func (r *Nodes) Fence(ctx context.Context, in topology.Instance, n topology.Node) error {
	began := time.Now()
	host, port, _ := net.SplitHostPort(FencePlaceholder)
	err := r.do(ctx, in, n, func(ctx context.Context, c *goredis.Client) error {
		return c.SlaveOf(ctx, host, port).Err()
	})
	if err != nil {
		return fmt.Errorf("fence %s: replicaof %s: %w", n.ID, FencePlaceholder, err)
	}
	r.logger(in, n).Info("node fenced", "replica_of", FencePlaceholder, "took", time.Since(began))
	return nil
}

// Promote makes n a primary: REPLICAOF NO ONE (Redis keeps the
// replication id's history, so its former siblings resynchronise
// partially) and min-replicas-to-write as the instance's mode wants, in
// one round trip.
func (r *Nodes) Promote(ctx context.Context, in topology.Instance, n topology.Node) error {
	began := time.Now()
	minReplicas := MinReplicasToWrite(in.Mode)
	err := r.do(ctx, in, n, func(ctx context.Context, c *goredis.Client) error {
		cmds, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.SlaveOf(ctx, "NO", "ONE")
			p.ConfigSet(ctx, "min-replicas-to-write", strconv.Itoa(minReplicas))
			p.ConfigSet(ctx, "min-replicas-max-lag", strconv.Itoa(int(r.cfg.MinReplicasMaxLag.Seconds())))
			return nil
		})
		if err != nil {
			return err
		}
		for _, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				return fmt.Errorf("%v: %w", cmd.Args(), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("promote %s: %w", n.ID, err)
	}
	r.logger(in, n).Info("node promoted", "min_replicas_to_write", minReplicas, "took", time.Since(began))
	return nil
}

// Repoint makes n a replica of primary. masteruser/masterauth are in every
// node's config already; they are set again from in.Replication so that a
// node whose config lost them (or whose credentials rotated) still
// authenticates. REPLICAOF of the current primary is a no-op in Redis.
func (r *Nodes) Repoint(ctx context.Context, in topology.Instance, n, primary topology.Node) error {
	began := time.Now()
	host, port, err := net.SplitHostPort(primary.Address)
	if err != nil {
		return fmt.Errorf("repoint %s: primary address %q: %w", n.ID, primary.Address, err)
	}
	err = r.do(ctx, in, n, func(ctx context.Context, c *goredis.Client) error {
		cmds, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.Do(ctx, "CONFIG", "SET", "masteruser", in.Replication.Username, "masterauth", in.Replication.Password)
			p.SlaveOf(ctx, host, port)
			return nil
		})
		if err != nil {
			return err
		}
		for _, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				return fmt.Errorf("%s: %w", cmd.Name(), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("repoint %s to %s: %w", n.ID, primary.Address, err)
	}
	r.logger(in, n).Info("node repointed", "primary", primary.ID, "primary_address", primary.Address, "took", time.Since(began))
	return nil
}

// WaitCaughtUp polls n until its replication offset reaches pos.Offset
// (offsets continue across promotions and resyncs), or ctx ends.
func (r *Nodes) WaitCaughtUp(ctx context.Context, in topology.Instance, n topology.Node, pos topology.Position) error {
	if pos.Offset <= 0 {
		return nil
	}
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	var last int64
	for {
		info, err := r.info(ctx, in, n)
		if err == nil {
			key := "slave_repl_offset"
			if info["role"] == "master" {
				key = "master_repl_offset"
			}
			last, _ = strconv.ParseInt(info[key], 10, 64)
			// A replica still loading a full sync reports the offset it
			// will have; it has the data once its link is up.
			if last >= pos.Offset && (info["role"] == "master" || info["master_link_status"] == "up") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to reach offset %d (at %d, last error %v): %w", n.ID, pos.Offset, last, err, ctx.Err())
		case <-t.C:
		}
	}
}

// Errant returns nil: a Redis replica always resynchronises from its
// primary (partially or fully), dropping whatever it had beyond it.
func (r *Nodes) Errant(context.Context, topology.Instance, topology.Node, topology.Node) ([]string, error) {
	return nil, nil
}
