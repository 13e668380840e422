// Package scheduling is Canopy's scheduling service: the inventory of
// regions, availability zones and hosts, and the placement of instance nodes
// on them — fast, explainable and never overcommitting, even with several
// replicas. It serves the operator API under /api/v1/inventory and
// /api/v1/placements, consumes scheduling.placement.requested from
// canopy.placements.v1 (and provisioning lifecycle events from
// canopy.instances.v1), and publishes decisions, failures, releases and
// inventory changes through a transactional outbox.
//
// Config, New and Run are what cmd/scheduling and the all-in-one binary call;
// everything else is internal.
package scheduling

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/scheduling/internal/consumers"
	"github.com/canopy-platform/canopy/services/scheduling/internal/httpapi"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
	"github.com/canopy-platform/canopy/services/scheduling/internal/planclient"
	"github.com/canopy-platform/canopy/services/scheduling/internal/scheduler"
	"github.com/canopy-platform/canopy/services/scheduling/migrations"
)

// Defaults of Config.
const (
	DefaultAddr          = "127.0.0.1:8083"
	DefaultDatabase      = "canopy_scheduling"
	DefaultInventoryFile = "deploy/inventory/dev.yaml"
)

// Topic and event names other services use to talk to the scheduler.
const (
	// TopicPlacements carries scheduling.placement.requested (in) and
	// .decided/.failed/.released/.confirmed (out), keyed by instance id.
	TopicPlacements = events.TopicPlacements
	// TopicInventory carries scheduling.inventory.* events.
	TopicInventory = events.TopicInventory
	// ConsumerGroup is the scheduler's consumer group.
	ConsumerGroup = events.GroupScheduling
)

// Config configures the scheduling service. Environment variables carry the
// CANOPY_ prefix (libs/config), e.g. CANOPY_SCHEDULING_ADDR.
type Config struct {
	// Platform is mysql_dsn, internal_secret(_previous) and kafka (whose
	// brokers are also the consumer's when Consumer.Brokers is empty), named
	// as in every service.
	launch.Platform `yaml:",inline"`
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"SCHEDULING_ADDR" default:"127.0.0.1:8083"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is the scheduling database, created if missing.
	Database string `yaml:"database" env:"SCHEDULING_DATABASE" default:"canopy_scheduling"`
	// InventoryFile is loaded when the inventory is empty (first start);
	// a missing file is logged and skipped.
	InventoryFile string `yaml:"inventory_file" env:"SCHEDULING_INVENTORY_FILE" default:"deploy/inventory/dev.yaml"`
	// CatalogURL lets simulations take a plan_id; empty refuses plan_id.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	CatalogURL string `yaml:"catalog_url" env:"SCHEDULING_CATALOG_URL"`
	// Consume turns the Kafka consumer of placement requests on.
	Consume bool `yaml:"consume" env:"SCHEDULING_CONSUME" default:"true"`
	// Consumer tunes the subscriber (group and topics are fixed).
	Consumer eventbus.SubscriberConfig `yaml:"consumer" envPrefix:"SCHEDULING_CONSUMER_"`
	// Consumers is how many members of the consumer group this process
	// runs (each hands over one record at a time, of its own partitions).
	// With more than one, their placement requests go through a batcher
	// that writes the decisions pending at once in one transaction.
	Consumers int `yaml:"consumers" env:"SCHEDULING_CONSUMERS" default:"6"`
	// Batch tunes that batcher (window, batch size, concurrent batches).
	Batch scheduler.BatcherConfig `yaml:"batch" envPrefix:"SCHEDULING_BATCH_"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"SCHEDULING_RELAY_"`
	// Scheduler tunes placement (strategy, weights, latency bound) and
	// reservations (TTL, reaping, refresh).
	Scheduler scheduler.Config `yaml:"scheduler" envPrefix:"SCHEDULING_"`
}

// DefaultConfig returns the configuration of a local development scheduler
// (without the internal secret, which must be set).
func DefaultConfig() Config {
	return Config{
		Platform:      launch.DefaultPlatform(events.SourceScheduling),
		Addr:          DefaultAddr,
		Database:      DefaultDatabase,
		InventoryFile: DefaultInventoryFile,
		Consume:       true,
		Consumers:     6,
	}
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Store(c.Database).Validate(), c.Secrets.Validate()}
	if err := c.Scheduler.Placement.WithDefaults().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("scheduler.placement: %w", err))
	}
	if c.CatalogURL != "" {
		if err := svcclient.CheckURLs(c.CatalogURL); err != nil {
			errs = append(errs, fmt.Errorf("invalid catalog url (catalog_url): %w", err))
		}
	}
	if c.Consume && len(c.consumerBrokers()) == 0 {
		errs = append(errs, errors.New("consume is on but no kafka brokers are configured"))
	}
	return launch.ConfigError("scheduling", errs...)
}

func (c Config) consumerBrokers() []string {
	if len(c.Consumer.Brokers) > 0 {
		return c.Consumer.Brokers
	}
	return c.Kafka.Brokers
}

// Deps are the service's dependencies.
type Deps struct {
	// Logger is required.
	Logger *slog.Logger
	// Registry receives the metrics and is served on /metrics; required.
	Registry *prometheus.Registry
	// Publisher is where the outbox relay publishes (an *eventbus.Publisher);
	// required.
	Publisher store.Publisher
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Service is a configured scheduler, ready to Run.
type Service struct {
	launch.Base
	cfg  Config
	deps Deps
}

// New checks cfg and deps and returns the service. It does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := launch.Check("scheduling", cfg, "logger", deps.Logger, "metrics registry", deps.Registry, "event publisher", deps.Publisher); err != nil {
		return nil, err
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Service{Base: launch.NewBase("scheduling", deps.Logger, 0), cfg: cfg, deps: deps}, nil
}

// Run opens the database, applies migrations, loads the dev inventory on
// first start, then serves HTTP, consumes placement requests, reaps expired
// reservations and relays the outbox until ctx ends. Shutdown is in reverse
// order: readiness off and HTTP drained, the consumers commit and stop, the
// background loops stop, then the relay publishes what was written and
// stops, then the database closes.
func (s *Service) Run(ctx context.Context) error {
	var (
		db    *store.DB
		repo  *mysqlrepo.Repo
		sched *scheduler.PlacementEngine
		subs  []*eventbus.Subscriber
	)
	database, migrate := launch.DatabaseStages(s.cfg.Store(s.cfg.Database), s.Logger(), &db, migrations.FS)
	return s.RunStages(ctx, database,
		launch.Then(migrate, func(ctx context.Context) error {
			var err error
			if repo, err = mysqlrepo.New(db, s.deps.Now); err != nil {
				return err
			}
			return s.seed(ctx, repo)
		}),
		launch.Stage{
			Name: "scheduler",
			Start: func(ctx context.Context) error {
				var err error
				if sched, err = scheduler.New(s.cfg.Scheduler, repo, s.Logger(), s.deps.Registry, s.deps.Now); err != nil {
					return err
				}
				return sched.Load(ctx)
			},
		},
		// The relay outlives everything that writes, so the last events go out.
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, s.Logger(), s.deps.Registry),
		launch.Stage{Name: "reservation reaper", Run: func(ctx context.Context) error { return sched.RunReaper(ctx) }},
		launch.Stage{Name: "reservation refresher", Run: func(ctx context.Context) error { return sched.RunRefresher(ctx) }},
		launch.Stage{
			Name: "placement consumers",
			Start: func(ctx context.Context) error {
				if !s.cfg.Consume {
					return nil
				}
				var err error
				subs, err = s.subscribers(ctx, sched)
				return err
			},
			Run: func(ctx context.Context) error {
				runs := make([]func(context.Context) error, 0, len(subs))
				for _, sub := range subs {
					runs = append(runs, sub.Run)
				}
				return launch.Together(runs...)(ctx)
			},
		},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, s.Logger(), s.deps.Registry,
			func(context.Context) (http.Handler, error) { return s.handler(repo, sched) }, launch.DatabaseReady(&db)),
	)
}

// handler builds the HTTP routes behind the gateway's signed identity.
func (s *Service) handler(repo *mysqlrepo.Repo, sched *scheduler.PlacementEngine) (http.Handler, error) {
	var plans httpapi.PlanResolver
	if s.cfg.CatalogURL != "" {
		pc, err := planclient.New(s.cfg.CatalogURL, []byte(s.cfg.InternalSecret))
		if err != nil {
			return nil, err
		}
		plans = pc
	}
	api, err := httpapi.New(repo, sched, plans, s.Logger())
	if err != nil {
		return nil, err
	}
	r := httpx.NewRouter(s.Logger())
	r.With(s.cfg.Middleware(tenancy.AudienceScheduling)).Mount(httpapi.Prefix, api.Routes())
	return r, nil
}

// batchedPlacer places through a Batcher, so that the requests several
// consumers hand over at once are written in one transaction.
type batchedPlacer struct {
	*scheduler.PlacementEngine
	batcher *scheduler.Batcher
}

func (p batchedPlacer) Place(ctx context.Context, req placement.Request) (placement.Decision, error) {
	return p.batcher.Place(ctx, req)
}

// subscribers builds the Consumers members of the consumer group.
func (s *Service) subscribers(ctx context.Context, sched *scheduler.PlacementEngine) ([]*eventbus.Subscriber, error) {
	cfg := s.cfg.Consumer
	cfg.Brokers = s.cfg.consumerBrokers()
	cfg.GroupID = events.GroupScheduling
	cfg.Topics = consumers.Topics
	topics := make([]eventbus.TopicSpec, 0, 3)
	for _, t := range []string{events.TopicPlacements, events.TopicInventory, events.TopicInstances} {
		// Partitions as provisioning creates them: up to 6 consumers share
		// the work (existing topics are left as they are).
		topics = append(topics, eventbus.TopicSpec{Name: t, Partitions: 6})
	}
	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := eventbus.EnsureTopics(ensureCtx, cfg.Brokers, topics...); err != nil {
		return nil, fmt.Errorf("ensure topics: %w", err)
	}
	var placer consumers.Placer = sched
	n := max(s.cfg.Consumers, 1)
	if n > 1 {
		placer = batchedPlacer{PlacementEngine: sched, batcher: scheduler.NewBatcher(sched, s.cfg.Batch)}
	}
	handler := consumers.Handler(placer, s.Logger())
	subs := make([]*eventbus.Subscriber, 0, n)
	for i := 0; i < n; i++ {
		sub, err := eventbus.NewSubscriber(cfg, handler, s.Logger(), s.deps.Registry)
		if err != nil {
			return nil, fmt.Errorf("placement consumer: %w", err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

// seed loads the inventory file into an empty inventory.
func (s *Service) seed(ctx context.Context, repo *mysqlrepo.Repo) error {
	if s.cfg.InventoryFile == "" {
		return nil
	}
	inv, err := inventory.LoadFile(s.cfg.InventoryFile)
	if errors.Is(err, fs.ErrNotExist) {
		s.Logger().Warn("inventory file not found; starting with the stored inventory", "file", s.cfg.InventoryFile)
		return nil
	}
	if err != nil {
		return err
	}
	loaded, err := repo.Seed(ctx, inv, s.cfg.InventoryFile)
	if err != nil {
		return err
	}
	if loaded {
		s.Logger().Info("inventory loaded", "file", s.cfg.InventoryFile, "regions", len(inv.Regions), "zones", len(inv.Zones), "hosts", len(inv.Hosts))
	}
	return nil
}
