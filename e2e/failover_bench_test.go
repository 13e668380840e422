package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/e2e/drill"
	"github.com/canopy-platform/canopy/libs/porttest"
)

// BenchmarkFailover measures kill-primary drills (issue 11): RTO = last
// acknowledged write before kill -9 of the primary → first acknowledged
// write on the new primary, acknowledged writes lost, and moments with two
// writable nodes, by one writer and one checker (e2e/drill) for both sides:
//
//   - the peer, Redis Sentinel (3 sentinels, quorum 2, down-after-milliseconds
//     = Canopy's detection budget), on a fresh 3-node Redis per drill; the
//     writer asks the sentinels for the primary after a failed write;
//   - Canopy: the all-in-one platform (built and started as the scenarios
//     do), a multi-az Redis and a multi-az MySQL ordered through the
//     gateway, the same instance drilled again and again (hold-off
//     acknowledged between drills); the writer polls GET
//     /api/v1/instances/{id} (endpoints.primary) every 20 ms after a failed
//     write. The node process is found by the port it listens on and killed
//     by pid, outside the platform.
//
// It runs a fixed number of drills regardless of b.N. Knobs:
// CANOPY_BENCH_FAILOVER_DETECT_MS (default 250: Sentinel's
// down-after-milliseconds), CANOPY_BENCH_FAILOVER_DRILLS (default 5),
// CANOPY_BENCH_FAILOVER_SENTINEL_REF_MS (default 1000: a second Sentinel
// series at the reference setting; 0 skips it),
// CANOPY_BENCH_FAILOVER_SENTINEL_RESTART (default 1: a third Sentinel
// series whose killed primary is restarted, as a supervisor would, once
// the writer has a new one; its lost/two_writable show Sentinel's window;
// 0 skips it), CANOPY_BENCH_FAILOVER_CANOPY=0 skips the Canopy side.
func BenchmarkFailover(b *testing.B) {
	budget := time.Duration(benchEnvInt(b, "CANOPY_BENCH_FAILOVER_DETECT_MS", 250)) * time.Millisecond
	drills := benchEnvInt(b, "CANOPY_BENCH_FAILOVER_DRILLS", 5)
	refMS := benchEnvInt(b, "CANOPY_BENCH_FAILOVER_SENTINEL_REF_MS", 1000)
	if drills < 1 || budget <= 0 {
		b.Fatalf("CANOPY_BENCH_FAILOVER_DRILLS and CANOPY_BENCH_FAILOVER_DETECT_MS must be at least 1 (got %d drills, %s)", drills, budget)
	}
	out := os.Stdout
	ctx := context.Background()
	// Refused dials and reset connections to the killed primary are the
	// drill itself, not news; both client libraries would log each one.
	redis.SetLogger(benchQuietRedisLog{})
	_ = mysql.SetLogger(&mysql.NopLogger{})
	sbin, err := drill.SentinelBinary()
	if err != nil {
		b.Fatalf("the peer needs Redis Sentinel (scripts/bench.sh installs Debian's redis-sentinel): %v", err)
	}
	fmt.Fprintf(out, "\nkill -9 of the primary under a writer (a write every 5 ms; Redis: SET + WAIT 1 100, MySQL: INSERT autocommit), %d drills per series, %d CPUs\n", drills, runtime.NumCPU())
	fmt.Fprintf(out, "RTO = last acknowledged write before the kill -> first acknowledged write on the new primary; two_writable = checker rounds (every 5 ms) with more than one node accepting writes\n")

	b.ResetTimer()
	sentinel := benchSentinelSeries(ctx, b, sbin, budget, drills, false)
	if refMS > 0 && time.Duration(refMS)*time.Millisecond != budget {
		benchSentinelSeries(ctx, b, sbin, time.Duration(refMS)*time.Millisecond, drills, false)
	}
	if benchEnvInt(b, "CANOPY_BENCH_FAILOVER_SENTINEL_RESTART", 1) != 0 {
		benchSentinelSeries(ctx, b, sbin, budget, drills, true)
	}
	b.ReportMetric(float64(sentinel.Median().Milliseconds()), "sentinel-rto-ms")
	if os.Getenv("CANOPY_BENCH_FAILOVER_CANOPY") == "0" {
		fmt.Fprintln(out, "canopy: skipped (CANOPY_BENCH_FAILOVER_CANOPY=0)")
		return
	}

	redisSum, mysqlSum := benchCanopySeries(ctx, b, drills)
	b.StopTimer()
	ratio := float64(redisSum.Median()) / float64(sentinel.Median())
	fmt.Fprintf(out, "failover redis rto median=%s ms sentinel median=%s ms ratio=%.2f× (goal ≤0.5×) lost=%d two_writable=%d\n",
		drill.MS(redisSum.Median()), drill.MS(sentinel.Median()), ratio, redisSum.Lost, redisSum.TwoWritable)
	fmt.Fprintf(out, "failover mysql rto median=%s ms (goal ≤1300 ms) lost=%d two_writable=%d\n\n",
		drill.MS(mysqlSum.Median()), mysqlSum.Lost, mysqlSum.TwoWritable)
	b.ReportMetric(float64(redisSum.Median().Milliseconds()), "redis-rto-ms")
	b.ReportMetric(float64(mysqlSum.Median().Milliseconds()), "mysql-rto-ms")
	b.ReportMetric(ratio, "redis/sentinel")
	if n := redisSum.Lost + mysqlSum.Lost; n > 0 {
		b.Errorf("%d acknowledged writes lost", n)
	}
	if n := redisSum.TwoWritable + mysqlSum.TwoWritable; n > 0 {
		b.Errorf("two writable nodes in %d checker rounds", n)
	}
}

// benchSentinelSeries runs drills on fresh Sentinel topologies with
// down-after-milliseconds downAfter and prints each and the summary.
func benchSentinelSeries(ctx context.Context, b *testing.B, bin []string, downAfter time.Duration, drills int, restart bool) drill.Summary {
	b.Helper()
	var sum drill.Summary
	series, settle := "", time.Duration(0)
	if restart {
		// As a supervisor would (Canopy's local driver restarts a crashed
		// node too): Sentinel's old primary restarts from its own
		// configuration, as a primary, until Sentinel converts it.
		series, settle = " restarted_old_primary", 3*time.Second
	}
	fmt.Printf("\nsentinel%s (%s, 3 sentinels, quorum 2, down-after-milliseconds %d, failover-timeout 10000):\n", series, strings.Join(bin, " "), downAfter.Milliseconds())
	for i := range drills {
		r, err := drill.SentinelDrill(ctx, drill.SentinelDrillConfig{Dir: b.TempDir(), Port: porttest.Pick, DownAfter: downAfter,
			RestartOld: restart, Drill: drill.Drill{Settle: settle}})
		if err != nil {
			b.Fatalf("sentinel drill %d: %v", i+1, err)
		}
		fmt.Printf("  drill %d: %s\n", i+1, r)
		sum.Add(r)
	}
	fmt.Printf("failover sentinel%s down_after=%dms rto %s\n", series, downAfter.Milliseconds(), sum)
	return sum
}

// benchCanopySeries starts the platform, orders a multi-az Redis and a multi-az
// MySQL, and drills each; it deletes both and stops the platform at the end.
func benchCanopySeries(ctx context.Context, b *testing.B, drills int) (redisSum, mysqlSum drill.Summary) {
	b.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	// The failover API is what the Canopy side measures; without it the
	// drills would only wait for a failover that never comes. The platform
	// serves this very document (CANOPY_GATEWAY_OPENAPI_PATH), so it is
	// checked before the build and start.
	spec, err := os.ReadFile(filepath.Join(root, mergedSpec))
	if err != nil {
		b.Fatalf("read the OpenAPI document: %v", err)
	}
	if !strings.Contains(string(spec), "/failovers") {
		b.Fatalf("the failover API is missing: %s documents no /api/v1/instances/{id}/failovers; the Canopy side needs services/failover (issue 11)", mergedSpec)
	}
	fmt.Printf("\ncanopy: building and starting the all-in-one platform\n")
	p, err := startPlatform(root)
	if err != nil {
		b.Fatalf("start the platform: %v", err)
	}
	b.Cleanup(func() {
		if err := p.stop(); err != nil {
			b.Errorf("stop the platform: %v", err)
		}
		if b.Failed() {
			b.Logf("platform log (%s), last %d lines:\n%s", p.LogPath, 60, p.logTail(60))
			return
		}
		_ = os.RemoveAll(p.dir)
	})
	admin := &drill.API{Base: p.URL, Key: p.AdminKey, HTTP: &http.Client{Timeout: 10 * time.Second}}

	tenantID := "bench-" + randHex(3)
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/tenants", map[string]any{"id": tenantID, "name": "Failover bench"}, nil, http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	var k tenantKey
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/tenants/"+tenantID+"/api-keys", map[string]any{"name": "bench", "role": "tenant-admin"}, &k, http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	api := &drill.API{Base: p.URL, Key: k.Key, HTTP: &http.Client{Timeout: 10 * time.Second}}
	plans := map[string]string{}
	var cat catalogServices
	if err := api.Do(ctx, http.MethodGet, "/api/v1/catalog/services", nil, &cat, http.StatusOK); err != nil {
		b.Fatal(err)
	}
	for _, s := range cat.Items {
		for _, pl := range s.Plans {
			plans[pl.Name] = pl.ID
		}
	}
	type ordered struct {
		engine string
		acc    instanceAccepted
	}
	var orders []ordered
	for _, engine := range []string{"redis", "mysql"} {
		plan := engine + "-ha-multi-az"
		if plans[plan] == "" {
			b.Fatalf("no plan %s in the catalog", plan)
		}
		var acc instanceAccepted
		if err := api.Do(ctx, http.MethodPost, "/api/v1/instances", map[string]any{"name": "bench-" + engine, "plan_id": plans[plan]}, &acc, http.StatusAccepted); err != nil {
			b.Fatal(err)
		}
		orders = append(orders, ordered{engine, acc})
		id := acc.Instance.ID
		b.Cleanup(func() { benchDelete(b, api, id) })
	}
	for _, o := range orders {
		if err := benchWaitOperation(ctx, api, o.acc.OperationID, readyTimeout); err != nil {
			b.Fatal(err)
		}
	}
	for _, o := range orders {
		id := o.acc.Instance.ID
		if _, err := api.Failovers(ctx, id); err != nil {
			var ae *drill.APIError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				b.Fatalf("the failover API is missing: GET /api/v1/instances/%s/failovers answered 404 (%s); the Canopy side needs services/failover (issue 11)", id, ae.Body)
			}
			b.Fatalf("failover history of %s: %v", id, err)
		}
		var bd binding
		if err := api.Do(ctx, http.MethodPost, "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "bench"}, &bd, http.StatusCreated); err != nil {
			b.Fatal(err)
		}
		sum, err := benchCanopyDrills(ctx, p, api, o.engine, id, bd, drills)
		if err != nil {
			b.Fatalf("canopy %s: %v", o.engine, err)
		}
		if o.engine == "redis" {
			redisSum = sum
		} else {
			mysqlSum = sum
		}
	}
	return redisSum, mysqlSum
}

// benchCanopyDrills drills one instance drills times: kill -9 of the primary's
// process, the writer's figures beside the failover record's, the hold-off
// acknowledged, and the old primary back as a read-only replica before
// the next drill.
func benchCanopyDrills(ctx context.Context, p *platform, api *drill.API, engine, id string, bd binding, drills int) (drill.Summary, error) {
	var sum drill.Summary
	fmt.Printf("\ncanopy %s (instance %s):\n", engine, id)
	loc := &drill.CanopyLocator{API: api, InstanceID: id, Timeout: 2 * time.Second}
	seen := map[string]bool{}
	var detection, promotion, recorded, routed, routedOver []time.Duration
	if fs, err := api.Failovers(ctx, id); err == nil {
		for _, f := range fs {
			seen[f.ID] = true
		}
	}
	for i := range drills {
		inst, err := api.Instance(ctx, id)
		if err != nil {
			return sum, err
		}
		var nodes []string
		for _, n := range inst.Nodes {
			nodes = append(nodes, n.Address)
		}
		var store drill.Store
		var probe drill.Prober
		label := fmt.Sprintf("d%d-%s", i+1, randHex(2))
		switch engine {
		case "redis":
			auth := drill.RedisAuth{Username: bd.Credentials.Username, Password: bd.Credentials.Password}
			store = drill.NewRedisStore("bench:"+label+":", auth, 100*time.Millisecond)
			probe = drill.NewRedisProber("bench:probe", auth)
		default:
			auth := drill.MySQLAuth{Username: bd.Credentials.Username, Password: bd.Credentials.Password, Database: bd.Credentials.Database}
			ms := drill.NewMySQLStore(auth, label)
			if err := ms.CreateTable(ctx, inst.Endpoints.Primary); err != nil {
				return sum, err
			}
			store, probe = ms, drill.NewMySQLProber(auth)
		}
		var old drill.Node
		d := drill.WithDefaults(drill.Drill{
			Store: store, Locator: loc, Prober: probe, Nodes: nodes,
			RetryInterval: 20 * time.Millisecond, Timeout: 2 * time.Minute,
			Kill: func(ctx context.Context, addr string) error {
				for _, n := range inst.Nodes {
					if n.Address == addr {
						old = n
					}
				}
				if old.ID == "" {
					return fmt.Errorf("no node of %s at %s", id, addr)
				}
				pid, err := benchListeningPID(p.StateDir, old.Port)
				if err != nil {
					return err
				}
				return syscall.Kill(pid, syscall.SIGKILL)
			},
		})
		// A second application writes through the router's read-write
		// endpoint and never looks anything up: its RTO is what a client of
		// the stable endpoint sees.
		ep, err := startEndpointWriter(ctx, engine, bd, label)
		if err != nil {
			return sum, fmt.Errorf("drill %d: %w", i+1, err)
		}
		r, err := drill.Run(ctx, d)
		epAcks := ep.stop()
		_ = store.Close()
		_ = probe.Close()
		if err != nil {
			return sum, fmt.Errorf("drill %d: %w", i+1, err)
		}
		sum.Add(r)
		rec, err := benchWaitFailoverRecord(ctx, api, id, seen)
		if err != nil {
			return sum, fmt.Errorf("drill %d: %w", i+1, err)
		}
		seen[rec.ID] = true
		detection = append(detection, time.Duration(rec.DetectionMS)*time.Millisecond)
		promotion = append(promotion, time.Duration(rec.PromotionMS)*time.Millisecond)
		recorded = append(recorded, time.Duration(rec.RTOMS)*time.Millisecond)
		epRTO := ackGap(epAcks, r.Killed)
		routed = append(routed, epRTO)
		routedOver = append(routedOver, epRTO-time.Duration(rec.RTOMS)*time.Millisecond)
		fmt.Printf("           router rw endpoint %s: rto=%sms (the record's rto + %sms)\n", bd.Credentials.Endpoints.RW, drill.MS(epRTO),
			drill.MS(epRTO-time.Duration(rec.RTOMS)*time.Millisecond))
		fmt.Printf("  drill %d: %s\n           record %s %s %s %s -> %s: detection=%dms promotion=%dms re-point+rest=%dms rto=%dms (writer: %s)\n",
			i+1, r, rec.ID, rec.Kind, rec.Problem, rec.OldPrimary, rec.NewPrimary, rec.DetectionMS, rec.PromotionMS, rec.RTOMS-rec.DetectionMS-rec.PromotionMS, rec.RTOMS, drill.MS(r.RTO)+"ms")
		if err := api.Do(ctx, http.MethodPost, "/api/v1/instances/"+id+"/failovers/"+rec.ID+"/acknowledge", map[string]any{}, nil, 0); err != nil {
			return sum, fmt.Errorf("drill %d: acknowledge the hold-off: %w", i+1, err)
		}
		if err := benchWaitRejoined(ctx, api, engine, bd, id, old); err != nil {
			return sum, fmt.Errorf("drill %d: %w", i+1, err)
		}
	}
	fmt.Printf("failover canopy %s rto %s\n", engine, sum)
	fmt.Printf("failover canopy %s record medians: detection=%s ms promotion=%s ms rto=%s ms (writer-measured rto median=%s ms)\n", engine,
		drill.MS(drill.Median(detection)), drill.MS(drill.Median(promotion)), drill.MS(drill.Median(recorded)), drill.MS(sum.Median()))
	fmt.Printf("failover canopy %s through the router's rw endpoint: client rto median=%s ms, over the failover's own rto median=%s ms max=%s ms (goal ≤200 ms)\n",
		engine, drill.MS(drill.Median(routed)), drill.MS(drill.Median(routedOver)), drill.MS(slices.Max(routedOver)))
	return sum, nil
}

// endpointLocator always names the router's read-write endpoint.
type endpointLocator string

func (e endpointLocator) Primary(context.Context) (string, error) { return string(e), nil }

// endpointWriter writes through the rw endpoint for the length of a drill.
type endpointWriter struct {
	w     *drill.Writer
	store drill.Store
	stopF context.CancelFunc
	done  chan struct{}
}

// startEndpointWriter starts a writer on the binding's rw endpoint that
// retries every 5 ms on the same address.
func startEndpointWriter(ctx context.Context, engine string, bd binding, label string) (*endpointWriter, error) {
	rw := bd.Credentials.Endpoints.RW
	if rw == "" {
		return nil, errors.New("the binding has no rw endpoint (is the router running?)")
	}
	var store drill.Store
	if engine == "redis" {
		store = drill.NewRedisStore("bench:"+label+":rw:", drill.RedisAuth{Username: bd.Credentials.Username, Password: bd.Credentials.Password}, 100*time.Millisecond)
	} else {
		ms := drill.NewMySQLStore(drill.MySQLAuth{Username: bd.Credentials.Username, Password: bd.Credentials.Password, Database: bd.Credentials.Database}, label+"rw")
		if err := ms.CreateTable(ctx, rw); err != nil {
			return nil, err
		}
		store = ms
	}
	w, err := drill.NewWriter(store, endpointLocator(rw), 5*time.Millisecond, 5*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	wctx, stop := context.WithCancel(ctx)
	ew := &endpointWriter{w: w, store: store, stopF: stop, done: make(chan struct{})}
	go func() {
		defer close(ew.done)
		_ = w.Run(wctx)
	}()
	return ew, nil
}

// stop ends the writer and returns its acknowledged writes.
func (e *endpointWriter) stop() []drill.Ack {
	e.stopF()
	<-e.done
	_ = e.store.Close()
	return e.w.Acks()
}

// ackGap is the time between the last write acknowledged before at and the
// first one after it.
func ackGap(acks []drill.Ack, at time.Time) time.Duration {
	var before time.Time
	for _, a := range acks {
		if !a.At.After(at) {
			before = a.At
			continue
		}
		if before.IsZero() {
			return 0
		}
		return a.At.Sub(before)
	}
	return 0
}

// benchWaitFailoverRecord waits for a completed failover not in seen.
func benchWaitFailoverRecord(ctx context.Context, api *drill.API, id string, seen map[string]bool) (drill.Failover, error) {
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		fs, err := api.Failovers(ctx, id)
		if err != nil {
			last = err.Error()
		}
		for _, f := range fs {
			if seen[f.ID] {
				continue
			}
			last = fmt.Sprintf("%s is %s", f.ID, f.State)
			switch f.State {
			case "completed":
				return f, nil
			case "failed":
				return f, fmt.Errorf("the failover %s of %s failed (problem %s, old primary %s, new primary %s)", f.ID, id, f.Problem, f.OldPrimary, f.NewPrimary)
			}
		}
		if err := benchSleep(ctx, 100*time.Millisecond); err != nil {
			return drill.Failover{}, err
		}
	}
	return drill.Failover{}, fmt.Errorf("no completed failover of %s in the history within 30s (last: %s)", id, last)
}

// benchWaitRejoined waits until the old primary is back: a running replica in
// the API that refuses the binding's writes.
func benchWaitRejoined(ctx context.Context, api *drill.API, engine string, bd binding, id string, old drill.Node) error {
	var probe drill.Prober
	if engine == "redis" {
		probe = drill.NewRedisProber("bench:probe", drill.RedisAuth{Username: bd.Credentials.Username, Password: bd.Credentials.Password})
	} else {
		probe = drill.NewMySQLProber(drill.MySQLAuth{Username: bd.Credentials.Username, Password: bd.Credentials.Password, Database: bd.Credentials.Database})
	}
	defer probe.Close()
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		inst, err := api.Instance(ctx, id)
		if err != nil {
			last = err.Error()
		}
		for _, n := range inst.Nodes {
			if n.ID != old.ID {
				continue
			}
			last = fmt.Sprintf("node %s is %s %s", n.ID, n.Role, n.State)
			if n.Role == "replica" && n.State == "running" {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				w := probe.Writable(pctx, n.Address)
				cancel()
				if !w {
					return nil
				}
				last += ", and accepts writes"
			}
		}
		if err := benchSleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the old primary %s (%s) was not back as a read-only replica within a minute (last: %s)", old.ID, old.Address, last)
}

// benchListeningPID finds the node process listening on port among the
// processes working under the platform's node directories: the socket's
// inode from /proc/net/tcp{,6}, then the process holding it. It is
// independent of the platform under test.
func benchListeningPID(stateDir string, port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			// sl local_address rem_address st ... inode (field 9); st 0A = LISTEN.
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("nothing listens on port %d", port)
	}
	for _, pid := range nodeProcesses(stateDir) {
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
			if err == nil && inodes[link] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no node process under %s listens on port %d", stateDir, port)
}

// benchWaitOperation polls an operation until it succeeds.
func benchWaitOperation(ctx context.Context, api *drill.API, id string, timeout time.Duration) error {
	var op operation
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if err := api.Do(ctx, http.MethodGet, "/api/v1/operations/"+id, nil, &op, http.StatusOK); err != nil {
			return err
		}
		switch op.State {
		case "succeeded":
			return nil
		case "failed":
			return fmt.Errorf("operation %s (%s) failed at step %q: %s", id, op.Type, op.Step, op.Error)
		}
		if err := benchSleep(ctx, operationInterval); err != nil {
			return err
		}
	}
	return fmt.Errorf("operation %s did not succeed within %s (%s, step %q)", id, timeout, op.State, op.Step)
}

// benchDelete deletes an instance and waits for the delete; errors are
// reported, not fatal (it runs in cleanup).
func benchDelete(b *testing.B, api *drill.API, id string) {
	ctx := context.Background()
	var acc instanceAccepted
	if err := api.Do(ctx, http.MethodDelete, "/api/v1/instances/"+id, nil, &acc, http.StatusAccepted); err != nil {
		b.Errorf("delete %s: %v", id, err)
		return
	}
	if err := benchWaitOperation(ctx, api, acc.OperationID, deleteTimeout); err != nil {
		b.Errorf("delete %s: %v", id, err)
	}
}

func benchSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// benchQuietRedisLog drops go-redis's log lines.
type benchQuietRedisLog struct{}

func (benchQuietRedisLog) Printf(context.Context, string, ...any) {}
