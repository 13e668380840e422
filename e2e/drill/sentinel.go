package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the sentinels monitor the primary under.
const SentinelMaster = "bench"

// SentinelConfig configures the peer: a 3-node Redis (one primary, two
// replicas) watched by 3 sentinels.
type SentinelConfig struct {
	// Dir holds the processes' configuration, data and logs.
	Dir string
	// Port hands out free loopback ports (porttest.Pick in tests).
	Port func() (int, error)
	// DownAfter is down-after-milliseconds: Canopy's detection budget.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout.
	FailoverTimeout time.Duration
	// Quorum is the number of sentinels that must agree the primary is down.
	Quorum int
	// Sentinels is how many sentinels run (3).
	Sentinels int
	// StartTimeout bounds the start until every sentinel knows both
	// replicas and the other sentinels.
	StartTimeout time.Duration
}

// proc is a process this harness started.
type proc struct {
	name     string
	addr     string
	dir, bin string
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Sentinel is a running peer topology.
type Sentinel struct {
	cfg       SentinelConfig
	bin       []string
	nodes     []*proc
	sentinels []*proc
	locator   *sentinelLocator
}

// SentinelBinary returns the command that runs a sentinel: Debian's
// redis-sentinel when installed, else redis-server --sentinel (the same
// program; redis-sentinel is a link to it).
func SentinelBinary() ([]string, error) {
	if p, err := exec.LookPath("redis-sentinel"); err == nil {
		return []string{p}, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("neither redis-sentinel nor redis-server is installed: %w", err)
	}
	return []string{p, "--sentinel"}, nil
}

// StartSentinel starts the nodes and the sentinels and waits until every
// sentinel sees the primary with both replicas and the other sentinels.
// On failure it stops what it started.
func StartSentinel(ctx context.Context, cfg SentinelConfig) (s *Sentinel, err error) {
	if cfg.Port == nil || cfg.Dir == "" || cfg.DownAfter <= 0 || cfg.Quorum <= 0 || cfg.Sentinels <= 0 {
		return nil, errors.New("drill: sentinel config needs Dir, Port, DownAfter, Quorum and Sentinels")
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	bin, err := SentinelBinary()
	if err != nil {
		return nil, err
	}
	s = &Sentinel{cfg: cfg, bin: bin}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	var primary string
	for i := range 3 {
		port, err := cfg.Port()
		if err != nil {
			return s, err
		}
		dir := filepath.Join(cfg.Dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return s, err
		}
		// The same durability and sync settings as Canopy's Redis nodes
		// (provisioning's local driver), so both sides replicate alike.
		args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no", "--save", "",
			"--appendonly", "yes", "--appendfsync", "everysec",
			"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
		if i == 0 {
			primary = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		} else {
			args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(s.nodePort(0)))
		}
		p, err := s.start(fmt.Sprintf("redis%d", i), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir, server, args)
		if err != nil {
			return s, err
		}
		s.nodes = append(s.nodes, p)
	}
	if err := waitRedis(ctx, primary, "both replicas online", func(c *redis.Client) bool {
		info, err := c.Info(ctx, "replication").Result()
		return err == nil && strings.Count(info, "state=online") == 2
	}); err != nil {
		return s, err
	}

	for i := range cfg.Sentinels {
		port, err := cfg.Port()
		if err != nil {
			return s, err
		}
		dir := filepath.Join(cfg.Dir, fmt.Sprintf("sentinel%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return s, err
		}
		// Sentinel rewrites its configuration file; it must be its own.
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel resolve-hostnames no
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, port, dir, filepath.Join(dir, "sentinel.log"), SentinelMaster, s.nodePort(0), cfg.Quorum,
			SentinelMaster, cfg.DownAfter.Milliseconds(), SentinelMaster, cfg.FailoverTimeout.Milliseconds(), SentinelMaster)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return s, err
		}
		// redis-sentinel <conf>, or redis-server <conf> --sentinel: the
		// file comes first.
		args := append([]string{conf}, bin[1:]...)
		p, err := s.start(fmt.Sprintf("sentinel%d", i), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir, bin[0], args)
		if err != nil {
			return s, err
		}
		s.sentinels = append(s.sentinels, p)
	}
	// Sentinels find each other through hello messages every 2 s; a
	// failover needs a majority that knows the replicas.
	for _, sp := range s.sentinels {
		if err := waitRedis(ctx, sp.addr, "the sentinel to see 2 replicas and 2 other sentinels", func(c *redis.Client) bool {
			m, err := c.Do(ctx, "SENTINEL", "MASTER", SentinelMaster).Result()
			if err != nil {
				return false
			}
			f := fields(m)
			return f["num-slaves"] == "2" && f["num-other-sentinels"] == strconv.Itoa(cfg.Sentinels-1) && f["flags"] == "master"
		}); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (s *Sentinel) nodePort(i int) int {
	_, p, _ := net.SplitHostPort(s.nodes[i].addr)
	n, _ := strconv.Atoi(p)
	return n
}

// start execs one process and owns its Wait.
func (s *Sentinel) start(name, addr, dir, bin string, args []string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := os.OpenFile(filepath.Join(dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, addr: addr, dir: dir, bin: bin, args: args, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

// Nodes returns the Redis nodes' addresses.
func (s *Sentinel) Nodes() []string {
	out := make([]string, len(s.nodes))
	for i, p := range s.nodes {
		out[i] = p.addr
	}
	return out
}

// Kill sends SIGKILL to the node listening on addr (a process this harness
// started, by its pid) and waits until it is gone.
func (s *Sentinel) Kill(ctx context.Context, addr string) error {
	for _, p := range s.nodes {
		if p.addr != addr {
			continue
		}
		if err := syscall.Kill(p.pid(), syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill -9 %d (%s): %w", p.pid(), p.name, err)
		}
		select {
		case <-p.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("no node of this topology listens on %s", addr)
}

// Restart starts the node of addr again, after Kill, with its original
// configuration, as a supervisor (systemd) would restart a crashed
// redis-server: a node that was started as the primary comes back as a
// primary, with the data of its append-only file.
func (s *Sentinel) Restart(addr string) error {
	for i, p := range s.nodes {
		if p.addr != addr {
			continue
		}
		if !p.exited() {
			return fmt.Errorf("%s (pid %d) is still running", p.name, p.pid())
		}
		np, err := s.start(p.name, p.addr, p.dir, p.bin, p.args)
		if err != nil {
			return err
		}
		s.nodes[i] = np
		return nil
	}
	return fmt.Errorf("no node of this topology listens on %s", addr)
}

// Stop kills every process this harness started and waits for them.
func (s *Sentinel) Stop() error {
	var errs []error
	if s.locator != nil {
		errs = append(errs, s.locator.clients.Close())
	}
	for _, p := range append(append([]*proc(nil), s.sentinels...), s.nodes...) {
		if p.exited() {
			continue
		}
		if err := syscall.Kill(p.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %s (pid %d): %w", p.name, p.pid(), err))
			continue
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.pid()))
		}
	}
	return errors.Join(errs...)
}

// Locator asks the sentinels, in turn, for the primary's address; Stop
// closes its connections.
func (s *Sentinel) Locator() Locator {
	if s.locator == nil {
		addrs := make([]string, len(s.sentinels))
		for i, p := range s.sentinels {
			addrs[i] = p.addr
		}
		s.locator = &sentinelLocator{addrs: addrs}
	}
	return s.locator
}

type sentinelLocator struct {
	clients redisClients
	addrs   []string
}

// Primary is SENTINEL get-master-addr-by-name on the first sentinel that
// answers.
func (l *sentinelLocator) Primary(ctx context.Context) (string, error) {
	var errs []error
	for _, a := range l.addrs {
		r, err := l.clients.get(a).Do(ctx, "SENTINEL", "get-master-addr-by-name", SentinelMaster).StringSlice()
		if err == nil && len(r) == 2 {
			return net.JoinHostPort(r[0], r[1]), nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %v %v", a, r, err))
	}
	return "", errors.Join(errs...)
}

// waitRedis polls cond on a client of addr every 20 ms until it holds or
// ctx ends.
func waitRedis(ctx context.Context, addr, what string, cond func(*redis.Client) bool) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1, Protocol: 2})
	defer c.Close()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond(c) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %s: %w", addr, what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// fields turns a Redis flat list or map reply into a map of strings.
func fields(v any) map[string]string {
	out := map[string]string{}
	switch t := v.(type) {
	case []any:
		for i := 0; i+1 < len(t); i += 2 {
			out[fmt.Sprint(t[i])] = fmt.Sprint(t[i+1])
		}
	case map[any]any:
		for k, v := range t {
			out[fmt.Sprint(k)] = fmt.Sprint(v)
		}
	}
	return out
}

// SentinelDrillConfig is one drill on a fresh peer topology; zero fields
// take the benchmark's defaults.
type SentinelDrillConfig struct {
	Dir       string
	Port      func() (int, error)
	DownAfter time.Duration
	// RestartOld restarts the killed primary once the writer has a new
	// one, as a supervisor would, so that the checker sees whether it comes
	// back writable before Sentinel turns it into a replica.
	RestartOld bool
	// Drill overrides the writer's and checker's pacing (Store, Locator,
	// Prober, Nodes and Kill are set here).
	Drill Drill
}

// SentinelDrill starts a fresh 3-node Redis with 3 sentinels (quorum 2),
// runs one kill-primary drill on it and stops every process it started.
// The writer asks the sentinels for the primary after a failed write.
func SentinelDrill(ctx context.Context, cfg SentinelDrillConfig) (Result, error) {
	s, err := StartSentinel(ctx, SentinelConfig{
		Dir: cfg.Dir, Port: cfg.Port, DownAfter: cfg.DownAfter,
		// Long enough never to cut a failover short on a loaded machine;
		// it does not pace a failover that succeeds.
		FailoverTimeout: 10 * time.Second,
		Quorum:          2, Sentinels: 3, StartTimeout: time.Minute,
	})
	if err != nil {
		return Result{}, fmt.Errorf("start the sentinel topology: %w", err)
	}
	store := NewRedisStore("bench:", RedisAuth{}, 100*time.Millisecond)
	probe := NewRedisProber("bench:probe", RedisAuth{})
	d := WithDefaults(cfg.Drill)
	d.Store, d.Locator, d.Prober, d.Nodes, d.Kill = store, s.Locator(), probe, s.Nodes(), s.Kill
	if cfg.RestartOld {
		d.AfterFailover = func(_ context.Context, old string) error { return s.Restart(old) }
	}
	res, err := Run(ctx, d)
	err = errors.Join(err, store.Close(), probe.Close(), s.Stop())
	if err == nil {
		res.Phases = s.timeline(res.Killed)
	}
	return res, err
}

// sentinelEvents are the steps of a Sentinel failover, in order: the
// primary subjectively down (down-after-milliseconds), objectively down
// (quorum), a leader elected, the replica sent REPLICAOF NO ONE, the
// promotion seen in its INFO (from here get-master-addr-by-name answers the
// new primary), the other replica re-pointed, the failover over.
var sentinelEvents = []struct{ name, event string }{
	{"sdown", "+sdown master"},
	{"odown", "+odown master"},
	{"leader", "+elected-leader"},
	{"promote", "+failover-state-send-slaveof-noone"},
	{"promoted", "+promoted-slave"},
	{"repointed", "+slave-reconf-done"},
	{"switched", "+switch-master"},
}

// timeline reads the sentinels' logs for the first occurrence of each
// failover step after since (Redis logs local time to the millisecond).
func (s *Sentinel) timeline(since time.Time) []Phase {
	first := map[string]time.Time{}
	for _, sp := range s.sentinels {
		b, err := os.ReadFile(filepath.Join(s.cfg.Dir, sp.name, "sentinel.log"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			// "28463:X 02 Dec 2026 17:19:56.232 # +elected-leader master …"
			f := strings.SplitN(line, " ", 6)
			if len(f) < 6 {
				continue
			}
			at, err := time.ParseInLocation("02 Jan 2006 15:04:05.000", strings.Join(f[1:5], " "), time.Local)
			if err != nil || at.Before(since.Truncate(time.Millisecond)) {
				continue
			}
			for _, e := range sentinelEvents {
				if strings.Contains(f[5], e.event) {
					if t, ok := first[e.name]; !ok || at.Before(t) {
						first[e.name] = at
					}
				}
			}
		}
	}
	var out []Phase
	for _, e := range sentinelEvents {
		if t, ok := first[e.name]; ok {
			out = append(out, Phase{Name: e.name, After: t.Sub(since)})
		}
	}
	return out
}

// WithDefaults fills the zero pacing fields of d: a write every 5 ms, a
// look-up 5 ms after a failed write, a check every 5 ms, 1 s per write,
// 100 writes before the kill, 300 ms of writing after the failover, and a
// minute for the whole drill.
func WithDefaults(d Drill) Drill {
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&d.Interval, 5*time.Millisecond)
	set(&d.RetryInterval, 5*time.Millisecond)
	set(&d.CheckInterval, 5*time.Millisecond)
	set(&d.WriteTimeout, time.Second)
	set(&d.Settle, 300*time.Millisecond)
	set(&d.Timeout, time.Minute)
	if d.Warmup <= 0 {
		d.Warmup = 100
	}
	return d
}
