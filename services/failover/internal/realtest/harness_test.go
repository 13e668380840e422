package realtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/mysqlnode"
	"github.com/canopy-platform/canopy/services/failover/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/failover/internal/nodetest"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/redisnode"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
	"github.com/canopy-platform/canopy/services/failover/internal/watch"
)

func TestMain(m *testing.M) {
	// go-redis logs every refused dial of its pools; the tests kill nodes
	// on purpose, hundreds of times a second of refusals.
	goredis.SetLogger(quiet{})
	code := m.Run()
	nodetest.CleanupTemplate()
	os.Exit(code)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// client is what the writer and the checker do on one node, with their own
// connections (an application's and a monitor's, not the failover's).
type client interface {
	// write makes one acknowledged write of key: nil only when the engine
	// acknowledged it the way the plan promises (MariaDB: commit on a
	// semi-sync primary; Redis: SET then WAIT 1 answered by a replica).
	write(ctx context.Context, key string) error
	// writable reports whether the node takes client writes now (MariaDB
	// read_only=OFF; Redis ROLE master).
	writable(ctx context.Context) (bool, error)
	// keys returns the writer's keys the node holds.
	keys(ctx context.Context) (map[string]bool, error)
}

// engine is one engine's topology, adapter and clients.
type engine struct {
	name  string
	start func(t testing.TB) *nodetest.Topology
	nodes func(log *slog.Logger) (topology.Nodes, func() error, error)
	// client returns the node's client, closed when t ends.
	client func(t testing.TB, p *nodetest.Proc) client
	// ready reports whether the primary acknowledges writes as promised
	// (MariaDB: semi-sync on with both replicas connected), so a kill
	// right after loses nothing a user was told was safe.
	ready func(ctx context.Context, p *nodetest.Proc) (bool, string)
}

func engines() []engine {
	return []engine{
		{
			name:  "mysql",
			start: func(t testing.TB) *nodetest.Topology { return nodetest.MySQL(t, nodetest.MySQLOptions{SemiSync: true}) },
			nodes: func(log *slog.Logger) (topology.Nodes, func() error, error) {
				n, err := mysqlnode.New(mysqlnode.Config{}, log)
				if err != nil {
					return nil, nil, err
				}
				return n, n.Close, nil
			},
			client: newMySQLClient,
			ready: func(ctx context.Context, p *nodetest.Proc) (bool, string) {
				db := nodetest.Root(p)
				defer db.Close()
				st := map[string]string{}
				rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'")
				if err != nil {
					return false, err.Error()
				}
				defer rows.Close()
				for rows.Next() {
					var k, v string
					if rows.Scan(&k, &v) == nil {
						st[k] = v
					}
				}
				return st["Rpl_semi_sync_master_status"] == "ON" && st["Rpl_semi_sync_master_clients"] == "2",
					fmt.Sprintf("semi-sync status %s clients %s", st["Rpl_semi_sync_master_status"], st["Rpl_semi_sync_master_clients"])
			},
		},
		{
			name:  "redis",
			start: func(t testing.TB) *nodetest.Topology { return nodetest.Redis(t, nodetest.RedisOptions{}) },
			nodes: func(log *slog.Logger) (topology.Nodes, func() error, error) {
				n, err := redisnode.New(redisnode.Config{}, log)
				if err != nil {
					return nil, nil, err
				}
				return n, n.Close, nil
			},
			client: newRedisClient,
			ready:  func(context.Context, *nodetest.Proc) (bool, string) { return true, "" },
		},
	}
}

type mysqlClient struct {
	app, root *sql.DB
}

func newMySQLClient(t testing.TB, p *nodetest.Proc) client {
	root := nodetest.Root(p)
	root.SetMaxOpenConns(2)
	t.Cleanup(func() { root.Close() })
	return &mysqlClient{app: nodetest.AppDB(t, p), root: root}
}

func (c *mysqlClient) write(ctx context.Context, key string) error {
	_, err := c.app.ExecContext(ctx, "INSERT INTO kv (k, v) VALUES (?, 'x')", key)
	return err
}

func (c *mysqlClient) writable(ctx context.Context) (bool, error) {
	var ro int
	err := c.root.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ro)
	return err == nil && ro == 0, err
}

func (c *mysqlClient) keys(ctx context.Context) (map[string]bool, error) {
	rows, err := c.root.QueryContext(ctx, "SELECT k FROM "+nodetest.AppDatabase+".kv")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out[k] = true
	}
	return out, rows.Err()
}

type redisClient struct {
	w, probe *goredis.Client
}

func newRedisClient(t testing.TB, p *nodetest.Proc) client {
	c := &redisClient{w: nodetest.AdminRedis(p), probe: nodetest.AdminRedis(p)}
	t.Cleanup(func() { c.w.Close(); c.probe.Close() })
	return c
}

func (c *redisClient) write(ctx context.Context, key string) error {
	if err := c.w.Set(ctx, key, "x", 0).Err(); err != nil {
		return err
	}
	n, err := c.w.Wait(ctx, 1, 500*time.Millisecond).Result()
	if err == nil && n < 1 {
		err = fmt.Errorf("WAIT 1: %d replicas acknowledged", n)
	}
	return err
}

func (c *redisClient) writable(ctx context.Context) (bool, error) {
	role, err := c.probe.Do(ctx, "ROLE").Slice()
	if err != nil || len(role) == 0 {
		return false, err
	}
	return role[0] == "master", nil
}

func (c *redisClient) keys(ctx context.Context) (map[string]bool, error) {
	ks, err := c.probe.Keys(ctx, "w-*").Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ks))
	for _, k := range ks {
		out[k] = true
	}
	return out, nil
}

// writer writes unique keys, one every writePace, to whichever node takes
// them, the way a client that retries on every node would, and records
// each acknowledged one. The pace keeps two cores free for the nodes and
// the failover actors; a few hundred writes a second still put writes in
// flight at every kill.
type writer struct {
	clients []client
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	acked  []string
	lastOn int // node of the last acknowledged write
	seq    int
}

func startWriter(t testing.TB, clients []client) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{clients: clients, cancel: cancel, done: make(chan struct{}), lastOn: -1}
	go w.run(ctx)
	t.Cleanup(w.stop)
	return w
}

func (w *writer) stop() {
	w.cancel()
	<-w.done
}

func (w *writer) run(ctx context.Context) {
	defer close(w.done)
	target := 0
	pace := time.NewTicker(writePace)
	defer pace.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-pace.C:
		}
		w.mu.Lock()
		w.seq++
		key := "w-" + strconv.Itoa(w.seq)
		w.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := w.clients[target].write(wctx, key)
		cancel()
		if err == nil {
			w.mu.Lock()
			w.acked = append(w.acked, key)
			w.lastOn = target
			w.mu.Unlock()
			continue
		}
		// Not the primary (read-only, refused, gone): try the next node.
		target = (target + 1) % len(w.clients)
	}
}

const writePace = 2 * time.Millisecond

// ackedCount returns how many writes were acknowledged so far.
func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// ackedKeys returns the acknowledged keys so far.
func (w *writer) ackedKeys() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

// waitMore waits until n more writes were acknowledged, on node index on
// (-1: any).
func (w *writer) waitMore(t testing.TB, n int, on int, within time.Duration) {
	t.Helper()
	target := w.ackedCount() + n
	nodetest.Eventually(t, within, fmt.Sprintf("%d more acknowledged writes", n), func() (bool, string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.acked) >= target && (on < 0 || w.lastOn == on), fmt.Sprintf("acked %d/%d, last on node %d", len(w.acked), target, w.lastOn)
	})
}

// checker looks at every node's writability every 10 ms, the nodes of one
// round in parallel, and counts the rounds in which two nodes were
// writable.
type checker struct {
	clients []client
	cancel  context.CancelFunc
	done    chan struct{}

	rounds atomic.Int64
	mu     sync.Mutex
	two    []string // one line per round with two writable nodes
	last   []bool
}

func startChecker(t testing.TB, clients []client) *checker {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checker{clients: clients, cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	t.Cleanup(c.stop)
	return c
}

func (c *checker) stop() {
	c.cancel()
	<-c.done
}

func (c *checker) run(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w := make([]bool, len(c.clients))
		var wg sync.WaitGroup
		for i, cl := range c.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				w[i], _ = cl.writable(pctx)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		var on []string
		for i, ok := range w {
			if ok {
				on = append(on, "node-"+strconv.Itoa(i))
			}
		}
		c.mu.Lock()
		c.last = w
		if len(on) > 1 {
			c.two = append(c.two, time.Now().Format("15:04:05.000")+" "+strings.Join(on, "+"))
		}
		c.mu.Unlock()
		c.rounds.Add(1)
	}
}

// violations returns the rounds with two writable nodes.
func (c *checker) violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.two...)
}

// settle waits until the checker completed n more rounds.
func (c *checker) settle(t testing.TB, n int64) {
	t.Helper()
	target := c.rounds.Load() + n
	nodetest.Eventually(t, 30*time.Second, "checker rounds", func() (bool, string) {
		return c.rounds.Load() >= target, strconv.FormatInt(c.rounds.Load(), 10)
	})
}

// spy wraps a real adapter: it counts calls, and blocks the failover's
// view of some addresses (Observe reports them unreachable) the way a
// broken network path between the failover service and a node would,
// while the nodes themselves keep talking to each other.
type spy struct {
	topology.Nodes

	mu       sync.Mutex
	blocked  map[string]bool
	observed map[string]int
	calls    map[string]int // "promote node-1", "fence node-0", ...
}

func newSpy(n topology.Nodes) *spy {
	return &spy{Nodes: n, blocked: map[string]bool{}, observed: map[string]int{}, calls: map[string]int{}}
}

func (s *spy) block(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[addr] = true
}

func (s *spy) count(what string, n topology.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[what+" "+n.ID]++
}

// observations returns how many times the node was looked at.
func (s *spy) observations(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.observed[addr]
}

// actions returns every call but Observe, by "verb node".
func (s *spy) actions() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// promotions counts Promote calls on any node.
func (s *spy) promotions() int {
	n := 0
	for k, v := range s.actions() {
		if strings.HasPrefix(k, "promote ") {
			n += v
		}
	}
	return n
}

func (s *spy) Observe(ctx context.Context, in topology.Instance, n topology.Node) topology.NodeView {
	s.mu.Lock()
	s.observed[n.Address]++
	blocked := s.blocked[n.Address]
	s.mu.Unlock()
	if blocked {
		return topology.NodeView{NodeID: n.ID, Err: "dial tcp " + n.Address + ": i/o timeout (blocked by the test)", ObservedAt: time.Now()}
	}
	return s.Nodes.Observe(ctx, in, n)
}

func (s *spy) Fence(ctx context.Context, in topology.Instance, n topology.Node) error {
	s.count("fence", n)
	return s.Nodes.Fence(ctx, in, n)
}

func (s *spy) Promote(ctx context.Context, in topology.Instance, n topology.Node) error {
	s.count("promote", n)
	return s.Nodes.Promote(ctx, in, n)
}

func (s *spy) Repoint(ctx context.Context, in topology.Instance, n, primary topology.Node) error {
	s.count("repoint", n)
	return s.Nodes.Repoint(ctx, in, n, primary)
}

// env is one engine's topology under a writer and a checker, with the
// failover service's store.
type env struct {
	eng     engine
	tp      *nodetest.Topology
	in      topology.Instance // the roles as provisioning would publish them
	store   *mysqlstore.Store
	log     *slog.Logger
	clients []client
	w       *writer
	c       *checker
	// plain is an unwrapped adapter for the test's own looks.
	plain topology.Nodes
}

func newEnv(t *testing.T, eng engine) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	tp := eng.start(t)
	e := &env{eng: eng, tp: tp, in: tp.Instance, log: log}
	e.plain = e.adapter(t)
	for _, p := range tp.Procs {
		e.clients = append(e.clients, eng.client(t, p))
	}
	e.c = startChecker(t, e.clients)
	e.w = startWriter(t, e.clients)
	return e
}

// useStore gives the engine's run its own failover database; scenarios
// share it, each acknowledging its recoveries (lifting the hold-off) and
// counting records from where it started.
func (e *env) useStore(t *testing.T) {
	t.Helper()
	st, err := mysqlstore.New(storetest.NewDB(t, "failover_realtest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	e.store = st
}

// adapter returns a new real adapter (one per actor: actors are separate
// processes), closed when t ends.
func (e *env) adapter(t *testing.T) topology.Nodes {
	t.Helper()
	n, closeFn, err := e.eng.nodes(e.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return n
}

func (e *env) recoverer(t *testing.T, holder string, ttl time.Duration, nodes topology.Nodes, hook recovery.Hook) *recovery.Recoverer {
	t.Helper()
	r, err := recovery.New(recovery.Config{Holder: holder, LeaseTTL: ttl},
		recovery.Deps{Store: e.store, Nodes: map[topology.Engine]topology.Nodes{e.in.Engine: nodes}, Logger: e.log.With("actor", holder), Hook: hook})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// watcher runs a watcher until t ends (stopped before the adapters close).
func (e *env) watcher(t *testing.T, holder string, nodes topology.Nodes, r *recovery.Recoverer) *watch.Watcher {
	t.Helper()
	w, err := watch.New(watch.Config{Interval: 10 * time.Millisecond, CheckTimeout: 200 * time.Millisecond, FullEvery: 100 * time.Millisecond,
		RetryAfter: 200 * time.Millisecond, HoldOffRetry: time.Second, RecoveryTimeout: 30 * time.Second},
		watch.Deps{Nodes: map[topology.Engine]topology.Nodes{e.in.Engine: nodes}, Recoverer: r, Logger: e.log.With("actor", holder)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) primary(t testing.TB) (topology.Node, int) {
	t.Helper()
	p, ok := e.in.Primary()
	if !ok {
		t.Fatalf("no primary in %+v", e.in.Nodes)
	}
	for i, n := range e.in.Nodes {
		if n.ID == p.ID {
			return p, i
		}
	}
	panic("unreachable")
}

// healthy waits until the published topology holds on the nodes: the
// primary writable and acknowledging as promised, every replica read-only
// and streaming from it, and the writer's writes acknowledged there.
func (e *env) healthy(t testing.TB) {
	t.Helper()
	p, pi := e.primary(t)
	nodetest.Eventually(t, 30*time.Second, "healthy topology", func() (bool, string) {
		views := recovery.ObserveAll(ctxFor(t, 5*time.Second), e.plain, e.in, time.Second)
		if v := views[p.ID]; !v.Reachable || !v.Writable {
			return false, fmt.Sprintf("primary %+v", v)
		}
		for _, n := range e.in.Nodes {
			if v := views[n.ID]; n.ID != p.ID && (v.Writable || !v.LinkUp || !v.SQLRunning || v.Source != p.Address) {
				return false, fmt.Sprintf("replica %s %+v", n.ID, v)
			}
		}
		return e.eng.ready(ctxFor(t, 5*time.Second), e.tp.Procs[pi])
	})
	e.w.waitMore(t, 20, pi, 30*time.Second)
}

// failoverProblem waits until the analysis of the nodes calls for a
// failover (the replicas saw their link drop: DeadPrimary; or a returned
// old primary is behind: PrimaryIsReadOnly) and returns the problem.
func (e *env) failoverProblem(t testing.TB, since time.Time) analysis.Problem {
	t.Helper()
	var p analysis.Problem
	nodetest.Eventually(t, 10*time.Second, "a failover called for", func() (bool, string) {
		views := recovery.ObserveAll(ctxFor(t, 5*time.Second), e.plain, e.in, time.Second)
		list := make([]topology.NodeView, 0, len(views))
		for _, v := range views {
			list = append(list, v)
		}
		var ok bool
		p, ok = analysis.FirstActionable(analysis.Analyze(e.in, list, nil))
		return ok && p.Action == analysis.ActionFailover, fmt.Sprintf("%+v", p)
	})
	p.Since, p.DetectedAt = since, time.Now()
	return p
}

// noneLost checks that the node holds every write acknowledged so far.
func (e *env) noneLost(t testing.TB, nodeID string) {
	t.Helper()
	acked := e.w.ackedKeys()
	var missing []string
	nodetest.Eventually(t, 20*time.Second, "every acknowledged write on "+nodeID, func() (bool, string) {
		have, err := e.clients[e.index(nodeID)].keys(ctxFor(t, 5*time.Second))
		if err != nil {
			return false, err.Error()
		}
		missing = missing[:0]
		for _, k := range acked {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		sort.Strings(missing)
		if len(missing) > 10 {
			missing = missing[:10]
		}
		return len(missing) == 0, fmt.Sprintf("%d acknowledged, missing %v", len(acked), missing)
	})
}

func (e *env) index(nodeID string) int {
	for i, n := range e.in.Nodes {
		if n.ID == nodeID {
			return i
		}
	}
	panic("no node " + nodeID)
}

// oneWritable checks that exactly the primary is writable, every other
// node is a read-only replica streaming from it, and the checker never saw
// two writable nodes.
func (e *env) oneWritable(t testing.TB) {
	t.Helper()
	p, _ := e.primary(t)
	nodetest.Eventually(t, 20*time.Second, "one writable primary, the others replicating from it", func() (bool, string) {
		views := recovery.ObserveAll(ctxFor(t, 5*time.Second), e.plain, e.in, time.Second)
		for _, n := range e.in.Nodes {
			v := views[n.ID]
			if n.ID == p.ID {
				if !v.Reachable || !v.Writable || v.Replicating {
					return false, fmt.Sprintf("primary %s %+v", n.ID, v)
				}
				continue
			}
			if !v.Reachable || v.Writable || !v.LinkUp || !v.SQLRunning || v.Source != p.Address {
				return false, fmt.Sprintf("%s %+v", n.ID, v)
			}
		}
		return true, ""
	})
	e.c.settle(t, 3)
	if v := e.c.violations(); len(v) > 0 {
		t.Fatalf("two writable nodes in %d checker rounds: %v", len(v), v)
	}
}

// records returns the instance's recoveries, oldest first.
func (e *env) records(t testing.TB) []topology.Recovery {
	t.Helper()
	rs, err := e.store.List(ctxFor(t, 5*time.Second), e.in.ID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	return rs
}

// waitReplicates waits until the node is a read-only replica streaming
// from the primary.
func (e *env) waitReplicates(t testing.TB, nodeID string) {
	t.Helper()
	p, _ := e.primary(t)
	n, _ := e.in.Node(nodeID)
	nodetest.Eventually(t, 30*time.Second, nodeID+" rejoined as a replica of "+p.ID, func() (bool, string) {
		v := e.plain.Observe(ctxFor(t, 5*time.Second), e.in, n)
		return v.Reachable && !v.Writable && v.LinkUp && v.Source == p.Address, fmt.Sprintf("%+v", v)
	})
}

var errCrash = errors.New("actor crashed (test hook)")

// writable returns the nodes the checker saw writable in its last round.
func (e *env) writable(t testing.TB) []string {
	t.Helper()
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	var out []string
	for i, w := range e.c.last {
		if w {
			out = append(out, e.in.Nodes[i].ID)
		}
	}
	return out
}
