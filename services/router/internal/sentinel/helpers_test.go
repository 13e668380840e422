package sentinel

import (
	"bufio"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

func binding(user, pass string) table.Binding {
	return table.Binding{Username: user, PasswordSHA256: sha256.Sum256([]byte(pass))}
}

// fixture: tenant A owns Redis "cache" (a primary, a replica, a down
// replica, a fenced former primary) and MySQL "sql"; tenant B owns Redis
// "other".
func fixture() *table.Table {
	tbl := table.New()
	tbl.Apply(table.Instance{
		ID: "i-cache", Tenant: "t-a", Name: "cache", Engine: table.Redis, State: "ready", RWPort: 1,
		Nodes: []table.Node{
			{ID: "n1", Address: "10.0.0.1:6379", Role: table.Primary},
			{ID: "n2", Address: "10.0.0.2:6380", Role: table.Replica},
			{ID: "n3", Address: "10.0.0.3:6381", Role: table.Replica, Down: true},
			{ID: "n4", Address: "10.0.0.4:6382", Role: table.Fenced},
		},
		FailoverToken: 7,
		Bindings:      []table.Binding{binding("ua", "pa")},
	})
	tbl.Apply(table.Instance{
		ID: "i-sql", Tenant: "t-a", Name: "sql", Engine: table.MySQL, State: "ready",
		Nodes:    []table.Node{{ID: "m1", Address: "10.0.1.1:3306", Role: table.Primary}},
		Bindings: []table.Binding{binding("ma", "pma")},
	})
	tbl.Apply(table.Instance{
		ID: "i-other", Tenant: "t-b", Name: "other", Engine: table.Redis, State: "ready",
		Nodes:    []table.Node{{ID: "o1", Address: "10.0.2.1:6379", Role: table.Primary}},
		Bindings: []table.Binding{binding("ub", "pb")},
	})
	return tbl
}

// start serves tbl on a loopback port until the test ends and returns
// the address.
func start(t *testing.T, cfg Config, tbl *table.Table) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if cfg.Addr == "" {
		cfg.Addr = ln.Addr().String()
	}
	srv, err := New(cfg, tbl, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return ln.Addr().String(), srv
}

// rawConn is a bare TCP client for exact reply bytes.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	_, err := r.nc.Write([]byte(s))
	require.NoError(r.t, err)
}

// expect reads exactly len(want) bytes and compares them.
func (r *rawConn) expect(want string) {
	r.t.Helper()
	require.NoError(r.t, r.nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, len(want))
	n, err := io.ReadFull(r.br, got)
	require.NoError(r.t, err, "read after %q", got[:n])
	require.Equal(r.t, want, string(got))
}

// expectClosed waits for the server to close the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	require.NoError(r.t, r.nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	rest, err := io.ReadAll(r.br)
	require.NoError(r.t, err, "server did not close (got %q)", rest)
	require.Empty(r.t, string(rest))
}

func resp(args ...string) string {
	w := &writer{proto: 2}
	w.array(len(args))
	for _, a := range args {
		w.bulk(a)
	}
	return string(w.b)
}
