package loadpeer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/canopy-platform/canopy/libs/porttest"
)

// ErrNoHAProxy is returned by EnsureHAProxy when haproxy is neither
// installed nor installable here.
var ErrNoHAProxy = errors.New("haproxy not available")

// haproxyPaths are looked at besides PATH: Debian installs haproxy in
// /usr/sbin, which a non-root PATH often lacks.
var haproxyPaths = []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"}

// EnsureHAProxy returns the path of the haproxy binary, installing Debian's
// package (apt-get install -y haproxy) when it is missing. apt-get update
// runs once, only when the install fails for want of a package list.
// Installing needs root; without it the error says what to install.
func EnsureHAProxy(ctx context.Context) (string, error) {
	if p, ok := findHAProxy(); ok {
		return p, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("%w: not installed and no apt-get to install it", ErrNoHAProxy)
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w: not installed, and installing needs root (apt-get install haproxy)", ErrNoHAProxy)
	}
	out, err := aptGet(ctx, "install", "-y", "-q", "--no-install-recommends", "haproxy")
	if err != nil && missingPackageList(out) {
		if uout, uerr := aptGet(ctx, "update", "-q"); uerr != nil {
			return "", fmt.Errorf("%w: apt-get update: %v: %s", ErrNoHAProxy, uerr, tail(uout))
		}
		out, err = aptGet(ctx, "install", "-y", "-q", "--no-install-recommends", "haproxy")
	}
	if err != nil {
		return "", fmt.Errorf("%w: apt-get install haproxy: %v: %s", ErrNoHAProxy, err, tail(out))
	}
	if p, ok := findHAProxy(); ok {
		return p, nil
	}
	return "", fmt.Errorf("%w: apt-get installed haproxy but no binary is on PATH or in %s", ErrNoHAProxy, strings.Join(haproxyPaths, ", "))
}

func findHAProxy() (string, bool) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, true
	}
	for _, p := range haproxyPaths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// aptGet runs apt-get non-interactively; it waits for the dpkg lock (other
// engineers install packages on the same machine) rather than failing.
func aptGet(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=120"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

// missingPackageList tells apt-get's answers for an empty or stale package
// list (a fresh container) from other failures.
func missingPackageList(out []byte) bool {
	s := string(out)
	return strings.Contains(s, "Unable to locate package") || strings.Contains(s, "has no installation candidate") ||
		strings.Contains(s, "404") || strings.Contains(s, "Failed to fetch")
}

func tail(b []byte) string {
	const n = 2000
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// HAProxyThreads is the nbthread StartHAProxy gives HAProxy: as many
// threads as the Go runtime runs goroutines in parallel (GOMAXPROCS, by
// default the CPU count, 2 on the benchmark machine). That is the
// parallelism Canopy's router gets with Go's defaults, and HAProxy's own
// default too (it starts one thread per CPU it may run on); one thread would
// handicap it. On a 2-core box the load generator and the backend compete
// for the same cores, so neither proxy gets them to itself either way.
func HAProxyThreads() int { return runtime.GOMAXPROCS(0) }

// haproxyConfig is the whole configuration: one TCP frontend to one server,
// no health checks (the backend is the one the direct leg hits), no logs.
var haproxyConfig = template.Must(template.New("haproxy.cfg").Parse(`# written by e2e/loadpeer for one benchmark leg
global
    maxconn {{.MaxConn}}
    nbthread {{.Threads}}

defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h

frontend fe
    bind {{.Listen}}
    default_backend be

backend be
    server backend {{.Backend}}
`))

type haproxyParams struct {
	MaxConn, Threads int
	Listen, Backend  string
}

// renderHAProxyConfig writes the configuration of a proxy on listen to
// backend.
func renderHAProxyConfig(p haproxyParams) ([]byte, error) {
	var buf bytes.Buffer
	if err := haproxyConfig.Execute(&buf, p); err != nil {
		return nil, fmt.Errorf("render haproxy.cfg: %w", err)
	}
	return buf.Bytes(), nil
}

// StartHAProxy starts HAProxy in the foreground (haproxy -db) as a child,
// forwarding a free loopback port to backend (host:port) in mode tcp, waits
// until the port accepts and returns its address. The process is stopped by
// its pid when tb ends; the test fails if haproxy is missing and cannot be
// installed, or does not start.
func StartHAProxy(tb testing.TB, backend string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := EnsureHAProxy(ctx)
	if err != nil {
		tb.Fatalf("start haproxy: %v", err)
	}
	dir := tb.TempDir()
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(porttest.Free(tb)))
	// maxconn: far above the benchmarks' 50 clients, so it never queues;
	// HAProxy sizes its file-descriptor limit from it.
	cfg, err := renderHAProxyConfig(haproxyParams{MaxConn: 4096, Threads: HAProxyThreads(), Listen: listen, Backend: backend})
	if err != nil {
		tb.Fatal(err)
	}
	cfgPath, logPath := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "haproxy.log")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		tb.Fatalf("write %s: %v", cfgPath, err)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		tb.Fatalf("create %s: %v", logPath, err)
	}
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The benchmark binary dying must not leave a proxy behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	tb.Cleanup(func() { stopByPID(tb, cmd.Process.Pid, exited, logPath) })

	if err := waitAccepting(listen, exited, 10*time.Second); err != nil {
		log, _ := os.ReadFile(logPath)
		tb.Fatalf("haproxy (%s -> %s): %v; log: %s", listen, backend, err, tail(log))
	}
	return listen
}

// waitAccepting dials addr until it accepts, the process exits or timeout
// passes.
func waitAccepting(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting within %s: %w", addr, timeout, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before %s accepted", addr)
		case <-tick.C:
		}
	}
}

// stopByPID sends SIGTERM (HAProxy's immediate stop) to pid and waits for
// exited, then SIGKILL if it lingers.
func stopByPID(tb testing.TB, pid int, exited <-chan struct{}, logPath string) {
	select {
	case <-exited:
		log, _ := os.ReadFile(logPath)
		tb.Errorf("haproxy (pid %d) exited before the end of the benchmark; log: %s", pid, tail(log))
		return
	default:
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	}
}
