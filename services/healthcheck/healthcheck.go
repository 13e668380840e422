// Package healthcheck is Canopy's health checker: it probes every node of
// every ready instance with its engine's protocol (Redis PING + INFO,
// MySQL/MariaDB ping + replica status, TCP), applies fall/rise thresholds,
// publishes transitions as health.node.up|down|degraded on canopy.health.v1
// and batched samples as health.node.sampled on canopy.health.samples.v1,
// and serves GET /api/v1/instances/{id}/health. Replicas share the targets
// by Kafka partition ownership of canopy.instances.v1.
//
// Config, New and Run are what cmd/healthcheck and the all-in-one binary
// call; everything else is internal.
package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/nettune"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/httpapi"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/intake"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/monitor"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/provclient"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/shard"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

// Defaults of Config.
const (
	DefaultAddr            = "127.0.0.1:8085"
	DefaultProvisioningURL = "http://127.0.0.1:8084"
)

// Config configures the healthcheck. Environment variables carry the
// CANOPY_ prefix (libs/config), e.g. CANOPY_HEALTHCHECK_ADDR.
type Config struct {
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"HEALTHCHECK_ADDR" default:"127.0.0.1:8085"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Replica names this replica in events and the admin view (default:
	// hostname plus a random suffix).
	Replica string `yaml:"replica" env:"HEALTHCHECK_REPLICA"`
	// Brokers are the Kafka bootstrap brokers.
	Brokers []string `yaml:"brokers" env:"KAFKA_BROKERS" envSeparator:"," default:"127.0.0.1:9092"`
	// ProvisioningURL is where provisioning's internal API is.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	ProvisioningURL string `yaml:"provisioning_url" env:"HEALTHCHECK_PROVISIONING_URL" default:"http://127.0.0.1:8084"`
	// Secrets are internal_secret and internal_secret_previous, named as in
	// every service.
	launch.Secrets `yaml:",inline"`
	// Interval, Timeout, Fall, Rise, MaxLag and SampleEvery are the
	// default probe policy.
	Interval    time.Duration `yaml:"interval" env:"HEALTHCHECK_INTERVAL" default:"1s"`
	Timeout     time.Duration `yaml:"timeout" env:"HEALTHCHECK_TIMEOUT" default:"500ms"`
	Fall        int           `yaml:"fall" env:"HEALTHCHECK_FALL" default:"3"`
	Rise        int           `yaml:"rise" env:"HEALTHCHECK_RISE" default:"2"`
	MaxLag      time.Duration `yaml:"max_lag" env:"HEALTHCHECK_MAX_LAG" default:"30s"`
	SampleEvery int           `yaml:"sample_every" env:"HEALTHCHECK_SAMPLE_EVERY" default:"10"`
	// SampleInterval is how often sample batches are published.
	SampleInterval time.Duration `yaml:"sample_interval" env:"HEALTHCHECK_SAMPLE_INTERVAL" default:"10s"`
	// Workers bounds concurrent probes.
	Workers int `yaml:"workers" env:"HEALTHCHECK_WORKERS" default:"512"`
	// ResyncInterval is how often targets are resynced from provisioning.
	ResyncInterval time.Duration `yaml:"resync_interval" env:"HEALTHCHECK_RESYNC_INTERVAL" default:"1m"`
	// SessionTimeout is how long a dead replica keeps its partitions.
	SessionTimeout time.Duration `yaml:"session_timeout" env:"HEALTHCHECK_SESSION_TIMEOUT" default:"10s"`
	// Link is the deployment mode whose dialer probes use.
	Link string `yaml:"link" env:"HEALTHCHECK_LINK" default:"multi-az"`
	// Kafka tunes the publisher of cmd/healthcheck; its brokers default to
	// Brokers and its source to /canopy/healthcheck.
	Kafka eventbus.PublisherConfig `yaml:"kafka" envPrefix:"KAFKA_"`
}

// DefaultSource is the ce_source of the healthcheck's events.
const DefaultSource = "/canopy/healthcheck"

// PublisherConfig is Kafka with its defaults filled in from the rest.
func (c Config) PublisherConfig() eventbus.PublisherConfig {
	k := c.Kafka
	if len(k.Brokers) == 0 {
		k.Brokers = c.Brokers
	}
	if k.Source == "" {
		k.Source = DefaultSource
	}
	return k
}

// DefaultConfig returns a local development configuration (without the
// internal secret, which must be set).
func DefaultConfig() Config {
	p := target.DefaultPolicy()
	return Config{Addr: DefaultAddr, Brokers: []string{"127.0.0.1:9092"}, ProvisioningURL: DefaultProvisioningURL,
		Interval: p.Interval, Timeout: p.Timeout, Fall: p.Fall, Rise: p.Rise, MaxLag: p.MaxLag, SampleEvery: p.SampleEvery,
		SampleInterval: 10 * time.Second, Workers: 512, ResyncInterval: time.Minute, SessionTimeout: 10 * time.Second,
		Link: string(nettune.MultiAZ)}
}

func (c Config) policy() target.Policy {
	return target.Policy{Interval: c.Interval, Timeout: c.Timeout, Fall: c.Fall, Rise: c.Rise, MaxLag: c.MaxLag,
		SampleEvery: c.SampleEvery}.WithDefaults()
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Secrets.Validate()}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one is required"))
	}
	if err := c.policy().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := svcclient.CheckURLs(c.ProvisioningURL); err != nil {
		errs = append(errs, fmt.Errorf("provisioning_url (one URL or a comma-separated list): %w", err))
	}
	if _, err := nettune.ParseMode(c.Link); err != nil {
		errs = append(errs, err)
	}
	if c.SampleInterval < time.Second || c.ResyncInterval < time.Second {
		errs = append(errs, errors.New("sample_interval and resync_interval must be at least 1s"))
	}
	return launch.ConfigError("healthcheck", errs...)
}

// Deps are the healthcheck's dependencies.
type Deps struct {
	// Logger is required.
	Logger *slog.Logger
	// Registry receives the metrics and is served on /metrics; required.
	Registry *prometheus.Registry
	// Publisher publishes health events (an *eventbus.Publisher); required.
	Publisher EventPublisher
}

// Service is a configured healthcheck, ready to Run.
type Service struct {
	launch.Base
	cfg     Config
	deps    Deps
	mon     *monitor.Monitor
	intake  *intake.Intake
	sharder *shard.Sharder
}

// New checks cfg and deps and builds the service. It does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := launch.Check("healthcheck", cfg, "logger", deps.Logger, "metrics registry", deps.Registry, "event publisher", deps.Publisher); err != nil {
		return nil, err
	}
	if cfg.Replica == "" {
		host, _ := os.Hostname()
		cfg.Replica = host + "-" + ulid.Make().String()[20:]
	}
	base := launch.NewBase("healthcheck", deps.Logger, 0, "replica", cfg.Replica)
	logger := base.Logger()
	mode, _ := nettune.ParseMode(cfg.Link)
	prof, err := nettune.Default(mode)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: %w", err)
	}
	mon, err := monitor.New(monitor.Config{Replica: cfg.Replica, SampleInterval: cfg.SampleInterval, Workers: cfg.Workers},
		reportPublisher{bus: deps.Publisher}, prof.Dialer.DialContext, logger, deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: %w", err)
	}
	prov, err := provclient.New(cfg.ProvisioningURL, []byte(cfg.InternalSecret), 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: %w", err)
	}
	in, err := intake.New(mon, prov, cfg.policy(), logger)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: %w", err)
	}
	sh, err := shard.New(shard.Config{Brokers: cfg.Brokers, Group: events.GroupHealthcheckTargets, Topic: events.TopicInstances,
		HealthTopic: events.TopicHealth, SessionTimeout: cfg.SessionTimeout}, in, logger, deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: %w", err)
	}
	return &Service{Base: base, cfg: cfg, deps: deps, mon: mon, intake: in, sharder: sh}, nil
}

// Run probes, follows the instance topic and serves HTTP until ctx ends.
// Shutdown: HTTP drains, the group is left (partitions go to the other
// replicas at once), then probing stops and queued transitions are flushed.
func (s *Service) Run(ctx context.Context) error {
	return s.RunStages(ctx,
		launch.Stage{Name: "monitor", Run: s.mon.Run},
		launch.Stage{Name: "sharder", Run: s.sharder.Run},
		launch.Stage{Name: "resync", Run: s.resync},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, s.Logger(), s.deps.Registry, func(context.Context) (http.Handler, error) {
			r := httpx.NewRouter(s.Logger())
			api := httpapi.New(s.mon, s.sharder, s.cfg.Replica)
			r.Group(func(r chi.Router) {
				r.Use(s.cfg.Middleware(tenancy.AudienceHealthcheck))
				api.Routes(r)
			})
			return r, nil
		}),
	)
}

// resync re-reads the owned partitions' targets from provisioning every
// ResyncInterval, to heal what a missed event left behind.
func (s *Service) resync(ctx context.Context) error {
	return launch.Every(s.cfg.ResyncInterval, s.Logger(), "resync", func(ctx context.Context) error {
		if parts, _ := s.sharder.Owned(); len(parts) == 0 {
			return nil
		}
		return s.intake.Resync(ctx)
	})(ctx)
}
