// Package catalog is Canopy's service catalog: the engines (MySQL, Redis),
// their versions and the plans tenants order, served to tenants and platform
// admins under /api/v1/catalog and to Open Service Broker platforms under
// /v2/catalog. Plan changes are published as catalog.plan.* events on
// canopy.catalog.v1 through a transactional outbox.
//
// Config, New and Run are what cmd/catalog and the all-in-one binary call;
// everything else is internal.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/engineclient"
	"github.com/canopy-platform/canopy/services/catalog/internal/httpapi"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/catalog/internal/osb"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
	"github.com/canopy-platform/canopy/services/catalog/internal/tenantclient"
	"github.com/canopy-platform/canopy/services/catalog/migrations"
)

// Defaults of Config.
const (
	DefaultAddr                 = "127.0.0.1:8082"
	DefaultDatabase             = "canopy_catalog"
	DefaultIdempotencyRetention = 24 * time.Hour
)

// Config configures the catalog service. Environment variables carry the
// CANOPY_ prefix (libs/config), e.g. CANOPY_CATALOG_ADDR.
type Config struct {
	// Platform is mysql_dsn, internal_secret(_previous) and kafka, named as
	// in every service.
	launch.Platform `yaml:",inline"`
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"CATALOG_ADDR" default:"127.0.0.1:8082"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is the catalog's database, created if missing.
	Database string `yaml:"database" env:"CATALOG_DATABASE" default:"canopy_catalog"`
	// ProvisioningURL is where OSB instance and binding calls are forwarded
	// once the broker credential is checked, and where the catalog asks
	// which engine builds the hosts run (GET /internal/v1/engines) to offer
	// only their versions. Empty turns the OSB instance routes off and
	// lists plan versions unfiltered.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	ProvisioningURL string `yaml:"provisioning_url" env:"PROVISIONING_URL" default:"http://127.0.0.1:8084"`
	// GatewayURL is where the catalog checks that a tenant exists before it
	// binds a broker credential to it (the gateway's internal API; refused
	// with 503 when it cannot answer). Empty (YAML `gateway_url: ""`)
	// binds credentials unchecked, for standalone runs without a gateway.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	GatewayURL string `yaml:"gateway_url" env:"GATEWAY_URL" default:"http://127.0.0.1:8092"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"CATALOG_RELAY_"`
	// Seed inserts the default plans that are missing at start.
	Seed bool `yaml:"seed" env:"CATALOG_SEED" default:"true"`
	// IdempotencyRetention is how long Idempotency-Key responses are kept.
	IdempotencyRetention time.Duration `yaml:"idempotency_retention" env:"CATALOG_IDEMPOTENCY_RETENTION" default:"24h"`
}

// DefaultConfig returns the configuration of a local development catalog
// (without the internal secret, which must be set).
func DefaultConfig() Config {
	return Config{
		Platform:             launch.DefaultPlatform(events.SourceCatalog),
		Addr:                 DefaultAddr,
		Database:             DefaultDatabase,
		Seed:                 true,
		ProvisioningURL:      "http://127.0.0.1:8084",
		GatewayURL:           "http://127.0.0.1:8092",
		IdempotencyRetention: DefaultIdempotencyRetention,
	}
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Store(c.Database).Validate(), c.Secrets.Validate()}
	// Each callee setting is one URL or the comma-separated URLs of its replicas.
	if err := svcclient.CheckURLs(c.GatewayURL); c.GatewayURL != "" && err != nil {
		errs = append(errs, fmt.Errorf("gateway_url must be http(s) URLs or empty: %w", err))
	}
	if err := svcclient.CheckURLs(c.ProvisioningURL); c.ProvisioningURL != "" && err != nil {
		errs = append(errs, fmt.Errorf("provisioning_url must be http(s) URLs or empty: %w", err))
	}
	if c.IdempotencyRetention < time.Minute {
		errs = append(errs, errors.New("idempotency_retention must be at least 1m"))
	}
	return launch.ConfigError("catalog", errs...)
}

// Deps are the catalog's dependencies.
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
	// GatewayURL, when set, overrides Config.GatewayURL with an address
	// resolved per request (the all-in-one binary's gateway starts last).
	GatewayURL func() string
	// ProvisioningURL, when set, overrides Config.ProvisioningURL with an
	// address resolved per OSB request and per engines ask (the all-in-one
	// binary starts provisioning after the catalog). Config.ProvisioningURL
	// empty still turns the OSB instance routes and the filter off.
	ProvisioningURL func() string
}

// Service is a configured catalog, ready to Run.
type Service struct {
	launch.Base
	cfg  Config
	deps Deps
}

// New checks cfg and deps and returns the service. It does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := launch.Check("catalog", cfg, "logger", deps.Logger, "metrics registry", deps.Registry, "event publisher", deps.Publisher); err != nil {
		return nil, err
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Service{Base: launch.NewBase("catalog", deps.Logger, 0), cfg: cfg, deps: deps}, nil
}

// Run opens the database, applies migrations, seeds the default catalog,
// then serves HTTP and relays the outbox until ctx ends. Shutdown is in
// reverse order: readiness off and HTTP drained first, then the relay
// publishes what the last requests wrote and stops, then the database closes.
func (s *Service) Run(ctx context.Context) error {
	var (
		db   *store.DB
		repo *mysqlrepo.Repo
	)
	database, migrate := launch.DatabaseStages(s.cfg.Store(s.cfg.Database), s.Logger(), &db, migrations.FS)
	return s.RunStages(ctx, database,
		launch.Then(migrate, func(ctx context.Context) error {
			var err error
			if repo, err = mysqlrepo.New(db, s.deps.Now); err != nil {
				return err
			}
			if s.cfg.Seed {
				return s.seed(ctx, repo)
			}
			return nil
		}),
		// The relay outlives the HTTP server so events of the last requests go out.
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, s.Logger(), s.deps.Registry),
		launch.Stage{Name: "idempotency purger", Run: func(ctx context.Context) error { return s.purgeIdempotency(ctx, repo) }},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, s.Logger(), s.deps.Registry,
			func(context.Context) (http.Handler, error) { return s.handler(repo) }, launch.DatabaseReady(&db)),
	)
}

// handler builds the HTTP routes: the public API behind the gateway's signed
// identity, and the OSB API behind broker Basic auth.
func (s *Service) handler(repo *mysqlrepo.Repo) (http.Handler, error) {
	var tenants httpapi.Tenants
	if s.cfg.GatewayURL != "" {
		base := s.deps.GatewayURL
		if base == nil {
			u := s.cfg.GatewayURL
			base = func() string { return u }
		}
		tc, err := tenantclient.New(tenantclient.Config{BaseURL: base, Secret: []byte(s.cfg.InternalSecret)})
		if err != nil {
			return nil, err
		}
		tenants = tc
	}
	api, err := httpapi.New(repo, tenants, s.Logger(), s.deps.Now, nil)
	if err != nil {
		return nil, err
	}
	broker, err := osb.New(repo, repo, s.Logger())
	if err != nil {
		return nil, err
	}
	if s.cfg.ProvisioningURL != "" {
		base := s.deps.ProvisioningURL
		if base == nil {
			u := s.cfg.ProvisioningURL
			base = func() string { return u }
		}
		engines, err := engineclient.New(engineclient.Config{BaseURL: base, Secret: []byte(s.cfg.InternalSecret), Now: s.deps.Now, Logger: s.Logger()})
		if err != nil {
			return nil, err
		}
		api.WithEngines(engines)
		broker.WithEngines(engines)
		fwd, err := osb.NewForwarder(s.cfg.ProvisioningURL, []byte(s.cfg.InternalSecret))
		if err != nil {
			return nil, err
		}
		if s.deps.ProvisioningURL != nil {
			fwd.ResolveBaseURL(s.deps.ProvisioningURL)
		}
		broker.ForwardInstances(fwd)
	}
	r := httpx.NewRouter(s.Logger())
	r.With(s.cfg.Middleware(tenancy.AudienceCatalog)).Mount(httpapi.Prefix, api.Routes())
	r.Mount(osb.Prefix, broker.Routes())
	return r, nil
}

func (s *Service) seed(ctx context.Context, repo *mysqlrepo.Repo) error {
	plans, err := plan.Seed(s.deps.Now())
	if err != nil {
		return err
	}
	n, skipped, err := repo.Seed(ctx, plans)
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		s.Logger().Warn("default plans skipped: their names are taken by other plans", "plans", skipped)
	}
	if n > 0 {
		s.Logger().Info("default catalog seeded", "plans", n)
	}
	return s.upgradeSeeded(ctx, repo, plans)
}

// upgradeSeeded brings the default plans an earlier release seeded (MySQL
// 8.0/8.4, Redis 7.2/7.4, which no host ran) to the versions of this
// release's seed, with a catalog.plan.updated event each. Only the default
// plans (by their fixed ids) that still hold an earlier seed's versions are
// changed: plans an admin created or whose versions an admin edited are
// left alone. Replicas starting together change each plan once (the
// update locks the row and re-reads it).
func (s *Service) upgradeSeeded(ctx context.Context, repo *mysqlrepo.Repo, seeded []plan.Plan) error {
	for _, want := range seeded {
		var fields []string
		_, err := repo.UpdatePlan(ctx, want.ID, func(cur plan.Plan) (plan.Plan, mysqlrepo.Change, error) {
			ch, ok := plan.SeedUpgrade(cur, want)
			if !ok {
				return cur, mysqlrepo.Change{}, nil
			}
			next, changed, err := cur.Apply(ch, s.deps.Now())
			if err != nil || len(changed) == 0 {
				return cur, mysqlrepo.Change{}, err
			}
			fields = changed
			return next, mysqlrepo.Change{Event: events.TypePlanUpdated, Fields: changed}, nil
		})
		switch {
		case errors.Is(err, mysqlrepo.ErrNotFound):
			// Not seeded: its name is taken by another plan.
		case err != nil:
			return fmt.Errorf("upgrade default plan %s: %w", want.Name, err)
		case len(fields) > 0:
			s.Logger().Info("default plan moved to the versions the hosts run", "plan", want.Name, "versions", want.Versions)
		}
	}
	return nil
}

// purgeIdempotency deletes expired Idempotency-Key responses hourly.
func (s *Service) purgeIdempotency(ctx context.Context, repo *mysqlrepo.Repo) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := repo.PurgeIdempotent(ctx, s.deps.Now().Add(-s.cfg.IdempotencyRetention)); err != nil && ctx.Err() == nil {
				s.Logger().Warn("purge idempotency keys", "err", err)
			}
		}
	}
}
