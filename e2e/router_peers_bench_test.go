package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/e2e/loadpeer"
	"github.com/canopy-platform/canopy/libs/enginetest"
)

// BenchmarkRouterPeers measures the data path (issue 12): the same load
// through each leg to the same backends — straight to them ("direct"),
// through HAProxy (Debian's package, mode tcp, installed when missing) and,
// once the lead adds it through benchRouterPeers' extra, through the
// router's read-write endpoint:
//
//   - Redis: redis-benchmark SET/GET, -c 50, without pipelining and with -P 16;
//   - MySQL: loadpeer.MySQLLoad point selects and autocommit inserts, one
//     connection per client, server-side prepared statements.
//
// Each workload runs in rounds, the legs back to back in an order rotating
// per round; a leg's figures are its medians over the rounds. It prints
// ops/s, p50, p99, the p99 each leg adds over direct and the throughput
// ratios (haproxy/direct; <extra>/haproxy, goal ≥ 0.90× with an
// added p99 no larger than HAProxy's). The backends are its own: a
// redis-server and a mariadbd on free ports (innodb_flush_log_at_trx_commit=2,
// so inserts measure the path rather than this machine's fsync). It does a
// fixed amount of work regardless of b.N. Knobs:
// CANOPY_BENCH_PEERS_REDIS_REQUESTS (requests per redis-benchmark test
// without pipelining, default 100000; -P 16 runs five times as many),
// CANOPY_BENCH_PEERS_MYSQL_SECONDS (per MySQL workload, leg and round,
// default 3), CANOPY_BENCH_PEERS_ROUNDS (default 3),
// CANOPY_BENCH_PEERS_CLIENTS (MySQL clients, default 50, as redis-benchmark's
// -c), CANOPY_BENCH_PEERS_CONTROL=1 (a second HAProxy leg, haproxy-b,
// compared with the first: the ratio an A/A pair gets on this machine, the
// noise floor of every other ratio).
func BenchmarkRouterPeers(b *testing.B) {
	benchRouterPeers(b, startPeerBackends, nil)
}

// peerBackends are the real servers every leg of BenchmarkRouterPeers ends
// at, with the account the load logs in as.
type peerBackends struct {
	RedisAddr, RedisUser, RedisPassword                string
	MySQLAddr, MySQLUser, MySQLPassword, MySQLDatabase string
}

// MySQLDSN is the load's DSN for a MySQL endpoint at addr (the backend's
// own address or a proxy's in front of it).
func (be peerBackends) MySQLDSN(addr string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = be.MySQLUser, be.MySQLPassword, "tcp", addr, be.MySQLDatabase
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 30*time.Second, 30*time.Second
	return cfg.FormatDSN()
}

// benchRouterPeers is BenchmarkRouterPeers with more legs: extra, when not
// nil, gets the started backends and returns targets in front of them (the
// router's leg: start a router whose table names be.RedisAddr and
// be.MySQLAddr as the primaries, and return Target{Name: "router",
// RedisAddr: <rw endpoint>, RedisUser/RedisPassword, MySQLDSN:
// be.MySQLDSN(<rw endpoint>)}, stopping it in b.Cleanup). Each extra leg
// is compared with haproxy.
func benchRouterPeers(b *testing.B, backends func(b *testing.B) peerBackends, extra func(b *testing.B, be peerBackends) []loadpeer.Target) {
	requests := benchEnvInt(b, "CANOPY_BENCH_PEERS_REDIS_REQUESTS", 100000)
	seconds := benchEnvInt(b, "CANOPY_BENCH_PEERS_MYSQL_SECONDS", 3)
	clients := benchEnvInt(b, "CANOPY_BENCH_PEERS_CLIENTS", 50)
	rounds := benchEnvInt(b, "CANOPY_BENCH_PEERS_ROUNDS", 3)
	control := benchEnvInt(b, "CANOPY_BENCH_PEERS_CONTROL", 0) != 0
	if requests < 1 || seconds < 1 || clients < 1 || rounds < 1 {
		b.Fatalf("CANOPY_BENCH_PEERS_* must be at least 1 (got %d requests, %d s, %d clients, %d rounds)", requests, seconds, clients, rounds)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	t0 := time.Now()
	be := backends(b)
	targets := []loadpeer.Target{
		{Name: "direct", RedisAddr: be.RedisAddr, RedisUser: be.RedisUser, RedisPassword: be.RedisPassword, MySQLDSN: be.MySQLDSN(be.MySQLAddr)},
		{Name: "haproxy", RedisAddr: loadpeer.StartHAProxy(b, be.RedisAddr), RedisUser: be.RedisUser, RedisPassword: be.RedisPassword,
			MySQLDSN: be.MySQLDSN(loadpeer.StartHAProxy(b, be.MySQLAddr))},
	}
	ratios := []loadpeer.Ratio{{Of: "haproxy", Over: "direct"}}
	if control {
		// An A/A pair: a second, identical HAProxy. Its ratio to the first is
		// what this machine's noise alone makes of a 1.00× truth.
		targets = append(targets, loadpeer.Target{Name: "haproxy-b", RedisAddr: loadpeer.StartHAProxy(b, be.RedisAddr), RedisUser: be.RedisUser,
			RedisPassword: be.RedisPassword, MySQLDSN: be.MySQLDSN(loadpeer.StartHAProxy(b, be.MySQLAddr))})
		ratios = append(ratios, loadpeer.Ratio{Of: "haproxy-b", Over: "haproxy"})
	}
	if extra != nil {
		for _, t := range extra(b, be) {
			targets = append(targets, t)
			ratios = append(ratios, loadpeer.Ratio{Of: t.Name, Over: "haproxy"})
		}
	}
	suite := loadpeer.Suite{
		Rounds: rounds,
		Redis: []loadpeer.RedisOptions{
			{Clients: 50, Requests: requests, Pipeline: 1, Tests: "set,get"},
			{Clients: 50, Requests: 5 * requests, Pipeline: 16, Tests: "set,get"},
		},
		MySQL: []loadpeer.MySQLOptions{
			{Clients: clients, Duration: time.Duration(seconds) * time.Second, Kind: loadpeer.PointSelect},
			{Clients: clients, Duration: time.Duration(seconds) * time.Second, Kind: loadpeer.Insert},
		},
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nrouter peers: backends and proxies up in %.1fs; %d CPUs, GOMAXPROCS %d, haproxy nbthread %d, load average %s\n",
		time.Since(t0).Seconds(), runtime.NumCPU(), runtime.GOMAXPROCS(0), loadpeer.HAProxyThreads(), strings.Join(strings.Fields(string(load))[:3], " "))
	var names []string
	for _, t := range targets {
		names = append(names, t.Name)
	}
	fmt.Printf("legs: %s; %d rounds, medians; redis %s, mysql %s (innodb_flush_log_at_trx_commit=2)\n", strings.Join(names, ", "), rounds, be.RedisAddr, be.MySQLAddr)

	b.ResetTimer()
	legs, err := suite.Run(ctx, targets, os.Stdout)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Println()
	cs := loadpeer.Compare(b, legs, ratios...)
	for _, c := range cs {
		if c.Over != "haproxy" || c.Of == "haproxy-b" {
			continue
		}
		verdict := "meets"
		if c.Throughput < 0.9 || c.AddedP99Of > c.AddedP99Over {
			verdict = "misses"
		}
		fmt.Printf("goal %s %s: throughput %.3f× haproxy (≥0.90×), added p99 %+.3f ms vs haproxy's %+.3f ms (≤): %s\n",
			c.Workload, c.Of, c.Throughput, msOf(c.AddedP99Of), msOf(c.AddedP99Over), verdict)
	}
	fmt.Println()
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startPeerBackends starts a redis-server and a mariadbd of the benchmark's
// own on free loopback ports, each with a password account for the load;
// both are killed when b ends.
func startPeerBackends(b *testing.B) peerBackends {
	b.Helper()
	be := peerBackends{RedisUser: "bench", RedisPassword: "bench-" + randHex(6),
		MySQLUser: "bench", MySQLPassword: "bench-" + randHex(6), MySQLDatabase: "bench"}

	rp := enginetest.New(b, "redis-server", func(p *enginetest.Proc, _ bool) []string {
		return []string{"--port", strconv.Itoa(p.Port), "--bind", "127.0.0.1", "--dir", p.Dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
			"--user", "default", "off",
			"--user", be.RedisUser, "on", ">" + be.RedisPassword, "~*", "&*", "+@all"}
	}, func(p *enginetest.Proc, exited <-chan struct{}) error {
		c := redis.NewClient(&redis.Options{Addr: p.Addr, Username: be.RedisUser, Password: be.RedisPassword, MaxRetries: -1, PoolSize: 1})
		defer c.Close()
		return enginetest.WaitUntil(p, exited, 30*time.Second, func(ctx context.Context) error { return c.Ping(ctx).Err() })
	})
	data := peerDataDir(b)
	mp := enginetest.New(b, "mariadbd", func(p *enginetest.Proc, _ bool) []string { return peerMariaDBArgs(p, data) }, enginetest.WaitMariaDB)
	peerInstallMariaDB(b, mp, data)
	enginetest.StartAll(b, []*enginetest.Proc{rp, mp})
	be.RedisAddr, be.MySQLAddr = rp.Addr, mp.Addr

	db := enginetest.RootDB(enginetest.MariaDBSocket(mp))
	defer db.Close()
	for _, s := range []string{
		"CREATE DATABASE " + be.MySQLDatabase,
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", be.MySQLUser, be.MySQLPassword),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON %s.* TO '%s'@'%%'", be.MySQLDatabase, be.MySQLUser),
	} {
		if _, err := db.Exec(s); err != nil {
			b.Fatalf("%s: %v", s, err)
		}
	}
	return be
}

// peerDataDir is where the backend MariaDB keeps its data: in memory
// (/dev/shm) when the machine has it, so inserts are not paced by a disk
// other engineers share (the figures are the path's, not the disk's); it
// is removed when b ends, after the server was killed.
func peerDataDir(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "canopy-peers-")
	if err != nil {
		return filepath.Join(enginetest.TempDir(b), "data")
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "data")
}

// peerInstallMariaDB runs mariadb-install-db into data. enginetest's
// template would be faster but lives until a TestMain removes it, and
// e2e's TestMain does not.
func peerInstallMariaDB(b *testing.B, p *enginetest.Proc, data string) {
	b.Helper()
	if err := os.Mkdir(filepath.Join(p.Dir, "tmp"), 0o700); err != nil {
		b.Fatal(err)
	}
	args := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + filepath.Join(p.Dir, "tmp"),
		"--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve", "--innodb-buffer-pool-size=16M"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	if out, err := exec.Command("mariadb-install-db", args...).CombinedOutput(); err != nil {
		b.Fatalf("mariadb-install-db: %v: %s", err, out)
	}
}

// peerMariaDBArgs is the backend's command line: no binlog and
// innodb_flush_log_at_trx_commit=2, so inserts are bounded by the path and
// the server rather than by fsyncs; a buffer pool that holds the
// point-select table.
func peerMariaDBArgs(p *enginetest.Proc, data string) []string {
	args := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + filepath.Join(p.Dir, "tmp"),
		"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
		"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"), "--skip-log-bin",
		"--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=2", "--performance-schema=OFF",
		"--max-connections=500"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return args
}
