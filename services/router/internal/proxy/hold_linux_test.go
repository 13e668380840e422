//go:build linux

package proxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// portHolder keeps a loopback port bound, not listening, with SO_REUSEPORT.
// While it lives, the port refuses connections unless one of its own
// listeners (SO_REUSEPORT too) is bound, and no other listener can take
// it: Go's and redis-server's listeners do not set SO_REUSEPORT. A backend
// that stops listening to play a dead node therefore goes on refusing,
// instead of having its port taken by a parallel test's listener that then
// answers for it.
type portHolder struct {
	fd   int
	port int
}

func holdPort() (*portHolder, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	h := &portHolder{fd: fd}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		h.close()
		return nil, fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		h.close()
		return nil, fmt.Errorf("bind: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		h.close()
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	h.port = sa.(*unix.SockaddrInet4).Port
	return h, nil
}

// listen listens on the held port.
func (h *portHolder) listen() (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)))
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

func (h *portHolder) close() { _ = unix.Close(h.fd) }

// stopListening takes ln out of LISTEN at once, for every descriptor of
// the socket: closing ln alone leaves it listening while a child being
// forked by a parallel test (exec of redis-server) still holds a copy of
// the descriptor, which a test's next dial then reaches.
func stopListening(ln *net.TCPListener) error {
	raw, err := ln.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw listener: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_RD) }); err != nil {
		return fmt.Errorf("raw listener control: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("shutdown listener: %w", serr)
	}
	return nil
}

// reservePort binds a loopback port with SO_REUSEADDR and does not listen.
// The kernel then hands the port to no other bind to port 0 and uses it as
// no connection's source port, while a listener that sets SO_REUSEADDR
// (Go's, redis-server's) can still bind it explicitly: the port stays free
// for the code under test only, until release.
func reservePort() (port int, release func(), err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("socket: %w", err)
	}
	release = func() { _ = unix.Close(fd) }
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		release()
		return 0, nil, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		release()
		return 0, nil, fmt.Errorf("bind: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		release()
		return 0, nil, fmt.Errorf("getsockname: %w", err)
	}
	return sa.(*unix.SockaddrInet4).Port, release, nil
}

// TestReservedPortIsFreeForItsUserOnly: the proxy can listen on a reserved
// port, the port refuses once it stops, and no bind to port 0 gets it.
func TestReservedPortIsFreeForItsUserOnly(t *testing.T) {
	t.Parallel()
	port, release, err := reservePort()
	require.NoError(t, err)
	defer release()
	ln, err := net.Listen("tcp", addr(port))
	require.NoError(t, err, "listening on a reserved port")
	_, err = net.Listen("tcp", addr(port))
	require.ErrorIs(t, err, unix.EADDRINUSE, "two listeners on one port")
	require.NoError(t, stopListening(ln.(*net.TCPListener)))
	require.NoError(t, ln.Close())
	_, err = net.Dial("tcp", addr(port))
	require.ErrorIs(t, err, unix.ECONNREFUSED)
	for range 200 {
		other, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		got := other.Addr().(*net.TCPAddr).Port
		_ = other.Close()
		require.NotEqual(t, port, got, "a bind to port 0 got the reserved port")
	}
}

// TestHeldPortRefusesAndKeepsOthersOut: what the tests of refusing backends
// rely on.
func TestHeldPortRefusesAndKeepsOthersOut(t *testing.T) {
	t.Parallel()
	h, err := holdPort()
	require.NoError(t, err)
	defer h.close()
	a := addr(h.port)
	ln, err := h.listen()
	require.NoError(t, err)
	c, err := net.Dial("tcp", a)
	require.NoError(t, err)
	_ = c.Close()
	require.NoError(t, stopListening(ln))
	require.NoError(t, ln.Close())

	_, err = net.Dial("tcp", a)
	require.ErrorIs(t, err, unix.ECONNREFUSED)
	squatter, err := net.Listen("tcp", a)
	if err == nil {
		_ = squatter.Close()
	}
	require.ErrorIs(t, err, unix.EADDRINUSE, "another listener took the held port")
	ln, err = h.listen()
	require.NoError(t, err, "listening again on the held port")
	require.NoError(t, ln.Close())
}
