// Package engine is the backup service's one active worker: it keeps the
// list of instances in step with provisioning, takes scheduled and
// on-demand backups (verified, sealed into the repository, copied to the
// secondary one), runs one archiver per instance (MySQL binlogs, Redis AOFs) into sealed
// segments, applies retention, and exports the archive lag and backup
// health as metrics and events.
//
// It is not the HTTP API (httpapi calls BackupNow, Policy and ArchiveLag)
// nor the restore and drill runners. One engine is active per database (a
// MySQL named lock); a standby waits for the lock.
//
// Goroutines, each with one owner and one stop path (all started by Run
// and waited for before it returns):
//   - the control loop (control.go): instance sync, schedules, retention;
//   - the lag loop (archive.go): archive lag metrics and events;
//   - one archiver per archived instance (archive.go, aof.go), stopped when
//     its instance goes away;
//   - backup runs (run.go), bounded by MaxConcurrentBackups.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
)

// Instances is provisioning's view of instances, with their nodes and the
// admin account (provclient implements it).
type Instances interface {
	// List returns every instance provisioning holds (not deleted).
	List(ctx context.Context) ([]backup.Instance, error)
	// Get returns one instance; backup.ErrNotFound once it is gone.
	Get(ctx context.Context, id string) (backup.Instance, error)
}

// Config tunes the engine.
type Config struct {
	// Policy is the platform's default policy.
	Policy backup.Policy
	// WorkDir holds backups being verified (prepared copies), removed after.
	WorkDir string
	// RedisServer is the redis-server binary for snapshot verification.
	RedisServer string
	// SyncEvery is how often the instance list is read from provisioning.
	SyncEvery time.Duration
	// TickEvery is how often schedules and retention are evaluated.
	TickEvery time.Duration
	// ArchiveLagBound raises backup.archive.lagging above it.
	ArchiveLagBound time.Duration
	// ArchiveFlushEvery is the archivers' segment cut interval.
	ArchiveFlushEvery time.Duration
	// MaxConcurrentBackups bounds backups running at once.
	MaxConcurrentBackups int
	// Sample is how many tables a verification measures.
	Sample int
	// Verify prepares and inspects every MySQL backup after it is taken.
	Verify bool
}

// Defaults of the tunables left zero.
const (
	defaultSyncEvery       = 30 * time.Second
	defaultTickEvery       = 30 * time.Second
	defaultArchiveLagBound = time.Minute
	defaultFlushEvery      = time.Second
	defaultMaxConcurrent   = 2
	defaultSample          = 20
	defaultRedisServer     = "redis-server"
)

// Internal periods: they follow from the design, not from configuration.
const (
	// lockRetry is the wait between tries for the engine lock, lockCheck
	// the period of the check that the lock's session still lives.
	lockRetry = time.Second
	lockCheck = 5 * time.Second
	// lagEvery is how often archive lag is measured (the bound is in
	// seconds to minutes).
	lagEvery = time.Second
	// archiveRetry is the wait before an archiver that stopped on an
	// unexpected error starts again.
	archiveRetry = 5 * time.Second
)

func (c Config) withDefaults() Config {
	if c.SyncEvery <= 0 {
		c.SyncEvery = defaultSyncEvery
	}
	if c.TickEvery <= 0 {
		c.TickEvery = defaultTickEvery
	}
	if c.ArchiveLagBound <= 0 {
		c.ArchiveLagBound = defaultArchiveLagBound
	}
	if c.ArchiveFlushEvery <= 0 {
		c.ArchiveFlushEvery = defaultFlushEvery
	}
	if c.MaxConcurrentBackups <= 0 {
		c.MaxConcurrentBackups = defaultMaxConcurrent
	}
	if c.Sample <= 0 {
		c.Sample = defaultSample
	}
	if c.RedisServer == "" {
		c.RedisServer = defaultRedisServer
	}
	return c
}

// ErrNotActive is BackupNow's answer while this engine does not hold the
// active lock (a standby, or stopping).
var ErrNotActive = backup.ErrUnavailable

// Engine runs backups, archiving and retention.
type Engine struct {
	cfg       Config
	db        *store.DB
	st        *backupstore.Store
	inst      Instances
	blobs     repo.Blobs
	secondary repo.Blobs
	box       *secrets.Box
	phys      *mysqlphys.Tools
	log       *slog.Logger
	m         *metrics
	now       func() time.Time
	lockName  string

	ready     chan struct{}
	readyOnce sync.Once
	running   atomic.Bool

	// sem bounds backup runs; backups waits for them.
	sem     chan struct{}
	backups sync.WaitGroup

	mu sync.Mutex
	// runCtx is the active run's lifetime (nil while not active): backups
	// started by BackupNow belong to it, not to the request.
	runCtx context.Context
	// tied counts the WhileActive functions running; the lock is released
	// only once they returned, so a standby never overlaps them.
	tied sync.WaitGroup
	// live are the instances provisioning listed at the last sync, with
	// their nodes and credentials (never stored).
	live map[string]backup.Instance
	// inflight are the instances with a backup running in this process.
	inflight map[string]string
	// archivers by instance id.
	archivers map[string]*archiver
}

// New builds the engine; secondary may be nil (no second copy).
func New(cfg Config, db *store.DB, st *backupstore.Store, inst Instances, blobs, secondary repo.Blobs,
	box *secrets.Box, phys *mysqlphys.Tools, log *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	switch {
	case db == nil:
		return nil, errors.New("backup engine: nil db")
	case st == nil:
		return nil, errors.New("backup engine: nil store")
	case inst == nil:
		return nil, errors.New("backup engine: nil instances")
	case blobs == nil:
		return nil, errors.New("backup engine: nil repository")
	case box == nil:
		return nil, errors.New("backup engine: nil keyring")
	case phys == nil:
		return nil, errors.New("backup engine: nil physical tools")
	case log == nil:
		return nil, errors.New("backup engine: nil logger")
	case cfg.WorkDir == "":
		return nil, errors.New("backup engine: no work dir")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("backup engine metrics: %w", err)
	}
	cfg = cfg.withDefaults()
	return &Engine{
		cfg: cfg, db: db, st: st, inst: inst, blobs: blobs, secondary: secondary, box: box, phys: phys,
		log:       log.With(slog.String("component", "backup.engine")),
		m:         m,
		now:       time.Now,
		lockName:  db.ActiveLockName("engine"),
		ready:     make(chan struct{}),
		sem:       make(chan struct{}, cfg.MaxConcurrentBackups),
		live:      make(map[string]backup.Instance),
		inflight:  make(map[string]string),
		archivers: make(map[string]*archiver),
	}, nil
}

// Ready is closed once the engine is active and has synced instances.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Run works while it holds the single-active lock, until ctx ends.
// Backups left running by a dead process are cleaned up (objects removed,
// marked failed "interrupted") at start.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("backup engine already running")
	}
	defer e.running.Store(false)
	lock, err := e.db.AcquireActive(ctx, e.lockName, lockRetry, e.log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("acquire backup engine lock: %w", err)
	}
	defer func() {
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			e.log.WarnContext(ctx, "release backup engine lock", slog.Any("err", err))
		}
	}()

	// Everything stops when ctx ends or the lock is lost.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		if err := lock.Watch(runCtx, lockCheck); err != nil {
			e.log.ErrorContext(ctx, "backup engine lock lost", slog.Any("err", err))
		}
		cancel()
	}()

	if err := e.cleanupInterrupted(runCtx); err != nil {
		cancel()
		<-lost
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	e.mu.Lock()
	e.runCtx = runCtx
	e.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.controlLoop(runCtx) }()
	go func() { defer wg.Done(); e.lagLoop(runCtx) }()
	e.log.InfoContext(ctx, "backup engine active")

	wg.Wait()
	e.mu.Lock()
	e.runCtx = nil
	e.mu.Unlock()
	e.stopArchivers()
	e.backups.Wait()
	e.tied.Wait()
	<-lost
	if ctx.Err() == nil {
		return errors.New("backup engine lost its lock")
	}
	return nil
}

// Active reports whether this engine holds the single-active lock now
// (a standby, or an engine that lost its lock or is stopping, does not).
func (e *Engine) Active() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runCtx != nil && e.runCtx.Err() == nil
}

// WhileActive runs fn once this engine is active (its lock held and the
// instances read), with a context that ends when ctx ends or the engine
// stops being active. Work that must run on one replica only — restore
// jobs, restore drills — runs under it, so that it moves with the lock: a
// standby's fn starts when the standby takes over. It returns nil without
// calling fn when ctx ends first or the active period is already over.
func (e *Engine) WhileActive(ctx context.Context, fn func(context.Context) error) error {
	select {
	case <-ctx.Done():
		return nil
	case <-e.ready:
	}
	e.mu.Lock()
	active := e.runCtx
	if active == nil || active.Err() != nil {
		e.mu.Unlock()
		return nil
	}
	e.tied.Add(1) // under mu: Run clears runCtx under mu before it waits
	e.mu.Unlock()
	defer e.tied.Done()
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(active, cancel)
	defer stop()
	return fn(actx)
}

// BackupNow starts an on-demand backup of the tenant's instance and
// returns its running record; backup.ErrBusy when one runs,
// backup.ErrNotFound for an unknown or another tenant's instance.
func (e *Engine) BackupNow(ctx context.Context, tenant, instanceID string) (backup.Backup, error) {
	known, err := e.st.GetInstance(ctx, tenant, instanceID)
	if err != nil {
		return backup.Backup{}, fmt.Errorf("backup instance %s: %w", instanceID, err)
	}
	if !known.DeletedAt.IsZero() {
		return backup.Backup{}, fmt.Errorf("backup instance %s: deleted: %w", instanceID, backup.ErrNotFound)
	}
	// Nodes and credentials are provisioning's, read fresh: the source
	// must be the node that is a healthy replica now.
	in, err := e.inst.Get(ctx, instanceID)
	if err != nil {
		return backup.Backup{}, fmt.Errorf("backup instance %s: %w", instanceID, err)
	}
	return e.start(ctx, in, backup.TriggerOnDemand)
}

// Learn records an instance provisioning holds but the last sync did not
// see yet (ordered seconds ago), so that a tenant's first call about it
// does not answer 404; backup.ErrNotFound when provisioning does not hold
// it either.
func (e *Engine) Learn(ctx context.Context, instanceID string) error {
	in, err := e.inst.Get(ctx, instanceID)
	if err != nil {
		return fmt.Errorf("learn instance %s: %w", instanceID, err)
	}
	if err := e.st.UpsertInstances(ctx, []backup.Instance{in}); err != nil {
		return fmt.Errorf("learn instance %s: %w", instanceID, err)
	}
	return nil
}

// Policy returns an instance's effective policy.
func (e *Engine) Policy(ctx context.Context, instanceID string) (backup.Policy, error) {
	in, err := e.st.GetInstance(ctx, "", instanceID)
	if err != nil {
		return backup.Policy{}, fmt.Errorf("policy of instance %s: %w", instanceID, err)
	}
	return e.policyOf(ctx, in)
}

// policyOf resolves the platform default, the plan's and the instance's
// overrides. A drill's scratch instance is disabled: it lives for the
// drill only.
func (e *Engine) policyOf(ctx context.Context, in backup.Instance) (backup.Policy, error) {
	if scratch, err := e.st.IsScratch(ctx, in.ID); err != nil {
		return backup.Policy{}, err
	} else if scratch {
		p := e.cfg.Policy
		p.Enabled = false
		return p, nil
	}
	var ovs []backup.PolicyOverride
	if in.PlanID != "" {
		o, ok, err := e.st.PolicyOverride(ctx, backupstore.ScopePlan, in.PlanID)
		if err != nil {
			return backup.Policy{}, fmt.Errorf("policy of plan %s: %w", in.PlanID, err)
		}
		if ok {
			ovs = append(ovs, o)
		}
	}
	o, ok, err := e.st.PolicyOverride(ctx, backupstore.ScopeInstance, in.ID)
	if err != nil {
		return backup.Policy{}, fmt.Errorf("policy of instance %s: %w", in.ID, err)
	}
	if ok {
		ovs = append(ovs, o)
	}
	return backup.Resolve(e.cfg.Policy, ovs...), nil
}

// newID is a backup id: a lower-case ULID (sortable by start).
func newID() string { return strings.ToLower(ulid.Make().String()) }
