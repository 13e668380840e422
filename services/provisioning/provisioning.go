// Package provisioning is Canopy's provisioning service: the lifecycle of
// tenants' MySQL and Redis instances (order, place, create, replicate,
// verify, ready; update; delete), their bindings and quotas, run as a saga
// over Kafka with state and events written together through an outbox, and
// the Open Service Broker instance and binding routes.
//
// Config, New and Run are what cmd/provisioning and the all-in-one binary
// call; everything else is internal.
package provisioning

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/nettune"
	"github.com/canopy-platform/canopy/libs/statedir"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/backupclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/catalogclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/consumers"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver/local"
	"github.com/canopy-platform/canopy/services/provisioning/internal/engineadmin"
	"github.com/canopy-platform/canopy/services/provisioning/internal/httpapi"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/quotaclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/reseal"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
	"github.com/canopy-platform/canopy/services/provisioning/migrations"
)

// Defaults of Config.
const (
	DefaultAddr       = "127.0.0.1:8084"
	DefaultDatabase   = "canopy_provisioning"
	DefaultCatalogURL = "http://127.0.0.1:8082"
	// DefaultGatewayURL is the gateway's internal listener, where /internal/v1 is served.
	DefaultGatewayURL = "http://127.0.0.1:8092"
	// DefaultBackupURL is the backup service (restore jobs).
	DefaultBackupURL = "http://127.0.0.1:8091"
)

// Quota is a tenant's quota as configured (zero = no limit). Configured
// quotas apply only without a gateway (GatewayURL empty) and to tenants the
// gateway does not know.
type Quota struct {
	MaxInstances int64   `yaml:"max_instances" env:"MAX_INSTANCES"`
	MaxVCPU      float64 `yaml:"max_vcpu" env:"MAX_VCPU"`
	MaxMemoryMB  int64   `yaml:"max_memory_mb" env:"MAX_MEMORY_MB"`
	MaxStorageGB int64   `yaml:"max_storage_gb" env:"MAX_STORAGE_GB"`
}

func (q Quota) tenancy() tenancy.Quota {
	return tenancy.Quota{MaxInstances: q.MaxInstances, MaxVCPU: q.MaxVCPU, MaxMemoryMB: q.MaxMemoryMB, MaxStorageGB: q.MaxStorageGB}
}

// Config configures the provisioning service. Environment variables carry
// the CANOPY_ prefix (libs/config), e.g. CANOPY_PROVISIONING_ADDR.
type Config struct {
	// Platform is mysql_dsn, internal_secret(_previous) (also shared with
	// the catalog) and kafka (its brokers; the publisher itself is a
	// dependency), named as in every service.
	launch.Platform `yaml:",inline"`
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"PROVISIONING_ADDR" default:"127.0.0.1:8084"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is provisioning's database, created if missing.
	Database string `yaml:"database" env:"PROVISIONING_DATABASE" default:"canopy_provisioning"`
	// CatalogURL is where plans are fetched.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	CatalogURL string `yaml:"catalog_url" env:"CATALOG_URL" default:"http://127.0.0.1:8082"`
	// GatewayURL is where tenants' quotas are read: the gateway's internal listener (it stores them,
	// GET /internal/v1/tenants/{id}/quota). When the gateway cannot answer,
	// orders are refused with 503; a tenant it does not know, with 403. Empty (YAML `gateway_url: ""`; the env
	// var cannot clear a default) enforces DefaultQuota and Quotas instead,
	// for standalone runs and tests.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	GatewayURL string `yaml:"gateway_url" env:"GATEWAY_URL" default:"http://127.0.0.1:8092"`
	// BackupURL is the backup service, which makes the data of instances
	// ordered with restore_from (its restore jobs). When it cannot answer,
	// such orders are refused with 503 and restoring instances wait.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	BackupURL string `yaml:"backup_url" env:"BACKUP_URL" default:"http://127.0.0.1:8091"`
	// SecretsKey is the base64 AES-256 key sealing credentials at rest
	// (the current key); empty generates a development key into
	// <StateDir>/secrets.key.
	SecretsKey string `yaml:"secrets_key" env:"SECRETS_KEY"`
	// SecretsKeysPrevious are earlier (or upcoming) keys, base64,
	// comma-separated in the environment: they open stored credentials but
	// never seal. See docs/security.md, "Rotating the secrets key".
	SecretsKeysPrevious []string `yaml:"secrets_keys_previous" env:"SECRETS_KEYS_PREVIOUS"`
	// Reseal tunes the background pass that re-seals credentials still
	// under a previous key with the current one.
	Reseal reseal.Config `yaml:"reseal" envPrefix:"PROVISIONING_RESEAL_"`
	// StateDir holds the development secrets key and the local driver's
	// nodes (<StateDir>/nodes/<node id>).
	StateDir string `yaml:"state_dir" env:"STATE_DIR" default:".canopy"`
	// Consumer tunes the placements consumer; brokers come from Kafka.
	Consumer eventbus.SubscriberConfig `yaml:"consumer" envPrefix:"PROVISIONING_CONSUMER_"`
	// ConsumerGroup is the Kafka consumer group of the placements consumer.
	ConsumerGroup string `yaml:"consumer_group" env:"PROVISIONING_CONSUMER_GROUP" default:"canopy-provisioning"`
	// EnsureTopics creates the topics provisioning uses when missing.
	EnsureTopics bool `yaml:"ensure_topics" env:"PROVISIONING_ENSURE_TOPICS" default:"true"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"PROVISIONING_RELAY_"`
	// Saga tunes the workflow.
	Saga saga.Config `yaml:"saga" envPrefix:"PROVISIONING_"`
	// Driver configures the local process driver.
	Driver local.Config `yaml:"driver" envPrefix:"PROVISIONING_DRIVER_"`
	// DefaultQuota applies to tenants without an entry in Quotas, when
	// quotas do not come from the gateway (see GatewayURL).
	DefaultQuota Quota `yaml:"default_quota" envPrefix:"PROVISIONING_QUOTA_"`
	// Quotas are per-tenant quotas (YAML only).
	Quotas map[string]Quota `yaml:"quotas"`
	// Router is where the router service gives every instance stable
	// client endpoints that follow the primary.
	Router RouterConfig `yaml:"router" envPrefix:"PROVISIONING_ROUTER_"`
}

// Defaults of RouterConfig.
const (
	DefaultRouterHost         = "127.0.0.1"
	DefaultRouterPorts        = "16000-16999"
	DefaultRouterSentinelPort = 26380
)

// RouterConfig says where the router listens for each instance: every new
// instance gets a read-write and a read-only port from Ports, and its
// credentials name Host with those ports instead of the primary node.
type RouterConfig struct {
	// Host is the address clients reach the router replicas at (a
	// Kubernetes Service or a DNS name in production). Empty (YAML
	// `host: ""`) disables router endpoints: no ports are allocated and
	// credentials name the primary node.
	Host string `yaml:"host" env:"HOST" default:"127.0.0.1"`
	// Ports is the inclusive range ("lo-hi", within 1024-65535, at least 2
	// ports) instances' port pairs come from; the router listens on them.
	Ports string `yaml:"ports" env:"PORTS" default:"16000-16999"`
	// SentinelPort is the router's Redis Sentinel port, advertised in Redis
	// instances' credentials.
	SentinelPort int `yaml:"sentinel_port" env:"SENTINEL_PORT" default:"26380"`
}

// Validate reports a bad port range or Sentinel port.
func (c RouterConfig) Validate() error {
	var errs []error
	if _, err := instance.ParsePortRange(c.Ports); err != nil {
		errs = append(errs, fmt.Errorf("router.ports (CANOPY_PROVISIONING_ROUTER_PORTS): %w", err))
	}
	if c.SentinelPort < 1 || c.SentinelPort > 65535 {
		errs = append(errs, fmt.Errorf("router.sentinel_port %d: must be 1-65535", c.SentinelPort))
	}
	if strings.ContainsAny(c.Host, " \t/[]") || (strings.Contains(c.Host, ":") && net.ParseIP(c.Host) == nil) {
		errs = append(errs, fmt.Errorf("router.host %q: must be a host name or an IP address, without a port", c.Host))
	}
	return errors.Join(errs...)
}

// router is the domain's view of the configuration (a validated one).
func (c RouterConfig) router() instance.Router {
	pr, _ := instance.ParsePortRange(c.Ports)
	return instance.Router{Host: c.Host, SentinelPort: c.SentinelPort, Ports: pr}
}

// DefaultConfig returns a local development configuration (without the
// internal secret, which must be set).
func DefaultConfig() Config {
	return Config{
		Platform: launch.DefaultPlatform(events.SourceProvisioning),
		Addr:     DefaultAddr, Database: DefaultDatabase, CatalogURL: DefaultCatalogURL, GatewayURL: DefaultGatewayURL, BackupURL: DefaultBackupURL,
		Router:   RouterConfig{Host: DefaultRouterHost, Ports: DefaultRouterPorts, SentinelPort: DefaultRouterSentinelPort},
		StateDir: ".canopy", EnsureTopics: true, Reseal: reseal.Config{Interval: 10 * time.Minute, Batch: reseal.DefaultBatch}, ConsumerGroup: events.GroupProvisioning,
	}
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Store(c.Database).Validate(), c.Secrets.Validate()}
	// Each callee setting is one URL or the comma-separated URLs of its replicas.
	if err := svcclient.CheckURLs(c.CatalogURL); err != nil {
		errs = append(errs, fmt.Errorf("catalog_url must be http(s) URLs: %w", err))
	}
	if err := svcclient.CheckURLs(c.BackupURL); err != nil {
		errs = append(errs, fmt.Errorf("backup_url (CANOPY_BACKUP_URL) must be http(s) URLs: %w", err))
	}
	if c.GatewayURL != "" {
		if err := svcclient.CheckURLs(c.GatewayURL); err != nil {
			errs = append(errs, fmt.Errorf("gateway_url must be http(s) URLs or empty: %w", err))
		}
	}
	if c.SecretsKey != "" {
		if _, err := secrets.ParseKey(c.SecretsKey); err != nil {
			errs = append(errs, fmt.Errorf("secrets_key (CANOPY_SECRETS_KEY): %w", err))
		}
	}
	if _, err := secrets.ParseKeys(c.SecretsKeysPrevious); err != nil {
		errs = append(errs, fmt.Errorf("secrets_keys_previous (CANOPY_SECRETS_KEYS_PREVIOUS): %w", err))
	}
	if err := c.Reseal.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir must be set"))
	}
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("kafka brokers (CANOPY_KAFKA_BROKERS) must be set"))
	}
	if err := c.Driver.Validate(); err != nil {
		errs = append(errs, err)
	}
	for t, q := range c.Quotas {
		if _, err := tenancy.Parse(t); err != nil {
			errs = append(errs, fmt.Errorf("quotas: %w", err))
		}
		if err := q.tenancy().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("quota of %s: %w", t, err))
		}
	}
	if err := c.DefaultQuota.tenancy().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("default_quota: %w", err))
	}
	if err := c.Router.Validate(); err != nil {
		errs = append(errs, err)
	}
	return launch.ConfigError("provisioning", errs...)
}

// Deps are the service's dependencies.
type Deps struct {
	// Logger is required.
	Logger *slog.Logger
	// Registry receives the metrics and is served on /metrics; required.
	Registry *prometheus.Registry
	// Publisher is where the outbox relay publishes; required.
	Publisher store.Publisher
	// Driver runs nodes; the local process driver when nil.
	Driver driver.Driver
	// Hooks interrupt the saga (tests).
	Hooks saga.Hooks
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// GatewayURL, when set, resolves the gateway's base URL per quota read
	// in place of Config.GatewayURL, for a gateway whose address is known
	// only once it listens (the all-in-one binary starts it last). It may
	// return "" until then; orders are refused with 503 meanwhile. It is
	// used only when Config.GatewayURL is not empty.
	GatewayURL func() string
}

// supervisor is a driver that restarts its node processes (the local one).
type supervisor interface {
	Supervise(ctx context.Context) error
}

// Service is a configured provisioning service, ready to Run.
type Service struct {
	launch.Base
	cfg  Config
	deps Deps
	// replica names this process in the saga leases it holds.
	replica string
}

// New checks cfg and deps and returns the service. It does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := launch.Check("provisioning", cfg, "logger", deps.Logger, "metrics registry", deps.Registry, "event publisher", deps.Publisher); err != nil {
		return nil, err
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Service{Base: launch.NewBase("provisioning", deps.Logger, 0), cfg: cfg, deps: deps, replica: replicaID()}, nil
}

// replicaID is unique to this service instance: host, pid and a random
// part (several services may share a process in tests and the all-in-one).
func replicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if len(host) > 64 {
		host = host[:64]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Routes lists the paths the gateway proxies to provisioning.
func Routes() []string {
	return []string{"/api/v1/instances", "/api/v1/instances/*", "/api/v1/operations/*", "/v2/service_instances/*"}
}

// configQuota is the tenant's quota from the configuration.
func (s *Service) configQuota(tenant string) tenancy.Quota {
	if q, ok := s.cfg.Quotas[tenant]; ok {
		return q.tenancy()
	}
	return s.cfg.DefaultQuota.tenancy()
}

// quotas returns where orders' quotas come from: the gateway, which stores
// them, or without one the configuration. A tenant the gateway does not know
// is refused (it gets no instances, not a default quota); a gateway that
// cannot answer refuses the order too, to be retried (fail closed).
func (s *Service) quotas() (httpapi.Quotas, error) {
	if s.cfg.GatewayURL == "" {
		return func(_ context.Context, tenant string) (tenancy.Quota, error) { return s.configQuota(tenant), nil }, nil
	}
	base := s.deps.GatewayURL
	if base == nil {
		u := s.cfg.GatewayURL
		base = func() string { return u }
	}
	qc, err := quotaclient.New(quotaclient.Config{BaseURL: base, Secret: []byte(s.cfg.InternalSecret)})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, tenant string) (tenancy.Quota, error) {
		q, err := qc.Quota(ctx, tenant)
		if errors.Is(err, quotaclient.ErrUnknownTenant) {
			return tenancy.Quota{}, fmt.Errorf("%w: %w", httpapi.ErrUnknownTenant, err)
		}
		return q, err
	}, nil
}

// keyring seals with key (the configured or development key) and opens with
// it or any previous key.
func (s *Service) keyring(key []byte) (*secrets.Box, error) {
	previous, err := secrets.ParseKeys(s.cfg.SecretsKeysPrevious)
	if err != nil {
		return nil, fmt.Errorf("secrets_keys_previous: %w", err)
	}
	box, err := secrets.NewKeyring(key, previous...)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(previous))
	for _, k := range previous {
		ids = append(ids, secrets.IDOf(k).String())
	}
	s.Logger().Info("secrets keyring", "current_key_id", box.Current().String(), "previous_key_ids", ids)
	return box, nil
}

// Run opens the database, migrates, re-adopts the nodes of earlier runs,
// then serves HTTP, consumes placement decisions, drives the saga and relays
// the outbox until ctx ends. Shutdown is in reverse order: readiness off and
// HTTP drained, the consumer and the saga stop (a step in flight is
// abandoned, not rolled back: the next start resumes it), then the relay
// publishes what was written and stops.
func (s *Service) Run(ctx context.Context) error {
	var (
		stateDir string
		freshKey bool
		box      *secrets.Box
		drv      driver.Driver
		db       *store.DB
		repo     *mysqlrepo.Repo
		sg       *saga.Saga
		backups  *backupclient.Client
		resealer *reseal.Resealer
		sub      *eventbus.Subscriber
		topoSub  *eventbus.Subscriber
	)
	database, migrate := launch.DatabaseStages(s.cfg.Store(s.cfg.Database), s.Logger(), &db, migrations.FS)
	return s.RunStages(ctx,
		launch.Stage{Name: "state", Start: func(context.Context) error {
			var err error
			if stateDir, err = filepath.Abs(s.cfg.StateDir); err != nil {
				return fmt.Errorf("state dir: %w", err)
			}
			// The secrets key, engine configs and data live here: private to the
			// user, including what an older version or an engine left readable. The
			// directory may be shared (all-in-one): only provisioning's own entries
			// are walked, not, say, a running embedded broker's.
			if err := statedir.EnsureOwned(stateDir, s.Logger(), "secrets.key", "nodes", "templates"); err != nil {
				return err
			}
			// A development key generated now, while the database already
			// holds credentials, means the state dir was lost: checked once
			// the database is open (checkFreshKey).
			if s.cfg.SecretsKey == "" && len(s.cfg.SecretsKeysPrevious) == 0 {
				_, err := os.Stat(filepath.Join(stateDir, "secrets.key"))
				freshKey = errors.Is(err, os.ErrNotExist)
			}
			key, err := secrets.LoadOrCreateKey(s.cfg.SecretsKey, stateDir)
			if err != nil {
				return err
			}
			if s.cfg.SecretsKey == "" {
				s.Logger().Warn("CANOPY_SECRETS_KEY unset: credentials are sealed with a development key", "file", filepath.Join(stateDir, "secrets.key"))
			}
			if box, err = s.keyring(key); err != nil {
				return err
			}
			if drv = s.deps.Driver; drv == nil {
				drv, err = local.New(s.cfg.Driver, s.Logger())
			}
			return err
		}},
		database,
		launch.Then(migrate, func(ctx context.Context) error {
			var err error
			if repo, err = mysqlrepo.New(db, box); err != nil {
				return err
			}
			if err := checkFreshKey(ctx, freshKey, filepath.Join(stateDir, "secrets.key"), s.cfg.Database, repo); err != nil {
				return err
			}
			if !s.cfg.EnsureTopics {
				return nil
			}
			return eventbus.EnsureTopics(ctx, s.cfg.Kafka.Brokers,
				eventbus.TopicSpec{Name: events.TopicInstances, Partitions: 6},
				eventbus.TopicSpec{Name: events.TopicPlacements, Partitions: 6},
				eventbus.TopicSpec{Name: events.TopicPlacements + ".dlq", Partitions: 1},
				eventbus.TopicSpec{Name: events.TopicFailover, Partitions: 6},
				eventbus.TopicSpec{Name: events.TopicFailover + ".dlq", Partitions: 1},
			)
		}),
		// Adopt before serving: the driver must know every recorded node before
		// anything acts on one.
		launch.Stage{Name: "adopt nodes", Start: func(ctx context.Context) error {
			prof, err := nettune.Default(nettune.MultiAZ)
			if err != nil {
				return err
			}
			sagaCfg := s.cfg.Saga
			sagaCfg.DataRoot = stateDir
			if sg, err = saga.New(sagaCfg, repo, drv, engineadmin.New(prof.Dialer), s.Logger(), s.deps.Now, s.deps.Hooks); err != nil {
				return err
			}
			sg.WithRouter(s.cfg.Router.router())
			// Replicas share the instances through per-instance leases.
			sg.WithLeases(repo, s.replica)
			s.Logger().Info("saga replica", "replica", s.replica, "lease_ttl", sagaCfg.LeaseTTL)
			if backups, err = backupclient.New(backupclient.Config{BaseURL: s.cfg.BackupURL, Secret: []byte(s.cfg.InternalSecret)}); err != nil {
				return err
			}
			sg.WithRestores(backups)
			return sg.Resume(ctx)
		}},
		// Instances created before the router (or while it was disabled) get
		// their ports before anything serves their credentials.
		launch.Stage{Name: "router ports", Start: func(ctx context.Context) error {
			return backfillRouterPorts(ctx, repo, s.cfg.Router.router(), s.Logger())
		}},
		// The relay goes last so the events of the final changes go out.
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, s.Logger(), s.deps.Registry),
		// Failed passes are logged and retried; reads never depend on them.
		launch.Stage{
			Name: "resealer",
			Start: func(context.Context) error {
				var err error
				resealer, err = reseal.New(s.cfg.Reseal, repo, s.Logger(), s.deps.Registry)
				return err
			},
			Run: func(ctx context.Context) error { return resealer.Run(ctx) },
		},
		launch.Stage{Name: "saga", Run: func(ctx context.Context) error { return sg.Run(ctx) }},
		// The local driver restarts node processes that die without a stop
		// (systemd-like); other drivers leave that to their platform.
		launch.Stage{Name: "node supervisor", Run: func(ctx context.Context) error {
			if sv, ok := drv.(supervisor); ok {
				return sv.Supervise(ctx)
			}
			return nil
		}},
		launch.Stage{
			Name: "topology consumer",
			Start: func(context.Context) error {
				subCfg := s.cfg.Consumer
				subCfg.Brokers = s.cfg.Kafka.Brokers
				subCfg.GroupID = events.GroupProvisioningTopology
				subCfg.Topics = []string{events.TopicFailover}
				var err error
				topoSub, err = eventbus.NewSubscriber(subCfg, consumers.Failover(sg, saga.IsTopologyPoison), s.Logger(), s.deps.Registry)
				return err
			},
			Run: func(ctx context.Context) error { return topoSub.Run(ctx) },
		},
		launch.Stage{
			Name: "placements consumer",
			Start: func(context.Context) error {
				subCfg := s.cfg.Consumer
				subCfg.Brokers = s.cfg.Kafka.Brokers
				subCfg.GroupID = s.cfg.ConsumerGroup
				if subCfg.GroupID == "" {
					subCfg.GroupID = events.GroupProvisioning
				}
				subCfg.Topics = []string{events.TopicPlacements}
				var err error
				sub, err = eventbus.NewSubscriber(subCfg, consumers.Placements(sg), s.Logger(), s.deps.Registry)
				return err
			},
			Run: func(ctx context.Context) error { return sub.Run(ctx) },
		},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, s.Logger(), s.deps.Registry, func(context.Context) (http.Handler, error) {
			catalog, err := catalogclient.New(s.cfg.CatalogURL, []byte(s.cfg.InternalSecret), nil)
			if err != nil {
				return nil, err
			}
			quotas, err := s.quotas()
			if err != nil {
				return nil, err
			}
			api, err := httpapi.New(repo, sg, catalog, quotas, s.Logger())
			if err != nil {
				return nil, err
			}
			api.WithRouter(s.cfg.Router.router())
			api.WithBackups(backups)
			if f, ok := drv.(httpapi.Faults); ok {
				api.WithFaults(f)
			}
			if v, ok := drv.(driver.Versions); ok {
				api.WithEngines(v)
			}
			r := httpx.NewRouter(s.Logger())
			r.With(s.cfg.Middleware(tenancy.AudienceProvisioning)).Mount("/", api.Routes())
			return r, nil
		}, launch.DatabaseReady(&db)),
	)
}
