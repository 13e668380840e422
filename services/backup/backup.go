// Package backup is Canopy's backup service: scheduled physical backups of
// MySQL instances (mariadb-backup, from a replica when there is one) and
// RDB snapshots of Redis instances, continuous binlog archiving from every
// MySQL primary (following failovers by GTID), a repository of compressed
// and encrypted objects with checksums (a local directory or S3, with an
// optional second copy), retention per plan and instance, point-in-time
// restore into new instances (provisioning asks for a restore's data and
// copies it into the new nodes), and restore drills that prove a backup
// restores. It publishes backup.* events on canopy.backups.v1 through its
// outbox. API on port 8091 (docs/backups.md).
//
// Config, New and Run are what cmd/backup and the all-in-one binary call;
// everything else is internal.
package backup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/libs/statedir"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	domain "github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/internal/drill"
	"github.com/canopy-platform/canopy/services/backup/internal/engine"
	"github.com/canopy-platform/canopy/services/backup/internal/httpapi"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/internal/provclient"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
	"github.com/canopy-platform/canopy/services/backup/internal/restorejob"
	"github.com/canopy-platform/canopy/services/backup/migrations"
)

// Defaults of Config.
const (
	DefaultAddr     = "127.0.0.1:8091"
	DefaultDatabase = "canopy_backup"
	// DefaultSource is the ce_source of the backup service's events.
	DefaultSource = events.SourceBackup
	// topicPartitions is canopy.backups.v1's partition count (api/topics.md).
	topicPartitions = 6
)

// RepoConfig is one repository: a local directory, or an S3-compatible
// bucket when S3Endpoint is set.
type RepoConfig struct {
	// Dir is the local directory (default <state dir>/backups for the
	// primary repository; empty for the secondary means no second copy).
	Dir string `yaml:"dir" env:"DIR"`
	// S3Endpoint is host:port of an S3-compatible service; it takes
	// precedence over Dir.
	S3Endpoint  string `yaml:"s3_endpoint" env:"S3_ENDPOINT"`
	S3Bucket    string `yaml:"s3_bucket" env:"S3_BUCKET"`
	S3Prefix    string `yaml:"s3_prefix" env:"S3_PREFIX"`
	S3Region    string `yaml:"s3_region" env:"S3_REGION"`
	S3AccessKey string `yaml:"s3_access_key" env:"S3_ACCESS_KEY"`
	S3SecretKey string `yaml:"s3_secret_key" env:"S3_SECRET_KEY"`
	// S3TLS uses https to reach S3Endpoint.
	S3TLS bool `yaml:"s3_tls" env:"S3_TLS" default:"true"`
}

func (r RepoConfig) configured() bool { return r.Dir != "" || r.S3Endpoint != "" }

func (r RepoConfig) validate(name string) error {
	if r.S3Endpoint != "" && (r.S3Bucket == "" || r.S3AccessKey == "" || r.S3SecretKey == "") {
		return fmt.Errorf("%s: s3_bucket, s3_access_key and s3_secret_key are required with s3_endpoint", name)
	}
	return nil
}

// open returns the repository's blob store.
func (r RepoConfig) open(ctx context.Context) (repo.Blobs, error) {
	if r.S3Endpoint != "" {
		return repo.NewS3(ctx, repo.S3Config{Endpoint: r.S3Endpoint, Bucket: r.S3Bucket, Prefix: r.S3Prefix,
			Region: r.S3Region, AccessKey: r.S3AccessKey, SecretKey: r.S3SecretKey, UseTLS: r.S3TLS})
	}
	return repo.NewFS(r.Dir)
}

// Config configures the backup service; env vars carry the CANOPY_ prefix.
type Config struct {
	// Platform is mysql_dsn, internal_secret(_previous) and kafka, named as
	// in every service.
	launch.Platform `yaml:",inline"`
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr" env:"BACKUP_ADDR" default:"127.0.0.1:8091"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Database is the backup database (backups, segments, restores,
	// drills, policies), created if missing.
	Database string `yaml:"database" env:"BACKUP_DATABASE" default:"canopy_backup"`
	// StateDir is Canopy's state directory, shared with provisioning: the
	// development secrets key, the default repository (<StateDir>/backups)
	// and the restore staging area (<StateDir>/restores).
	StateDir string `yaml:"state_dir" env:"STATE_DIR" default:".canopy"`
	// SecretsKey and SecretsKeysPrevious are the platform's keyring (the
	// same settings as provisioning's): backup data keys are wrapped with it.
	SecretsKey          string   `yaml:"secrets_key" env:"SECRETS_KEY"`
	SecretsKeysPrevious []string `yaml:"secrets_keys_previous" env:"SECRETS_KEYS_PREVIOUS"`
	// Repository is where backups and binlog segments are written.
	Repository RepoConfig `yaml:"repository" envPrefix:"BACKUP_REPO_"`
	// Secondary, when configured, receives a copy of every object (the
	// 3-2-1 rule: another disk, bucket or region).
	Secondary RepoConfig `yaml:"secondary" envPrefix:"BACKUP_SECONDARY_"`
	// ProvisioningURL is provisioning: the instances, their nodes and the
	// scratch instances of drills.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	ProvisioningURL string `yaml:"provisioning_url" env:"BACKUP_PROVISIONING_URL" default:"http://127.0.0.1:8084"`
	// WindowStart is the daily backup window's start, "HH:MM" UTC.
	WindowStart string `yaml:"window_start" env:"BACKUP_WINDOW_START" default:"02:00"`
	// WindowLength is the daily window's length.
	WindowLength time.Duration `yaml:"window_length" env:"BACKUP_WINDOW_LENGTH" default:"1h"`
	// DailyKeepDays keeps daily fulls this many days.
	DailyKeepDays int `yaml:"daily_keep_days" env:"BACKUP_DAILY_KEEP_DAYS" default:"7"`
	// PITRDays is the point-in-time restore window in days.
	PITRDays int `yaml:"pitr_days" env:"BACKUP_PITR_DAYS" default:"7"`
	// MonthlyKeepMonths keeps each month's first backup this many months.
	MonthlyKeepMonths int `yaml:"monthly_keep_months" env:"BACKUP_MONTHLY_KEEP_MONTHS" default:"12"`
	// DrillEvery is the restore drills' period (0: none scheduled).
	DrillEvery time.Duration `yaml:"drill_every" env:"BACKUP_DRILL_EVERY" default:"720h"`
	// SnapshotEvery is the Redis snapshot period.
	SnapshotEvery time.Duration `yaml:"snapshot_every" env:"BACKUP_SNAPSHOT_EVERY" default:"6h"`
	// ArchiveLagBound raises backup.archive.lagging when an archive falls
	// further behind its primary.
	ArchiveLagBound time.Duration `yaml:"archive_lag_bound" env:"BACKUP_ARCHIVE_LAG_BOUND" default:"30s"`
	// ArchiveFlushEvery cuts binlog segments and reads Redis AOFs this often (the archive's lag).
	ArchiveFlushEvery time.Duration `yaml:"archive_flush_every" env:"BACKUP_ARCHIVE_FLUSH_EVERY" default:"1s"`
	// SyncEvery reads the instance list from provisioning this often.
	SyncEvery time.Duration `yaml:"sync_every" env:"BACKUP_SYNC_EVERY" default:"5s"`
	// TickEvery evaluates schedules and retention this often.
	TickEvery time.Duration `yaml:"tick_every" env:"BACKUP_TICK_EVERY" default:"10s"`
	// MaxConcurrentBackups bounds backups running at once.
	MaxConcurrentBackups int `yaml:"max_concurrent_backups" env:"BACKUP_MAX_CONCURRENT" default:"2"`
	// Verify prepares and checks every MySQL backup after it is taken.
	Verify bool `yaml:"verify" env:"BACKUP_VERIFY" default:"true"`
	// Sample is how many tables verifications and drills measure.
	Sample int `yaml:"sample" env:"BACKUP_SAMPLE" default:"20"`
	// RestoreWorkers run restore jobs concurrently.
	RestoreWorkers int `yaml:"restore_workers" env:"BACKUP_RESTORE_WORKERS" default:"2"`
	// SeedTTL removes restored data provisioning never took.
	SeedTTL time.Duration `yaml:"seed_ttl" env:"BACKUP_SEED_TTL" default:"24h"`
	// DrillTimeout bounds a drill's restore.
	DrillTimeout time.Duration `yaml:"drill_timeout" env:"BACKUP_DRILL_TIMEOUT" default:"30m"`
	// EnsureTopics creates canopy.backups.v1 when it is missing.
	EnsureTopics bool `yaml:"ensure_topics" env:"BACKUP_ENSURE_TOPICS" default:"true"`
	// Relay tunes the outbox relay.
	Relay store.RelayConfig `yaml:"relay" envPrefix:"BACKUP_RELAY_"`
}

// DefaultConfig is a local development configuration, without the secret.
func DefaultConfig() Config {
	return Config{Platform: launch.DefaultPlatform(DefaultSource), Addr: DefaultAddr, Database: DefaultDatabase,
		StateDir: ".canopy", Repository: RepoConfig{S3TLS: true}, Secondary: RepoConfig{S3TLS: true},
		ProvisioningURL: "http://127.0.0.1:8084", WindowStart: "02:00", WindowLength: time.Hour,
		DailyKeepDays: 7, PITRDays: 7, MonthlyKeepMonths: 12, DrillEvery: 30 * 24 * time.Hour,
		SnapshotEvery: 6 * time.Hour, ArchiveLagBound: 30 * time.Second, ArchiveFlushEvery: time.Second,
		SyncEvery: 5 * time.Second, TickEvery: 10 * time.Second, MaxConcurrentBackups: 2, Verify: true,
		Sample: 20, RestoreWorkers: 2, SeedTTL: 24 * time.Hour, DrillTimeout: 30 * time.Minute, EnsureTopics: true}
}

// windowStart parses WindowStart ("HH:MM") as an offset from midnight.
func (c Config) windowStart() (time.Duration, error) {
	t, err := time.Parse("15:04", c.WindowStart)
	if err != nil {
		return 0, fmt.Errorf("window_start %q: want HH:MM (UTC)", c.WindowStart)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Policy is the platform's default backup policy from the configuration.
func (c Config) Policy() domain.Policy {
	start, _ := c.windowStart() // Validate reported a bad one
	return domain.Policy{Enabled: true, WindowStart: start, WindowLength: c.WindowLength,
		DailyKeepDays: c.DailyKeepDays, PITRDays: c.PITRDays, MonthlyKeepMonths: c.MonthlyKeepMonths,
		DrillEvery: c.DrillEvery, SnapshotEvery: c.SnapshotEvery}
}

// Validate reports every configuration error at once.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Store(c.Database).Validate(), c.Secrets.Validate(),
		c.Repository.validate("repository"), c.Secondary.validate("secondary")}
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("kafka brokers (CANOPY_KAFKA_BROKERS) must be set"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir must be set"))
	}
	if err := svcclient.CheckURLs(c.ProvisioningURL); err != nil {
		errs = append(errs, fmt.Errorf("provisioning_url (one URL or a comma-separated list): %w", err))
	}
	if _, err := c.windowStart(); err != nil {
		errs = append(errs, err)
	}
	if c.WindowLength <= 0 || c.WindowLength > 24*time.Hour {
		errs = append(errs, errors.New("window_length must be within (0, 24h]"))
	}
	if c.DailyKeepDays < 1 || c.PITRDays < 0 || c.MonthlyKeepMonths < 0 || c.PITRDays > c.DailyKeepDays {
		errs = append(errs, errors.New("daily_keep_days must be at least 1, pitr_days and monthly_keep_months not negative, pitr_days at most daily_keep_days"))
	}
	if c.DrillEvery < 0 {
		errs = append(errs, errors.New("drill_every must not be negative (0: no scheduled drills)"))
	}
	if c.SnapshotEvery <= 0 || c.ArchiveLagBound <= 0 || c.ArchiveFlushEvery <= 0 || c.SyncEvery <= 0 ||
		c.TickEvery <= 0 || c.SeedTTL <= 0 || c.DrillTimeout <= 0 {
		errs = append(errs, errors.New("snapshot_every, archive_lag_bound, archive_flush_every, sync_every, tick_every, seed_ttl and drill_timeout must be positive"))
	}
	if c.MaxConcurrentBackups < 1 || c.Sample < 1 || c.RestoreWorkers < 1 {
		errs = append(errs, errors.New("max_concurrent_backups, sample and restore_workers must be at least 1"))
	}
	return launch.ConfigError("backup", errs...)
}

// Service is a configured backup service, ready to Run. launch.Base gives
// it Ready and Addr.
type Service struct {
	launch.Base
	cfg  Config
	deps launch.Deps
	// The rest exist once the database is open (stage "migrate").
	store    *backupstore.Store
	engine   *engine.Engine
	restores *restorejob.Runner
	drills   *drill.Runner
}

// New checks cfg and deps (all required) and builds the service. It does
// no I/O.
func New(cfg Config, deps launch.Deps) (*Service, error) {
	base, err := launch.NewService("backup", cfg, deps)
	if err != nil {
		return nil, err
	}
	return &Service{Base: base, cfg: cfg, deps: deps}, nil
}

// Run runs the stages in order until ctx ends, then stops them in reverse:
// HTTP first, the drills, the restore jobs and the engine (archivers commit
// their last segment, a backup in flight is cancelled and cleaned up at the
// next start), the relay (the last backup.* events go out) and the
// database.
func (s *Service) Run(ctx context.Context) error {
	var db *store.DB
	log := s.Logger()
	database, migrate := launch.DatabaseStages(s.cfg.Store(s.cfg.Database), log, &db, migrations.FS)
	migrate = launch.Then(migrate, func(ctx context.Context) error {
		if err := s.build(ctx, db); err != nil {
			return err
		}
		if !s.cfg.EnsureTopics {
			return nil
		}
		return eventbus.EnsureTopics(ctx, s.cfg.Kafka.Brokers,
			eventbus.TopicSpec{Name: events.TopicBackups, Partitions: topicPartitions})
	})
	return s.RunStages(ctx, database, migrate,
		launch.RelayStage(&db, s.deps.Publisher, s.cfg.Relay, log, s.deps.Registry),
		launch.Stage{Name: "engine", Run: func(ctx context.Context) error { return s.engine.Run(ctx) }},
		// Restore jobs and drills run on the active replica only, like the
		// engine whose lock they follow: two runners would both pick up a
		// queued job, and a starting one would fail the other's drills and
		// restart its jobs as "interrupted".
		launch.Stage{Name: "restores", Run: func(ctx context.Context) error { return s.engine.WhileActive(ctx, s.restores.Run) }},
		launch.Stage{Name: "drills", Run: func(ctx context.Context) error { return s.engine.WhileActive(ctx, s.drills.Run) }},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, log, s.deps.Registry, s.routes,
			launch.DatabaseReady(&db), s.engineReady()),
	)
}

// build makes the store, repositories, keyring, tools and workers over the
// open, migrated database.
func (s *Service) build(ctx context.Context, db *store.DB) error {
	state, err := filepath.Abs(s.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := statedir.Ensure(state, s.Logger()); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	box, err := s.keyring(state)
	if err != nil {
		return err
	}
	primaryCfg := s.cfg.Repository
	if !primaryCfg.configured() {
		primaryCfg.Dir = filepath.Join(state, "backups")
	}
	blobs, err := primaryCfg.open(ctx)
	if err != nil {
		return fmt.Errorf("repository: %w", err)
	}
	var secondary repo.Blobs
	if s.cfg.Secondary.configured() {
		if secondary, err = s.cfg.Secondary.open(ctx); err != nil {
			return fmt.Errorf("secondary repository: %w", err)
		}
	}
	work := filepath.Join(state, "backup-work")
	phys, err := mysqlphys.New(mysqlphys.Config{ScratchDir: filepath.Join(work, "scratch"), Log: s.Logger()})
	if err != nil {
		return fmt.Errorf("backup tools: %w", err)
	}
	st, err := backupstore.New(db)
	if err != nil {
		return fmt.Errorf("backup store: %w", err)
	}
	prov, err := provclient.New(provclient.Config{BaseURL: s.cfg.ProvisioningURL, Secret: []byte(s.cfg.InternalSecret)})
	if err != nil {
		return fmt.Errorf("provisioning client: %w", err)
	}
	policy := s.cfg.Policy()
	eng, err := engine.New(engine.Config{Policy: policy, WorkDir: filepath.Join(work, "verify"),
		SyncEvery: s.cfg.SyncEvery, TickEvery: s.cfg.TickEvery, ArchiveLagBound: s.cfg.ArchiveLagBound,
		ArchiveFlushEvery: s.cfg.ArchiveFlushEvery, MaxConcurrentBackups: s.cfg.MaxConcurrentBackups,
		Sample: s.cfg.Sample, Verify: s.cfg.Verify}, db, st, prov, blobs, secondary, box, phys, s.Logger(), s.deps.Registry)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	restores, err := restorejob.New(restorejob.Config{StagingDir: filepath.Join(state, "restores"), SeedTTL: s.cfg.SeedTTL,
		Workers: s.cfg.RestoreWorkers}, st, blobs, box, phys, s.Logger())
	if err != nil {
		return fmt.Errorf("restore jobs: %w", err)
	}
	drills, err := drill.New(drill.Config{Policy: policy, Timeout: s.cfg.DrillTimeout, TickEvery: s.cfg.TickEvery,
		Sample: s.cfg.Sample}, st, prov, s.Logger())
	if err != nil {
		return fmt.Errorf("drills: %w", err)
	}
	s.store, s.engine, s.restores, s.drills = st, eng, restores, drills
	return nil
}

// keyring opens the platform's secrets keyring: the configured keys, or the
// development key provisioning generates into the state directory.
func (s *Service) keyring(state string) (*secrets.Box, error) {
	key, err := secrets.LoadOrCreateKey(s.cfg.SecretsKey, state)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	previous := make([][]byte, 0, len(s.cfg.SecretsKeysPrevious))
	for _, p := range s.cfg.SecretsKeysPrevious {
		k, err := secrets.ParseKey(p)
		if err != nil {
			return nil, fmt.Errorf("secrets_keys_previous: %w", err)
		}
		previous = append(previous, k)
	}
	box, err := secrets.NewKeyring(key, previous...)
	if err != nil {
		return nil, fmt.Errorf("secrets keyring: %w", err)
	}
	return box, nil
}

// routes is the HTTP handler: the API behind the gateway's signed identity
// for the backup audience, and the internal restore routes provisioning
// calls (signed as service:provisioning, not routed by the gateway).
func (s *Service) routes(context.Context) (http.Handler, error) {
	api, err := httpapi.New(httpapi.Deps{Store: s.store, Base: s.cfg.Policy(), Engine: s.engine,
		Restores: activeRestores{s.restores, s.engine}, Drills: activeDrills{s.drills, s.engine},
		Log: s.Logger()})
	if err != nil {
		return nil, err
	}
	r := httpx.NewRouter(s.Logger())
	r.Group(func(r chi.Router) {
		r.Use(s.cfg.Middleware(tenancy.AudienceBackup))
		api.Routes(r)
	})
	return r, nil
}

// engineReady is the "engine" readiness check: ready once the engine holds
// the single-active lock and has read the instances.
func (s *Service) engineReady() launch.ReadyCheck {
	return launch.ReadyCheck{Name: "engine", Check: func(context.Context) error {
		select {
		case <-s.engine.Ready():
			return nil
		default:
			return errors.New("engine not active yet (waiting for the lock or the instance list)")
		}
	}}
}

// activeRestores queues restore jobs only on the active replica: a standby
// answers 503 (backup.ErrUnavailable), so that one process decides whether
// a target already has a job (restorejob's check is in-process).
type activeRestores struct {
	*restorejob.Runner
	engine *engine.Engine
}

func (a activeRestores) Start(ctx context.Context, tenant, sourceID, targetID string, t domain.Target) (domain.Restore, error) {
	if !a.engine.Active() {
		return domain.Restore{}, fmt.Errorf("restore into %s: %w", targetID, domain.ErrUnavailable)
	}
	return a.Runner.Start(ctx, tenant, sourceID, targetID, t)
}

// activeDrills starts drills only on the active replica: a drill runs in
// the process that starts it, and a standby's would escape the one-active
// rule (503, domain.ErrUnavailable).
type activeDrills struct {
	*drill.Runner
	engine *engine.Engine
}

func (a activeDrills) Start(ctx context.Context, tenant, instanceID string) (domain.Drill, error) {
	if !a.engine.Active() {
		return domain.Drill{}, fmt.Errorf("drill of %s: %w", instanceID, domain.ErrUnavailable)
	}
	return a.Runner.Start(ctx, tenant, instanceID)
}
