package proxy

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// pair is an instance with a primary n1 and a replica n2 in a table.
type pair struct {
	tbl            *table.Table
	n1, n2         *backend
	rwPort, roPort int
}

func newPair(t *testing.T) pair {
	t.Helper()
	ports := freePorts(t, 2)
	p := pair{tbl: table.New(), n1: newBackend(t, "n1"), n2: newBackend(t, "n2"), rwPort: ports[0], roPort: ports[1]}
	p.tbl.Apply(table.Instance{ID: "i1", Tenant: "t", Name: "db", Engine: table.Redis, RWPort: p.rwPort, ROPort: p.roPort,
		Nodes: []table.Node{node("n1", p.n1.addr, table.Primary), node("n2", p.n2.addr, table.Replica)}})
	return p
}

func TestRWFollowsPromotion(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{}, p.tbl)
	h.serving(p.rwPort)

	old, name := hello(t, p.rwPort)
	require.Equal(t, "n1", name)
	old.echo(t)

	p.tbl.Promoted("i1", 1, map[string]string{"n1": "fenced", "n2": "primary"})
	assert.True(t, old.closedWithin(2*time.Second), "rw connection to the old primary stays open")
	_, name = hello(t, p.rwPort)
	assert.Equal(t, "n2", name)
	assert.Equal(t, 1.0, testutil.ToFloat64(h.m.switches.WithLabelValues("i1")))
}

func TestSwitchingWaitsForPromotion(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{ConnectWait: 2 * time.Second}, p.tbl)
	h.serving(p.rwPort)

	waits := histCount(t, h.reg, "canopy_router_connect_wait_seconds", "endpoint", "rw") // the probe's
	p.tbl.Switching("i1", 1)
	start := time.Now()
	c := dial(t, p.rwPort)
	// The connection is held: nothing arrives while the recovery runs.
	_, err := c.line(300 * time.Millisecond)
	require.Error(t, err, "served during the recovery")
	p.tbl.Promoted("i1", 1, map[string]string{"n1": "fenced", "n2": "primary"})
	name, err := c.line(2 * time.Second)
	require.NoError(t, err)
	waited := time.Since(start)
	assert.Equal(t, "n2", name)
	assert.GreaterOrEqual(t, waited, 300*time.Millisecond)
	assert.Less(t, waited, 2*time.Second)
	// Observed before the first byte is forwarded, so already counted.
	assert.Equal(t, waits+1, histCount(t, h.reg, "canopy_router_connect_wait_seconds", "endpoint", "rw"))
}

func TestPrimaryRefusingThenTableChange(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{ConnectWait: 2 * time.Second}, p.tbl)
	h.serving(p.rwPort)

	p.n1.refuse() // kill -9: refused before any failover is known
	c := dial(t, p.rwPort)
	_, err := c.line(300 * time.Millisecond)
	require.Error(t, err)
	p.tbl.Promoted("i1", 1, map[string]string{"n1": "fenced", "n2": "primary"})
	name, err := c.line(2 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "n2", name)
}

func TestPrimaryRestartedInPlace(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{ConnectWait: 2 * time.Second}, p.tbl)
	h.serving(p.rwPort)

	p.n1.refuse()
	c := dial(t, p.rwPort)
	_, err := c.line(300 * time.Millisecond)
	require.Error(t, err)
	p.n1.restart(t) // back with no table change: found by the periodic redial
	name, err := c.line(time.Second)
	require.NoError(t, err)
	assert.Equal(t, "n1", name)
}

func TestNothingUsableClosesAfterConnectWait(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	const wait = 500 * time.Millisecond
	h := startProxy(t, Config{ConnectWait: wait}, p.tbl)
	h.serving(p.rwPort)

	fwd := testutil.ToFloat64(h.m.connsTotal.WithLabelValues("i1", RW, OutcomeForwarded)) // the probe's
	p.n1.refuse()
	start := time.Now()
	c := dial(t, p.rwPort)
	require.True(t, c.closedWithin(3*time.Second))
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, wait)
	assert.Less(t, took, wait+time.Second, "held well past connect_wait")
	// Counted before the close; the probe was forwarded, so this
	// connection is the only one that can count here.
	assert.Equal(t, 1.0, testutil.ToFloat64(h.m.connsTotal.WithLabelValues("i1", RW, OutcomeNoBackend)))
	assert.Equal(t, fwd, testutil.ToFloat64(h.m.connsTotal.WithLabelValues("i1", RW, OutcomeForwarded)))
}

func TestFencedPrimaryClosesRW(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{ConnectWait: 300 * time.Millisecond}, p.tbl)
	h.serving(p.rwPort)

	c, name := hello(t, p.rwPort)
	require.Equal(t, "n1", name)
	ro, name := hello(t, p.roPort)
	require.Equal(t, "n2", name)
	// The primary is fenced and no new one is known yet.
	p.tbl.Promoted("i1", 1, map[string]string{"n1": "fenced"})
	assert.True(t, c.closedWithin(2*time.Second))
	ro.echo(t) // the replica still serves reads
	assert.Equal(t, 0.0, testutil.ToFloat64(h.m.switches.WithLabelValues("i1")), "no new primary, no switch")
	// And a new rw connection finds no primary.
	assert.True(t, dial(t, p.rwPort).closedWithin(2*time.Second))
}

func TestROLeastConnectionsAndFallback(t *testing.T) {
	t.Parallel()
	tbl := table.New()
	n1, n2, n3 := newBackend(t, "n1"), newBackend(t, "n2"), newBackend(t, "n3")
	roPort := freePort(t)
	tbl.Apply(table.Instance{ID: "i1", Engine: table.MySQL, ROPort: roPort, Nodes: []table.Node{
		node("n1", n1.addr, table.Primary), node("n2", n2.addr, table.Replica), node("n3", n3.addr, table.Replica)}})
	h := startProxy(t, Config{}, tbl)
	h.serving(roPort)

	got := map[string][]*client{}
	for range 4 {
		c, name := hello(t, roPort)
		got[name] = append(got[name], c)
	}
	assert.Len(t, got["n2"], 2)
	assert.Len(t, got["n3"], 2)
	require.Eventually(t, func() bool {
		st := h.p.Stats()
		return len(st) == 1 && st[0].Active == 4
	}, time.Second, 5*time.Millisecond)
	assert.Equal(t, map[string]int{n2.addr: 2, n3.addr: 2}, h.p.Stats()[0].Backends)

	// One of n2's connections ends: the next goes to n2.
	require.NoError(t, got["n2"][0].Close())
	require.Eventually(t, func() bool { return h.p.Stats()[0].Backends[n2.addr] == 1 }, time.Second, 5*time.Millisecond)
	_, name := hello(t, roPort)
	assert.Equal(t, "n2", name)

	// n3 goes down: its connections are closed, n2's stay.
	tbl.NodeHealth("i1", "n3", true)
	for _, c := range got["n3"] {
		assert.True(t, c.closedWithin(2*time.Second), "ro connection to a down replica stays open")
	}
	got["n2"][1].echo(t)
	_, name = hello(t, roPort)
	assert.Equal(t, "n2", name)

	// No replica left: reads fall back to the primary.
	tbl.NodeHealth("i1", "n2", true)
	assert.True(t, got["n2"][1].closedWithin(2*time.Second))
	fb, name := hello(t, roPort)
	assert.Equal(t, "n1", name)
	// A replica coming back does not cut the fallback connection.
	tbl.NodeHealth("i1", "n3", false)
	_, name = hello(t, roPort)
	assert.Equal(t, "n3", name)
	fb.echo(t)
}

func TestROReplicaPromotedIsClosedWhenReplicasRemain(t *testing.T) {
	t.Parallel()
	tbl := table.New()
	n1, n2, n3 := newBackend(t, "n1"), newBackend(t, "n2"), newBackend(t, "n3")
	roPort := freePort(t)
	tbl.Apply(table.Instance{ID: "i1", Engine: table.MySQL, ROPort: roPort, Nodes: []table.Node{
		node("n1", n1.addr, table.Primary), node("n2", n2.addr, table.Replica), node("n3", n3.addr, table.Replica)}})
	h := startProxy(t, Config{}, tbl)
	h.serving(roPort)
	got := map[string]*client{}
	for range 2 {
		c, name := hello(t, roPort)
		got[name] = c
	}
	require.Len(t, got, 2)
	tbl.Promoted("i1", 1, map[string]string{"n1": "replica", "n2": "primary"})
	assert.True(t, got["n2"].closedWithin(2*time.Second), "reads stay on the new primary")
	got["n3"].echo(t)
}

func TestMaxConns(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{MaxConns: 2}, p.tbl)
	h.serving(p.rwPort)
	limitBefore := testutil.ToFloat64(h.m.connsTotal.WithLabelValues("i1", RW, OutcomeLimit))

	a, _ := hello(t, p.rwPort)
	hello(t, p.rwPort)
	third := dial(t, p.rwPort)
	assert.True(t, third.closedWithin(5*time.Second), "a connection beyond max_conns is served")
	// Counted before the close.
	assert.Equal(t, limitBefore+1, testutil.ToFloat64(h.m.connsTotal.WithLabelValues("i1", RW, OutcomeLimit)))
	a.echo(t)
	// A slot freed is usable again.
	require.NoError(t, a.Close())
	require.Eventually(t, func() bool { return h.p.Stats()[0].Active == 1 }, 2*time.Second, 5*time.Millisecond)
	_, name := hello(t, p.rwPort)
	assert.Equal(t, "n1", name)
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	const idle = 300 * time.Millisecond
	h := startProxy(t, Config{IdleTimeout: idle}, p.tbl)
	h.serving(p.rwPort)

	quiet, _ := hello(t, p.rwPort)
	busy, _ := hello(t, p.rwPort)
	start := time.Now()
	deadline := start.Add(3 * idle)
	for time.Now().Before(deadline) {
		busy.echo(t) // data every 50 ms keeps it open
		time.Sleep(50 * time.Millisecond)
	}
	assert.True(t, quiet.closedWithin(time.Second), "idle connection not closed")
	assert.GreaterOrEqual(t, time.Since(start), idle)
	busy.echo(t)
}

func TestInstanceRemovedClosesPort(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{}, p.tbl)
	h.serving(p.rwPort)
	h.serving(p.roPort)
	c, _ := hello(t, p.rwPort)
	require.NotZero(t, testutil.CollectAndCount(h.reg, "canopy_router_connections_total"))

	p.tbl.Remove("i1")
	assert.True(t, c.closedWithin(2*time.Second))
	waitRefusing(t, p.rwPort)
	waitRefusing(t, p.roPort)
	require.Eventually(t, func() bool { return len(h.p.Stats()) == 0 }, time.Second, 5*time.Millisecond)
	for _, name := range []string{"canopy_router_connections", "canopy_router_connections_total", "canopy_router_bytes_total", "canopy_router_listen_errors_total"} {
		assert.Zero(t, testutil.CollectAndCount(h.reg, name), "%s keeps a removed instance's series", name)
	}
}

func TestPortChangeMovesEndpoint(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{}, p.tbl)
	h.serving(p.rwPort)
	c, _ := hello(t, p.rwPort)
	v, _ := p.tbl.Get("i1")
	v.RWPort = freePort(t)
	p.tbl.Apply(v.Instance)
	assert.True(t, c.closedWithin(2*time.Second))
	waitRefusing(t, p.rwPort)
	// Both endpoints share the instance's series: the old connection must
	// be gone from them before the new endpoint's probe is counted.
	require.Eventually(t, func() bool { return testutil.ToFloat64(h.m.conns.WithLabelValues("i1", RW)) == 0 },
		5*time.Second, 5*time.Millisecond)
	h.serving(v.RWPort)
	_, name := hello(t, v.RWPort)
	assert.Equal(t, "n1", name)
}

func TestPortInUseIsRetried(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	squatter, err := net.Listen("tcp", addr(p.rwPort))
	require.NoError(t, err)
	h := startProxy(t, Config{ListenRetry: 50 * time.Millisecond}, p.tbl)
	h.serving(p.roPort) // the other endpoint is not held back

	require.Eventually(t, func() bool {
		return testutil.ToFloat64(h.m.listenErrors.WithLabelValues("i1", RW)) >= 2
	}, 2*time.Second, 5*time.Millisecond, "failed listens not counted or not retried")
	st := h.p.Stats()
	require.Len(t, st, 2)
	assert.Equal(t, RW, st[0].Endpoint)
	assert.False(t, st[0].Listening)
	assert.Contains(t, st[0].Error, "address already in use")
	assert.True(t, st[1].Listening)

	require.NoError(t, squatter.Close())
	require.Eventually(t, func() bool { return h.p.Stats()[0].Listening }, 2*time.Second, 5*time.Millisecond)
	_, name := hello(t, p.rwPort)
	assert.Equal(t, "n1", name)
	assert.Empty(t, h.p.Stats()[0].Error)
}

func TestRunDrains(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	const drain = 500 * time.Millisecond
	h := startProxy(t, Config{DrainTimeout: drain}, p.tbl)
	h.serving(p.rwPort)
	open, _ := hello(t, p.rwPort)
	finishing, _ := hello(t, p.rwPort)

	ctxStop := make(chan struct{})
	go func() { h.stop(); close(ctxStop) }()
	waitRefusing(t, p.rwPort)
	open.echo(t) // still forwarding while draining
	require.NoError(t, finishing.Close())
	start := time.Now()
	assert.True(t, open.closedWithin(2*time.Second), "not closed at the drain timeout")
	select {
	case <-ctxStop:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	assert.Less(t, time.Since(start), drain+time.Second)
}

func TestRunReturnsWhenConnectionsEnd(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{DrainTimeout: 10 * time.Second}, p.tbl)
	h.serving(p.rwPort)
	c, _ := hello(t, p.rwPort)
	returned := make(chan struct{})
	go func() { h.stop(); close(returned) }()
	waitRefusing(t, p.rwPort)
	require.NoError(t, c.Close())
	select {
	case <-returned:
	case <-time.After(3 * time.Second):
		t.Fatal("Run waits for the drain timeout though no connection is left")
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{}, p.tbl)
	h.serving(p.rwPort)
	// The probe is over: what follows counts this test's connection alone.
	fwd := testutil.ToFloat64(h.m.connsTotal.WithLabelValues("i1", RW, OutcomeForwarded))
	toBackend := testutil.ToFloat64(h.m.bytes.WithLabelValues("i1", RW, DirClientToBackend))
	toClient := testutil.ToFloat64(h.m.bytes.WithLabelValues("i1", RW, DirBackendToClient))
	waits := histCount(t, h.reg, "canopy_router_connect_wait_seconds", "endpoint", "rw")

	c, _ := hello(t, p.rwPort) // "n1\n": 3 bytes to the client
	c.echo(t)                  // "ping\n" both ways
	assert.Equal(t, 1.0, testutil.ToFloat64(h.m.conns.WithLabelValues("i1", RW)))
	assert.Equal(t, fwd+1, testutil.ToFloat64(h.m.connsTotal.WithLabelValues("i1", RW, OutcomeForwarded)))
	assert.Equal(t, waits+1, histCount(t, h.reg, "canopy_router_connect_wait_seconds", "endpoint", "rw"))
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(h.m.conns.WithLabelValues("i1", RW)) == 0
	}, 5*time.Second, 5*time.Millisecond)
	// A direction's bytes are added when its copy ends, before the gauge
	// goes down.
	assert.Equal(t, toBackend+5, testutil.ToFloat64(h.m.bytes.WithLabelValues("i1", RW, DirClientToBackend)))
	assert.Equal(t, toClient+8, testutil.ToFloat64(h.m.bytes.WithLabelValues("i1", RW, DirBackendToClient)))

	p.tbl.Promoted("i1", 1, map[string]string{"n1": "replica", "n2": "primary"})
	p.tbl.Promoted("i1", 2, map[string]string{"n1": "primary", "n2": "replica"})
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(h.m.switches.WithLabelValues("i1")) == 2
	}, 2*time.Second, 5*time.Millisecond)

	names := []string{"canopy_router_connections", "canopy_router_connections_total", "canopy_router_bytes_total",
		"canopy_router_switches_total", "canopy_router_connect_wait_seconds", "canopy_router_listen_errors_total"}
	for _, n := range names {
		assert.NotZero(t, testutil.CollectAndCount(h.reg, n), n)
	}
}

func histCount(t *testing.T, g prometheus.Gatherer, name, label, value string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func TestHalfClosePassesTheAnswer(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{}, p.tbl)
	h.serving(p.rwPort)
	c, _ := hello(t, p.rwPort)
	_, err := io.WriteString(c, "last words\n")
	require.NoError(t, err)
	require.NoError(t, c.Conn.(*net.TCPConn).CloseWrite())
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	rest, err := io.ReadAll(c.r)
	require.NoError(t, err, "the backend's answer after the client's half-close")
	assert.Equal(t, "last words\n", string(rest))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		bad  string
	}{
		{"zero takes defaults", Config{}, ""},
		{"defaults", DefaultConfig(), ""},
		{"host", Config{ListenHost: "example.com"}, "listen_host"},
		{"connect wait", Config{ConnectWait: -1}, "connect_wait"},
		{"max conns", Config{MaxConns: -1}, "max_conns"},
		{"idle", Config{IdleTimeout: -1}, "idle_timeout"},
		{"drain", Config{DrainTimeout: -1}, "drain_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.bad == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.bad)
		})
	}
	d := DefaultConfig()
	assert.Equal(t, time.Hour, d.IdleTimeout)
	assert.Equal(t, 2*time.Second, d.ConnectWait)
	assert.Positive(t, d.Dialer.ConnectTimeout)
	_, err := New(Config{}, nil, nil, slog.New(slog.DiscardHandler))
	assert.Error(t, err)
}

// TestQuickSwitchBackClosesRW: a switch and a switch back before the
// proxy looks at the table still cut the connections to the node that was
// fenced in between.
func TestQuickSwitchBackClosesRW(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	h := startProxy(t, Config{}, p.tbl)
	h.serving(p.rwPort)
	c, name := hello(t, p.rwPort)
	require.Equal(t, "n1", name)
	p.tbl.Promoted("i1", 1, map[string]string{"n1": "replica", "n2": "primary"})
	p.tbl.Promoted("i1", 2, map[string]string{"n1": "primary", "n2": "replica"})
	assert.True(t, c.closedWithin(2*time.Second))
	assert.Equal(t, 2.0, testutil.ToFloat64(h.m.switches.WithLabelValues("i1")))
	_, name = hello(t, p.rwPort)
	assert.Equal(t, "n1", name)
}
