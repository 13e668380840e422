package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestScenarioSplitMode runs split mode as `make split` does (scripts/split.sh
// over every service's own binary, two replicas each, two gateways), on its
// own ports, state directory and databases, started once for its phases, in
// order (each needs the platform the one before left):
//   - smoke: every replica comes up, a single-az Redis is ordered, becomes
//     ready and is deleted through the gateway;
//   - rolling restart: every replica restarted with SIGTERM under load
//     (rollingRestart, scenario_rolling_test.go);
//   - chaos: 50 orders and deletes while one replica of every service is
//     killed with SIGKILL and restarted (chaos, scenario_chaos_test.go);
//   - kill two: one replica of catalog and one of provisioning are killed
//     at once and both gateways keep answering for those services through
//     the other replicas;
//
// then stopping the script leaves no process behind. A phase that fails
// ends the test (the cleanup still checks and removes everything).
func TestScenarioSplitMode(t *testing.T) {
	if testing.Short() {
		t.Skip("split mode scenario: skipped with -short")
	}
	sp := startSplit(t)
	for _, ph := range []struct {
		name string
		run  func(*testing.T, *splitRun)
	}{
		{"smoke", splitSmoke},
		{"rolling_restart", rollingRestart},
		{"chaos", chaos},
		{"kill_two", splitKillTwo},
	} {
		if !t.Run(ph.name, func(t *testing.T) { ph.run(t, sp) }) {
			return
		}
	}

	// `make reset` while split mode runs: it stops the script (named by the
	// state directory's pid file), which stops every replica, then the
	// node processes, drops the databases and removes the state directory.
	t2 := time.Now()
	procs := maps.Clone(sp.procs) // stopOwn forgets the replicas it stops
	sp.stopOwn()                  // the test's own restarts; split.sh does not know them
	out, err := sp.reset()
	if err != nil {
		t.Fatalf("canopy reset: %v\n%s", err, out)
	}
	sp.stop() // split.sh has exited: this only reaps it
	for name, pid := range procs {
		if processRuns(pid) {
			t.Errorf("%s (pid %d) still runs after make reset", name, pid)
		}
	}
	if pids := nodeProcesses(sp.p.StateDir); len(pids) > 0 {
		t.Errorf("node processes left after make reset: %v", pids)
	}
	if _, err := os.Stat(sp.p.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory %s after make reset: %v", sp.p.StateDir, err)
	}
	if dbs := databasesWithPrefix(t, sp.p.DBPrefix); len(dbs) > 0 {
		t.Errorf("databases left after make reset: %v", dbs)
	}
	t.Logf("make reset stopped split mode and cleaned up in %.1fs: no process, database or state directory left", time.Since(t2).Seconds())
}

// databasesWithPrefix lists the databases whose names start with prefix.
func databasesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	db, err := sql.Open("mysql", mysqlServerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names, err := listDatabases(context.Background(), db, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// splitSmoke: a tenant orders a single-az Redis, it becomes ready, it is
// deleted.
func splitSmoke(t *testing.T, sp *splitRun) {
	tenant := sp.p.newTenant(t, "split-"+randHex(3), "tenant-admin")
	var acc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": "split-redis", "plan_id": tenant.planID("redis-dev-single-az")}, http.StatusAccepted, &acc)
	waitOperation(t, tenant, acc.OperationID, readyTimeout)
	var inst instance
	tenant.must("GET", "/api/v1/instances/"+acc.Instance.ID, nil, http.StatusOK, &inst)
	if inst.State != "ready" {
		t.Fatalf("instance after its create succeeded: %s", inst.State)
	}
	var del instanceAccepted
	tenant.must("DELETE", "/api/v1/instances/"+acc.Instance.ID, nil, http.StatusAccepted, &del)
	waitOperation(t, tenant, del.OperationID, deleteTimeout)
}

// splitKillTwo: one replica of catalog and one of provisioning die at once;
// the gateways send those services' requests to the replicas left, from the
// first request on (a refused connect goes to the other replica).
func splitKillTwo(t *testing.T, sp *splitRun) {
	tenant := sp.p.newTenant(t, "split-kill-"+randHex(3), "tenant-admin")
	killed := []string{"catalog-1", "provisioning-2"}
	pids := map[string]int{}
	for _, name := range killed {
		pids[name] = sp.procs[name]
		if err := syscall.Kill(pids[name], syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", name, err)
		}
	}
	waitFor(t, "the killed replicas to be gone", 10*time.Second, func() (bool, string) {
		return !processRuns(pids["catalog-1"]) && !processRuns(pids["provisioning-2"]), "running"
	})
	other := *tenant
	other.base = sp.gw2
	for i := range 10 {
		for _, c := range []*client{tenant, &other} {
			if err := c.call("GET", "/api/v1/catalog/services", nil, http.StatusOK, nil); err != nil {
				t.Errorf("catalog through %s after catalog-1 died (%d): %v", c.base, i, err)
			}
			if err := c.call("GET", "/api/v1/instances", nil, http.StatusOK, nil); err != nil {
				t.Errorf("instances through %s after provisioning-2 died (%d): %v", c.base, i, err)
			}
		}
	}
	for _, name := range killed {
		delete(sp.procs, name)
		if o := sp.own[name]; o != nil {
			<-o.done // reaped by its owner: killed by the test, no stop needed
			delete(sp.own, name)
		}
	}
}

// splitRun is split mode started by startSplit: the platform behind the
// first gateway, the second gateway's URL, the process table (name-replica →
// pid, updated by restarts), and stop, which stops the script.
type splitRun struct {
	t     *testing.T
	root  string
	p     *platform
	gw2   string
	procs map[string]int
	stop  func()
	// reset runs `canopy reset -force` on the run's state directory and
	// databases, as `make reset` does, and returns its output.
	reset func() (string, error)
	// own are the replicas the test restarted itself (split.sh does not
	// know them), stopped by stopOwn before the script stops.
	own map[string]*ownProc
}

// startSplit builds every binary and runs scripts/split.sh as `make split`
// does, on free ports, its own state directory and databases, until it
// reports every replica up; t.Cleanup stops it and checks nothing is left.
// splitBins holds every service's binary (linking a dozen takes a
// minute), built once for every split-mode scenario.
var splitBins builds

// splitBinaries builds the all-in-one and every service's binary once and
// returns their directory and how long the build took.
func splitBinaries(root string) (string, time.Duration, error) {
	pkgs := []string{"./services/allinone/cmd/canopy"}
	for _, s := range []string{"gateway", "catalog", "scheduling", "provisioning", "healthcheck", "failover", "router", "cdc", "metering", "alerting", "backup"} {
		pkgs = append(pkgs, "./services/"+s+"/cmd/"+s)
	}
	return splitBins.build(root, pkgs...)
}

func startSplit(t *testing.T) *splitRun {
	t.Helper()
	root := repoRoot(t)
	sp := &splitRun{t: t, root: root, own: map[string]*ownProc{}}
	dir, err := os.MkdirTemp("", "canopy-split-")
	if err != nil {
		t.Fatal(err)
	}
	binDir, built, err := splitBinaries(root)
	if err != nil {
		t.Fatal(err)
	}

	run := randHex(4)
	p := &platform{StateDir: filepath.Join(dir, "state"), DBPrefix: "canopy_e2e_split_" + run + "_",
		RedisPrefix: "canopy:e2e:split:" + run + ":rl:", AdminKey: "e2e-admin-" + randHex(16), LogPath: filepath.Join(dir, "split.out")}
	p.PortsFrom, p.RouterPortsTo, err = freePortRange(inventoryHosts*portsPerHost + routerPorts)
	if err != nil {
		t.Fatal(err)
	}
	p.PortsTo = p.PortsFrom + inventoryHosts*portsPerHost - 1
	p.RouterPortsFrom = p.PortsTo + 1
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, inventoryYAML(p.PortsFrom), 0o600); err != nil {
		t.Fatal(err)
	}
	offset, err := splitPortOffset(p.PortsFrom, p.RouterPortsTo)
	if err != nil {
		t.Fatal(err)
	}
	sp.p = p
	p.URL = "http://127.0.0.1:" + strconv.Itoa(8080+offset)
	sp.gw2 = "http://127.0.0.1:" + strconv.Itoa(8081+offset)

	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CANOPY_") {
			env = append(env, kv)
		}
	}
	env = append(env, "BIN="+binDir, "SPLIT_PORT_OFFSET="+strconv.Itoa(offset), "SPLIT_STOP_TIMEOUT=20",
		"CANOPY_STATE_DIR="+p.StateDir, "CANOPY_DATABASE_PREFIX="+p.DBPrefix,
		"CANOPY_MYSQL_DSN="+mysqlServerDSN, "CANOPY_REDIS_ADDR="+redisAddr,
		"CANOPY_GATEWAY_RATE_LIMIT_PREFIX="+p.RedisPrefix, "CANOPY_ADMIN_KEY="+p.AdminKey,
		"CANOPY_SCHEDULING_INVENTORY_FILE="+inv,
		fmt.Sprintf("CANOPY_PROVISIONING_ROUTER_PORTS=%d-%d", p.RouterPortsFrom, p.RouterPortsTo))
	out, err := os.Create(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "scripts/split.sh")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = root, env, out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(exited) }()
	stopped := false
	sp.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("split.sh did not stop within 90s of SIGTERM")
		}
	}
	sp.reset = func() (string, error) {
		c := exec.Command(filepath.Join(binDir, "canopy"), "reset", "-force")
		c.Dir, c.Env = root, env
		b, err := c.CombinedOutput()
		return string(b), err
	}
	t.Cleanup(func() {
		sp.stopOwn()
		sp.stop()
		for name, pid := range sp.procs {
			if processRuns(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				t.Errorf("%s (pid %d) still ran after split.sh stopped (killed)", name, pid)
			}
		}
		if pids := nodeProcesses(p.StateDir); len(pids) > 0 {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Errorf("tenant node processes left running (killed): %v", pids)
		}
		if err := dropDatabases(p.DBPrefix); err != nil {
			t.Error(err)
		}
		if err := dropRedisKeys(p.RedisPrefix); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("split.sh output:\n%s\nlogs kept in %s", p.logTail(80), filepath.Join(p.StateDir, "split", "logs"))
			return
		}
		_ = os.RemoveAll(dir)
	})

	t1 := time.Now()
	waitFor(t, "split.sh to report every replica up", 150*time.Second, func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("split.sh exited before the platform was up:\n%s", p.logTail(40))
		default:
		}
		b, _ := os.ReadFile(p.LogPath)
		return strings.Contains(string(b), "split: Canopy is up"), "starting"
	})
	sp.procs = splitTable(t, p.LogPath)
	if len(sp.procs) != 1+2*11 {
		t.Fatalf("split.sh started %d processes, want the broker and two replicas of 11 services: %v", len(sp.procs), sp.procs)
	}
	t.Logf("split mode: binaries built in %.1fs, %d processes up in %.1fs (port offset %d)", built.Seconds(), len(sp.procs), time.Since(t1).Seconds(), offset)

	return sp
}

// splitPortOffset picks a SPLIT_PORT_OFFSET under which every port split
// mode listens on is free and outside the test inventory's range.
func splitPortOffset(invFrom, invTo int) (int, error) {
	var ports []int
	for p := 8080; p <= 8093; p++ {
		ports = append(ports, p)
	}
	for p := 8182; p <= 8191; p++ {
		ports = append(ports, p)
	}
	ports = append(ports, 9092, 26380, 26381)
	for try := range 50 {
		b := []byte(randHex(2))
		n, _ := strconv.ParseUint(string(b), 16, 16)
		off := 1000 + int(n)%4000 + try
		ok := true
		for _, p := range ports {
			if q := p + off; (q >= invFrom && q <= invTo) || !rangeFree(q, q) {
				ok = false
				break
			}
		}
		if ok {
			return off, nil
		}
	}
	return 0, errors.New("no free set of ports for split mode")
}

// splitTable reads the process table split.sh prints: name-replica → pid.
func splitTable(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	procs := map[string]int{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[0] == "SERVICE" {
			in = true
			continue
		}
		if !in {
			continue
		}
		if len(fields) < 4 {
			break
		}
		pid, err := strconv.Atoi(fields[2])
		if err != nil {
			t.Fatalf("split table line %q: %v", sc.Text(), err)
		}
		procs[fields[0]+"-"+fields[1]] = pid
	}
	return procs
}

// processRuns reports whether pid is a running (not zombie) process.
func processRuns(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
