package scheduler_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/nettune"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/detector"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/fakenode"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe/checker"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/scheduler"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

// helperEnv makes the test binary a fake-node server (see TestFakeNodeHelper).
const helperEnv = "CANOPY_HC_FAKENODE_LISTENERS"

// TestFakeNodeHelper is not a test: when the benchmark re-executes the test
// binary with helperEnv set, it serves that many RESP listeners in this
// separate process (so the benchmark's CPU figure is the checker's alone),
// prints their addresses and serves until its stdin closes.
func TestFakeNodeHelper(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(helperEnv))
	if n == 0 {
		t.Skip("helper process only")
	}
	if _, err := fakenode.RaiseFileLimit(); err != nil {
		fmt.Println("ERR", err)
		return
	}
	var servers []*fakenode.Server
	for i := 0; i < n; i++ {
		s, err := fakenode.Listen(fakenode.RESP, "127.0.0.1:0")
		if err != nil {
			fmt.Println("ERR", err)
			return
		}
		servers = append(servers, s)
		fmt.Println("ADDR", s.Addr())
	}
	fmt.Println("READY")
	signal.Ignore(syscall.SIGPIPE)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	for _, s := range servers {
		s.Close()
	}
}

// startHelper runs the fake nodes in a child process and returns their
// addresses; the child is killed by pid when the benchmark ends.
func startHelper(b *testing.B, listeners int) []string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFakeNodeHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(listeners), "GOMAXPROCS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	var addrs []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ADDR "):
			addrs = append(addrs, strings.TrimPrefix(line, "ADDR "))
		case line == "READY":
			go func() { // drain the rest (test framework output)
				for sc.Scan() {
				}
			}()
			return addrs
		case strings.HasPrefix(line, "ERR "):
			b.Fatalf("fake node helper: %s", line)
		}
	}
	b.Fatalf("fake node helper exited before READY: %v", sc.Err())
	return nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// connectRate measures raw loopback TCP connects per second (connect and
// close, no payload) against addrs for d with the given parallelism: the
// ceiling a checker that re-dials for every probe could reach.
func connectRate(addrs []string, d time.Duration, parallel int) float64 {
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	dialer := net.Dialer{Timeout: time.Second}
	for i := 0; i < parallel; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := i; time.Now().Before(deadline); j++ {
				c, err := dialer.Dial("tcp", addrs[j%len(addrs)])
				if err != nil {
					continue
				}
				c.Close()
				n.Add(1)
			}
		}(i)
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// benchTask is the real per-target work: a Redis probe on the kept monitor
// connection, judged and fed to the node's state machine.
type benchTask struct {
	checker probe.Checker
	machine *detector.Machine
	expect  detector.Expectation
	rules   []detector.Rule
	timeout time.Duration
	runs    atomic.Int64
	ok      *atomic.Int64
	failed  *atomic.Int64
	reasons *sync.Map
}

func (t *benchTask) Run(ctx context.Context, due time.Time) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	n := t.runs.Add(1)
	res := t.checker.Check(ctx, n%target.DefaultSampleEvery == 0)
	cancel()
	if res.OK {
		t.ok.Add(1)
	} else {
		t.failed.Add(1)
		t.reasons.Store(res.Reason, res.Detail)
	}
	t.machine.Observe(detector.Judge(t.rules, t.expect, res), res.Started)
}

func (t *benchTask) Stop() { _ = t.checker.Close() }

// BenchmarkProbe10k probes 10,000 Redis targets every second for 30 s on one
// scheduler and reports probes per second, lateness against schedule and CPU,
// next to the raw loopback TCP connect rate measured in the same run.
//
// The targets are 10,000 distinct target ids with 10,000 distinct kept
// connections, spread over 100 RESP listener ports served by a child process
// (distinct ports for every target would need 20,000 descriptors in the
// child with its connections, above the usual limit). Knobs:
// CANOPY_BENCH_HC_TARGETS, CANOPY_BENCH_HC_SECONDS, CANOPY_BENCH_HC_LISTENERS,
// CANOPY_BENCH_HC_WORKERS.
func BenchmarkProbe10k(b *testing.B) {
	targets := envInt("CANOPY_BENCH_HC_TARGETS", 10000)
	seconds := envInt("CANOPY_BENCH_HC_SECONDS", 30)
	listeners := envInt("CANOPY_BENCH_HC_LISTENERS", 100)
	workers := envInt("CANOPY_BENCH_HC_WORKERS", 512)
	if limit, err := fakenode.RaiseFileLimit(); err != nil || limit < uint64(targets)+1000 {
		b.Skipf("RLIMIT_NOFILE %d too low for %d kept connections (%v)", limit, targets, err)
	}
	addrs := startHelper(b, listeners)
	prof, err := nettune.Default(nettune.SingleAZ)
	if err != nil {
		b.Fatal(err)
	}
	dial := prof.Dialer.DialContext

	for i := 0; i < b.N; i++ {
		ceiling := connectRate(addrs, 2*time.Second, 64)

		var mu sync.Mutex
		late := make([]time.Duration, 0, targets*(seconds+2))
		measuring := atomic.Bool{}
		s, err := scheduler.New(scheduler.Config{Workers: workers}, slog.New(slog.DiscardHandler), nil,
			func(_ time.Time, l time.Duration) {
				if !measuring.Load() {
					return
				}
				mu.Lock()
				late = append(late, l)
				mu.Unlock()
			})
		if err != nil {
			b.Fatal(err)
		}
		var okN, failN atomic.Int64
		var reasons sync.Map
		tasks := make([]*benchTask, targets)
		policy := target.DefaultPolicy()
		for j := range tasks {
			c, err := checker.New(probe.Spec{Engine: probe.EngineRedis, Address: addrs[j%len(addrs)], Username: "canopy-monitor", Password: "x"}, dial)
			if err != nil {
				b.Fatal(err)
			}
			tg := target.Target{NodeID: fmt.Sprintf("node-%05d", j), Policy: policy}
			tasks[j] = &benchTask{checker: c, machine: detector.NewMachine(policy.Fall, policy.Rise),
				expect: detector.Expectation{Engine: target.EngineRedis, Role: target.RolePrimary}, rules: detector.Rules(),
				timeout: policy.Timeout, ok: &okN, failed: &failN, reasons: &reasons}
			if err := s.Add(scheduler.Spec{ID: tg.NodeID, Interval: policy.Interval, Phase: tg.Phase(), Task: tasks[j]}); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = s.Run(ctx); close(done) }()

		// Warm-up: the first second dials every monitor connection.
		time.Sleep(2 * time.Second)
		runs0, skipped0 := s.Counts()
		ok0, fail0 := okN.Load(), failN.Load()
		perTarget0 := make([]int64, targets)
		for j, t := range tasks {
			perTarget0[j] = t.runs.Load()
		}
		measuring.Store(true)
		cpu0, wall0 := cpuTime(), time.Now()
		time.Sleep(time.Duration(seconds) * time.Second)
		cpu1, wall1 := cpuTime(), time.Now()
		measuring.Store(false)
		runs1, skipped1 := s.Counts()
		ok1, fail1 := okN.Load(), failN.Load()
		minRuns := int64(1 << 62)
		for j, t := range tasks {
			minRuns = min(minRuns, t.runs.Load()-perTarget0[j])
		}
		cancel()
		<-done

		wall := wall1.Sub(wall0)
		rate := float64(runs1-runs0) / wall.Seconds()
		cores := float64(cpu1-cpu0) / float64(wall)
		mu.Lock()
		slices.Sort(late)
		pct := func(p float64) time.Duration {
			if len(late) == 0 {
				return 0
			}
			return late[min(len(late)-1, int(float64(len(late))*p))]
		}
		p50, p99, p999, worst := pct(0.50), pct(0.99), pct(0.999), pct(1)
		mu.Unlock()

		fmt.Printf("\nhealthcheck probe benchmark: %d Redis targets (distinct ids and kept connections over %d listener ports in a child process), interval %s, %d workers, %s measured\n",
			targets, len(addrs), policy.Interval, workers, wall.Round(time.Millisecond))
		fmt.Printf("  probes/s achieved           %10.0f  (target %d/s; ok %d, failed %d, skipped slots %d)\n",
			rate, targets, ok1-ok0, fail1-fail0, skipped1-skipped0)
		fmt.Printf("  every target probed         min %d probes per target in %d s\n", minRuns, seconds)
		fmt.Printf("  lateness vs schedule        p50 %s  p99 %s  p99.9 %s  max %s\n", p50, p99, p999, worst)
		fmt.Printf("  CPU (getrusage self)        %.3f cores (%.1f µs per probe)\n", cores, float64(cpu1-cpu0)/float64(time.Microsecond)/float64(runs1-runs0))
		fmt.Printf("  raw loopback TCP connects/s %10.0f  (ceiling, connect+close, 64 dialers, same run)\n", ceiling)
		fmt.Printf("  ratio probes/s ÷ connects/s %10.2f\n", rate/ceiling)
		reasons.Range(func(k, v any) bool { fmt.Printf("  failure %s: %v\n", k, v); return true })
		b.ReportMetric(rate, "probes/s")
		b.ReportMetric(float64(p50.Microseconds()), "p50-late-µs")
		b.ReportMetric(float64(p99.Microseconds()), "p99-late-µs")
		b.ReportMetric(cores, "cores")
		b.ReportMetric(ceiling, "connects/s")
	}
}
