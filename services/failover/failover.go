// Package failover is Canopy's failover service: it watches the primaries of
// the instances this replica owns (by Kafka partition of canopy.instances.v1,
// as the health checker shares its targets), confirms a failure from several
// vantage points, promotes the safest replica under a per-instance lease
// with a fencing token, fences and later rejoins the old primary, and
// records every recovery (failover.* on canopy.failover.v1 through the
// outbox). It also serves planned switchovers, DR drills and the failover
// history on port 8086. It is not the health checker: health transitions are
// one of its inputs, never its verdict.
//
// Config, New and Run are what cmd/failover and the all-in-one binary
// call; everything else is internal.
package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/failover/internal/analysis"
	"github.com/canopy-platform/canopy/services/failover/internal/consumers"
	"github.com/canopy-platform/canopy/services/failover/internal/httpapi"
	"github.com/canopy-platform/canopy/services/failover/internal/metrics"
	"github.com/canopy-platform/canopy/services/failover/internal/mysqlnode"
	"github.com/canopy-platform/canopy/services/failover/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/failover/internal/provclient"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/redisnode"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
	"github.com/canopy-platform/canopy/services/failover/internal/watch"
	"github.com/canopy-platform/canopy/services/failover/migrations"
)

// Defaults of Config.
const (
	DefaultAddr            = "127.0.0.1:8086"
	DefaultDatabase        = "canopy_failover"
	DefaultProvisioningURL = "http://127.0.0.1:8084"
	// DefaultSource is the ce_source of the failover service's events.
	DefaultSource = events.SourceFailover
)

// Config configures the failover service; env vars carry the CANOPY_ prefix.
type Config struct {
	// Platform is mysql_dsn, internal_secret(_previous) and kafka (whose
	// brokers the consumers share with the outbox relay), named as in every
	// service.
	launch.Platform `yaml:",inline"`
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"FAILOVER_ADDR" default:"127.0.0.1:8086"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is the failover database (leases, recoveries, drills),
	// created if missing.
	Database string `yaml:"database" env:"FAILOVER_DATABASE" default:"canopy_failover"`
	// Replica names this replica in leases and logs (default: hostname plus
	// a random suffix). Two replicas must never share a name.
	Replica string `yaml:"replica" env:"FAILOVER_REPLICA"`
	// ProvisioningURL is where provisioning's internal API is.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	ProvisioningURL string `yaml:"provisioning_url" env:"FAILOVER_PROVISIONING_URL" default:"http://127.0.0.1:8084"`
	// CheckInterval is how often the watcher looks at each owned primary
	// (its own vantage point, next to the health checker's transitions).
	CheckInterval time.Duration `yaml:"check_interval" env:"FAILOVER_CHECK_INTERVAL" default:"100ms"`
	// CheckTimeout bounds one look at a node.
	CheckTimeout time.Duration `yaml:"check_timeout" env:"FAILOVER_CHECK_TIMEOUT" default:"250ms"`
	// HoldOff is how long after an automatic failover the same instance is
	// not failed over again automatically, unless that failover is acknowledged.
	HoldOff time.Duration `yaml:"hold_off" env:"FAILOVER_HOLD_OFF" default:"10m"`
	// LeaseTTL is how long a recovery's lease lasts without renewal; a dead
	// actor's lease passes to another replica after it.
	LeaseTTL time.Duration `yaml:"lease_ttl" env:"FAILOVER_LEASE_TTL" default:"10s"`
	// MaxLag is the lag beyond which a replica is never promoted unless forced.
	MaxLag time.Duration `yaml:"max_lag" env:"FAILOVER_MAX_LAG" default:"10s"`
	// DrillSchedule runs the drills scheduled per instance (PUT .../drill-schedule).
	DrillSchedule bool `yaml:"drill_schedule" env:"FAILOVER_DRILL_SCHEDULE" default:"true"`
	// DrillTimeout is how long a drill waits for the recovery that answers it.
	DrillTimeout time.Duration `yaml:"drill_timeout" env:"FAILOVER_DRILL_TIMEOUT" default:"2m"`
	// ResyncInterval is how often owned instances are resynced from provisioning.
	ResyncInterval time.Duration `yaml:"resync_interval" env:"FAILOVER_RESYNC_INTERVAL" default:"1m"`
	// SessionTimeout is how long a dead replica keeps its partitions.
	SessionTimeout time.Duration `yaml:"session_timeout" env:"FAILOVER_SESSION_TIMEOUT" default:"10s"`
	// EnsureTopics creates canopy.failover.v1 when it is missing.
	EnsureTopics bool `yaml:"ensure_topics" env:"FAILOVER_ENSURE_TOPICS" default:"true"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"FAILOVER_RELAY_"`
}

// DefaultConfig is a local development configuration, without the secret.
func DefaultConfig() Config {
	return Config{Platform: launch.DefaultPlatform(DefaultSource), Addr: DefaultAddr, Database: DefaultDatabase,
		ProvisioningURL: DefaultProvisioningURL,
		CheckInterval:   100 * time.Millisecond, CheckTimeout: 250 * time.Millisecond, HoldOff: 10 * time.Minute,
		LeaseTTL: 10 * time.Second, MaxLag: 10 * time.Second, DrillSchedule: true, DrillTimeout: 2 * time.Minute,
		ResyncInterval: time.Minute, SessionTimeout: 10 * time.Second, EnsureTopics: true}
}

// Validate reports every configuration error at once.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Store(c.Database).Validate(), c.Secrets.Validate()}
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("kafka brokers (CANOPY_KAFKA_BROKERS) must be set"))
	}
	if err := svcclient.CheckURLs(c.ProvisioningURL); err != nil {
		errs = append(errs, fmt.Errorf("provisioning_url (one URL or a comma-separated list): %w", err))
	}
	if c.CheckInterval <= 0 || c.CheckTimeout <= 0 {
		errs = append(errs, errors.New("check_interval and check_timeout must be positive"))
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, errors.New("lease_ttl must be at least 1s"))
	}
	if c.HoldOff < 0 || c.MaxLag < 0 {
		errs = append(errs, errors.New("hold_off and max_lag must not be negative"))
	}
	if c.DrillTimeout < time.Second || c.ResyncInterval < time.Second {
		errs = append(errs, errors.New("drill_timeout and resync_interval must be at least 1s"))
	}
	return launch.ConfigError("failover", errs...)
}

// watcher is the detection loop (internal/watch): the consumers tell it
// which instances this replica owns and what happened to them; it observes
// the nodes every CheckInterval and runs the recoveries.
type watcher interface {
	consumers.Watcher
	Run(ctx context.Context) error
}

// Service is a configured failover service, ready to Run. launch.Base
// gives it Ready and Addr.
type Service struct {
	launch.Base
	cfg  Config
	deps launch.Deps
	prov *provclient.Client
	// metrics are registered on deps.Registry in New, and observe the
	// ports the recoverer and the watcher are given.
	metrics *metrics.Metrics
	cons    *consumers.Consumers
	watch   watcher
	// The rest exist once the database is open (stage "migrate"): the
	// recoverer and the watcher need the store, the consumers the watcher.
	store   *mysqlstore.Store
	recover switcher
	// rebuilds rebuilds replicas on request (RebuildReplica).
	rebuilds *recovery.Recoverer
	drills   *drills
	// nodes are the engine adapters' connection pools, closed at stop.
	nodes []io.Closer
}

// New checks cfg and deps (all required) and builds the service. It does
// no I/O.
func New(cfg Config, deps launch.Deps) (*Service, error) {
	if err := launch.Check("failover", cfg, "logger", deps.Logger, "metrics registry", deps.Registry, "event publisher", deps.Publisher); err != nil {
		return nil, err
	}
	if cfg.Replica == "" {
		host, _ := os.Hostname()
		cfg.Replica = host + "-" + ulid.Make().String()[20:]
	}
	base := launch.NewBase("failover", deps.Logger, 0, "replica", cfg.Replica)
	prov, err := provclient.New(cfg.ProvisioningURL, []byte(cfg.InternalSecret), 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	m, err := metrics.New(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	return &Service{Base: base, cfg: cfg, deps: deps, prov: prov, metrics: m}, nil
}

// Run runs the stages in order until ctx ends, then stops them in reverse:
// HTTP first, then the drills, the consumers (leaving the group hands the
// instances to the other replicas at once), the watcher, the relay (so the
// last recoveries' events go out) and the database.
func (s *Service) Run(ctx context.Context) error {
	var db *store.DB
	log := s.Logger()
	database, migrate := launch.DatabaseStages(s.cfg.Store(s.cfg.Database), log, &db, migrations.FS)
	migrate = launch.Then(migrate, func(ctx context.Context) error {
		st, err := mysqlstore.New(db)
		if err != nil {
			return err
		}
		s.store = st
		if err := s.buildRecovery(st); err != nil {
			return err
		}
		if s.cons, err = consumers.New(consumers.Config{Brokers: s.cfg.Kafka.Brokers, Replica: s.cfg.Replica, SessionTimeout: s.cfg.SessionTimeout},
			s.watch, s.prov, log, s.deps.Registry); err != nil {
			return err
		}
		s.drills = &drills{store: st, faults: s.prov, instances: s.prov, recover: s.recover, logger: log.With("component", "drills"),
			timeout: s.cfg.DrillTimeout, now: time.Now}
		if !s.cfg.EnsureTopics {
			return nil
		}
		return eventbus.EnsureTopics(ctx, s.cfg.Kafka.Brokers, eventbus.TopicSpec{Name: events.TopicFailover, Partitions: 6})
	})
	return s.RunStages(ctx, database, migrate,
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, log, s.deps.Registry),
		launch.Stage{Name: "watcher", Run: func(ctx context.Context) error { return s.watch.Run(ctx) },
			Stop: func(context.Context) error {
				var errs []error
				for _, c := range s.nodes {
					errs = append(errs, c.Close())
				}
				return errors.Join(errs...)
			}},
		launch.Stage{Name: "consumers", Run: func(ctx context.Context) error {
			return launch.Together(s.cons.RunOwnership, s.cons.RunFollower, s.resync)(ctx)
		}},
		launch.Stage{Name: "drills", Run: func(ctx context.Context) error { return s.drills.Run(ctx, s.cfg.DrillSchedule) }},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, log, s.deps.Registry, func(context.Context) (http.Handler, error) {
			api, err := httpapi.New(acknowledgements{Store: s.store, watch: s.watch}, s.prov, s)
			if err != nil {
				return nil, err
			}
			r := httpx.NewRouter(log)
			r.Group(func(r chi.Router) {
				r.Use(s.cfg.Middleware(tenancy.AudienceFailover))
				api.Routes(r)
			})
			return r, nil
		}, launch.DatabaseReady(&db)),
	)
}

// Switchover runs a planned switchover to completion (httpapi.Actions); it
// takes as long as the target needs to catch up, bounded by the recoverer.
func (s *Service) Switchover(ctx context.Context, instanceID, target string, force bool) (topology.Recovery, error) {
	return s.recover.Switchover(ctx, instanceID, target, force)
}

// RebuildReplica rebuilds a replica from the primary (httpapi.Actions).
func (s *Service) RebuildReplica(ctx context.Context, in topology.Instance, nodeID string) error {
	return s.rebuilds.RebuildReplica(ctx, in, nodeID)
}

// buildRecovery builds the engine adapters, the recoverer and the watcher on
// the store: the watcher observes every owned primary each CheckInterval
// and hands what the analysis confirms to the recoverer.
func (s *Service) buildRecovery(st *mysqlstore.Store) error {
	log := s.Logger()
	my, err := mysqlnode.New(mysqlnode.Config{DialTimeout: s.cfg.CheckTimeout}, log.With("component", "mysqlnode"))
	if err != nil {
		return err
	}
	rd, err := redisnode.New(redisnode.Config{DialTimeout: s.cfg.CheckTimeout}, log.With("component", "redisnode"))
	if err != nil {
		return err
	}
	s.nodes = []io.Closer{my, rd}
	nodes := map[topology.Engine]topology.Nodes{topology.EngineMySQL: my, topology.EngineRedis: rd}
	// The watcher's looks are timed and its looks at primaries counted; the
	// recoverer's own looks under the lease are part of the recovery's
	// durations instead.
	watched := map[topology.Engine]topology.Nodes{}
	engines := []topology.Engine{}
	for e, n := range nodes {
		watched[e] = s.metrics.Nodes(e, n)
		engines = append(engines, e)
	}
	rec, err := recovery.New(recovery.Config{Holder: s.cfg.Replica, LeaseTTL: s.cfg.LeaseTTL, HoldOff: s.cfg.HoldOff,
		Candidate: analysis.CandidateConfig{MaxLagSeconds: int64(s.cfg.MaxLag / time.Second)}},
		recovery.Deps{Store: s.metrics.Store(st), Nodes: nodes, Rebuilder: s.prov, Logger: log.With("component", "recovery"), KindOf: func(ctx context.Context, id string) topology.Kind {
			if _, err := st.ActiveDrill(ctx, id); err == nil {
				return topology.KindDrill
			}
			return topology.KindAutomatic
		}})
	if err != nil {
		return err
	}
	w, err := watch.New(watch.Config{Interval: s.cfg.CheckInterval, CheckTimeout: s.cfg.CheckTimeout},
		watch.Deps{Nodes: watched, Recoverer: rec, Logger: log.With("component", "watch")})
	if err != nil {
		return err
	}
	s.watch = s.metrics.Watcher(w, engines...)
	s.recover = switchovers{instances: s.prov, rec: rec}
	s.rebuilds = rec
	return nil
}

// switchovers resolves the instance from provisioning, then switches over.
type switchovers struct {
	instances interface {
		Get(ctx context.Context, id string) (topology.Instance, error)
	}
	rec *recovery.Recoverer
}

func (sw switchovers) Switchover(ctx context.Context, instanceID, target string, force bool) (topology.Recovery, error) {
	in, err := sw.instances.Get(ctx, instanceID)
	if err != nil {
		return topology.Recovery{}, fmt.Errorf("switchover %s: %w", instanceID, err)
	}
	return sw.rec.Switchover(ctx, in, target, force)
}

// acknowledgements lift a hold-off in the store and wake the instance's
// watcher, so a failover held back by it proceeds at once.
type acknowledgements struct {
	*mysqlstore.Store
	watch watcher
}

func (a acknowledgements) Acknowledge(ctx context.Context, instanceID, id string) error {
	if err := a.Store.Acknowledge(ctx, instanceID, id); err != nil {
		return err
	}
	a.watch.Trigger(instanceID)
	return nil
}

// Drill starts a drill (httpapi.Actions).
func (s *Service) Drill(ctx context.Context, in topology.Instance, kind, requestedBy string) (mysqlstore.Drill, error) {
	return s.drills.Drill(ctx, in, kind, requestedBy)
}

// resync re-reads the owned instances from provisioning every
// ResyncInterval, to heal what a missed event left behind.
func (s *Service) resync(ctx context.Context) error {
	return launch.Every(s.cfg.ResyncInterval, s.Logger(), "resync", func(ctx context.Context) error {
		if parts, _ := s.cons.Owned(); len(parts) == 0 {
			return nil
		}
		return s.cons.Resync(ctx)
	})(ctx)
}
