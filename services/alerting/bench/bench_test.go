package alertbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/devkafka"
)

// Knobs (environment):
//
//	CANOPY_BENCH_ALERTING_SECONDS  seconds per step (default 10)
//	CANOPY_BENCH_ALERTING_RATES    the rate ladder, alerts/s, comma separated
//	CANOPY_BENCH_ALERTING_CANOPY   0: Alertmanager only; 1: Canopy required;
//	                               unset: Canopy when cmd/alerting builds
//	CANOPY_BENCH_ALERTING_LOG      1: print every step and failed servers' logs
const defaultRates = "250,500,1000,1500,2000,3000,4000,6000,8000,12000,16000"

// benchSecret is the internal secret the bench gives Canopy and signs with.
const benchSecret = "alertbench-internal-secret-0123456789"

// BenchmarkAlerting is issue 16's peer benchmark: for each stream shape
// (a group per alert; 100 groups) it climbs a rate ladder on Debian's
// prometheus-alertmanager and on Canopy's alerting service, each fresh per
// step and delivering to the same local receiver with group_by [alertname,
// group], group_wait 1s, group_interval 1m, and prints the highest rate each
// keeps up with (every alert delivered within group_wait + 2s), its CPU per
// alert and POST → webhook p99, and Canopy's ratios to Alertmanager.
func BenchmarkAlerting(b *testing.B) {
	am := Alertmanager{Binary: os.Getenv("CANOPY_BENCH_ALERTMANAGER")}
	if am.Binary == "" {
		am.Binary = AlertmanagerBinary
	}
	if _, err := exec.LookPath(am.Binary); err != nil {
		b.Skipf("%s not installed (scripts/bench-alerting.sh installs Debian's package): %v", am.Binary, err)
	}
	ctx := context.Background()
	seconds := envInt("CANOPY_BENCH_ALERTING_SECONDS", 10)
	rates, err := parseRates(envStr("CANOPY_BENCH_ALERTING_RATES", defaultRates))
	if err != nil {
		b.Fatal(err)
	}
	var log io.Writer
	if os.Getenv("CANOPY_BENCH_ALERTING_LOG") == "1" {
		log = os.Stdout
	}
	rcv, err := StartReceiver(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rcv.Close() })
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}

	targets := []Target{am}
	if c, ok := canopyTarget(b, ctx); ok {
		targets = append(targets, c)
	}
	base := StepConfig{
		Duration: time.Duration(seconds) * time.Second,
		Timers:   Timers{GroupWait: time.Second, GroupInterval: time.Minute, RepeatInterval: 4 * time.Hour},
		Batch:    64, Workers: 16,
	}
	type key struct{ target, mode string }
	best := map[key]StepResult{}
	var all []StepResult
	for b.Loop() {
		for _, mode := range []Mode{DistinctGroups, HundredGroups} {
			for _, t := range targets {
				cfg := base
				cfg.Mode = mode
				steps, top, ok, err := Ladder(ctx, t, rcv, client, cfg, rates, log)
				all = append(all, steps...)
				if err != nil {
					b.Fatal(err)
				}
				if ok {
					best[key{t.Name(), mode.Name}] = top
				}
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	fmt.Printf("\nalerting benchmark: %ds steps, group_wait %s, kept up = every alert delivered within group_wait + %s\n",
		seconds, base.Timers.GroupWait, Settle)
	for _, s := range all {
		fmt.Println("  " + s.Line())
	}
	fmt.Printf("\n%-16s %-13s %12s %14s %18s %10s\n", "stream", "server", "max alerts/s", "cpu/alert", "cpu/alert +mariadb", "p99")
	for _, mode := range []Mode{DistinctGroups, HundredGroups} {
		for _, t := range targets {
			r, ok := best[key{t.Name(), mode.Name}]
			if !ok {
				fmt.Printf("%-16s %-13s %12s\n", mode.Name, t.Name(), "none kept up")
				continue
			}
			fmt.Printf("%-16s %-13s %12d %14s %18s %10s\n", mode.Name, t.Name(), r.Rate, us(r.CPUPerAlert),
				us(r.CPUPerAlert+r.DepsCPUPerAlert), ms(r.P99))
			metric := strings.ReplaceAll(mode.Name, " ", "_")
			b.ReportMetric(float64(r.Rate), t.Name()+"_"+metric+"_alerts/s")
			b.ReportMetric(float64(r.CPUPerAlert)/1e3, t.Name()+"_"+metric+"_cpu_µs/alert")
			b.ReportMetric(float64(r.P99)/1e6, t.Name()+"_"+metric+"_p99_ms")
		}
		a, okA := best[key{"alertmanager", mode.Name}]
		c, okC := best[key{"canopy", mode.Name}]
		if okA && okC {
			goal := base.Timers.GroupWait + 100*time.Millisecond
			fmt.Printf("%-16s canopy/alertmanager: throughput %.2fx (goal >= 3x), cpu/alert %.2fx (with mariadbd %.2fx; goal <= 0.33x), p99 %s vs goal %s (%s)\n",
				mode.Name, float64(c.Rate)/float64(a.Rate),
				float64(c.CPUPerAlert)/float64(a.CPUPerAlert), float64(c.CPUPerAlert+c.DepsCPUPerAlert)/float64(a.CPUPerAlert),
				ms(c.P99), ms(goal), verdict(c.P99 <= goal))
			metric := strings.ReplaceAll(mode.Name, " ", "_")
			b.ReportMetric(float64(c.Rate)/float64(a.Rate), "x_throughput_"+metric)
			b.ReportMetric(float64(c.CPUPerAlert)/float64(a.CPUPerAlert), "x_cpu_"+metric)
		}
	}
}

// canopyTarget builds cmd/alerting and starts the embedded Kafka broker;
// ok is false when the Canopy side does not run.
func canopyTarget(b *testing.B, ctx context.Context) (Target, bool) {
	want := os.Getenv("CANOPY_BENCH_ALERTING_CANOPY")
	if want == "0" {
		return nil, false
	}
	bin, err := BuildCanopy(ctx, "..", b.TempDir())
	if err != nil {
		if want == "1" {
			b.Fatalf("canopy side: %v", err)
		}
		fmt.Printf("alerting benchmark: Canopy side not run (set CANOPY_BENCH_ALERTING_CANOPY=1 to require it): %v\n", firstLine(err.Error()))
		return nil, false
	}
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 3}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(broker.Close)
	return Canopy{Binary: bin, DSN: envStr("CANOPY_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/"), Brokers: []string{broker.Addr()}, Secret: benchSecret}, true
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func parseRates(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("CANOPY_BENCH_ALERTING_RATES: bad rate %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
