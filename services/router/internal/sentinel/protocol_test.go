package sentinel

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

const authA = "*3\r\n$4\r\nAUTH\r\n$2\r\nua\r\n$2\r\npa\r\n"

func TestExchanges(t *testing.T) {
	t.Parallel()
	addr, srv := start(t, Config{Peers: []string{"10.9.0.1:26380", "10.9.0.2:26381"}}, fixture())
	cases := []struct {
		name string
		send string
		want string
	}{
		{"ping before auth", "PING\r\n", "+PONG\r\n"},
		{"noauth", resp("SENTINEL", "get-master-addr-by-name", "cache"), "-NOAUTH Authentication required.\r\n"},
		{"noauth subscribe", resp("SUBSCRIBE", "+switch-master"), "-NOAUTH Authentication required.\r\n"},
		{"wrong password", resp("AUTH", "ua", "nope"), "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"password only", resp("AUTH", "pa"), "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"mysql binding is no redis account", resp("AUTH", "ma", "pma"), "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"hello needs auth", "HELLO 3\r\n", "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"},
		{"hello bad version", "HELLO 4\r\nHELLO x\r\n", "-NOPROTO unsupported protocol version\r\n-ERR Protocol version is not an integer or out of range\r\n"},
		{"client setinfo before auth", resp("CLIENT", "SETINFO", "LIB-NAME", "go-redis") + resp("CLIENT", "SETNAME", "app"), "+OK\r\n+OK\r\n"},
		{"unknown command", "FOO bar 'baz qux'\r\n", "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz qux' \r\n"},
		{"arity", resp("ROLE", "x"), "-ERR wrong number of arguments for 'role' command\r\n"},
		{"get-master-addr", authA + resp("SENTINEL", "get-master-addr-by-name", "cache"), "+OK\r\n" + resp("10.0.0.1", "6379")},
		{"unknown master nil", authA + resp("SENTINEL", "get-master-addr-by-name", "nope"), "+OK\r\n*-1\r\n"},
		{"other tenant's master nil", authA + resp("SENTINEL", "get-master-addr-by-name", "other"), "+OK\r\n*-1\r\n"},
		{"mysql is no master", authA + resp("SENTINEL", "master", "sql"), "+OK\r\n-ERR No such master with that name\r\n"},
		{"other tenant's master unknown", authA + resp("SENTINEL", "replicas", "other") + resp("SENTINEL", "sentinels", "other"),
			"+OK\r\n-ERR No such master with that name\r\n-ERR No such master with that name\r\n"},
		{"sentinel arity", authA + resp("SENTINEL", "get-master-addr-by-name"), "+OK\r\n-ERR wrong number of arguments for 'sentinel|get-master-addr-by-name' command\r\n"},
		{"sentinel unknown sub", authA + resp("SENTINEL", "foo"), "+OK\r\n-ERR unknown subcommand 'foo'. Try SENTINEL HELP.\r\n"},
		{"sentinel failover refused", authA + resp("SENTINEL", "failover", "cache"), "+OK\r\n-ERR SENTINEL FAILOVER is not available: Canopy manages this instance's failover\r\n"},
		{"myid", authA + resp("SENTINEL", "myid"), "+OK\r\n$40\r\n" + srv.myID + "\r\n"},
		{"role", authA + "ROLE\r\n", "+OK\r\n*2\r\n$8\r\nsentinel\r\n*1\r\n$5\r\ncache\r\n"},
		{"hello 3 then nil", authA + "HELLO 3\r\n" + resp("SENTINEL", "get-master-addr-by-name", "nope") + resp("CLIENT", "GETNAME"),
			"+OK\r\n%6\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:"},
		{"hello with auth", "HELLO 2 AUTH ub pb SETNAME x\r\nROLE\r\n", "*12\r\n$6\r\nserver\r\n"},
		{"subscribe mode resp2", authA + resp("SUBSCRIBE", "+switch-master", "foo") + "PING\r\n" + resp("SENTINEL", "myid") + "UNSUBSCRIBE\r\nUNSUBSCRIBE\r\n",
			"+OK\r\n" +
				"*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n:2\r\n" +
				"*2\r\n$4\r\npong\r\n$0\r\n\r\n" +
				"-ERR Can't execute 'sentinel|myid': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"},
		{"quit", "QUIT\r\nPING\r\n", "+OK\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, addr)
			c.send(tc.send)
			c.expect(tc.want)
			if tc.name == "quit" {
				c.expectClosed()
			}
		})
	}
}

func TestResp3Subscribe(t *testing.T) {
	t.Parallel()
	addr, _ := start(t, Config{}, fixture())
	c := dialRaw(t, addr)
	c.send("HELLO 3 AUTH ua pa\r\n")
	c.expect("%6\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:")
	c.send(resp("SENTINEL", "get-master-addr-by-name", "nope"))
	c.expect("1\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n$7\r\nmodules\r\n*0\r\n_\r\n")
	c.send(resp("SUBSCRIBE", "a") + "PING\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\n")
	c.expect(">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n+PONG\r\n>3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n" +
		">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n>3\r\n$12\r\npunsubscribe\r\n_\r\n:0\r\n")
	c.send(resp("SENTINEL", "master", "cache"))
	c.expect("%20\r\n$4\r\nname\r\n$5\r\ncache\r\n")
}

// Malformed input gets Redis's protocol error and a closed connection;
// the server goes on serving everyone else.
func TestGarbage(t *testing.T) {
	t.Parallel()
	addr, _ := start(t, Config{MaxRequestBytes: 1024, IdleTimeout: 300 * time.Millisecond}, fixture())
	junk := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range junk {
		junk[i] = byte(r.IntN(256))
	}
	cases := []struct {
		name string
		send string
		want string // reply before the close (a prefix for random bytes)
	}{
		{"huge bulk length", "*1\r\n$9223372036854775807\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk over max request", "*2\r\n$3\r\nfoo\r\n$2000\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"args over max request together", "*3\r\n$3\r\nfoo\r\n$600\r\n" + strings.Repeat("x", 600) + "\r\n$600\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"huge multibulk", "*99999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"negative bulk", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"not a bulk", "*1\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"},
		{"long header", "*1" + strings.Repeat("1", 100) + "\r\n", "-ERR Protocol error: too big mbulk count string\r\n"},
		{"inline too big", strings.Repeat("a", 2000) + "\r\n", "-ERR Protocol error: too big inline request\r\n"},
		{"unbalanced quotes", "PING \"abc\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"bad bulk terminator", "*1\r\n$4\r\nPINGxx", "-ERR Protocol error: invalid bulk length\r\n"},
		{"unterminated input times out", "*2\r\n$4\r\nPING\r\n$3\r\nab", ""},
		{"random bytes", string(junk), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, addr)
			c.send(tc.send)
			if tc.want != "" {
				c.expect(tc.want)
			}
			c.expectClosedOrErr()
		})
	}
	t.Run("still serving", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("PING\r\n")
		c.expect("+PONG\r\n")
	})
}

// expectClosedOrErr waits for the close, allowing error replies (random
// bytes may hold several inline lines before the bad one).
func (r *rawConn) expectClosedOrErr() {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.br.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				r.t.Fatalf("server did not close (got %q)", got)
			}
			break
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(got), "\r\n"), "\r\n") {
		if line != "" && !strings.HasPrefix(line, "-") {
			r.t.Fatalf("non-error reply to junk: %q", got)
		}
	}
}

func TestMaxConns(t *testing.T) {
	t.Parallel()
	addr, _ := start(t, Config{MaxConns: 1}, fixture())
	first := dialRaw(t, addr)
	first.send("PING\r\n")
	first.expect("+PONG\r\n")
	second := dialRaw(t, addr)
	second.expect("-ERR max number of clients reached\r\n")
	second.expectClosed()
}

// Ending Serve's context closes every connection, subscribers included.
func TestShutdownClosesConnections(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := New(Config{Addr: ln.Addr().String()}, fixture(), slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	idle := dialRaw(t, ln.Addr().String())
	idle.send("PING\r\n")
	idle.expect("+PONG\r\n")
	sub := dialRaw(t, ln.Addr().String())
	sub.send(authA + resp("SUBSCRIBE", "+switch-master"))
	sub.expect("+OK\r\n*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n")
	require.Equal(t, 2.0, testutil.ToFloat64(srv.connsGauge))

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	idle.expectClosed()
	sub.expectClosed()
	require.Equal(t, 0.0, testutil.ToFloat64(srv.connsGauge))
}

func TestRunListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	srv, err := New(Config{Addr: ln.Addr().String()}, fixture(), slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	require.ErrorContains(t, srv.Run(context.Background()), "sentinel listen")
}

func TestNewRejectsNilDependencies(t *testing.T) {
	_, err := New(Config{}, nil, slog.Default(), prometheus.NewRegistry())
	require.Error(t, err)
	_, err = New(Config{Addr: "bad"}, fixture(), slog.Default(), prometheus.NewRegistry())
	require.Error(t, err)
}
