// Package metering is Canopy's metering and chargeback service: it turns
// provisioning's lifecycle events (node-hours by size, provisioned storage),
// the health checker's samples (traffic, operations, connections, used
// storage), cdc's stream usage and CloudEvents ingested through its API into
// per-tenant usage in minute, hour and day windows, exactly once across
// crashes and redeliveries (Kafka offsets and aggregates are committed in
// one MySQL transaction). It rates that usage by the catalog's plan prices,
// versioned in time, into costs and monthly invoices, evaluates budgets and
// publishes metering.budget.threshold and metering.usage.rated on
// canopy.usage.v1 through its outbox. It serves the usage, meters, costs,
// invoices, budget and prices API on port 8088 (docs/metering.md).
//
// Config, New and Run are what cmd/metering and the all-in-one binary call;
// everything else is internal.
package metering

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/httpapi"
	"github.com/canopy-platform/canopy/services/metering/internal/ingest"
	"github.com/canopy-platform/canopy/services/metering/internal/ledger"
	"github.com/canopy-platform/canopy/services/metering/internal/rating"
	"github.com/canopy-platform/canopy/services/metering/internal/ratingapi"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
	"github.com/canopy-platform/canopy/services/metering/migrations"
)

// Defaults of Config.
const (
	DefaultAddr     = "127.0.0.1:8088"
	DefaultDatabase = "canopy_metering"
	// DefaultSource is the ce_source of the metering service's events.
	DefaultSource = events.SourceMetering
	// topicPartitions is the partition count of the topics metering creates
	// (canopy.usage.v1 and canopy.usage.ingest.v1), as api/topics.md says.
	topicPartitions = 6
	// maxIngestBody is the largest ingestion request, the gateway's own
	// limit (CANOPY_GATEWAY_MAX_BODY_BYTES' default).
	maxIngestBody = 1 << 20
)

// Config configures the metering service; env vars carry the CANOPY_ prefix.
type Config struct {
	// Platform is mysql_dsn, internal_secret(_previous) and kafka (whose
	// brokers the ledger's readers and the ingestion API's writer share
	// with the outbox relay), named as in every service.
	launch.Platform `yaml:",inline"`
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"METERING_ADDR" default:"127.0.0.1:8088"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is the metering database (aggregates, offsets, prices,
	// invoices, budgets), created if missing.
	Database string `yaml:"database" env:"METERING_DATABASE" default:"canopy_metering"`
	// Grace is how late an event (a sample, an ingested CloudEvent) may
	// arrive and still be counted in its window; older ones are recorded
	// as late and reported, not counted. Invoices close at month end plus
	// Grace, and an hour is rated once it is Grace past its end.
	Grace time.Duration `yaml:"grace" env:"METERING_GRACE" default:"1h"`
	// AccrueEvery is how often running nodes' intervals are accrued into
	// the windows, so that node-hours grow while an instance runs.
	AccrueEvery time.Duration `yaml:"accrue_every" env:"METERING_ACCRUE_EVERY" default:"10s"`
	// SweepEvery is how often expired dedup keys and minute windows are
	// deleted.
	SweepEvery time.Duration `yaml:"sweep_every" env:"METERING_SWEEP_EVERY" default:"10m"`
	// JobsEvery is how often budgets are evaluated, rated hours published
	// and due invoices closed.
	JobsEvery time.Duration `yaml:"jobs_every" env:"METERING_JOBS_EVERY" default:"15s"`
	// BatchMax is the most Kafka messages the ledger folds into one
	// transaction.
	BatchMax int `yaml:"batch_max" env:"METERING_BATCH_MAX" default:"5000"`
	// BatchWait is how long the ledger waits to fill a batch before
	// committing what it has.
	BatchWait time.Duration `yaml:"batch_wait" env:"METERING_BATCH_WAIT" default:"200ms"`
	// DedupRetention is how long an ingested event's (source, id) is
	// remembered; it must be longer than Grace, so that a copy sent later
	// is either recognised or late.
	DedupRetention time.Duration `yaml:"dedup_retention" env:"METERING_DEDUP_RETENTION" default:"840h"`
	// MinuteRetention is how long minute windows are kept (hour and day
	// windows are kept for good).
	MinuteRetention time.Duration `yaml:"minute_retention" env:"METERING_MINUTE_RETENTION" default:"48h"`
	// MaxBatchEvents is the most CloudEvents one ingestion request may
	// carry (the body is also limited to 1 MiB).
	MaxBatchEvents int `yaml:"max_batch_events" env:"METERING_MAX_BATCH_EVENTS" default:"1000"`
	// DefaultCurrency is the currency of budgets set without one and of
	// costs when no price names one (ISO 4217).
	DefaultCurrency string `yaml:"default_currency" env:"METERING_DEFAULT_CURRENCY" default:"USD"`
	// EnsureTopics creates canopy.usage.v1 and canopy.usage.ingest.v1 when
	// they are missing.
	EnsureTopics bool `yaml:"ensure_topics" env:"METERING_ENSURE_TOPICS" default:"true"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"METERING_RELAY_"`
}

// DefaultConfig is a local development configuration, without the secret.
func DefaultConfig() Config {
	return Config{Platform: launch.DefaultPlatform(DefaultSource), Addr: DefaultAddr, Database: DefaultDatabase,
		Grace: time.Hour, AccrueEvery: 10 * time.Second, SweepEvery: 10 * time.Minute, JobsEvery: 15 * time.Second,
		BatchMax: 5000, BatchWait: 200 * time.Millisecond, DedupRetention: 840 * time.Hour, MinuteRetention: 48 * time.Hour,
		MaxBatchEvents: 1000, DefaultCurrency: "USD", EnsureTopics: true}
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate reports every configuration error at once.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Store(c.Database).Validate(), c.Secrets.Validate()}
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("kafka brokers (CANOPY_KAFKA_BROKERS) must be set"))
	}
	if c.Grace <= 0 || c.AccrueEvery <= 0 || c.SweepEvery <= 0 || c.JobsEvery <= 0 || c.BatchWait <= 0 {
		errs = append(errs, errors.New("grace, accrue_every, sweep_every, jobs_every and batch_wait must be positive"))
	}
	if c.BatchMax < 1 || c.MaxBatchEvents < 1 {
		errs = append(errs, errors.New("batch_max and max_batch_events must be at least 1"))
	}
	if c.DedupRetention <= c.Grace {
		errs = append(errs, errors.New("dedup_retention must be longer than grace: a copy sent after its key expired would be counted again"))
	}
	if c.MinuteRetention < time.Hour {
		errs = append(errs, errors.New("minute_retention must be at least 1h"))
	}
	if !currencyCode.MatchString(c.DefaultCurrency) {
		errs = append(errs, fmt.Errorf("default_currency %q must be an ISO 4217 code such as USD", c.DefaultCurrency))
	}
	return launch.ConfigError("metering", errs...)
}

// Service is a configured metering service, ready to Run. launch.Base gives
// it Ready and Addr.
type Service struct {
	launch.Base
	cfg  Config
	deps launch.Deps
	// The rest exist once the database is open (stage "migrate").
	usage  *usage.Store
	ledger *ledger.Ledger
	rating *rating.Service
	ingest *ingest.Publisher
}

// New checks cfg and deps (all required) and builds the service. It does
// no I/O.
func New(cfg Config, deps launch.Deps) (*Service, error) {
	base, err := launch.NewService("metering", cfg, deps)
	if err != nil {
		return nil, err
	}
	return &Service{Base: base, cfg: cfg, deps: deps}, nil
}

// Run runs the stages in order until ctx ends, then stops them in reverse:
// HTTP first (no more ingestion), the ingestion writer (flushed), the
// rating jobs, the ledger (its last batch commits or rolls back whole,
// offsets with it), the relay (so the last metering.* events go out) and
// the database.
func (s *Service) Run(ctx context.Context) error {
	var db *store.DB
	log := s.Logger()
	database, migrate := launch.DatabaseStages(s.cfg.Store(s.cfg.Database), log, &db, migrations.FS)
	migrate = launch.Then(migrate, func(ctx context.Context) error {
		u, err := usage.New(db)
		if err != nil {
			return err
		}
		if err := u.EnsureBuiltins(ctx); err != nil {
			return fmt.Errorf("built-in meters: %w", err)
		}
		s.usage = u
		if s.ledger, err = ledger.New(ledger.Config{Brokers: s.cfg.Kafka.Brokers, Grace: s.cfg.Grace, BatchWait: s.cfg.BatchWait,
			AccrueEvery: s.cfg.AccrueEvery, SweepEvery: s.cfg.SweepEvery, DedupRetention: s.cfg.DedupRetention,
			MinuteRetention: s.cfg.MinuteRetention, BatchMax: s.cfg.BatchMax}, db, log, s.deps.Registry); err != nil {
			return err
		}
		if s.rating, err = rating.New(rating.Config{Grace: s.cfg.Grace, JobsEvery: s.cfg.JobsEvery,
			DefaultCurrency: s.cfg.DefaultCurrency}, db, log, s.deps.Registry); err != nil {
			return err
		}
		if s.ingest, err = ingest.New(ingest.Config{Brokers: s.cfg.Kafka.Brokers}); err != nil {
			return err
		}
		if !s.cfg.EnsureTopics {
			return nil
		}
		// The ledger's inputs (instances, samples, cdc, catalog) belong to
		// their producers; it waits for them. These two are metering's own.
		return eventbus.EnsureTopics(ctx, s.cfg.Kafka.Brokers,
			eventbus.TopicSpec{Name: events.TopicUsage, Partitions: topicPartitions},
			eventbus.TopicSpec{Name: events.TopicUsageIngest, Partitions: topicPartitions})
	})
	return s.RunStages(ctx, database, migrate,
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, log, s.deps.Registry),
		launch.Stage{Name: "ledger", Run: func(ctx context.Context) error { return s.ledger.Run(ctx) }},
		launch.Stage{Name: "rating", Run: func(ctx context.Context) error { return s.rating.Run(ctx) }},
		launch.Stage{Name: "ingest writer", Stop: func(context.Context) error { return s.ingest.Close() }},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, log, s.deps.Registry, func(context.Context) (http.Handler, error) {
			api, err := httpapi.New(httpapi.Deps{Usage: s.usage, Ingest: s.ingest, MaxBatch: s.cfg.MaxBatchEvents,
				MaxBody: maxIngestBody, Log: log})
			if err != nil {
				return nil, err
			}
			costs, err := ratingapi.New(s.rating)
			if err != nil {
				return nil, err
			}
			r := httpx.NewRouter(log, httpx.WithMaxBodyBytes(2*maxIngestBody)) // the API answers an oversized batch itself, naming "body"
			r.Group(func(r chi.Router) {
				r.Use(s.cfg.Middleware(tenancy.AudienceMetering))
				api.Routes(r)
				costs.Routes(r)
			})
			return r, nil
		}, launch.DatabaseReady(&db)),
	)
}
