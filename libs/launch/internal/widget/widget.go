// Package widget is Canopy's widget service: what it is for, and what it is
// not. Config, New and Run are its API; everything else is internal.
package widget

import (
	"context"
	"net/http"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/libs/launch/internal/widget/migrations"
)

// Config configures the widget service; env vars carry the CANOPY_ prefix.
type Config struct {
	launch.Platform `yaml:",inline"` // mysql_dsn, internal_secret(_previous), kafka
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"WIDGET_ADDR" default:"127.0.0.1:8099"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is the widget's database, created if missing.
	Database string `yaml:"database" env:"WIDGET_DATABASE" default:"canopy_widget"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"WIDGET_RELAY_"`
}

// DefaultConfig is a local development configuration, without the secret.
func DefaultConfig() Config {
	return Config{Platform: launch.DefaultPlatform("/canopy/widget"), Addr: "127.0.0.1:8099", Database: "canopy_widget"}
}

// Validate reports every configuration error at once.
func (c Config) Validate() error {
	return launch.ConfigError("widget", launch.CheckAddr("addr", c.Addr), c.Store(c.Database).Validate(), c.Secrets.Validate())
}

// Service is a configured widget service; launch.Base gives it Ready and Addr.
type Service struct {
	launch.Base
	cfg  Config
	deps launch.Deps
}

// New checks cfg and deps (all required) and returns the service. It does no I/O.
func New(cfg Config, deps launch.Deps) (*Service, error) {
	base, err := launch.NewService("widget", cfg, deps)
	if err != nil {
		return nil, err
	}
	return &Service{Base: base, cfg: cfg, deps: deps}, nil
}

// Run runs the stages in order until ctx ends, then stops them in reverse.
func (s *Service) Run(ctx context.Context) error {
	var db *store.DB // a repository or seed goes after migrate with launch.Then
	database, migrate := launch.DatabaseStages(s.cfg.Store(s.cfg.Database), s.Logger(), &db, migrations.FS)
	return s.RunStages(ctx, database, migrate,
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, s.Logger(), s.deps.Registry),
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, s.Logger(), s.deps.Registry, func(context.Context) (http.Handler, error) {
			r := httpx.NewRouter(s.Logger())
			r.Use(s.cfg.Middleware("widget"))
			return r, nil // after r.Mount(httpapi.Prefix, api.Routes())
		}, launch.DatabaseReady(&db)),
	)
}
