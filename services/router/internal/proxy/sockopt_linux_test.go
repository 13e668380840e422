//go:build linux

package proxy

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/canopy-platform/canopy/libs/nettune"
)

// TestSocketsAreTuned reads keepalive and TCP_USER_TIMEOUT back from the
// kernel on both sockets of a forwarded connection.
func TestSocketsAreTuned(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	dialer := nettune.DialerSettings{ConnectTimeout: time.Second,
		KeepAlive: nettune.KeepAlive{Idle: 21 * time.Second, Interval: 4 * time.Second, Count: 3}, UserTimeout: 33 * time.Second}
	h := startProxy(t, Config{Dialer: dialer}, p.tbl)
	h.serving(p.rwPort)
	hello(t, p.rwPort)

	var c *conn
	require.Eventually(t, func() bool {
		h.p.mu.Lock()
		defer h.p.mu.Unlock()
		for cc := range h.p.eps[epKey{"i1", RW}].conns {
			c = cc
		}
		return c != nil
	}, time.Second, 5*time.Millisecond)
	for name, s := range map[string]*net.TCPConn{"client": c.client, "backend": c.backend} {
		raw, err := s.SyscallConn()
		require.NoError(t, err)
		var ut, ka, idle int
		require.NoError(t, raw.Control(func(fd uintptr) {
			ut, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
			ka, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			idle, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		}))
		assert.Equal(t, 33_000, ut, name)
		assert.Equal(t, 1, ka, name)
		assert.Equal(t, 21, idle, name)
	}
}
