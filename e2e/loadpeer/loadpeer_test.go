package loadpeer

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseRedisCSV(t *testing.T) {
	const redis7 = `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","71428.57","0.081","0.024","0.079","0.119","0.231","0.399"
"GET","90909.09","0.069","0.032","0.063","0.111","0.247","0.359"
`
	tests := []struct {
		name    string
		in      string
		want    []Result
		wantErr string
	}{
		{name: "redis 7", in: redis7, want: []Result{
			{Name: "redis SET P16", OpsPerSec: 71428.57, P50: 79 * time.Microsecond, P99: 231 * time.Microsecond},
			{Name: "redis GET P16", OpsPerSec: 90909.09, P50: 63 * time.Microsecond, P99: 247 * time.Microsecond},
		}},
		{name: "redis 6 has no percentiles", in: "\"test\",\"rps\"\n\"SET\",\"1000.0\"\n", wantErr: "no p50_latency_ms column"},
		{name: "header only", in: strings.SplitAfter(redis7, "\n")[0], wantErr: "no test"},
		{name: "empty", in: "", wantErr: "csv header"},
		{name: "bad rps", in: strings.Replace(redis7, "71428.57", "n/a", 1), wantErr: `rps "n/a"`},
		{name: "short row", in: redis7 + "\"INCR\",\"5\"\n", wantErr: "2 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRedisCSV(strings.NewReader(tt.in), "P16")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				// Milliseconds with three decimals: allow float rounding.
				if got[i].Name != tt.want[i].Name || got[i].OpsPerSec != tt.want[i].OpsPerSec ||
					absDur(got[i].P50-tt.want[i].P50) > time.Nanosecond || absDur(got[i].P99-tt.want[i].P99) > time.Nanosecond {
					t.Errorf("result %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func absDur(d time.Duration) time.Duration { return max(d, -d) }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{name: "empty", q: 0.99, want: 0},
		{name: "one", sorted: []time.Duration{7}, q: 0.99, want: 7},
		{name: "p50 of 100", sorted: hundred, q: 0.50, want: 50 * time.Millisecond},
		{name: "p99 of 100", sorted: hundred, q: 0.99, want: 99 * time.Millisecond},
		{name: "p100 of 100", sorted: hundred, q: 1, want: 100 * time.Millisecond},
		{name: "p99 of 101 is the top", sorted: append(hundred[:100:100], time.Second), q: 0.99, want: 100 * time.Millisecond},
		{name: "p50 of 3", sorted: []time.Duration{1, 2, 3}, q: 0.5, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("percentile(%d samples, %v) = %v, want %v", len(tt.sorted), tt.q, got, tt.want)
			}
		})
	}
}

func TestRenderHAProxyConfig(t *testing.T) {
	cfg, err := renderHAProxyConfig(haproxyParams{MaxConn: 4096, Threads: 2, Listen: "127.0.0.1:12345", Backend: "127.0.0.1:6380"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"maxconn 4096", "nbthread 2", "mode tcp", "timeout connect 2s", "timeout client 1h", "timeout server 1h",
		"bind 127.0.0.1:12345", "server backend 127.0.0.1:6380\n"} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	// A health check would add traffic to the backend the direct leg does not see.
	if bytes.Contains(cfg, []byte(" check")) {
		t.Errorf("config has a health check:\n%s", cfg)
	}
}

func TestCompare(t *testing.T) {
	legs := []Leg{
		{Name: "direct", Results: []Result{
			{Name: "redis SET P1", OpsPerSec: 1000, P50: time.Millisecond, P99: 2 * time.Millisecond},
			{Name: "mysql insert c50", OpsPerSec: 500, P50: time.Millisecond, P99: 4 * time.Millisecond},
		}},
		{Name: "haproxy", Results: []Result{
			{Name: "redis SET P1", OpsPerSec: 800, P50: time.Millisecond, P99: 3 * time.Millisecond},
			{Name: "mysql insert c50", OpsPerSec: 400, P50: time.Millisecond, P99: 5 * time.Millisecond},
		}},
		{Name: "router", Results: []Result{
			{Name: "redis SET P1", OpsPerSec: 760, P50: time.Millisecond, P99: 2500 * time.Microsecond},
		}},
	}
	var out bytes.Buffer
	cs := compare(&out, legs, []Ratio{{Of: "haproxy", Over: "direct"}, {Of: "router", Over: "haproxy"}})
	want := []Comparison{
		{Workload: "redis SET P1", Of: "haproxy", Over: "direct", Throughput: 0.8, AddedP99Of: time.Millisecond},
		{Workload: "redis SET P1", Of: "router", Over: "haproxy", Throughput: 0.95, AddedP99Of: 500 * time.Microsecond, AddedP99Over: time.Millisecond},
		{Workload: "mysql insert c50", Of: "haproxy", Over: "direct", Throughput: 0.8, AddedP99Of: time.Millisecond},
	}
	if len(cs) != len(want) {
		t.Fatalf("comparisons %+v, want %+v", cs, want)
	}
	for i := range cs {
		if cs[i].Workload != want[i].Workload || cs[i].Of != want[i].Of || cs[i].Over != want[i].Over ||
			cs[i].Throughput < want[i].Throughput-1e-9 || cs[i].Throughput > want[i].Throughput+1e-9 ||
			cs[i].AddedP99Of != want[i].AddedP99Of || cs[i].AddedP99Over != want[i].AddedP99Over {
			t.Errorf("comparison %d = %+v, want %+v", i, cs[i], want[i])
		}
	}
	table := out.String()
	for _, want := range []string{"+p99 vs direct ms", "router/haproxy", "0.950×", "+0.500 vs +1.000", "+1.000"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	// The router has no MySQL result: a dash row, no ratio.
	if !regexp.MustCompile(`router\s+-\s+-`).MatchString(table) {
		t.Errorf("table has no dash row for the router's missing workload:\n%s", table)
	}
	if got := metricUnit(cs[1]); got != "router/haproxy-redis-SET-P1" {
		t.Errorf("metric unit %q", got)
	}
}

func TestCompareDefaultsToBaseline(t *testing.T) {
	legs := []Leg{
		{Name: "direct", Results: []Result{{Name: "w", OpsPerSec: 100}}},
		{Name: "haproxy", Results: []Result{{Name: "w", OpsPerSec: 50}}},
	}
	cs := compare(&bytes.Buffer{}, legs, nil)
	if len(cs) != 1 || cs[0].Of != "haproxy" || cs[0].Over != "direct" || cs[0].Throughput != 0.5 {
		t.Fatalf("comparisons %+v, want haproxy/direct 0.5", cs)
	}
}

func TestMedianResult(t *testing.T) {
	rs := []Result{
		{Name: "w", OpsPerSec: 300, P50: 1, P99: 30},
		{Name: "w", OpsPerSec: 100, P50: 3, P99: 10},
		{Name: "w", OpsPerSec: 200, P50: 2, P99: 90},
	}
	if got, want := medianResult(rs), (Result{Name: "w", OpsPerSec: 200, P50: 2, P99: 30}); got != want {
		t.Errorf("median of 3 = %+v, want %+v", got, want)
	}
	if got, want := medianResult(rs[:2]), (Result{Name: "w", OpsPerSec: 200, P50: 2, P99: 20}); got != want {
		t.Errorf("median of 2 = %+v, want %+v", got, want)
	}
}
