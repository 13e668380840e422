package sentinel

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config configures the Sentinel port.
type Config struct {
	// Addr is the listen address (host:port).
	Addr string `yaml:"addr" env:"ADDR" default:"127.0.0.1:26380"`
	// Peers are the other router replicas' Sentinel addresses, announced
	// by SENTINEL sentinels so clients learn every replica.
	Peers []string `yaml:"peers" env:"PEERS"`
	// MaxConns bounds open connections; more are refused with an error.
	MaxConns int `yaml:"max_conns" env:"MAX_CONNS" default:"1024"`
	// IdleTimeout closes a connection silent for that long, unless it is
	// subscribed (a subscriber only listens).
	IdleTimeout time.Duration `yaml:"idle_timeout" env:"IDLE_TIMEOUT" default:"5m"`
	// MaxRequestBytes bounds one command's total argument size.
	MaxRequestBytes int `yaml:"max_request_bytes" env:"MAX_REQUEST_BYTES" default:"65536"`
}

// Defaults.
const (
	DefaultAddr            = "127.0.0.1:26380"
	DefaultMaxConns        = 1024
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultMaxRequestBytes = 64 << 10
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	return c
}

// Validate reports a configuration the server cannot run with (zero
// fields take their defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	for _, p := range c.Peers {
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("peer %q: not host:port", p))
		}
	}
	if c.MaxConns < 0 {
		errs = append(errs, errors.New("max_conns must not be negative"))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, errors.New("idle_timeout must not be negative"))
	}
	if c.MaxRequestBytes < 0 {
		errs = append(errs, errors.New("max_request_bytes must not be negative"))
	}
	return errors.Join(errs...)
}
