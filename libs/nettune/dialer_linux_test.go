//go:build linux

package nettune

import (
	"context"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// sockopts reads the socket options the dialer is meant to set, from the
// kernel, on the connection's own file descriptor.
type sockopts struct {
	userTimeoutMS, keepalive, idle, interval, count int
}

func readSockopts(t *testing.T, c net.Conn) sockopts {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	require.True(t, ok, "%T is not a syscall.Conn", c)
	raw, err := sc.SyscallConn()
	require.NoError(t, err)
	var o sockopts
	var gerr error
	get := func(fd, level, opt int) int {
		v, err := unix.GetsockoptInt(fd, level, opt)
		if err != nil && gerr == nil {
			gerr = err
		}
		return v
	}
	require.NoError(t, raw.Control(func(fd uintptr) {
		f := int(fd)
		o.userTimeoutMS = get(f, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		o.keepalive = get(f, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		o.idle = get(f, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		o.interval = get(f, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		o.count = get(f, unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	}))
	require.NoError(t, gerr)
	return o
}

// listen starts a loopback listener that accepts and holds connections until
// the test ends.
func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	require.NoError(t, err)
	done := make(chan struct{})
	var conns []net.Conn // owned by the accept loop until done is closed
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln
}

// TestDialerSetsSocketOptions dials a real loopback connection with each
// mode's profile and reads TCP_USER_TIMEOUT and the keepalive options back
// from the kernel.
func TestDialerSetsSocketOptions(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	for _, m := range Modes() {
		t.Run(string(m), func(t *testing.T) {
			p, err := Default(m)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := p.Dialer.DialContext(ctx, "tcp", ln.Addr().String())
			require.NoError(t, err)
			defer c.Close()

			got := readSockopts(t, c)
			assert.Equal(t, sockopts{
				userTimeoutMS: 70_000, // 30 s + 10 s × 4
				keepalive:     1,
				idle:          30,
				interval:      10,
				count:         4,
			}, got)
		})
	}
}

// TestDialerWithoutUserTimeout leaves the kernel default (0: none) in place.
func TestDialerWithoutUserTimeout(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	s := DialerSettings{ConnectTimeout: time.Second, KeepAlive: KeepAlive{Idle: 20 * time.Second, Interval: 5 * time.Second, Count: 3}}
	c, err := s.DialContext(context.Background(), "tcp4", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, sockopts{keepalive: 1, idle: 20, interval: 5, count: 3}, readSockopts(t, c))
}

// TestDialerUnixSocket: the Control hook must leave non-TCP sockets alone
// (setting a TCP option on a unix socket would fail the dial).
func TestDialerUnixSocket(t *testing.T) {
	ln := listen(t, "unix", filepath.Join(t.TempDir(), "s.sock"))
	p, err := Default(MultiAZ)
	require.NoError(t, err)
	c, err := p.Dialer.DialContext(context.Background(), "unix", ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

// TestTuneAcceptedConn reads back, from the kernel, the options Tune sets on
// the server side of a loopback connection.
func TestTuneAcceptedConn(t *testing.T) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	srv, err := ln.AcceptTCP()
	require.NoError(t, err)
	defer srv.Close()

	s := DialerSettings{KeepAlive: KeepAlive{Idle: 20 * time.Second, Interval: 5 * time.Second, Count: 3}, UserTimeout: 35 * time.Second}
	require.NoError(t, s.Tune(srv))
	assert.Equal(t, sockopts{userTimeoutMS: 35_000, keepalive: 1, idle: 20, interval: 5, count: 3}, readSockopts(t, srv))

	s.UserTimeout = 0
	s.KeepAlive.Idle = 40 * time.Second
	require.NoError(t, s.Tune(srv))
	assert.Equal(t, sockopts{userTimeoutMS: 35_000, keepalive: 1, idle: 40, interval: 5, count: 3}, readSockopts(t, srv),
		"no user timeout: the socket's value is left alone")
}
