// Package alerting is Canopy's alerting service, Prometheus Alertmanager's
// model inside the platform: it evaluates rules over the health checker's
// samples and the platform's events (node down, failover, cdc lag, budget
// thresholds), accepts alerts pushed by Prometheus on the Alertmanager v2
// API, groups, inhibits and silences them per tenant, and notifies webhook
// receivers with Alertmanager's version 4 payload, signed with HMAC, at
// least once across crashes (the queue is in MySQL). It publishes
// alerting.alert.firing and .resolved on canopy.alerts.v1 through its
// outbox, runs opt-in remediation, and serves Prometheus HTTP service
// discovery and per-node gauges. API on port 8089 (docs/alerting.md).
//
// Config, New and Run are what cmd/alerting and the all-in-one binary call;
// everything else is internal.
package alerting

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/httpapi"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
	"github.com/canopy-platform/canopy/services/alerting/internal/remediation"
	"github.com/canopy-platform/canopy/services/alerting/internal/webhook"
	"github.com/canopy-platform/canopy/services/alerting/migrations"
)

// Defaults of Config.
const (
	DefaultAddr        = "127.0.0.1:8089"
	DefaultDatabase    = "canopy_alerting"
	DefaultExternalURL = "http://127.0.0.1:8080"
	// DefaultSource is the ce_source of the alerting service's events.
	DefaultSource = events.SourceAlerting
	// ConsumerGroup is the Kafka consumer group of the engine.
	ConsumerGroup = "canopy-alerting"
	// topicPartitions is canopy.alerts.v1's partition count (api/topics.md).
	topicPartitions = 6
)

// Config configures the alerting service; env vars carry the CANOPY_ prefix.
type Config struct {
	// Platform is mysql_dsn, internal_secret(_previous) and kafka (whose
	// brokers the engine's consumer shares with the outbox relay), named as
	// in every service.
	launch.Platform `yaml:",inline"`
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"ALERTING_ADDR" default:"127.0.0.1:8089"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is the alerting database (alerts, silences, receivers, the
	// notification log and queue), created if missing.
	Database string `yaml:"database" env:"ALERTING_DATABASE" default:"canopy_alerting"`
	// ExternalURL is the URL users reach Canopy at (the gateway): the
	// webhook payload's externalURL and the base of rule alerts'
	// generatorURL.
	ExternalURL string `yaml:"external_url" env:"ALERTING_EXTERNAL_URL" default:"http://127.0.0.1:8080"`
	// AllowPrivateWebhooks lets receivers point at loopback and private
	// addresses (a receiver on the developer's machine); off in production,
	// where it would let a tenant reach the platform's internal network.
	// Link-local and cloud metadata addresses are refused regardless.
	AllowPrivateWebhooks bool `yaml:"allow_private_webhooks" env:"ALERTING_ALLOW_PRIVATE_WEBHOOKS" default:"false"`
	// DeliveryWorkers post notifications concurrently.
	DeliveryWorkers int `yaml:"delivery_workers" env:"ALERTING_DELIVERY_WORKERS" default:"32"`
	// MaxAttempts is how often a notification is tried before it becomes a
	// dead letter.
	MaxAttempts int `yaml:"max_attempts" env:"ALERTING_MAX_ATTEMPTS" default:"12"`
	// DeadAfter makes a notification a dead letter once it has waited this
	// long (a receiver whose breaker stays open), whatever its attempts.
	DeadAfter time.Duration `yaml:"dead_after" env:"ALERTING_DEAD_AFTER" default:"1h"`
	// WebhookTimeout bounds one delivery attempt.
	WebhookTimeout time.Duration `yaml:"webhook_timeout" env:"ALERTING_WEBHOOK_TIMEOUT" default:"10s"`
	// StaleAfter resolves the sample alerts of a node no longer sampled
	// (deleted, or its health checks stopped).
	StaleAfter time.Duration `yaml:"stale_after" env:"ALERTING_STALE_AFTER" default:"5m"`
	// ResolvedRetention keeps resolved alerts listable before they are
	// deleted.
	ResolvedRetention time.Duration `yaml:"resolved_retention" env:"ALERTING_RESOLVED_RETENTION" default:"24h"`
	// MaxAlertsPerMessage truncates a notification to this many alerts
	// (truncatedAlerts counts the rest); 0 sends them all.
	MaxAlertsPerMessage int `yaml:"max_alerts_per_message" env:"ALERTING_MAX_ALERTS_PER_MESSAGE" default:"0"`
	// FailoverURL is the failover service, which remediation asks for a
	// switchover or a replica's rebuild.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	FailoverURL string `yaml:"failover_url" env:"ALERTING_FAILOVER_URL" default:"http://127.0.0.1:8086"`
	// ProvisioningURL is provisioning, which remediation asks to restart a
	// node (a graceful stop its supervisor answers with a start).
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	ProvisioningURL string `yaml:"provisioning_url" env:"ALERTING_PROVISIONING_URL" default:"http://127.0.0.1:8084"`
	// RemediationMaxPerInstance actions per RemediationWindow per instance;
	// more are recorded as skipped, so a flapping alert cannot keep
	// switching an instance over.
	RemediationMaxPerInstance int `yaml:"remediation_max_per_instance" env:"ALERTING_REMEDIATION_MAX_PER_INSTANCE" default:"3"`
	// RemediationWindow is the sliding window RemediationMaxPerInstance
	// counts in.
	RemediationWindow time.Duration `yaml:"remediation_window" env:"ALERTING_REMEDIATION_WINDOW" default:"1h"`
	// DLQEvery is how often the dead-letter topics (<topic>.dlq) are looked
	// at: one that grew raises the platform alert DeadLettersGrowing.
	DLQEvery time.Duration `yaml:"dlq_every" env:"ALERTING_DLQ_EVERY" default:"30s"`
	// EnsureTopics creates canopy.alerts.v1 when it is missing.
	EnsureTopics bool `yaml:"ensure_topics" env:"ALERTING_ENSURE_TOPICS" default:"true"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"ALERTING_RELAY_"`
}

// DefaultConfig is a local development configuration, without the secret.
func DefaultConfig() Config {
	return Config{Platform: launch.DefaultPlatform(DefaultSource), Addr: DefaultAddr, Database: DefaultDatabase,
		ExternalURL: DefaultExternalURL, DeliveryWorkers: 32, MaxAttempts: 12, DeadAfter: time.Hour,
		WebhookTimeout: 10 * time.Second, StaleAfter: 5 * time.Minute, ResolvedRetention: 24 * time.Hour,
		FailoverURL: "http://127.0.0.1:8086", ProvisioningURL: "http://127.0.0.1:8084",
		RemediationMaxPerInstance: 3, RemediationWindow: time.Hour, DLQEvery: 30 * time.Second, EnsureTopics: true}
}

// Validate reports every configuration error at once.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Store(c.Database).Validate(), c.Secrets.Validate()}
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("kafka brokers (CANOPY_KAFKA_BROKERS) must be set"))
	}
	if _, err := svcclient.CheckURL(c.ExternalURL); err != nil {
		errs = append(errs, fmt.Errorf("external_url: %w", err))
	}
	// The callees may have several replicas: one URL or a comma-separated list.
	for name, u := range map[string]string{"failover_url": c.FailoverURL, "provisioning_url": c.ProvisioningURL} {
		if err := svcclient.CheckURLs(u); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if c.DeliveryWorkers < 1 || c.MaxAttempts < 1 || c.RemediationMaxPerInstance < 1 {
		errs = append(errs, errors.New("delivery_workers, max_attempts and remediation_max_per_instance must be at least 1"))
	}
	if c.MaxAlertsPerMessage < 0 {
		errs = append(errs, errors.New("max_alerts_per_message must not be negative (0: no limit)"))
	}
	if c.DeadAfter <= 0 || c.WebhookTimeout <= 0 || c.StaleAfter <= 0 || c.ResolvedRetention <= 0 || c.RemediationWindow <= 0 || c.DLQEvery <= 0 {
		errs = append(errs, errors.New("dead_after, webhook_timeout, stale_after, resolved_retention, remediation_window and dlq_every must be positive"))
	}
	return launch.ConfigError("alerting", errs...)
}

// Service is a configured alerting service, ready to Run. launch.Base gives
// it Ready and Addr.
type Service struct {
	launch.Base
	cfg  Config
	deps launch.Deps
	// The rest exist once the database is open (stage "migrate").
	store  *alertstore.Store
	nodes  *nodes.Registry
	engine *engine.Engine
}

// New checks cfg and deps (all required) and builds the service. It does
// no I/O.
func New(cfg Config, deps launch.Deps) (*Service, error) {
	base, err := launch.NewService("alerting", cfg, deps)
	if err != nil {
		return nil, err
	}
	return &Service{Base: base, cfg: cfg, deps: deps}, nil
}

// Run runs the stages in order until ctx ends, then stops them in reverse:
// HTTP first (no more pushes or API changes), the engine (its consumer
// commits, deliveries in flight finish or stay queued, and the named lock
// is released for a standby), the relay (so the last alerting.alert.*
// events go out) and the database.
func (s *Service) Run(ctx context.Context) error {
	var db *store.DB
	log := s.Logger()
	database, migrate := launch.DatabaseStages(s.cfg.Store(s.cfg.Database), log, &db, migrations.FS)
	migrate = launch.Then(migrate, func(ctx context.Context) error {
		if err := s.build(db); err != nil {
			return err
		}
		if !s.cfg.EnsureTopics {
			return nil
		}
		// The engine's inputs (health, samples, failover, cdc, usage,
		// instances) belong to their producers; canopy.alerts.v1 is ours.
		return eventbus.EnsureTopics(ctx, s.cfg.Kafka.Brokers,
			eventbus.TopicSpec{Name: events.TopicAlerts, Partitions: topicPartitions})
	})
	return s.RunStages(ctx, database, migrate,
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, log, s.deps.Registry),
		launch.Stage{Name: "engine", Run: func(ctx context.Context) error { return s.engine.Run(ctx) }},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, log, s.deps.Registry, s.routes,
			launch.DatabaseReady(&db), s.engineReady()),
	)
}

// build makes the store, the node registry (its collector on the
// service's registry), the sender, the remediation runner and the engine
// over the open, migrated database.
func (s *Service) build(db *store.DB) error {
	st, err := alertstore.New(db)
	if err != nil {
		return fmt.Errorf("alert store: %w", err)
	}
	reg := nodes.New()
	if err := s.deps.Registry.Register(reg.Collector()); err != nil {
		return fmt.Errorf("register node collector: %w", err)
	}
	send := webhook.NewSender(webhook.SenderConfig{Policy: s.policy(), Timeout: s.cfg.WebhookTimeout,
		UserAgent: "Canopy-Alerting/1"})
	act, err := remediation.New(remediation.Config{FailoverURL: s.cfg.FailoverURL, ProvisioningURL: s.cfg.ProvisioningURL,
		Secret: []byte(s.cfg.InternalSecret), MaxPerInstance: s.cfg.RemediationMaxPerInstance,
		Window: s.cfg.RemediationWindow}, st) // the default timeout leaves a rebuild time to copy the data
	if err != nil {
		return fmt.Errorf("remediation: %w", err)
	}
	eng, err := engine.New(engine.Config{Brokers: s.cfg.Kafka.Brokers, GroupID: ConsumerGroup,
		ExternalURL: s.cfg.ExternalURL, GeneratorURL: strings.TrimSuffix(s.cfg.ExternalURL, "/") + "/api/v1/alert-rules/",
		InhibitRules: engine.DefaultInhibitRules(), DeliveryWorkers: s.cfg.DeliveryWorkers, MaxAttempts: s.cfg.MaxAttempts,
		DeadAfter: s.cfg.DeadAfter, StaleAfter: s.cfg.StaleAfter, ResolvedRetention: s.cfg.ResolvedRetention,
		MaxAlertsPerMessage: s.cfg.MaxAlertsPerMessage, DLQEvery: s.cfg.DLQEvery},
		db, st, send, act, reg, s.Logger(), s.deps.Registry)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	s.store, s.nodes, s.engine = st, reg, eng
	return nil
}

// policy is the receivers' URL policy, shared by the API (at creation) and
// the sender (at connect time).
func (s *Service) policy() webhook.URLPolicy {
	return webhook.URLPolicy{AllowPrivate: s.cfg.AllowPrivateWebhooks}
}

// routes is the HTTP handler: the API, every route behind the gateway's
// signed identity for the alerting audience (Prometheus pushes and service
// discovery come through the gateway with an API key, as any client).
func (s *Service) routes(context.Context) (http.Handler, error) {
	api, err := httpapi.New(httpapi.Deps{Store: s.store, Engine: s.engine, Nodes: s.nodes, URLs: s.policy(),
		Log: s.Logger()})
	if err != nil {
		return nil, err
	}
	// Prometheus pushes batches; the API bounds them itself and names the
	// limit, so the router's limit must not be the smaller one.
	r := httpx.NewRouter(s.Logger(), httpx.WithMaxBodyBytes(httpapi.DefaultMaxPushBody))
	r.Group(func(r chi.Router) {
		r.Use(s.cfg.Middleware(tenancy.AudienceAlerting))
		api.Routes(r)
	})
	return r, nil
}

// engineReady is the "engine" readiness check: ready once the engine holds
// the single-active lock and has loaded its state, so that pushes and
// API reads see the alerts the previous run left.
func (s *Service) engineReady() launch.ReadyCheck {
	return launch.ReadyCheck{Name: "engine", Check: func(context.Context) error {
		select {
		case <-s.engine.Ready():
			return nil
		default:
			return errors.New("engine not active yet (waiting for the lock or loading state)")
		}
	}}
}
