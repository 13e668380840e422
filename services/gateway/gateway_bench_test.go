package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// BenchmarkCatalogThroughGateway compares GET /api/v1/catalog/services sent
// through the gateway (API key auth, Redis rate limit, signing, proxy) with
// the same request sent straight to the upstream, in the same run. The
// upstream is a stand-in returning a fixed ~2 KB JSON catalog (services never
// import each other, so the real catalog is not used here). It runs a fixed
// number of requests regardless of b.N and reports:
//   - closed-loop peak: requests/s, p50, p99 for direct and gateway, and the ratio;
//   - open-loop at half the gateway's peak: p99 of both and the p99 the gateway adds.
//
// Knobs: CANOPY_BENCH_REQUESTS (default 40000), CANOPY_BENCH_CLIENTS (default 32).
func BenchmarkCatalogThroughGateway(b *testing.B) {
	total := envInt("CANOPY_BENCH_REQUESTS", 40000)
	clients := envInt("CANOPY_BENCH_CLIENTS", 32)
	body := []byte(`{"items":[` + strings.TrimSuffix(strings.Repeat(`{"id":"mysql","name":"MySQL","engine":"mysql","versions":["8.0","8.4"],"plans":[{"id":"mysql-single-az-dev","name":"single-az dev","deployment_mode":"single-az","nodes":1,"vcpu":1,"memory_mb":2048,"storage_gb":20}]},`, 8), ",") + `],"next_cursor":null}`)
	up := httptest.NewServer(tenancy.Middleware([]byte(testSecret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		_, _ = w.Write(body)
	})))
	b.Cleanup(up.Close)
	e := newEnv(b, func(c *gateway.Config) {
		c.CatalogURL = up.URL
		c.AccessLog = true // to a discarding logger
	})
	r := e.do("POST", "/api/v1/tenants", e.adminKey, map[string]any{"id": "bench", "name": "Bench",
		"rate_limit": map[string]any{"requests_per_second": 1_000_000, "burst": 1_000_000}})
	if r.StatusCode != http.StatusCreated {
		b.Fatalf("create tenant: %d %s", r.StatusCode, r.Body)
	}
	key := e.do("POST", "/api/v1/tenants/bench/api-keys", e.adminKey, map[string]any{"name": "bench", "role": "tenant-viewer"}).json(b)["key"].(string)

	direct := load{url: up.URL + "/api/v1/catalog/services", clients: clients, header: directHeader(up.URL)}
	through := load{url: e.base + "/api/v1/catalog/services", clients: clients, auth: "Bearer " + key}
	for _, l := range []*load{&direct, &through} {
		l.run(b, total/10, 0) // warm up connections, caches and the token batch
	}
	b.ResetTimer()
	d := direct.run(b, total, 0)
	g := through.run(b, total, 0)
	half := g.rps / 2
	dh := direct.run(b, total/2, half)
	gh := through.run(b, total/2, half)
	b.StopTimer()

	fmt.Fprintf(os.Stdout, "\nGET /api/v1/catalog/services, %d requests, %d clients, loopback, stand-in upstream (%d B body)\n", total, clients, len(body))
	fmt.Fprintf(os.Stdout, "  %-26s %10s %10s %10s %6s\n", "", "req/s", "p50", "p99", "errors")
	fmt.Fprintf(os.Stdout, "  %-26s %10.0f %10s %10s %6d\n", "direct (peak)", d.rps, d.p50, d.p99, d.errors)
	fmt.Fprintf(os.Stdout, "  %-26s %10.0f %10s %10s %6d\n", "gateway (peak)", g.rps, g.p50, g.p99, g.errors)
	fmt.Fprintf(os.Stdout, "  %-26s %10.2fx\n", "gateway/direct throughput", g.rps/d.rps)
	fmt.Fprintf(os.Stdout, "  %-26s %10.0f %10s %10s %6d\n", "direct @ half gw peak", dh.rps, dh.p50, dh.p99, dh.errors)
	fmt.Fprintf(os.Stdout, "  %-26s %10.0f %10s %10s %6d\n", "gateway @ half gw peak", gh.rps, gh.p50, gh.p99, gh.errors)
	fmt.Fprintf(os.Stdout, "  %-26s %10s\n\n", "added p99 @ half peak", gh.p99-dh.p99)
	b.ReportMetric(d.rps, "direct-req/s")
	b.ReportMetric(g.rps, "gateway-req/s")
	b.ReportMetric(g.rps/d.rps, "ratio")
	b.ReportMetric(float64((gh.p99 - dh.p99).Microseconds()), "added-p99-µs@half")
	if d.errors+g.errors+dh.errors+gh.errors > 0 {
		b.Errorf("non-200 answers: direct %d, gateway %d, half %d/%d", d.errors, g.errors, dh.errors, gh.errors)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// directHeader signs the identity the upstream expects, as the gateway would.
func directHeader(string) http.Header {
	h := http.Header{}
	tenancy.Sign(h, []byte(testSecret), tenancy.Principal{Tenant: "bench", Role: tenancy.RoleTenantViewer, Subject: "apikey:x"}, time.Now())
	return h
}

type load struct {
	url     string
	auth    string
	header  http.Header
	clients int
	client  *http.Client
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int64
}

// run sends n requests from l.clients goroutines; with rate > 0 the requests
// are paced (open loop) at rate requests/s in total.
func (l *load) run(b *testing.B, n int, rate float64) result {
	if l.client == nil {
		l.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: l.clients * 2, MaxIdleConns: l.clients * 2, DisableCompression: true}}
	}
	lat := make([]time.Duration, n)
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	for range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, l.url, nil)
			for k, v := range l.header {
				req.Header[k] = v
			}
			if l.auth != "" {
				req.Header.Set("Authorization", l.auth)
			}
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if interval > 0 {
					if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
						time.Sleep(d) // pacing the open-loop load, not waiting for a condition
					}
				}
				t0 := time.Now()
				resp, err := l.client.Do(req)
				if err != nil {
					errs.Add(1)
					lat[i] = time.Since(t0)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return result{rps: float64(n) / elapsed.Seconds(), p50: lat[n/2], p99: lat[n*99/100], errors: errs.Load()}
}
