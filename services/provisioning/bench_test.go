package provisioning

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/nettune"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/api/events"
)

// Timed orders (and as many bare starts) per case and benchmark run,
// whatever b.N is. Redis gets more: a round takes a fraction of a second,
// and Redis 7.0 sometimes holds a fresh replica's stream for up to a second
// after a diskless sync, so three rounds give a coin-flip median. The bare
// routine, like an operator's script, still meets that hold (11 of 63
// rounds measured for issue 9); the local driver asks the replica for the
// ACK that ends it (startStream).
const (
	mysqlRounds = 5
	redisRounds = 7
)

// benchPoll paces every wait of the benchmark, on both sides: the client
// polling GET /instances/{id} and the bare routine's waits for a server.
const benchPoll = 5 * time.Millisecond

// BenchmarkOrderToReady measures the time from an order (POST
// /api/v1/instances to the running service) to the instance reading
// `ready`, for a 3-node multi-az MySQL (semi-sync) and a 3-node multi-az
// Redis, next to a plain Go routine that starts the same three processes
// with the same replication setup by hand, the way an operator's script
// would. Both end at the same point: a write on the primary read on both
// replicas. Canopy and bare rounds alternate; medians are reported:
//
//	canopy-ms  order → ready through the service (HTTP, outbox, Kafka to the
//	           scheduling stand-in and back, saga, driver, verify)
//	bare-ms    the hand-written start of the same three servers
//	ratio      canopy-ms ÷ bare-ms (goal ≤ 1.3)
//
// The log shows where each order spent its time by saga step, as seen by
// the polling client. On the path from order to ready the service runs with
// the production defaults of the outbox relay, the publisher's batching and
// the consumer's fetch wait.
//
// MySQL runs twice: with the driver's default (a data directory template
// made once per version and copied per node; the first order on a host pays
// for it and is timed separately as the warm-up) and with the driver's
// NoTemplate option, which runs mariadb-install-db for every node exactly
// as the bare routine does: that pair isolates what the saga adds.
func BenchmarkOrderToReady(b *testing.B) {
	for _, bin := range []string{"mariadbd", "mariadb-install-db", "redis-server"} {
		if _, err := exec(bin); err != nil {
			b.Skipf("%s not installed", bin)
		}
	}
	// go-redis logs every refused dial while a server starts (the driver's
	// and the bare routine's readiness polls); that is expected here.
	goredis.SetLogger(discardRedisLog{})
	e := benchEnv(b)
	// Production defaults on the order → ready path: the relay's poll (it is
	// woken on commit anyway), the sweep (only retries use it) and the
	// consumer's fetch wait. The harness's short session timeouts stay: they
	// only speed up joining the group at start.
	prod := func(noTemplate bool) func(*Config) {
		return func(c *Config) {
			c.Relay = store.RelayConfig{}
			c.Saga.SweepInterval = 0
			c.Consumer.MaxWait = 0
			c.Driver.NoTemplate = noTemplate
		}
	}
	var stacks [2]*stack // by NoTemplate; started on first use
	stackFor := func(noTemplate bool) *stack {
		i := 0
		if noTemplate {
			i = 1
		}
		if stacks[i] == nil {
			stacks[i] = newStack(b, e, prod(noTemplate))
			stacks[i].start()
		}
		return stacks[i]
	}
	cases := []struct {
		name       string
		plan       string
		noTemplate bool
		rounds     int
		bare       func(b *testing.B, round int) time.Duration
	}{
		{name: "mysql-3node-multi-az", plan: planMySQLHA, rounds: mysqlRounds, bare: bareMySQL},
		{name: "mysql-3node-multi-az-install-db-per-node", plan: planMySQLHA, noTemplate: true, rounds: mysqlRounds, bare: bareMySQL},
		{name: "redis-3node-multi-az", plan: planRedisHA, rounds: redisRounds, bare: bareRedis},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s := stackFor(tc.noTemplate)
			c := &client{t: b, s: s, tenant: "bench", role: tenancy.RoleTenantMember}
			// Warm-up, untimed in the figures: the first order on a fresh
			// state dir (MySQL with a template: makes the template), the
			// consumer's first fetches, connection pools, page cache.
			warm, _ := orderOnce(b, c, tc.plan, fmt.Sprintf("%s-warm", tc.name))
			b.Logf("%s: warm-up order (first on this host) ready in %s", tc.name, warm.total.Round(time.Millisecond))
			var canopy, bare []time.Duration
			var steps stepTimes
			b.ResetTimer()
			for i := range tc.rounds {
				o, id := orderOnce(b, c, tc.plan, fmt.Sprintf("%s-%d", tc.name, i))
				canopy = append(canopy, o.total)
				steps.add(o)
				d := tc.bare(b, i)
				bare = append(bare, d)
				b.Logf("%s round %d: canopy %s (%s), bare %s", tc.name, i+1, o.total.Round(time.Millisecond), o.steps(), d.Round(time.Millisecond))
				deleteOnce(b, c, id)
			}
			b.StopTimer()
			mc, mb := median(canopy), median(bare)
			ratio := float64(mc) / float64(mb)
			b.ReportMetric(ms(mc), "canopy-ms")
			b.ReportMetric(ms(mb), "bare-ms")
			b.ReportMetric(ratio, "ratio")
			b.Logf("order-to-ready %s: canopy %.2fs, bare %.2fs, ratio %.2f (medians of %d; goal ≤ 1.3); canopy's step medians: %s",
				tc.name, mc.Seconds(), mb.Seconds(), ratio, tc.rounds, steps.medians())
		})
	}
}

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

// benchEnv is newEnv with the publisher at its production defaults (newEnv
// shortens its batch timeout for the tests): it carries both the outbox
// relay's events and the scheduling stand-in's decisions.
func benchEnv(b *testing.B) *env {
	ctx, cancel := context.WithCancel(context.Background())
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 3}, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	brokers := []string{broker.Addr()}
	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: events.SourceProvisioning}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		cancel()
		broker.Close()
		b.Fatal(err)
	}
	e := &env{brokers: brokers, catalogURL: catalogStandIn(b), pub: pub}
	b.Cleanup(func() {
		cancel()
		pub.Close()
		broker.Close()
	})
	if err := eventbus.EnsureTopics(ctx, brokers, eventbus.TopicSpec{Name: events.TopicPlacements, Partitions: 3}, eventbus.TopicSpec{Name: events.TopicInstances, Partitions: 3}); err != nil {
		b.Fatal(err)
	}
	schedulerStandIn(b, ctx, brokers, pub)
	return e
}

// order is one timed order: the total and when each saga step was first seen.
type order struct {
	total time.Duration
	marks []stepMark
}

type stepMark struct {
	step string
	at   time.Duration
}

// steps renders the time spent in each step, as seen by the polling client.
func (o order) steps() string {
	var parts []string
	for i, m := range o.marks {
		end := o.total
		if i+1 < len(o.marks) {
			end = o.marks[i+1].at
		}
		parts = append(parts, fmt.Sprintf("%s %s", m.step, (end-m.at).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// stepTimes collects, per saga step, the time each order spent in it.
type stepTimes struct {
	order []string
	took  map[string][]time.Duration
}

// add records o's steps; a step o did not show counts as 0, so a median
// is over every round.
func (s *stepTimes) add(o order) {
	if s.took == nil {
		s.took = map[string][]time.Duration{}
	}
	seen := map[string]time.Duration{}
	for i, m := range o.marks {
		end := o.total
		if i+1 < len(o.marks) {
			end = o.marks[i+1].at
		}
		seen[m.step] += end - m.at
		if !slices.Contains(s.order, m.step) {
			s.order = append(s.order, m.step)
		}
	}
	for _, st := range s.order {
		s.took[st] = append(s.took[st], seen[st])
	}
}

// medians renders the median time of each step, in the order first seen.
func (s *stepTimes) medians() string {
	parts := make([]string, 0, len(s.order))
	for _, st := range s.order {
		ds := s.took[st]
		// Rounds before the step was first seen did not show it either.
		ds = append(make([]time.Duration, s.rounds()-len(ds)), ds...)
		parts = append(parts, fmt.Sprintf("%s %s", st, median(ds).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

func (s *stepTimes) rounds() int {
	n := 0
	for _, ds := range s.took {
		n = max(n, len(ds))
	}
	return n
}

// orderOnce orders plan and polls the instance until it is ready.
func orderOnce(b *testing.B, c *client, plan, name string) (order, string) {
	b.Helper()
	began := time.Now()
	r := c.do("POST", "/api/v1/instances", map[string]any{"name": name, "plan_id": plan})
	if r.status != http.StatusAccepted {
		b.Fatalf("order %s: %d %s", name, r.status, r.body)
	}
	id, _ := r.json(b)["instance"].(map[string]any)["id"].(string)
	var o order
	tick := time.NewTicker(benchPoll)
	defer tick.Stop()
	deadline := time.After(readyWithin)
	for {
		inst := c.do("GET", "/api/v1/instances/"+id, nil).json(b)
		now := time.Since(began)
		switch inst["state"] {
		case "ready":
			o.total = now
			return o, id
		case "failed":
			b.Fatalf("order %s failed: %v", name, inst["reason"])
		}
		if st, _ := inst["step"].(string); st != "" && (len(o.marks) == 0 || o.marks[len(o.marks)-1].step != st) {
			o.marks = append(o.marks, stepMark{step: st, at: now})
		}
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatalf("order %s: not ready within %s (state %v step %v)", name, readyWithin, inst["state"], inst["step"])
		}
	}
}

// deleteOnce deletes the instance and waits until it is gone, so that
// rounds do not overlap.
func deleteOnce(b *testing.B, c *client, id string) {
	b.Helper()
	if r := c.do("DELETE", "/api/v1/instances/"+id, nil); r.status != http.StatusAccepted {
		b.Fatalf("delete %s: %d %s", id, r.status, r.body)
	}
	eventually(b, time.Minute, "instance "+id+" deleted", func() error {
		if st := c.do("GET", "/api/v1/instances/"+id, nil).json(b)["state"]; st != "deleted" {
			return fmt.Errorf("state %v", st)
		}
		return nil
	})
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// bareProc is a server the bare routine started; kill is idempotent.
type bareProc struct {
	cmd  *osexec.Cmd
	once sync.Once
}

// kill SIGKILLs the server's process group (Redis forks for full syncs)
// by its pid and reaps it.
func (p *bareProc) kill() {
	p.once.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Wait()
	})
}

// bareRun is one bare start: a short directory under /tmp (unix socket
// paths are limited to 108 bytes) and the servers started in it.
type bareRun struct {
	b     *testing.B
	dir   string
	mu    sync.Mutex
	procs []*bareProc
}

func newBareRun(b *testing.B, prefix string) *bareRun {
	b.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		b.Fatal(err)
	}
	r := &bareRun{b: b, dir: dir}
	b.Cleanup(r.stop)
	return r
}

// start launches bin in its own process group with output to logPath; the
// process is killed in b.Cleanup whatever happens to the benchmark.
func (r *bareRun) start(bin string, args []string, logPath string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := osexec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p := &bareProc{cmd: cmd}
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	r.b.Cleanup(p.kill)
	return nil
}

// stop kills every server of the run and removes its directory.
func (r *bareRun) stop() {
	r.mu.Lock()
	procs := r.procs
	r.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	os.RemoveAll(r.dir)
}

// freeBenchPort returns a free loopback port.
func freeBenchPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// each runs fn for 0..n-1 at once and joins the errors.
func each(n int, fn func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitFor polls cond every benchPoll until it holds or ctx ends.
func waitFor(ctx context.Context, what string, cond func(context.Context) error) error {
	tick := time.NewTicker(benchPoll)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// bareMySQL starts a 3-node semi-sync MariaDB by hand, as an operator's
// script would, with the driver's server settings (small InnoDB, GTID, row
// binlog with full images and metadata, durable commits) plus the multi-az
// tuning profile the saga gives a plan's nodes; it returns the time from
// nothing to a write on the primary read on both replicas.
func bareMySQL(b *testing.B, round int) time.Duration {
	b.Helper()
	installDB, _ := exec("mariadb-install-db")
	mariadbd, _ := exec("mariadbd")
	me, err := user.Current()
	if err != nil {
		b.Fatal(err)
	}
	prof, err := nettune.Default(nettune.MultiAZ)
	if err != nil {
		b.Fatal(err)
	}
	run := newBareRun(b, "cnbm-")
	defer run.stop()
	type node struct {
		dir, sock string
		port      int
	}
	nodes := make([]node, 3)
	for i := range nodes {
		port, err := freeBenchPort()
		if err != nil {
			b.Fatal(err)
		}
		d := filepath.Join(run.dir, strconv.Itoa(i))
		nodes[i] = node{dir: d, sock: filepath.Join(d, "s.sock"), port: port}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func(n node) *sql.DB {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr = me.Username, "unix", n.sock
		cfg.InterpolateParams = true
		conn, _ := mysql.NewConnector(cfg)
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(2)
		return db
	}
	dbs := make([]*sql.DB, len(nodes))
	defer func() {
		for _, db := range dbs {
			if db != nil {
				db.Close()
			}
		}
	}()

	began := time.Now()
	// Initialise, configure and start every node at once; wait for each to
	// answer on its socket.
	err = each(len(nodes), func(i int) error {
		n := nodes[i]
		if err := os.MkdirAll(filepath.Join(n.dir, "tmp"), 0o700); err != nil {
			return err
		}
		args := []string{"--no-defaults", "--datadir=" + filepath.Join(n.dir, "data"), "--tmpdir=" + filepath.Join(n.dir, "tmp"),
			"--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve",
			"--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		if out, err := osexec.CommandContext(ctx, installDB, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("mariadb-install-db node %d: %w: %s", i, err, out)
		}
		var cnf strings.Builder
		cnf.WriteString("[mariadbd]\n")
		w := func(k, v string) { fmt.Fprintf(&cnf, "%s=%s\n", k, v) }
		if os.Geteuid() == 0 {
			w("user", "root")
		}
		w("datadir", filepath.Join(n.dir, "data"))
		w("socket", n.sock)
		w("pid_file", filepath.Join(n.dir, "mariadbd.pid"))
		w("log_error", filepath.Join(n.dir, "error.log"))
		w("tmpdir", filepath.Join(n.dir, "tmp"))
		w("port", strconv.Itoa(n.port))
		w("bind_address", "127.0.0.1")
		w("skip_name_resolve", "ON")
		w("server_id", strconv.Itoa(i+1))
		w("report_host", "127.0.0.1")
		w("report_port", strconv.Itoa(n.port))
		w("log_bin", "mysql-bin")
		w("relay_log", "relay-bin")
		w("log_slave_updates", "ON")
		w("gtid_strict_mode", "ON")
		w("binlog_format", "ROW")
		w("binlog_row_image", "FULL")
		w("binlog_row_metadata", "FULL")
		w("sync_binlog", "1")
		w("innodb_flush_log_at_trx_commit", "1")
		w("innodb_buffer_pool_size", "32M")
		w("innodb_log_file_size", "8M")
		w("performance_schema", "OFF")
		w("host_cache_size", "0")
		for _, st := range prof.MariaDB.Server {
			w(st.Key, st.Value)
		}
		cnfPath := filepath.Join(n.dir, "my.cnf")
		if err := os.WriteFile(cnfPath, []byte(cnf.String()), 0o600); err != nil {
			return err
		}
		if err := run.start(mariadbd, []string{"--defaults-file=" + cnfPath}, filepath.Join(n.dir, "stdout.log")); err != nil {
			return err
		}
		dbs[i] = open(n)
		return waitFor(ctx, fmt.Sprintf("node %d answers", i), func(ctx context.Context) error { return dbs[i].PingContext(ctx) })
	})
	if err != nil {
		b.Fatalf("bare mysql round %d: %v", round, err)
	}
	sqlExec := func(ctx context.Context, db *sql.DB, stmts ...string) error {
		for _, s := range stmts {
			if _, err := db.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	// The primary: the replication user, semi-sync's master side.
	if err := sqlExec(ctx, dbs[0],
		"CREATE USER 'repl'@'%' IDENTIFIED BY 'bench-repl-password'",
		"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
		"SET GLOBAL rpl_semi_sync_master_enabled=ON",
	); err != nil {
		b.Fatalf("bare mysql round %d: primary: %v", round, err)
	}
	// The replicas: read-only, semi-sync's slave side (before the IO thread
	// starts), GTID replication from the primary; wait until both threads run.
	err = each(2, func(i int) error {
		db := dbs[i+1]
		if err := sqlExec(ctx, db,
			"SET GLOBAL read_only=ON",
			"SET GLOBAL rpl_semi_sync_slave_enabled=ON",
			fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='bench-repl-password', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1", nodes[0].port),
			"START SLAVE",
		); err != nil {
			return err
		}
		return waitFor(ctx, fmt.Sprintf("replica %d replicating", i+1), func(ctx context.Context) error {
			io, sqlT, err := bareSlaveThreads(ctx, db)
			if err != nil {
				return err
			}
			if io != "Yes" || sqlT != "Yes" {
				return fmt.Errorf("io %s sql %s", io, sqlT)
			}
			return nil
		})
	})
	if err != nil {
		b.Fatalf("bare mysql round %d: replicas: %v", round, err)
	}
	// Verify: a write on the primary, read on both replicas.
	token := fmt.Sprintf("bench-%d-%d", round, time.Now().UnixNano())
	if err := sqlExec(ctx, dbs[0],
		"CREATE DATABASE bench",
		"CREATE TABLE bench.t (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL)",
		"INSERT INTO bench.t VALUES (1, '"+token+"')",
	); err != nil {
		b.Fatalf("bare mysql round %d: write: %v", round, err)
	}
	err = each(2, func(i int) error {
		return waitFor(ctx, fmt.Sprintf("read on replica %d", i+1), func(ctx context.Context) error {
			var v string
			if err := dbs[i+1].QueryRowContext(ctx, "SELECT v FROM bench.t WHERE id = 1").Scan(&v); err != nil {
				return err
			}
			if v != token {
				return fmt.Errorf("got %q", v)
			}
			return nil
		})
	})
	took := time.Since(began)
	if err != nil {
		b.Fatalf("bare mysql round %d: verify: %v", round, err)
	}
	// Untimed: the setup is what it claims (semi-sync acknowledged by the
	// replicas, replicas read-only).
	var name, status, clients string
	if err := dbs[0].QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'").Scan(&name, &status); err != nil || status != "ON" {
		b.Fatalf("bare mysql round %d: semi-sync status %q: %v", round, status, err)
	}
	if err := dbs[0].QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'").Scan(&name, &clients); err != nil || clients != "2" {
		b.Fatalf("bare mysql round %d: semi-sync clients %q: %v", round, clients, err)
	}
	return took
}

// bareSlaveThreads returns Slave_IO_Running and Slave_SQL_Running.
func bareSlaveThreads(ctx context.Context, db *sql.DB) (string, string, error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return "", "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", "", err
	}
	if !rows.Next() {
		return "", "", errors.New("no slave status")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", "", err
	}
	var io, sqlT string
	for i, c := range cols {
		switch c {
		case "Slave_IO_Running":
			io = vals[i].String
		case "Slave_SQL_Running":
			sqlT = vals[i].String
		}
	}
	return io, sqlT, rows.Err()
}

// bareRedis starts a 3-node Redis by hand with the driver's directives
// (AOF every second, no RDB snapshots, diskless sync without delay,
// noeviction, the plan's maxmemory) plus the multi-az tuning profile; it
// returns the time from nothing to a write on the primary read on both
// replicas.
func bareRedis(b *testing.B, round int) time.Duration {
	b.Helper()
	server, _ := exec("redis-server")
	prof, err := nettune.Default(nettune.MultiAZ)
	if err != nil {
		b.Fatal(err)
	}
	const password = "bench-redis-password"
	run := newBareRun(b, "cnbr-")
	defer run.stop()
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freeBenchPort(); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	clients := make([]*goredis.Client, len(ports))
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()

	began := time.Now()
	err = each(len(ports), func(i int) error {
		dir := filepath.Join(run.dir, strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		directives := map[string]string{
			"bind": "127.0.0.1", "port": strconv.Itoa(ports[i]), "protected-mode": "yes", "daemonize": "no",
			"dir": dir, "logfile": filepath.Join(dir, "redis.log"), "requirepass": password, "masterauth": password,
			"replica-read-only": "yes", "maxmemory": strconv.Itoa(512 << 20),
			"appendonly": "yes", "appendfsync": "everysec", "save": `""`,
			"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "0", "maxmemory-policy": "noeviction",
		}
		for _, st := range prof.Redis {
			directives[st.Key] = st.Value
		}
		var conf strings.Builder
		for k, v := range directives {
			fmt.Fprintf(&conf, "%s %s\n", k, v)
		}
		confPath := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
			return err
		}
		if err := run.start(server, []string{confPath}, filepath.Join(dir, "stdout.log")); err != nil {
			return err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))
		// Wait for the port before the first client dial: go-redis' pool,
		// once its dials failed PoolSize times, dials again only once a
		// second, which would add up to a second to a start.
		if err := waitFor(ctx, fmt.Sprintf("node %d listens", i), func(ctx context.Context) error {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return conn.Close()
		}); err != nil {
			return err
		}
		clients[i] = goredis.NewClient(&goredis.Options{Addr: addr, Password: password,
			DialTimeout: 2 * time.Second, MaxRetries: -1, PoolSize: 2, DisableIdentity: true})
		return waitFor(ctx, fmt.Sprintf("node %d answers", i), func(ctx context.Context) error { return clients[i].Ping(ctx).Err() })
	})
	if err != nil {
		b.Fatalf("bare redis round %d: %v", round, err)
	}
	err = each(2, func(i int) error {
		c := clients[i+1]
		if err := c.SlaveOf(ctx, "127.0.0.1", strconv.Itoa(ports[0])).Err(); err != nil {
			return err
		}
		return waitFor(ctx, fmt.Sprintf("replica %d link up", i+1), func(ctx context.Context) error {
			info, err := c.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "master_link_status:up") {
				return errors.New("link not up")
			}
			return nil
		})
	})
	if err != nil {
		b.Fatalf("bare redis round %d: replicas: %v", round, err)
	}
	token := fmt.Sprintf("bench-%d-%d", round, time.Now().UnixNano())
	if err := clients[0].Set(ctx, "bench", token, 0).Err(); err != nil {
		b.Fatalf("bare redis round %d: write: %v", round, err)
	}
	err = each(2, func(i int) error {
		return waitFor(ctx, fmt.Sprintf("read on replica %d", i+1), func(ctx context.Context) error {
			v, err := clients[i+1].Get(ctx, "bench").Result()
			if err != nil {
				return err
			}
			if v != token {
				return fmt.Errorf("got %q", v)
			}
			return nil
		})
	})
	took := time.Since(began)
	if err != nil {
		b.Fatalf("bare redis round %d: verify: %v", round, err)
	}
	return took
}
