package nettune

import (
	"context"
	"fmt"
	"net"
	"time"
)

// KeepAlive is the TCP keepalive configuration of a socket.
type KeepAlive struct {
	// Idle is the silence before the first probe (TCP_KEEPIDLE).
	Idle time.Duration
	// Interval is the time between probes (TCP_KEEPINTVL).
	Interval time.Duration
	// Count is how many unanswered probes kill the connection (TCP_KEEPCNT).
	Count int
}

// DialerSettings configures the sockets of Canopy's own clients of the nodes
// (health probes, drivers, CDC readers). They carry no hidden retries: one
// call is one connection attempt.
type DialerSettings struct {
	// ConnectTimeout bounds the TCP handshake; a context deadline that comes
	// sooner wins.
	ConnectTimeout time.Duration
	// KeepAlive detects a dead peer on an idle connection. Zero fields take
	// Go's defaults (15 s / 15 s / 9).
	KeepAlive KeepAlive
	// UserTimeout (TCP_USER_TIMEOUT, RFC 5482) bounds how long sent data may
	// stay unacknowledged before the kernel drops the connection; without it
	// a busy socket to a dead peer retransmits for ~15 minutes (tcp_retries2).
	// Zero leaves the kernel's behaviour. Applied on Linux only.
	UserTimeout time.Duration
}

// dialerSettings returns the dialer for the link.
//
// Connect timeout: the handshake is dominated by the SYN retransmission timer
// (1 s, then 2 s more; RFC 6298), not the RTT. On a LAN it allows one lost SYN
// (resent at 1 s) plus two round trips, on a WAN two lost SYNs (resent at 1 s
// and 3 s); rounded up to 500 ms. Anything shorter turns one lost packet into
// a failed probe; anything longer only delays reporting an unreachable node.
//
// Keepalive 30 s / 10 s × 4 after the RabbitMQ networking guide (dead after
// ~70 s), the same as the node sysctls, and TCP_USER_TIMEOUT = idle + interval
// × count (Cloudflare, "When TCP sockets refuse to die"), so an idle and a busy
// connection to a vanished peer die after the same ~70 s. Both are far above
// any RTO on the link, so a slow link never trips them.
func dialerSettings(l Link) DialerSettings {
	syn := synRTO // resent at 1 s
	if wan(l) {
		syn = 3 * synRTO // resent at 1 s and again at 3 s
	}
	ka := KeepAlive{
		Idle:     keepaliveIdleSec * time.Second,
		Interval: keepaliveIntervalSec * time.Second,
		Count:    keepaliveProbes,
	}
	return DialerSettings{
		ConnectTimeout: ceilTo(syn+2*l.p95(), 500*time.Millisecond),
		KeepAlive:      ka,
		UserTimeout:    ka.Idle + ka.Interval*time.Duration(ka.Count),
	}
}

// Dialer returns a net.Dialer with the settings: the connect timeout, the
// keepalive configuration and, on Linux, a Control function that sets
// TCP_USER_TIMEOUT on TCP sockets before they connect. Non-TCP networks
// (unix sockets) are dialled unchanged.
func (s DialerSettings) Dialer() *net.Dialer {
	d := &net.Dialer{
		Timeout: s.ConnectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     s.KeepAlive.Idle,
			Interval: s.KeepAlive.Interval,
			Count:    s.KeepAlive.Count,
		},
	}
	if s.UserTimeout > 0 {
		d.Control = userTimeoutControl(s.UserTimeout)
	}
	return d
}

// DialContext dials addr with the settings. Its signature fits go-redis
// Options.Dialer and, with the network fixed, mysql.RegisterDialContext.
func (s DialerSettings) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.Dialer().DialContext(ctx, network, addr)
}

// Tune applies the keepalive configuration and, on Linux, TCP_USER_TIMEOUT
// to a connection the caller did not dial, such as one a proxy accepted, so
// that its client side detects a vanished peer as fast as its dialled side.
func (s DialerSettings) Tune(c *net.TCPConn) error {
	if err := c.SetKeepAliveConfig(net.KeepAliveConfig{
		Enable:   true,
		Idle:     s.KeepAlive.Idle,
		Interval: s.KeepAlive.Interval,
		Count:    s.KeepAlive.Count,
	}); err != nil {
		return fmt.Errorf("nettune: set keepalive: %w", err)
	}
	if s.UserTimeout <= 0 {
		return nil
	}
	set := userTimeoutControl(s.UserTimeout)
	if set == nil {
		return nil
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("nettune: raw conn: %w", err)
	}
	return set("tcp", c.RemoteAddr().String(), raw)
}

// UserTimeoutSupported reports whether Dialer applies UserTimeout on this
// platform.
func UserTimeoutSupported() bool { return userTimeoutSupported }
