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

// Service is a configured widget service, ready to Run.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	life *launch.Lifecycle
}

// New checks cfg and deps and returns the service. It does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil || deps.Registry == nil || deps.Publisher == nil {
		return nil, errors.New("widget: logger, registry and publisher are required")
	}
	log := deps.Logger.With("service", "widget")
	return &Service{cfg: cfg, deps: deps, log: log, life: launch.NewLifecycle("widget", 0, log)}, nil
}

// Ready is closed once the service has migrated and listens.
func (s *Service) Ready() <-chan struct{} { return s.life.Ready() }

// Addr is the address the service listens on, once Ready is closed.
func (s *Service) Addr() string { return s.life.Addr("http") }

// Run runs the stages in order until ctx ends, then stops them in reverse.
func (s *Service) Run(ctx context.Context) error {
	var db *store.DB
	return s.life.Run(ctx,
		launch.Stage{Name: "database",
			Start: func(ctx context.Context) (err error) { db, err = store.Open(ctx, s.cfg.Store, s.log); return err },
			Stop:  func(context.Context) error { return db.Close() }},
		launch.Stage{Name: "migrate", Start: func(ctx context.Context) error { return db.Migrate(ctx, store.OutboxMigrations(), migrations.FS) }},
		// Started before and stopped after HTTP, so the last requests' events go out.
		launch.Stage{Name: "outbox relay", Run: func(ctx context.Context) error {
			return store.NewRelay(db, s.deps.Publisher, s.cfg.Relay, s.log, s.deps.Registry).Run(ctx)
		}},
		launch.Serve("http", func(context.Context) (*httpx.Server, error) {
			h := s.cfg.HTTP
			h.Addr = s.cfg.Addr
			r := httpx.NewRouter(s.log)
			r.Use(tenancy.Middleware("widget", []byte(s.cfg.InternalSecret)))
			// r.Mount(httpapi.Prefix, api.Routes()): internal/httpapi's handlers.
			srv := httpx.NewServer(h, r, s.log, s.deps.Registry)
			srv.AddReadinessCheck("mysql", func(ctx context.Context) error { return db.SQL().PingContext(ctx) })
			return srv, nil
		}),
	)
}
