package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// The scenario harness: one all-in-one platform (the real binary,
// services/allinone/cmd/canopy, built once per `go test` run) shared by every
// scenario of the package, on free ports, with its own state directory,
// database prefix, inventory and admin key, stopped and cleaned up after the
// last test. Scenarios reach it only through the public gateway (see
// client_test.go); they run one after another (no t.Parallel), since some
// check fleet-wide figures such as the inventory's allocation.

const (
	mysqlServerDSN = "root@tcp(127.0.0.1:3306)/"
	redisAddr      = "127.0.0.1:6379"
	// startTimeout bounds the wait for /readyz after exec.
	startTimeout = 90 * time.Second
	// stopTimeout bounds the wait after SIGTERM before SIGKILL.
	stopTimeout  = 40 * time.Second
	logTailLines = 200
)

// platform is a running all-in-one process.
type platform struct {
	// URL is the gateway's public base URL (http://127.0.0.1:port).
	URL string
	// AdminKey is the platform-admin (bootstrap) API key.
	AdminKey string
	// StateDir is CANOPY_STATE_DIR; tenant nodes live under StateDir/nodes.
	StateDir string
	// DBPrefix is CANOPY_DATABASE_PREFIX.
	DBPrefix string
	// RedisPrefix is CANOPY_GATEWAY_RATE_LIMIT_PREFIX: the run's keys in the shared Redis.
	RedisPrefix string
	// LogPath holds the binary's stdout and stderr.
	LogPath string
	// PortsFrom..PortsTo is the range of the inventory's hosts (tenant nodes' ports).
	PortsFrom, PortsTo int
	// KafkaAddr is the embedded broker's address.
	KafkaAddr string
	// RouterPortsFrom..RouterPortsTo is the range of the router's endpoints.
	RouterPortsFrom, RouterPortsTo int
	// Built and Started are how long the build and the start to /readyz took.
	Built, Started time.Duration

	bin, dir string
	env      []string
	cmd      *exec.Cmd
	exited   chan struct{}
	// waitErr is cmd.Wait's result, set before exited is closed.
	waitErr error
}

var shared struct {
	once sync.Once
	p    *platform
	err  error
}

// builds are binaries built once per `go test` run into a temporary
// directory each, shared by every scenario that needs them and removed by
// TestMain.
type builds struct {
	once sync.Once
	dir  string
	took time.Duration
	err  error
}

// build runs `go build -o <dir>/ pkgs...` in root once and returns the
// directory and how long the build took.
func (b *builds) build(root string, pkgs ...string) (string, time.Duration, error) {
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "canopy-e2e-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.dir = dir
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		t0 := time.Now()
		build := exec.Command(gobin, append([]string{"build", "-o", dir + "/"}, pkgs...)...)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
		}
		b.took = time.Since(t0)
	})
	return b.dir, b.took, b.err
}

// allInOne is the all-in-one binary every platform runs.
var allInOne builds

// canopyBinary builds services/allinone/cmd/canopy once and returns its
// path.
func canopyBinary(root string) (string, time.Duration, error) {
	dir, took, err := allInOne.build(root, "./services/allinone/cmd/canopy")
	return filepath.Join(dir, "canopy"), took, err
}

// TestMain stops the shared platform (if a scenario started one) after the
// last test and fails the run when stopping or cleaning up fails.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.p != nil {
		if err := shared.p.checkEmpty(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: after the last scenario: %v\n", err)
			code = 1
		}
		t0 := time.Now()
		err := shared.p.stop()
		if testing.Verbose() {
			fmt.Printf("e2e: platform stopped and cleaned up in %.1fs\n", time.Since(t0).Seconds())
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stopping the platform: %v\n%s", err, shared.p.logTail(logTailLines))
			code = 1
		}
	}
	if shared.p != nil && code == 0 {
		_ = os.RemoveAll(shared.p.dir)
	} else if shared.p != nil {
		fmt.Fprintf(os.Stderr, "e2e: platform files kept in %s\n", shared.p.dir)
	}
	for _, b := range []*builds{&allInOne, &splitBins} {
		if b.dir != "" {
			_ = os.RemoveAll(b.dir)
		}
	}
	os.Exit(code)
}

// platformFor returns the shared platform, starting it on first use, and
// registers a cleanup that prints the platform's log tail when t failed.
// Scenarios are skipped with -short.
func platformFor(t *testing.T) *platform {
	t.Helper()
	if testing.Short() {
		t.Skip("scenario against a running platform: skipped with -short")
	}
	first := false
	shared.once.Do(func() {
		first = true
		shared.p, shared.err = startPlatform(repoRoot(t))
	})
	if shared.err != nil {
		t.Fatalf("start the platform: %v", shared.err)
	}
	p := shared.p
	if first {
		t.Logf("platform: built in %.1fs, ready in %.1fs at %s (state %s, databases %s*, node ports %d-%d)",
			p.Built.Seconds(), p.Started.Seconds(), p.URL, p.StateDir, p.DBPrefix, p.PortsFrom, p.PortsTo)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("platform log (%s), last %d lines:\n%s", p.LogPath, logTailLines, p.logTail(logTailLines))
		}
	})
	return p
}

// ownPlatform starts a platform for t alone (for a scenario that needs
// another configuration, or must not disturb the shared one), and stops and
// cleans it up when t ends: the same checks as the shared platform's at the
// end of the run, its files removed unless t failed.
func ownPlatform(t *testing.T) *platform {
	t.Helper()
	if testing.Short() {
		t.Skip("scenario against a running platform: skipped with -short")
	}
	p, err := startPlatform(repoRoot(t))
	if err != nil {
		t.Fatalf("start a platform: %v", err)
	}
	t.Logf("own platform: ready in %.1fs at %s (state %s, databases %s*, node ports %d-%d)",
		p.Started.Seconds(), p.URL, p.StateDir, p.DBPrefix, p.PortsFrom, p.PortsTo)
	t.Cleanup(func() {
		if err := p.checkEmpty(); err != nil {
			t.Errorf("after the scenario: %v", err)
		}
		if err := p.stop(); err != nil {
			t.Errorf("stopping the platform: %v", err)
		}
		if t.Failed() {
			t.Logf("platform log (%s), last %d lines:\n%s", p.LogPath, logTailLines, p.logTail(logTailLines))
			t.Logf("platform files kept in %s", p.dir)
			return
		}
		_ = os.RemoveAll(p.dir)
	})
	return p
}

// startPlatform writes an inventory, starts the all-in-one binary (built
// once per run) on free ports with its own state directory, databases and
// Redis keys, and waits for the gateway's /readyz. On failure it stops what
// it started; its directory is kept and named in the error.
func startPlatform(root string) (p *platform, err error) {
	bin, built, err := canopyBinary(root)
	if err != nil {
		return nil, err
	}
	// Short paths: MariaDB's socket lives in the node's directory under the
	// state dir and must stay below 108 bytes.
	dir, err := os.MkdirTemp("", "canopy-e2e-")
	if err != nil {
		return nil, err
	}
	run := randHex(4)
	p = &platform{
		RedisPrefix: "canopy:e2e:" + run + ":rl:",
		Built:       built,
		StateDir:    filepath.Join(dir, "state"),
		DBPrefix:    "canopy_e2e_" + run + "_",
		LogPath:     filepath.Join(dir, "canopy.log"),
		AdminKey:    "e2e-admin-" + randHex(16),
	}
	ports, err := freePorts(14)
	if err != nil {
		return nil, err
	}
	// One free range: the inventory's hosts, then the router's endpoints.
	p.PortsFrom, p.RouterPortsTo, err = freePortRange(inventoryHosts*portsPerHost + routerPorts)
	if err != nil {
		return nil, err
	}
	p.PortsTo = p.PortsFrom + inventoryHosts*portsPerHost - 1
	p.RouterPortsFrom = p.PortsTo + 1
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, inventoryYAML(p.PortsFrom), 0o600); err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	p.URL = "http://" + addr(0)
	p.KafkaAddr = addr(10)

	env := []string{}
	for _, kv := range os.Environ() {
		// Nothing of a developer's own platform configuration leaks in.
		if !strings.HasPrefix(kv, "CANOPY_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"CANOPY_GATEWAY_ADDR="+addr(0),
		"CANOPY_GATEWAY_INTERNAL_ADDR="+addr(1),
		"CANOPY_CATALOG_ADDR="+addr(2),
		"CANOPY_SCHEDULING_ADDR="+addr(3),
		"CANOPY_PROVISIONING_ADDR="+addr(4),
		"CANOPY_HEALTHCHECK_ADDR="+addr(5),
		"CANOPY_FAILOVER_ADDR="+addr(6),
		"CANOPY_ROUTER_ADDR="+addr(7),
		"CANOPY_ROUTER_SENTINEL_ADDR="+addr(8),
		// The cdc service's HTTP API, off a developer's `make dev` (8087).
		"CANOPY_CDC_ADDR="+addr(9),
		// The metering service's HTTP API, off a developer's `make dev` (8088).
		"CANOPY_METERING_ADDR="+addr(11),
		// The alerting service's HTTP API, off a developer's `make dev` (8089).
		"CANOPY_ALERTING_ADDR="+addr(12),
		// The backup service's HTTP API, off a developer's `make dev` (8091).
		"CANOPY_BACKUP_ADDR="+addr(13),
		fmt.Sprintf("CANOPY_PROVISIONING_ROUTER_PORTS=%d-%d", p.RouterPortsFrom, p.RouterPortsTo),
		// CDC scenarios read the data topics as a user's consumer would.
		"CANOPY_EMBEDDED_KAFKA_ADDR="+p.KafkaAddr,
		"CANOPY_STATE_DIR="+p.StateDir,
		"CANOPY_DATABASE_PREFIX="+p.DBPrefix,
		"CANOPY_MYSQL_DSN="+mysqlServerDSN,
		"CANOPY_REDIS_ADDR="+redisAddr,
		// Rate limits and the auth-failure throttle of this run only (the
		// bootstrap key's bucket would otherwise be shared with `make dev`).
		"CANOPY_GATEWAY_RATE_LIMIT_PREFIX="+p.RedisPrefix,
		"CANOPY_ADMIN_KEY="+p.AdminKey,
		"CANOPY_SCHEDULING_INVENTORY_FILE="+inv,
		"CANOPY_LOG_LEVEL=info",
		// The process runs outside the repository; the gateway serves the document from here.
		"CANOPY_GATEWAY_OPENAPI_PATH="+filepath.Join(root, mergedSpec),
	)
	p.bin, p.dir, p.env = bin, dir, env
	t0 := time.Now()
	err = p.launch()
	p.Started = time.Since(t0)
	if err != nil {
		return nil, errors.Join(err, p.stop(), fmt.Errorf("platform files kept in %s; log, last lines:\n%s", dir, p.logTail(logTailLines)))
	}
	return p, nil
}

// launch execs the binary (its output appended to the log) and waits for
// the gateway's /readyz.
func (p *platform) launch() error {
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.exited = make(chan struct{})
	p.cmd = exec.Command(p.bin)
	p.cmd.Dir = p.dir
	p.cmd.Env = p.env
	p.cmd.Stdout = logf
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("exec %s: %w", p.bin, err)
	}
	cmd, exited := p.cmd, p.exited
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return p.waitReady(ctx)
}

// terminate sends SIGTERM and waits for the process to exit, SIGKILL after
// stopTimeout. Tenant nodes keep running (the local driver detaches them).
func (p *platform) terminate() error {
	if p.cmd == nil || p.cmd.Process == nil {
		return nil
	}
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("the platform stopped with %v after SIGTERM", p.waitErr)
		}
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("the platform did not stop within %s of SIGTERM; killed", stopTimeout)
	}
}

// restart stops the platform with SIGTERM and starts it again on the same
// ports, state directory and databases, as an operator restarting it would.
func (p *platform) restart(t *testing.T) {
	t.Helper()
	t0 := time.Now()
	if err := p.terminate(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	stopped := time.Since(t0)
	if err := p.launch(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("platform restarted: stopped in %.1fs, ready again %.1fs later", stopped.Seconds(), (time.Since(t0) - stopped).Seconds())
}

// waitReady polls the gateway's /readyz until 200, the process exits or ctx ends.
func (p *platform) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("the platform exited before it was ready: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("the gateway's /readyz was not 200 within %s (last: %s)", startTimeout, last)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, waits (SIGKILL after stopTimeout), kills tenant nodes
// that outlived it (by pid, found by their working directory under the
// state dir) and drops the platform's databases.
func (p *platform) stop() error {
	var errs []error
	if err := p.terminate(); err != nil {
		errs = append(errs, err)
	}
	// Tenant nodes are detached and survive the platform by design (they are
	// re-adopted on restart); the scenarios delete what they create, so
	// anything left here is a failed scenario's.
	if pids := nodeProcesses(p.StateDir); len(pids) > 0 {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		errs = append(errs, fmt.Errorf("tenant node processes left running after the platform stopped (killed): %v", pids))
	}
	if err := dropDatabases(p.DBPrefix); err != nil {
		errs = append(errs, err)
	}
	if err := dropRedisKeys(p.RedisPrefix); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkEmpty checks, through the API as platform-admin, that the scenarios
// left the platform as they found it: no live instance of any tenant, no
// capacity allocated on any host (the inventory was loaded fresh, so all was
// free), no health target. It waits a little, since releases follow deletes
// asynchronously; a reservation made late for an instance deleted early
// would show here.
func (p *platform) checkEmpty() error {
	get := func(path string, out any) error {
		req, _ := http.NewRequest(http.MethodGet, p.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+p.AdminKey)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	var last error
	for deadline := time.Now().Add(cleanTimeout); ; {
		last = func() error {
			var insts struct{ Items []instance }
			if err := get("/api/v1/instances?limit=500", &insts); err != nil {
				return err
			}
			var hosts struct{ Items []host }
			if err := get("/api/v1/inventory/hosts?limit=500", &hosts); err != nil {
				return err
			}
			var targets healthTargets
			if err := get("/api/v1/health/targets", &targets); err != nil {
				return err
			}
			var problems []string
			for _, i := range insts.Items {
				problems = append(problems, fmt.Sprintf("instance %s (%s) is %s", i.ID, i.Name, i.State))
			}
			for _, h := range hosts.Items {
				if h.Allocated != (resources{}) {
					problems = append(problems, fmt.Sprintf("host %s has %+v allocated", h.ID, h.Allocated))
				}
			}
			for _, tg := range targets.Targets {
				problems = append(problems, fmt.Sprintf("health target %s of %s", tg.Address, tg.InstanceID))
			}
			if len(problems) > 0 {
				return fmt.Errorf("the platform is not empty: %s", strings.Join(problems, "; "))
			}
			return nil
		}()
		if last == nil || time.Now().After(deadline) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logTail returns the last n lines of the platform's log.
func (p *platform) logTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLines returns the last n lines of the log that contain with and not
// without.
func (p *platform) logLines(with, without string, n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, with) && !strings.Contains(l, without) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// nodeProcesses returns the pids of processes working in a directory under
// stateDir/nodes: the local driver starts every mariadbd and redis-server
// in its node's directory.
func nodeProcesses(stateDir string) []int {
	nodes := filepath.Join(stateDir, "nodes") + string(filepath.Separator)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(cwd+string(filepath.Separator), nodes) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// serverProcesses is nodeProcesses without the transient ones working in a
// node's directory: children of a node process (a Redis BGSAVE or AOF
// rewrite fork, which the backup service's snapshots start) and tools that
// are not an engine's server. What is left are the servers a restart of
// Canopy must adopt, not replace.
func serverProcesses(stateDir string) []int {
	all := nodeProcesses(stateDir)
	isNode := make(map[int]bool, len(all))
	for _, pid := range all {
		isNode[pid] = true
	}
	var pids []int
	for _, pid := range all {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			continue
		}
		// stat is "pid (comm) state ppid ...": the comm may hold spaces.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		comm := string(stat[strings.IndexByte(string(stat), '(')+1 : strings.LastIndexByte(string(stat), ')')])
		ppid, _ := strconv.Atoi(fields[1])
		if isNode[ppid] || (comm != "mariadbd" && comm != "redis-server") {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// dropDatabases drops every database whose name starts with prefix.
func dropDatabases(prefix string) error {
	db, err := sql.Open("mysql", mysqlServerDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names, err := listDatabases(ctx, db, prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if _, err := db.ExecContext(ctx, "DROP DATABASE `"+n+"`"); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// listDatabases lists the databases whose names start with prefix.
func listDatabases(ctx context.Context, db *sql.DB, prefix string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW DATABASES")
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, rows.Err()
}

// dropRedisKeys deletes the keys under prefix from the shared Redis.
func dropRedisKeys(prefix string) error {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan redis keys %s*: %w", prefix, err)
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			return fmt.Errorf("delete redis keys %s*: %w", prefix, err)
		}
	}
	return nil
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// freePortRange picks n consecutive ports below the kernel's ephemeral range
// (so no outgoing connection takes one) and above the dev inventory's
// (20000-22399, a `make dev` nearby), nothing listening on any of them.
func freePortRange(n int) (from, to int, err error) {
	const lo, hi = 23000, 32700
	for range 50 {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		from = lo + (int(b[0])<<8|int(b[1]))%((hi-lo)/n)*n
		to = from + n - 1
		if rangeFree(from, to) {
			return from, to, nil
		}
	}
	return 0, 0, errors.New("no free range of ports for the test inventory")
}

func rangeFree(from, to int) bool {
	for port := from; port <= to; port++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// The test inventory: region e2e of three zones with two hosts each, enough
// for a multi-az MySQL and a multi-az Redis side by side (and host
// anti-affinity), and a second region e2e-west of one zone and host (for
// instances in two regions); each host with its own slice of the port range.
const (
	inventoryHosts = 7
	portsPerHost   = 10
	// routerPorts is two endpoints for each of 20 instances.
	routerPorts = 40
)

func inventoryYAML(portsFrom int) []byte {
	var b bytes.Buffer
	b.WriteString(`regions:
  - {id: e2e, name: E2E, labels: {jurisdiction: eu}}
  - {id: e2e-west, name: E2E West, labels: {jurisdiction: eu}}
zones:
  - {id: e2e-1, region: e2e, name: E2E AZ 1}
  - {id: e2e-2, region: e2e, name: E2E AZ 2}
  - {id: e2e-3, region: e2e, name: E2E AZ 3}
  - {id: e2e-west-1, region: e2e-west, name: E2E WEST AZ 1}
latencies:
  - {a: e2e-1, b: e2e-2, p95_ms: 1.2}
  - {a: e2e-1, b: e2e-3, p95_ms: 1.8}
  - {a: e2e-2, b: e2e-3, p95_ms: 1.5}
  - {a: e2e, b: e2e-west, p95_ms: 12}
hosts:
`)
	west := portsFrom + (inventoryHosts-1)*portsPerHost
	fmt.Fprintf(&b, `  - id: e2e-west-1-h1
    zone: e2e-west-1
    address: 127.0.0.1
    ports: {from: %d, to: %d}
    capacity: {milli_cpu: 8000, memory_mb: 32768, storage_gb: 500}
    price: {per_vcpu_hour: 0.035, per_gb_hour: 0.005}
`, west, west+portsPerHost-1)
	for i := range inventoryHosts - 1 {
		from := portsFrom + i*portsPerHost
		fmt.Fprintf(&b, `  - id: e2e-%d-h%d
    zone: e2e-%d
    address: 127.0.0.1
    ports: {from: %d, to: %d}
    capacity: {milli_cpu: 8000, memory_mb: 32768, storage_gb: 500}
    price: {per_vcpu_hour: 0.035, per_gb_hour: 0.005}
`, i%3+1, i/3+1, i%3+1, from, from+portsPerHost-1)
	}
	return b.Bytes()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
