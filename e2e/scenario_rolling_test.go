package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rollingRestart is the rolling-restart phase of TestScenarioSplitMode: it
// restarts every replica of split mode, one at a time (SIGTERM, wait for the
// exit, start it again with the same command and environment, wait until it
// is ready, next), under a steady API load through the gateways: catalog and
// instance reads at about 20 requests a second, and single-az Redis orders
// and deletes. The load's client retries only what the API marks retryable
// (docs/operations.md, "Rolling restarts"); any other failure fails the
// test. The backends go first, the gateways last; while a gateway restarts
// the client uses the other one, as a load balancer in front of the
// gateways would.
func rollingRestart(t *testing.T, sp *splitRun) {
	p := sp.p
	tenant := p.newTenant(t, "rolling-"+randHex(3), "tenant-admin")
	plan := tenant.planID("redis-dev-single-az")

	ld := newLoad(t, tenant.key, "e2e-rolling-", p.URL)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ld.reads(ctx) }()
	go func() { defer wg.Done(); ld.orders(ctx, plan) }()
	stopLoad := func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			t.Fatal("the load did not finish within 3m of the end of the restarts")
		}
	}
	// A phase that ends early (a failed wait) halts the load and waits for
	// it: nothing logs to a finished test.
	defer func() {
		ld.halt()
		cancel()
		wg.Wait()
	}()

	t0 := time.Now()
	var order []string
	for _, svc := range backendServices {
		order = append(order, svc+"-1", svc+"-2")
	}
	for _, name := range append(order, "gateway-1", "gateway-2") {
		switch name {
		case "gateway-1":
			ld.use(sp.gw2)
		case "gateway-2":
			ld.use(p.URL)
		}
		drain, up := sp.restart(t, name, syscall.SIGTERM)
		// The load runs on the restarted replica for a while (40 requests,
		// about 2s: past the gateways' 1s health interval, so it is back in
		// their rotation) before the next replica goes.
		from := ld.requests.Load()
		waitFor(t, "40 requests after "+name+" restarted", time.Minute, func() (bool, string) {
			n := ld.requests.Load() - from
			return n >= 40, fmt.Sprintf("%d requests", n)
		})
		t.Logf("%s restarted: stopped %.1fs after SIGTERM, ready %.1fs after its start", name, drain.Seconds(), up.Seconds())
	}
	restarts := time.Since(t0)
	stopLoad()

	n, failed, retried := ld.requests.Load(), ld.failed.Load(), ld.retried.Load()
	t.Logf("requests during the rolling restart: %d, failed: %d (retried as the API allows: %d; %d orders and deletes done; %d restarts in %.1fs)",
		n, failed, retried, ld.cycles.Load(), len(order)+2, restarts.Seconds())
	if failed > 0 {
		t.Errorf("%d requests failed in a way the API does not mark retryable", failed)
	}
	if ld.cycles.Load() == 0 {
		t.Errorf("no order and delete completed during the rolling restart")
	}
}

// backendServices are split mode's services behind the gateways, in the
// order the rolling restart and the chaos take them.
var backendServices = []string{"catalog", "scheduling", "provisioning", "healthcheck", "failover", "router", "cdc", "metering", "alerting", "backup"}

// load is the API traffic of the rolling restart and the chaos, through
// the gateways in bases (round robin, the next one after a refused
// connect, as a load balancer in front of them would), with a client that
// retries only what the API marks retryable.
type load struct {
	t      *testing.T
	key    string
	prefix string // of every X-Request-Id, to find the run's requests in the logs
	http   *http.Client
	bases  atomic.Pointer[[]string]
	rr     atomic.Uint64
	// halted ends every request and wait at once (a test that ends early).
	halted atomic.Bool

	requests, failed, retried, cycles atomic.Int64
}

// newLoad returns a load client with key through bases.
func newLoad(t *testing.T, key, prefix string, bases ...string) *load {
	l := &load{t: t, key: key, prefix: prefix, http: &http.Client{Timeout: 30 * time.Second}}
	l.use(bases...)
	return l
}

// halt ends the load's requests and waits at their next attempt.
func (l *load) halt() { l.halted.Store(true) }

// use sends the next requests to bases.
func (l *load) use(bases ...string) { l.bases.Store(&bases) }

// base is the gateway the next attempt goes to.
func (l *load) base() string {
	bs := *l.bases.Load()
	return bs[int(l.rr.Add(1)%uint64(len(bs)))]
}

// retryable reports whether the API marks an answer retryable: it carries
// Retry-After (a 503 of an unavailable service, a 429, a 409 of a request
// still running under the same Idempotency-Key).
func retryable(resp *http.Response) bool { return resp.Header.Get("Retry-After") != "" }

// send sends one logical request, retrying what the API marks retryable
// (honouring Retry-After), a refused connect (the gateway never saw the
// request; the next attempt goes to the next gateway) and, for a GET, a
// DELETE (deleting again returns the same operation, or 410 once deleted)
// or a request with an Idempotency-Key, a dropped connection
// (docs/api-guide.md). It returns the final status and body; a
// non-retryable failure is counted and logged.
func (l *load) send(ctx context.Context, method, path string, body any, idemKey string, ok ...int) (int, []byte) {
	l.requests.Add(1)
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		if l.halted.Load() {
			return 0, nil
		}
		req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), method, l.base()+path, bytes.NewReader(raw))
		if err != nil {
			l.t.Error(err)
			return 0, nil
		}
		req.Header.Set("Authorization", "Bearer "+l.key)
		req.Header.Set("X-Request-Id", l.prefix+randHex(8))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		resp, err := l.http.Do(req)
		var wait time.Duration
		switch {
		case err != nil && errors.Is(err, syscall.ECONNREFUSED):
			wait = 100 * time.Millisecond
			l.t.Logf("%s %s: %v (retried: a refused connect)", method, path, err)
		case err != nil && (method == http.MethodGet || method == http.MethodDelete || idemKey != ""):
			wait = 200 * time.Millisecond
			l.t.Logf("%s %s: %v (retried: a dropped connection)", method, path, err)
		case err != nil:
			l.failed.Add(1)
			l.t.Logf("FAILED %s %s: %v", method, path, err)
			return 0, nil
		default:
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, s := range ok {
				if resp.StatusCode == s {
					return s, b
				}
			}
			if !retryable(resp) {
				l.failed.Add(1)
				l.t.Logf("FAILED %s %s: %d %s (%s)", method, path, resp.StatusCode, bytes.TrimSpace(b), resp.Header.Get("X-Request-Id"))
				return resp.StatusCode, b
			}
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			wait = min(time.Duration(max(secs, 0))*time.Second, 5*time.Second)
			wait = max(wait, 100*time.Millisecond)
			l.t.Logf("%s %s: %d with Retry-After %s (retried): %.200s", method, path, resp.StatusCode, resp.Header.Get("Retry-After"), bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) {
			l.failed.Add(1)
			l.t.Logf("FAILED %s %s: still retryable after 2m (%d attempts)", method, path, attempt+1)
			return 0, nil
		}
		l.retried.Add(1)
		time.Sleep(wait) // the wait the API asked for (Retry-After)
	}
}

// reads sends about 20 reads a second until ctx ends.
func (l *load) reads(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, 16)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		path := "/api/v1/catalog/services"
		if i%2 == 1 {
			path = "/api/v1/instances"
		}
		select {
		case slots <- struct{}{}:
		default:
			continue // the slow answers of a restart do not pile up
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			l.send(ctx, http.MethodGet, path, nil, "", http.StatusOK)
		}()
	}
}

// orders orders a single-az Redis, waits until it is ready, deletes it and
// waits until it is gone, again and again until ctx ends (the cycle under
// way finishes).
func (l *load) orders(ctx context.Context, plan string) {
	for i := 0; ctx.Err() == nil; i++ {
		name := fmt.Sprintf("roll-%d-%s", i, randHex(2))
		status, b := l.send(ctx, http.MethodPost, "/api/v1/instances", map[string]any{"name": name, "plan_id": plan}, "rolling-"+name, http.StatusAccepted)
		var acc instanceAccepted
		if status != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
			continue
		}
		id := acc.Instance.ID
		if !l.until(id, func(st int, inst instance) (bool, bool) {
			return inst.State == "ready", inst.State == "failed"
		}) {
			continue
		}
		if st, _ := l.send(ctx, http.MethodDelete, "/api/v1/instances/"+id, nil, "", http.StatusAccepted); st != http.StatusAccepted {
			continue
		}
		if l.until(id, func(st int, inst instance) (bool, bool) {
			return st == http.StatusNotFound || inst.State == "deleted", inst.State == "failed"
		}) {
			l.cycles.Add(1)
		}
	}
}

// until polls instance id every 250ms until done (true) or bad or 3 minutes
// (false, counted as a failure).
func (l *load) until(id string, check func(status int, inst instance) (done, bad bool)) bool {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) && !l.halted.Load() {
		st, b := l.send(context.Background(), http.MethodGet, "/api/v1/instances/"+id, nil, "", http.StatusOK, http.StatusNotFound)
		var inst instance
		if st == http.StatusOK {
			_ = json.Unmarshal(b, &inst)
		}
		if st != 0 {
			done, bad := check(st, inst)
			if done {
				return true
			}
			if bad {
				l.failed.Add(1)
				l.t.Logf("FAILED instance %s: %s (%s)", id, inst.State, inst.Reason)
				return false
			}
		}
		time.Sleep(250 * time.Millisecond) // the polling interval
	}
	l.failed.Add(1)
	l.t.Logf("FAILED instance %s: no end state within 3m", id)
	return false
}

// ownProc is a replica the test started again itself.
type ownProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// singleActive are the services whose replicas are one active and standbys
// (live, not ready) while the active one holds its MySQL lock.
var singleActive = map[string]bool{"alerting": true, "backup": true, "cdc": true}

// restart stops replica name with sig (SIGTERM: a drain; SIGKILL: a
// crash), waits for the exit, and starts it again with the command,
// environment and directory it ran with (read from /proc), logging to the
// same file, then waits until it is ready: its /readyz answers 200, or, for
// a single-active service whose other replica took over, it is live and
// the other is ready. It returns how long the exit and the start took.
func (sp *splitRun) restart(t *testing.T, name string, sig syscall.Signal) (drain, up time.Duration) {
	t.Helper()
	pid := sp.procs[name]
	args, env, dir := procCommand(t, pid)
	svc := name[:strings.LastIndexByte(name, '-')]
	addr := envValue(env, "CANOPY_"+strings.ToUpper(svc)+"_ADDR")
	if addr == "" {
		t.Fatalf("%s: no CANOPY_%s_ADDR in its environment", name, strings.ToUpper(svc))
	}
	t0 := time.Now()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("%v %s: %v", sig, name, err)
	}
	waitFor(t, fmt.Sprintf("%s to exit after %v", name, sig), 60*time.Second, func() (bool, string) {
		return !processRuns(pid), "running"
	})
	if o := sp.own[name]; o != nil {
		<-o.done
	}
	drain = time.Since(t0)

	logf, err := os.OpenFile(filepath.Join(sp.p.StateDir, "split", "logs", name+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, logf, logf
	t1 := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s again: %v", name, err)
	}
	o := &ownProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(o.done) }()
	sp.own[name], sp.procs[name] = o, cmd.Process.Pid

	var others []string
	for n, opid := range sp.procs {
		if n != name && strings.HasPrefix(n, svc+"-") {
			_, oenv, _ := procCommand(t, opid)
			others = append(others, envValue(oenv, "CANOPY_"+strings.ToUpper(svc)+"_ADDR"))
		}
	}
	single := singleActive[svc]
	waitFor(t, name+" to be ready again", 90*time.Second, func() (bool, string) {
		select {
		case <-o.done:
			t.Fatalf("%s exited after its restart (log: %s)", name, filepath.Join(sp.p.StateDir, "split", "logs", name+".log"))
		default:
		}
		if httpOK("http://" + addr + "/readyz") {
			return true, ""
		}
		if single && httpOK("http://"+addr+"/livez") {
			for _, a := range others {
				if httpOK("http://" + a + "/readyz") {
					return true, ""
				}
			}
		}
		return false, "not ready"
	})
	return drain, time.Since(t1)
}

// stopOwn stops the replicas the test started itself (SIGTERM, SIGKILL
// after 40s).
func (sp *splitRun) stopOwn() {
	for name, o := range sp.own {
		_ = o.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-o.done:
		case <-time.After(40 * time.Second):
			_ = o.cmd.Process.Kill()
			<-o.done
			sp.t.Errorf("%s (restarted by the test) did not stop within 40s of SIGTERM (killed)", name)
		}
		delete(sp.procs, name)
	}
}

// procCommand reads the command line, environment and working directory of
// a running process.
func procCommand(t *testing.T, pid int) (args, env []string, dir string) {
	t.Helper()
	base := filepath.Join("/proc", strconv.Itoa(pid))
	cl, err := os.ReadFile(filepath.Join(base, "cmdline"))
	if err != nil {
		t.Fatalf("read the command of pid %d: %v", pid, err)
	}
	en, err := os.ReadFile(filepath.Join(base, "environ"))
	if err != nil {
		t.Fatalf("read the environment of pid %d: %v", pid, err)
	}
	dir, err = os.Readlink(filepath.Join(base, "cwd"))
	if err != nil {
		t.Fatalf("read the directory of pid %d: %v", pid, err)
	}
	split := func(b []byte) []string {
		return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	args = split(cl)
	if len(args) == 0 || args[0] == "" {
		t.Fatalf("pid %d has no command line", pid)
	}
	return args, split(en), dir
}

// envValue is the value of key in env (KEY=value lines), "" if absent.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// httpOK reports whether a GET of u answers 200 within 2s.
func httpOK(u string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}
