// Package widget is Canopy's widget service: what it is for, and what it is
// not. Config, New and Run are what cmd/widget and the all-in-one binary
// call; everything else is internal.
package widget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/libs/launch/internal/widget/migrations"
)

// Config configures the widget service; env vars carry the CANOPY_ prefix.
type Config struct {
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"WIDGET_ADDR" default:"127.0.0.1:8099"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Store is the widget's database, created if missing.
	Store store.Config `yaml:"store" envPrefix:"WIDGET_MYSQL_"`
	// InternalSecret is the HMAC key the gateway signs identities with.
	InternalSecret string `yaml:"internal_secret" env:"INTERNAL_SECRET"`
	// Kafka configures the publisher main builds for the outbox relay.
	Kafka eventbus.PublisherConfig `yaml:"kafka" envPrefix:"KAFKA_"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"WIDGET_RELAY_"`
}

// DefaultConfig is a local development configuration, without the secret.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8099", Store: store.Config{DSN: store.DefaultDSN, Database: "canopy_widget"},
		Kafka: eventbus.PublisherConfig{Brokers: []string{"127.0.0.1:9092"}, Source: "/canopy/widget"}}
}

// Validate reports every configuration error at once.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if err := c.Store.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.InternalSecret) < 16 {
		errs = append(errs, errors.New("internal_secret (CANOPY_INTERNAL_SECRET) must be at least 16 bytes"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("widget config: %w", err)
	}
	return nil
}

// Deps are the service's dependencies; all are required.
type Deps struct {
	Logger    *slog.Logger
	Registry  *prometheus.Registry
	Publisher store.Publisher
}

// Service is a configured widget service, ready to Run. launch.Base gives
// it Ready and Addr.
type Service struct {
	launch.Base
	cfg  Config
	deps Deps
}

// New checks cfg and deps and returns the service. It does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := launch.Require("widget", "logger", deps.Logger, "metrics registry", deps.Registry, "event publisher", deps.Publisher); err != nil {
		return nil, err
	}
	return &Service{Base: launch.NewBase("widget", deps.Logger, 0), cfg: cfg, deps: deps}, nil
}

// Run runs the stages in order until ctx ends, then stops them in reverse.
func (s *Service) Run(ctx context.Context) error {
	var db *store.DB
	log := s.Logger()
	// "database" opens and closes db; "migrate" applies the outbox's and the
	// widget's migrations (add a repository or a seed with launch.Then).
	database, migrate := launch.DatabaseStages(s.cfg.Store, log, &db, migrations.FS)
	return s.RunStages(ctx, database, migrate,
		// Started before and stopped after HTTP, so the last requests' events go out.
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, log, s.deps.Registry),
		launch.Serve("http", func(context.Context) (*httpx.Server, error) {
			h := s.cfg.HTTP
			h.Addr = s.cfg.Addr
			r := httpx.NewRouter(log)
			r.Use(tenancy.Middleware("widget", []byte(s.cfg.InternalSecret)))
			// r.Mount(httpapi.Prefix, api.Routes()): internal/httpapi's handlers.
			srv := httpx.NewServer(h, r, log, s.deps.Registry)
			srv.AddReadinessCheck("mysql", func(ctx context.Context) error { return db.SQL().PingContext(ctx) })
			return srv, nil
		}),
	)
}
