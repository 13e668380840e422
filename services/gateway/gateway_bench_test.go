package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// BenchmarkCatalogThroughGateway compares GET /api/v1/catalog/services sent
// through the gateway (API key auth, Redis rate limit, signing, access log to
// a discarding logger, proxy) with the same request sent straight to the
// upstream, in the same run, and — when nginx is installed or installable —
// with nginx as a plain reverse proxy in front of the same upstream.
//
// Only the gateway runs in this process. The stand-in upstream (a fixed
// ~2 KB JSON catalog behind the same identity check a real service does) and
// the load generator are this test binary re-executed in helper modes (see
// benchHelper), so neither shares the gateway's Go runtime, scheduler or GC,
// and a -cpuprofile of this benchmark profiles the gateway alone. Every
// process still shares the machine's cores.
//
// It runs a fixed number of requests regardless of b.N and prints:
//   - closed-loop peak: requests/s, p50, p99 per path and the ratios to direct;
//   - open-loop at half the gateway's peak: p50/p99 per path and the p99 the
//     gateway (and nginx) adds over direct;
//   - the gateway's CPU time per request (and nginx's, summed over workers).
//
// Knobs: CANOPY_BENCH_REQUESTS (default 40000), CANOPY_BENCH_CLIENTS (default
// 32), CANOPY_BENCH_ROUNDS (default 3), CANOPY_BENCH_NGINX=0 skips nginx, CANOPY_BENCH_INSTALL=0 does not
// apt-get install nginx-light when it is missing.
func BenchmarkCatalogThroughGateway(b *testing.B) {
	total := envInt("CANOPY_BENCH_REQUESTS", 40000)
	clients := envInt("CANOPY_BENCH_CLIENTS", 32)
	rounds := envInt("CANOPY_BENCH_ROUNDS", 3)

	up := startHelper(b, "upstream", nil)
	upURL := "http://" + up.addr
	e := newEnv(b, func(c *gateway.Config) {
		c.CatalogURL = upURL
		c.AccessLog = true // to a discarding logger
	})
	r := e.do("POST", "/api/v1/tenants", e.adminKey, map[string]any{"id": "bench", "name": "Bench",
		"rate_limit": map[string]any{"requests_per_second": 1_000_000, "burst": 1_000_000}})
	if r.StatusCode != http.StatusCreated {
		b.Fatalf("create tenant: %d %s", r.StatusCode, r.Body)
	}
	key := e.do("POST", "/api/v1/tenants/bench/api-keys", e.adminKey, map[string]any{"name": "bench", "role": "tenant-viewer"}).json(b)["key"].(string)

	const path = "/api/v1/catalog/services"
	paths := []*benchPath{
		{name: "direct", url: upURL + path, sign: true},
		{name: "gateway", url: e.base + path, header: map[string]string{"Authorization": "Bearer " + key}, self: true},
	}
	var nginxNote string
	if os.Getenv("CANOPY_BENCH_NGINX") != "0" {
		ng, note := startNginx(b, up.addr)
		nginxNote = note
		if ng != nil {
			paths = append(paths, &benchPath{name: "nginx", url: "http://" + ng.addr + path, sign: true, nginx: ng})
		}
	}

	b.ResetTimer()
	// Rounds interleave the paths so that noise from other work on the
	// machine falls on all of them alike; per-round ratios are reported as
	// their median.
	for range rounds {
		for _, p := range paths {
			p.measure(b, benchLoad{URL: p.url, Header: p.header, Sign: p.sign, Clients: clients, Requests: total, Warmup: total / 10})
		}
	}
	d, gw := paths[0], paths[1]
	half := median(gw.peaks, func(r benchResult) float64 { return r.RPS }) / 2
	for range rounds {
		for _, p := range paths {
			p.measure(b, benchLoad{URL: p.url, Header: p.header, Sign: p.sign, Clients: clients, Requests: total / 2, Warmup: total / 20, Rate: half})
		}
	}
	b.StopTimer()

	ratio := func(p *benchPath) float64 { return medianRatio(p.peaks, d.peaks) }
	added := func(p *benchPath) time.Duration { return medianAdded(p.halves, d.halves) }
	out := os.Stdout
	fmt.Fprintf(out, "\nGET %s, loopback, stand-in upstream (%d B body), %d CPUs\n", path, len(benchBody), runtime.NumCPU())
	fmt.Fprintf(out, "load generator: this test binary in a separate process (Go net/http client), %d connections\n", clients)
	if nginxNote != "" {
		fmt.Fprintf(out, "nginx: %s\n", nginxNote)
	}
	fmt.Fprintf(out, "%d rounds, paths interleaved; each figure is the median over the rounds (ratios: median of per-round ratios)\n", rounds)
	fmt.Fprintf(out, "\nclosed loop, %d requests per path and round\n", total)
	fmt.Fprintf(out, "  %-10s %9s %10s %10s %9s %11s %6s  %s\n", "", "req/s", "p50", "p99", "x direct", "CPU µs/req", "errors", "req/s per round")
	for _, p := range paths {
		fmt.Fprintf(out, "  %-10s %9.0f %10s %10s %8.2fx %11s %6d  %s\n", p.name,
			median(p.peaks, func(r benchResult) float64 { return r.RPS }),
			us(time.Duration(median(p.peaks, func(r benchResult) float64 { return float64(r.P50) }))),
			us(time.Duration(median(p.peaks, func(r benchResult) float64 { return float64(r.P99) }))),
			ratio(p), cpuText(medianF(p.peakCPU)), errorsOf(p.peaks), perRound(p.peaks))
	}
	fmt.Fprintf(out, "\nopen loop at half the gateway's median peak (%.0f req/s), %d requests per path and round\n", half, total/2)
	fmt.Fprintf(out, "  %-10s %9s %10s %10s %13s %11s %6s  %s\n", "", "req/s", "p50", "p99", "added p99", "CPU µs/req", "errors", "p99 per round")
	for _, p := range paths {
		fmt.Fprintf(out, "  %-10s %9.0f %10s %10s %13s %11s %6d  %s\n", p.name,
			median(p.halves, func(r benchResult) float64 { return r.RPS }),
			us(time.Duration(median(p.halves, func(r benchResult) float64 { return float64(r.P50) }))),
			us(time.Duration(median(p.halves, func(r benchResult) float64 { return float64(r.P99) }))),
			us(added(p)), cpuText(medianF(p.halfCPU)), errorsOf(p.halves), perRoundP99(p.halves))
	}
	fmt.Fprintf(out, "\ngoal: gateway/direct throughput >= 0.50x (got %.2fx), added p99 at half peak < 1ms (got %s)\n", ratio(gw), us(added(gw)))
	if len(paths) > 2 {
		ng := paths[2]
		fmt.Fprintf(out, "peer:  nginx/direct %.2fx, gateway/nginx %.2fx; added p99 at half peak: nginx %s\n\n",
			ratio(ng), medianRatio(gw.peaks, ng.peaks), us(added(ng)))
	} else {
		fmt.Fprintln(out)
	}

	b.ReportMetric(median(d.peaks, func(r benchResult) float64 { return r.RPS }), "direct-req/s")
	b.ReportMetric(median(gw.peaks, func(r benchResult) float64 { return r.RPS }), "gateway-req/s")
	b.ReportMetric(ratio(gw), "ratio")
	b.ReportMetric(float64(added(gw).Microseconds()), "added-p99-µs@half")
	if len(paths) > 2 {
		b.ReportMetric(ratio(paths[2]), "nginx-ratio")
	}
	for _, p := range paths {
		if n := errorsOf(p.peaks) + errorsOf(p.halves); n > 0 {
			b.Errorf("%s: %d non-200 answers", p.name, n)
		}
	}
}

func median[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return medianF(v)
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

func medianRatio(a, b []benchResult) float64 {
	v := make([]float64, len(a))
	for i := range a {
		v[i] = a[i].RPS / b[i].RPS
	}
	return medianF(v)
}

func medianAdded(a, b []benchResult) time.Duration {
	v := make([]float64, len(a))
	for i := range a {
		v[i] = float64(a[i].P99 - b[i].P99)
	}
	return time.Duration(medianF(v))
}

func errorsOf(rs []benchResult) int64 {
	var n int64
	for _, r := range rs {
		n += r.Errors
	}
	return n
}

func perRound(rs []benchResult) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, strconv.FormatFloat(r.RPS, 'f', 0, 64))
	}
	return strings.Join(parts, " ")
}

func perRoundP99(rs []benchResult) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, us(r.P99))
	}
	return strings.Join(parts, " ")
}

// benchBody is the stand-in upstream's answer.
var benchBody = []byte(`{"items":[` + strings.TrimSuffix(strings.Repeat(`{"id":"mysql","name":"MySQL","engine":"mysql","versions":["8.0","8.4"],"plans":[{"id":"mysql-single-az-dev","name":"single-az dev","deployment_mode":"single-az","nodes":1,"vcpu":1,"memory_mb":2048,"storage_gb":20}]},`, 8), ",") + `],"next_cursor":null}`)

type benchPath struct {
	name             string
	url              string
	header           map[string]string
	sign             bool // the load generator signs each request (direct, nginx)
	self             bool // the gateway: CPU is this process'
	nginx            *nginxProc
	peaks, halves    []benchResult
	peakCPU, halfCPU []float64 // µs of CPU per request of the proxy, when measured
}

func (p *benchPath) measure(b *testing.B, s benchLoad) {
	var before time.Duration
	switch {
	case p.self:
		before = selfCPU()
	case p.nginx != nil:
		before = p.nginx.cpu()
	}
	res := runLoad(b, s)
	var cpu float64
	switch {
	case p.self:
		cpu = float64((selfCPU() - before).Microseconds()) / float64(s.Requests+s.Warmup)
	case p.nginx != nil:
		cpu = float64((p.nginx.cpu() - before).Microseconds()) / float64(s.Requests+s.Warmup)
	}
	if s.Rate > 0 {
		p.halves = append(p.halves, res)
		if cpu > 0 {
			p.halfCPU = append(p.halfCPU, cpu)
		}
	} else {
		p.peaks = append(p.peaks, res)
		if cpu > 0 {
			p.peakCPU = append(p.peakCPU, cpu)
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func us(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Nanoseconds())/1e3, 'f', 0, 64) + "µs"
}

func cpuText(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- helper processes ------------------------------------------------------

const helperEnv = "CANOPY_BENCH_HELPER"

// benchHelper runs this binary as a benchmark helper process when
// CANOPY_BENCH_HELPER is set (called from TestMain) and reports whether it did:
//   - "upstream": serves the stand-in catalog on a loopback port, prints the
//     address and serves until stdin closes;
//   - "load": runs the load described by CANOPY_BENCH_LOAD (JSON benchLoad)
//     and prints a JSON benchResult.
func benchHelper() bool {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return false
	}
	var err error
	switch mode {
	case "upstream":
		err = serveUpstream()
	case "load":
		var s benchLoad
		if err = json.Unmarshal([]byte(os.Getenv("CANOPY_BENCH_LOAD")), &s); err == nil {
			if s.Warmup > 0 {
				w := s
				w.Requests, w.Rate = s.Warmup, 0
				_ = w.run() // warm connections, caches and the rate limiter's token batch
			}
			err = json.NewEncoder(os.Stdout).Encode(s.run())
		}
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func serveUpstream() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h := tenancy.Middleware(tenancy.AudienceCatalog, []byte(testSecret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(benchBody))}
		_, _ = w.Write(benchBody)
	}))
	go func() { _ = http.Serve(ln, h) }()
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin (or dies)
	return nil
}

type helperProc struct {
	cmd  *exec.Cmd
	addr string
}

// startHelper starts this binary in helper mode and returns once it printed
// its first line (the upstream's address).
func startHelper(b *testing.B, mode string, env []string) *helperProc {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("%s helper: %v", mode, err)
	}
	return &helperProc{cmd: cmd, addr: strings.TrimSpace(line)}
}

// ---- load generation -------------------------------------------------------

// benchPrincipal is the identity the direct and nginx paths carry, as the
// gateway would sign it for the bench tenant's viewer key.
var benchPrincipal = tenancy.Principal{Tenant: "bench", Role: tenancy.RoleTenantViewer, Subject: "apikey:x"}

// benchLoad is one load run, passed to the load helper as JSON.
type benchLoad struct {
	URL    string
	Header map[string]string
	// Sign makes the load generator sign each request as the gateway would
	// (a signature is good for one request only), outside the measured time.
	Sign     bool
	Clients  int
	Requests int
	Warmup   int
	// Rate > 0 paces the requests (open loop) at Rate requests/s in total;
	// otherwise every client sends its next request when the last is answered.
	Rate float64
}

type benchResult struct {
	RPS      float64
	P50, P99 time.Duration
	Errors   int64
}

// runLoad runs s in a load helper process and returns its result.
func runLoad(b *testing.B, s benchLoad) benchResult {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	spec, _ := json.Marshal(s)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=load", "CANOPY_BENCH_LOAD="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("load helper %s: %v", s.URL, err)
	}
	var res benchResult
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("load helper %s: %v: %q", s.URL, err, out)
	}
	return res
}

// run sends s.Requests requests from s.Clients goroutines over s.Clients
// keep-alive connections and measures each from send to the last body byte.
func (s benchLoad) run() benchResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: s.Clients * 2, MaxIdleConns: s.Clients * 2, DisableCompression: true}}
	defer client.CloseIdleConnections()
	n := s.Requests
	lat := make([]time.Duration, n)
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	var interval time.Duration
	if s.Rate > 0 {
		interval = time.Duration(float64(time.Second) / s.Rate)
	}
	signer := tenancy.NewSigner([]byte(testSecret))
	start := time.Now()
	for range s.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
			for k, v := range s.Header {
				req.Header.Set(k, v)
			}
			buf := make([]byte, 8<<10)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if s.Sign {
					signer.SignRequest(req, nil, tenancy.AudienceCatalog, benchPrincipal)
				}
				if interval > 0 {
					if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
						time.Sleep(d) // pacing the open-loop load, not waiting for a condition
					}
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					lat[i] = time.Since(t0)
					continue
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
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
	return benchResult{RPS: float64(n) / elapsed.Seconds(), P50: lat[n/2], P99: lat[n*99/100], Errors: errs.Load()}
}

// ---- nginx peer --------------------------------------------------------------

type nginxProc struct {
	cmd  *exec.Cmd
	addr string
}

// startNginx runs nginx as a plain keep-alive reverse proxy to upstream on a
// free loopback port, installing nginx-light from Debian when it is missing
// (unless CANOPY_BENCH_INSTALL=0). It returns nil and the reason when nginx
// cannot run; the benchmark then goes on without the peer.
func startNginx(b *testing.B, upstream string) (*nginxProc, string) {
	b.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		if os.Getenv("CANOPY_BENCH_INSTALL") == "0" || os.Geteuid() != 0 {
			return nil, "not installed; skipped (apt-get install nginx-light to compare)"
		}
		fmt.Fprintln(os.Stderr, "installing nginx-light from Debian for the peer comparison")
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "nginx-light")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Sprintf("apt-get install nginx-light failed (%v); skipped: %s", err, lastLine(out))
		}
		if bin, err = exec.LookPath("nginx"); err != nil {
			bin = "/usr/sbin/nginx"
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "no free port: " + err.Error()
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	dir := b.TempDir()
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream app { server %[2]s; keepalive 256; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, upstream, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err.Error()
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "start: " + err.Error()
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful stop of master and workers
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Sprintf("did not listen on %s: %s", addr, lastLine(log))
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, _ := exec.Command(bin, "-v").CombinedOutput()
	return &nginxProc{cmd: cmd, addr: addr}, strings.TrimSpace(string(v)) + ", plain reverse proxy, keep-alive upstream pool, worker_processes auto, access_log off"
}

// cpu sums user+system CPU time of the nginx master and its workers.
func (n *nginxProc) cpu() time.Duration {
	pids := []string{strconv.Itoa(n.cmd.Process.Pid)}
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", n.cmd.Process.Pid, n.cmd.Process.Pid))
	pids = append(pids, strings.Fields(string(children))...)
	var ticks int64
	for _, pid := range pids {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state is field 3; utime 14, stime 15.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + st
		}
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "no output"
	}
	return s
}
