package shard

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/eventbus"
)

type nopOwner struct{}

func (nopOwner) Owned(context.Context, []int, int)                 {}
func (nopOwner) Revoked(context.Context, []int)                    {}
func (nopOwner) Published(string, string, string)                  {}
func (nopOwner) Handle(context.Context, int, eventbus.Event) error { return nil }

func TestNewChecksConfigAndDependencies(t *testing.T) {
	valid := Config{Brokers: []string{"127.0.0.1:9092"}, Group: "healthcheck.targets",
		Topic: "canopy.instances.v1", HealthTopic: "canopy.health.v1"}
	logger := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name   string
		cfg    func(Config) Config
		owner  Owner
		logger *slog.Logger
		ok     bool
	}{
		{"valid", func(c Config) Config { return c }, nopOwner{}, logger, true},
		{"no brokers", func(c Config) Config { c.Brokers = nil; return c }, nopOwner{}, logger, false},
		{"no group", func(c Config) Config { c.Group = ""; return c }, nopOwner{}, logger, false},
		{"no health topic", func(c Config) Config { c.HealthTopic = ""; return c }, nopOwner{}, logger, false},
		{"heartbeat not below session timeout", func(c Config) Config {
			c.SessionTimeout, c.HeartbeatInterval = time.Second, 2*time.Second
			return c
		}, nopOwner{}, logger, false},
		{"nil owner", func(c Config) Config { return c }, nil, logger, false},
		{"nil logger", func(c Config) Config { return c }, nopOwner{}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg(valid), tc.owner, tc.logger, prometheus.NewRegistry())
			if tc.ok != (err == nil) {
				t.Fatalf("New: err = %v, want ok = %v", err, tc.ok)
			}
			if s != nil {
				if parts, total := s.Owned(); len(parts) != 0 || total != 0 {
					t.Fatalf("a new sharder owns %v of %d", parts, total)
				}
			}
		})
	}
}
