package proxy

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/canopy-platform/canopy/libs/nettune"
)

// Config configures the proxy. New fills the zero fields with the
// defaults, except IdleTimeout, whose zero means no idle timeout
// (DefaultConfig and the default tags give one hour).
type Config struct {
	// ListenHost is the address the endpoints listen on.
	ListenHost string `yaml:"listen_host" env:"PROXY_LISTEN_HOST" default:"127.0.0.1"`
	// ConnectWait bounds how long a new client connection waits for a usable
	// backend (a promotion under way, a primary refusing connections before
	// its failure is known) before it is closed.
	ConnectWait time.Duration `yaml:"connect_wait" env:"PROXY_CONNECT_WAIT" default:"2s"`
	// MaxConns is the most connections one endpoint holds (waiting for a
	// backend or forwarding); a connection beyond it is closed at once.
	MaxConns int `yaml:"max_conns" env:"PROXY_MAX_CONNS" default:"1024"`
	// IdleTimeout closes a connection that moved no data either way for
	// that long; 0 means never.
	IdleTimeout time.Duration `yaml:"idle_timeout" env:"PROXY_IDLE_TIMEOUT" default:"1h"`
	// Dialer configures the backend dials and, for keepalive and
	// TCP_USER_TIMEOUT, the accepted client sockets too. Zero: nettune's
	// single-AZ (LAN) profile, the router running next to its nodes.
	Dialer nettune.DialerSettings `yaml:"-"`
	// DrainTimeout is how long open connections may go on after Run's
	// context ends before they are closed.
	DrainTimeout time.Duration `yaml:"drain_timeout" env:"PROXY_DRAIN_TIMEOUT" default:"5s"`
	// ListenRetry is how often a port that could not be bound is tried
	// again.
	ListenRetry time.Duration `yaml:"listen_retry" env:"PROXY_LISTEN_RETRY" default:"3s"`
}

// Defaults.
const (
	DefaultListenHost   = "127.0.0.1"
	DefaultConnectWait  = 2 * time.Second
	DefaultMaxConns     = 1024
	DefaultIdleTimeout  = time.Hour
	DefaultDrainTimeout = 5 * time.Second
	DefaultListenRetry  = 3 * time.Second
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{IdleTimeout: DefaultIdleTimeout}.withDefaults()
}

// withDefaults returns c with its zero fields, but IdleTimeout, set to the
// defaults.
func (c Config) withDefaults() Config {
	if c.ListenHost == "" {
		c.ListenHost = DefaultListenHost
	}
	if c.ConnectWait == 0 {
		c.ConnectWait = DefaultConnectWait
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.ListenRetry == 0 {
		c.ListenRetry = DefaultListenRetry
	}
	if c.Dialer == (nettune.DialerSettings{}) {
		if prof, err := nettune.Default(nettune.SingleAZ); err == nil {
			c.Dialer = prof.Dialer
		}
	}
	return c
}

// ErrInvalidConfig is matched (errors.Is) by Validate's errors.
var ErrInvalidConfig = errors.New("invalid proxy config")

// Validate reports the first field out of range, zero fields taking their
// defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case net.ParseIP(c.ListenHost) == nil && c.ListenHost != "localhost":
		return bad("listen_host %q is not an IP address", c.ListenHost)
	case c.ConnectWait < 0:
		return bad("connect_wait %s < 0", c.ConnectWait)
	case c.MaxConns < 0:
		return bad("max_conns %d < 0", c.MaxConns)
	case c.IdleTimeout < 0:
		return bad("idle_timeout %s < 0 (0 means none)", c.IdleTimeout)
	case c.DrainTimeout < 0:
		return bad("drain_timeout %s < 0", c.DrainTimeout)
	case c.ListenRetry < 0:
		return bad("listen_retry %s < 0", c.ListenRetry)
	case c.Dialer.ConnectTimeout <= 0:
		return bad("dialer connect timeout %s must be > 0", c.Dialer.ConnectTimeout)
	case c.Dialer.UserTimeout < 0:
		return bad("dialer user timeout %s < 0", c.Dialer.UserTimeout)
	}
	return nil
}
