package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// backend is a TCP server that greets every connection with its name and a
// newline, then echoes.
type backend struct {
	name string
	addr string

	// hold keeps the port while no listener is bound.
	hold *portHolder

	mu    sync.Mutex
	ln    *net.TCPListener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name, conns: map[net.Conn]struct{}{}}
	hold, err := holdPort()
	require.NoError(t, err)
	t.Cleanup(hold.close) // after stop
	b.hold = hold
	ln, err := hold.listen()
	require.NoError(t, err)
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

// restart listens on the backend's port again after refuse: a restart in
// place.
func (b *backend) restart(t testing.TB) {
	t.Helper()
	ln, err := b.hold.listen()
	require.NoError(t, err)
	b.serve(ln)
}

// serve greets and echoes the connections of ln.
func (b *backend) serve(ln *net.TCPListener) {
	b.mu.Lock()
	b.ln, b.addr = ln, ln.Addr().String()
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns[c] = struct{}{}
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer func() {
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					_ = c.Close()
				}()
				if _, err := io.WriteString(c, b.name+"\n"); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// refuse closes the listener (the port then refuses, held by b.hold) and
// keeps open connections.
func (b *backend) refuse() {
	b.mu.Lock()
	ln := b.ln
	b.mu.Unlock()
	_ = stopListening(ln)
	_ = ln.Close()
}

// stop closes the listener and every connection and waits for its
// goroutines.
func (b *backend) stop() {
	b.refuse()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func freePort(t testing.TB) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct ports reserved for the test (see
// reservePort) until its cleanup: a port picked by binding port 0 and
// closing could otherwise be taken, before the proxy or redis-server binds
// it, by any bind to port 0 or outgoing connection on the machine.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		port, release, err := reservePort()
		require.NoError(t, err)
		t.Cleanup(release)
		ports = append(ports, port)
	}
	return ports
}

type harness struct {
	t    testing.TB
	tbl  *table.Table
	reg  *prometheus.Registry
	m    *Metrics
	p    *Proxy
	stop func() // cancels Run and waits for it
	done chan error
}

// startProxy runs a proxy over a fresh table; cfg's zero fields take test
// friendly values (short drain, fast listen retries).
func startProxy(t testing.TB, cfg Config, tbl *table.Table) *harness {
	t.Helper()
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 200 * time.Millisecond
	}
	if cfg.ListenRetry == 0 {
		cfg.ListenRetry = 100 * time.Millisecond
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	require.NoError(t, err)
	p, err := New(cfg, tbl, m, testLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, tbl: tbl, reg: reg, m: m, p: p, done: make(chan error, 1)}
	go func() { h.done <- p.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-h.done:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// testLogger returns a debug logger writing to t's log, so that a failed
// test shows why the proxy closed a connection; benchmarks, whose log is
// always printed, get none. It goes quiet when the test's cleanup ends
// (after Run returned): logging after a test completed panics.
func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

// serving waits until the proxy listens on port (its own listener, not a
// squatter's), then sends one probe connection through it and waits until
// the proxy is done with it: its outcome counted and its connection gauge
// back. The probe's accept, dial and metrics happen on the proxy's
// goroutines; waiting for all of them here keeps them out of whatever the
// test measures next. No other connection of the endpoint's instance and
// kind may start or end meanwhile: they share the series it reads.
func (h *harness) serving(port int) {
	t := h.t
	t.Helper()
	var id, kind string
	require.Eventually(t, func() bool {
		for _, s := range h.p.Stats() {
			if s.Port == port && s.Listening {
				id, kind = s.InstanceID, s.Endpoint
				return true
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, "the proxy never listened on port %d", port)
	outcomes := func() float64 {
		var n float64
		for _, o := range []string{OutcomeForwarded, OutcomeLimit, OutcomeNoBackend} {
			n += testutil.ToFloat64(h.m.connsTotal.WithLabelValues(id, kind, o))
		}
		return n
	}
	held := func() float64 { return testutil.ToFloat64(h.m.conns.WithLabelValues(id, kind)) }
	before, heldBefore := outcomes(), held()
	c, err := net.Dial("tcp", addr(port))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	// The outcome is counted after the gauge went up and before it goes
	// down: read in this order, both conditions mean the probe is over.
	require.Eventually(t, func() bool { return outcomes() == before+1 && held() == heldBefore },
		10*time.Second, 5*time.Millisecond, "the probe through port %d never ended", port)
}

// waitListening waits until port accepts connections.
func waitListening(t testing.TB, port int) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr(port))
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}, 5*time.Second, 10*time.Millisecond, "port %d never listened", port)
}

// waitRefusing waits until port refuses connections.
func waitRefusing(t testing.TB, port int) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr(port))
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	}, 5*time.Second, 10*time.Millisecond, "port %d still listens", port)
}

// client is a connection through the proxy.
type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, port int) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr(port))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// line reads one line within d.
func (c *client) line(d time.Duration) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return s[:len(s)-1], nil
}

// hello dials port and returns the backend's name.
func hello(t testing.TB, port int) (*client, string) {
	t.Helper()
	c := dial(t, port)
	name, err := c.line(5 * time.Second)
	require.NoError(t, err, "no greeting through port %d", port)
	return c, name
}

// echo checks that the connection still forwards.
func (c *client) echo(t testing.TB) {
	t.Helper()
	_, err := io.WriteString(c, "ping\n")
	require.NoError(t, err)
	s, err := c.line(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "ping", s)
}

// closedWithin reports whether the proxy closes the connection within d.
func (c *client) closedWithin(d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	for {
		_, err := c.r.ReadByte()
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

func node(id, address string, role table.Role) table.Node {
	return table.Node{ID: id, Address: address, Role: role}
}
