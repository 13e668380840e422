// Package cdc is Canopy's change data capture service: per MySQL instance,
// tenants create streams that publish the instance's row changes to Kafka
// as Debezium-compatible events (cdc.<tenant>.<instance>.<db>.<table>),
// starting with a consistent snapshot when asked, resuming exactly from a
// checkpoint stored only after Kafka acknowledged, and following the
// instance through failovers. Sync jobs apply the changes of an instance's
// tables to another MySQL instance (one- or two-way, with a conflict
// strategy) or to a Redis cache, with exactly-once effect from a watermark
// kept in the target, and verify both sides by chunked checksums. It
// serves the streams and sync jobs API on port 8087 and publishes the
// streams' and jobs' health (cdc.stream.*, cdc.sync.* on canopy.cdc.v1)
// through its outbox. It keeps positions, conflicts and reports, never a
// copy of the tenant's rows.
//
// Config, New and Run are what cmd/cdc and the all-in-one binary call;
// everything else is internal.
package cdc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/cdc/internal/httpapi"
	"github.com/canopy-platform/canopy/services/cdc/internal/intake"
	"github.com/canopy-platform/canopy/services/cdc/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/cdc/internal/pipeline"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncrun"
	"github.com/canopy-platform/canopy/services/cdc/migrations"
)

// Defaults of Config.
const (
	DefaultAddr            = "127.0.0.1:8087"
	DefaultDatabase        = "canopy_cdc"
	DefaultProvisioningURL = "http://127.0.0.1:8084"
	// DefaultSource is the ce_source of the cdc service's events.
	DefaultSource = events.SourceCDC
)

// Config configures the cdc service; env vars carry the CANOPY_ prefix.
type Config struct {
	// Platform is mysql_dsn, internal_secret(_previous) and kafka (whose
	// brokers the streams' sink shares with the outbox relay), named as in
	// every service.
	launch.Platform `yaml:",inline"`
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"CDC_ADDR" default:"127.0.0.1:8087"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is the cdc database (streams, checkpoints, schema history),
	// created if missing.
	Database string `yaml:"database" env:"CDC_DATABASE" default:"canopy_cdc"`
	// ProvisioningURL is where provisioning's internal CDC view is (an
	// instance's nodes and the canopy_cdc account).
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	ProvisioningURL string `yaml:"provisioning_url" env:"CDC_PROVISIONING_URL" default:"http://127.0.0.1:8084"`
	// LagThreshold is the lag past which a stream counts as lagging.
	LagThreshold time.Duration `yaml:"lag_threshold" env:"CDC_LAG_THRESHOLD" default:"30s"`
	// LagFor is how long a stream stays past LagThreshold before
	// cdc.stream.lagging is published (once per episode).
	LagFor time.Duration `yaml:"lag_for" env:"CDC_LAG_FOR" default:"30s"`
	// StallAfter is how long a replica being read may stand still while the
	// primary's binlog moves on (its replication broke) before the stream
	// or sync job moves to another node.
	StallAfter time.Duration `yaml:"stall_after" env:"CDC_STALL_AFTER" default:"10s"`
	// MaxBatch is the most messages in one batch from capture to Kafka;
	// with the bounded queue between them it bounds a stream's memory.
	MaxBatch int `yaml:"max_batch" env:"CDC_MAX_BATCH" default:"1000"`
	// SnapshotChunk is how many rows a snapshot reads per primary key chunk.
	SnapshotChunk int `yaml:"snapshot_chunk" env:"CDC_SNAPSHOT_CHUNK" default:"1000"`
	// StatusInterval is how often a stream's lag is measured and its status
	// stored.
	StatusInterval time.Duration `yaml:"status_interval" env:"CDC_STATUS_INTERVAL" default:"1s"`
	// UsageEvery is the least time between two cdc.stream.usage events of a
	// running stream (the rows it published, for metering); a stream whose
	// runner stops reports at once.
	UsageEvery time.Duration `yaml:"usage_every" env:"CDC_USAGE_EVERY" default:"1m"`
	// EnsureTopics creates canopy.cdc.v1 when it is missing.
	EnsureTopics bool `yaml:"ensure_topics" env:"CDC_ENSURE_TOPICS" default:"true"`
	// TopicPartitions is the partition count of the data topics the
	// streams create (1 keeps a table's commit order across keys).
	TopicPartitions int `yaml:"topic_partitions" env:"CDC_TOPIC_PARTITIONS" default:"1"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"CDC_RELAY_"`
}

// DefaultConfig is a local development configuration, without the secret.
func DefaultConfig() Config {
	return Config{Platform: launch.DefaultPlatform(DefaultSource), Addr: DefaultAddr, Database: DefaultDatabase,
		ProvisioningURL: DefaultProvisioningURL, LagThreshold: 30 * time.Second, LagFor: 30 * time.Second, StallAfter: 10 * time.Second,
		MaxBatch: 1000, SnapshotChunk: 1000, StatusInterval: time.Second, UsageEvery: time.Minute, EnsureTopics: true, TopicPartitions: 1}
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
	if c.StallAfter <= 0 {
		errs = append(errs, errors.New("stall_after must be positive"))
	}
	if c.LagThreshold <= 0 || c.LagFor < 0 {
		errs = append(errs, errors.New("lag_threshold must be positive and lag_for not negative"))
	}
	if c.MaxBatch < 1 || c.SnapshotChunk < 1 {
		errs = append(errs, errors.New("max_batch and snapshot_chunk must be at least 1"))
	}
	if c.StatusInterval <= 0 {
		errs = append(errs, errors.New("status_interval must be positive"))
	}
	if c.UsageEvery <= 0 {
		errs = append(errs, errors.New("usage_every must be positive"))
	}
	if c.TopicPartitions < 1 {
		errs = append(errs, errors.New("topic_partitions must be at least 1"))
	}
	return launch.ConfigError("cdc", errs...)
}

// Service is a configured cdc service, ready to Run. launch.Base gives it
// Ready and Addr.
type Service struct {
	launch.Base
	cfg  Config
	deps launch.Deps
	prov *provview.Client
	// The rest exist once the database is open (stage "migrate").
	store   *mysqlstore.Store
	manager *pipeline.Manager
	sync    *syncrun.Manager
	sink    *sink.Sink
	intake  *intake.Intake
	// active is whether this replica holds the active lock and runs the
	// streams, sync jobs and intake (active.go); a standby is not ready.
	active atomic.Bool
}

// New checks cfg and deps (all required) and builds the service. It does
// no I/O.
func New(cfg Config, deps launch.Deps) (*Service, error) {
	base, err := launch.NewService("cdc", cfg, deps)
	if err != nil {
		return nil, err
	}
	prov, err := provview.New(cfg.ProvisioningURL, []byte(cfg.InternalSecret), 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("cdc: %w", err)
	}
	return &Service{Base: base, cfg: cfg, deps: deps, prov: prov}, nil
}

// Run runs the stages in order until ctx ends, then stops them in reverse:
// HTTP first, then the active part (the intake, the sync jobs and the
// pipeline, whose every runner stops after its last acknowledged batch's
// checkpoint is stored; a standby only stops waiting for the lock), the
// relay (so the last cdc.stream.* events go out) and the database.
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
		s.sink = sink.New(s.cfg.Kafka.Brokers, sink.Options{Partitions: s.cfg.TopicPartitions})
		mgr, err := pipeline.New(pipeline.Config{StatusInterval: s.cfg.StatusInterval, LagThreshold: s.cfg.LagThreshold,
			LagFor: s.cfg.LagFor, StallAfter: s.cfg.StallAfter, MaxBatch: s.cfg.MaxBatch, ChunkSize: s.cfg.SnapshotChunk,
			UsageEvery: s.cfg.UsageEvery},
			st, s.prov, s.sink, log, s.deps.Registry)
		if err != nil {
			return err
		}
		s.manager = mgr
		if s.sync, err = syncrun.New(syncrun.Config{StatusInterval: s.cfg.StatusInterval, MaxBatch: s.cfg.MaxBatch,
			ChunkSize: s.cfg.SnapshotChunk, StallAfter: s.cfg.StallAfter}, st, s.prov, log, s.deps.Registry); err != nil {
			return err
		}
		in, err := intake.New(intake.Config{Brokers: s.cfg.Kafka.Brokers}, followers{mgr, s.sync}, mgr.InstanceDeleted, log, s.deps.Registry)
		if err != nil {
			return err
		}
		s.intake = in
		if !s.cfg.EnsureTopics {
			return nil
		}
		return eventbus.EnsureTopics(ctx, s.cfg.Kafka.Brokers, eventbus.TopicSpec{Name: events.TopicCDC, Partitions: 6})
	})
	return s.RunStages(ctx, database, migrate,
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, log, s.deps.Registry),
		launch.Stage{Name: "active", Run: func(ctx context.Context) error { return s.runActive(ctx, db) }},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, log, s.deps.Registry, func(context.Context) (http.Handler, error) {
			api, err := httpapi.New(s.store, instanceView{s.prov}, s.manager)
			if err != nil {
				return nil, err
			}
			r := httpx.NewRouter(log)
			syncAPI, err := httpapi.NewSync(s.store, instanceView{s.prov}, s.sync)
			if err != nil {
				return nil, err
			}
			r.Group(func(r chi.Router) {
				r.Use(s.cfg.Middleware(tenancy.AudienceCDC))
				api.Routes(r)
				syncAPI.Routes(r)
			})
			return r, nil
		}, launch.DatabaseReady(&db), s.activeReady()),
	)
}

// followers passes a topology change of an instance to its streams and its
// sync jobs alike.
type followers struct {
	streams *pipeline.Manager
	jobs    *syncrun.Manager
}

func (f followers) InstanceChanged(id string) {
	f.streams.InstanceChanged(id)
	f.jobs.InstanceChanged(id)
}

// instanceView answers the API's instance reads from provisioning's
// internal CDC view, mapping its not-found to the domain's.
type instanceView struct{ prov *provview.Client }

func (v instanceView) Get(ctx context.Context, tenant, id string) (httpapi.InstanceInfo, error) {
	in, err := v.prov.Get(ctx, tenant, id)
	if errors.Is(err, provview.ErrNotFound) {
		return httpapi.InstanceInfo{}, fmt.Errorf("instance %s: %w", id, stream.ErrNotFound)
	}
	if err != nil {
		return httpapi.InstanceInfo{}, err
	}
	return httpapi.InstanceInfo{ID: in.ID, Tenant: in.Tenant, Engine: in.Engine, State: in.State}, nil
}
