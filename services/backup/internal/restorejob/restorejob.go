// Package restorejob makes the data of restored instances: for a restore
// asked by provisioning it plans (backup + segments), fetches and checks
// the objects, prepares the backup and replays binlogs to the target into
// a seed directory that provisioning copies into the new nodes, and
// removes the seed once taken. Jobs survive a restart: an interrupted one
// starts again from a clean directory. It does not create instances:
// provisioning does, from the seed.
package restorejob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/secrets"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
)

// Defaults of Config.
const (
	DefaultSeedTTL   = time.Hour
	DefaultWorkers   = 1
	DefaultPollEvery = time.Second
)

// Config tunes the runner.
type Config struct {
	// StagingDir holds seeds (<StagingDir>/<restore id>/data).
	StagingDir string
	// SeedTTL removes a ready seed never taken after this long.
	SeedTTL time.Duration
	// Workers run jobs concurrently.
	Workers int
	// PollEvery is how often the store is looked at for jobs (a Start on
	// this runner wakes the workers at once) and for expired seeds.
	PollEvery time.Duration
	// RedisCheckAOF is the redis-check-aof binary that cuts a Redis AOF at
	// the target second (default: redis-check-aof on PATH).
	RedisCheckAOF string
}

// ErrNotReady: Done on a job that has no seed yet.
var ErrNotReady = errors.New("restore job has no seed yet")

// Runner runs restore jobs.
type Runner struct {
	cfg   Config
	st    *backupstore.Store
	blobs repo.Blobs
	box   *secrets.Box
	phys  *mysqlphys.Tools
	log   *slog.Logger
	now   func() time.Time

	// startMu makes Start's look-up of an existing job for a target and its
	// creation one step.
	startMu sync.Mutex
	// wake tells the dispatcher a job was queued.
	wake chan struct{}
	// mu guards busy: the jobs a worker holds.
	mu   sync.Mutex
	busy map[string]bool
}

// New builds a runner.
func New(cfg Config, st *backupstore.Store, blobs repo.Blobs, box *secrets.Box, phys *mysqlphys.Tools, log *slog.Logger) (*Runner, error) {
	switch {
	case cfg.StagingDir == "":
		return nil, errors.New("restorejob: empty staging dir")
	case st == nil, blobs == nil, box == nil, phys == nil, log == nil:
		return nil, errors.New("restorejob: nil dependency")
	}
	if cfg.SeedTTL <= 0 {
		cfg.SeedTTL = DefaultSeedTTL
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = DefaultPollEvery
	}
	if err := os.MkdirAll(cfg.StagingDir, 0o700); err != nil {
		return nil, fmt.Errorf("restorejob: staging dir: %w", err)
	}
	return &Runner{cfg: cfg, st: st, blobs: blobs, box: box, phys: phys, log: log, now: time.Now,
		wake: make(chan struct{}, 1), busy: map[string]bool{}}, nil
}

// Start plans a restore of the tenant's source instance into target and
// queues it. Errors: backup.ErrNotFound (source or backup unknown to the
// tenant), backup.ErrInvalid, backup.ErrNoBackup, *backup.OutsideWindowError.
// Starting the same target again returns the existing job.
func (r *Runner) Start(ctx context.Context, tenant, sourceID, targetID string, t backup.Target) (backup.Restore, error) {
	return r.StartEngine(ctx, tenant, sourceID, targetID, "", t)
}

// StartEngine is Start for a target of a given engine ("": any): a source
// of another engine is backup.ErrInvalid.
func (r *Runner) StartEngine(ctx context.Context, tenant, sourceID, targetID string, engine backup.Engine, t backup.Target) (backup.Restore, error) {
	if tenant == "" || sourceID == "" || targetID == "" {
		return backup.Restore{}, fmt.Errorf("restore into %q: %w: tenant, source and target instance are required", targetID, backup.ErrInvalid)
	}
	r.startMu.Lock()
	defer r.startMu.Unlock()
	if existing, ok, err := r.jobFor(ctx, targetID); err != nil {
		return backup.Restore{}, err
	} else if ok {
		if existing.TenantID != tenant || existing.SourceInstanceID != sourceID {
			return backup.Restore{}, fmt.Errorf("restore into %s: %w: a restore from another source is under way", targetID, backup.ErrInvalid)
		}
		return existing, nil
	}
	src, err := r.st.GetInstance(ctx, tenant, sourceID)
	if err != nil {
		return backup.Restore{}, fmt.Errorf("restore of instance %s: %w", sourceID, err)
	}
	if engine != "" && src.Engine != engine {
		return backup.Restore{}, fmt.Errorf("restore of instance %s: %w: engine mismatch: the source is %s, the target %s",
			sourceID, backup.ErrInvalid, src.Engine, engine)
	}
	backups, err := r.st.AllBackups(ctx, sourceID)
	if err != nil {
		return backup.Restore{}, fmt.Errorf("restore of instance %s: backups: %w", sourceID, err)
	}
	segs, err := r.st.Segments(ctx, sourceID, 1)
	if err != nil {
		return backup.Restore{}, fmt.Errorf("restore of instance %s: segments: %w", sourceID, err)
	}
	plan, err := backup.PlanRestore(backups, segs, t)
	if err != nil {
		return backup.Restore{}, fmt.Errorf("restore of instance %s: %w", sourceID, err)
	}
	if plan.Backup.Engine != "" && plan.Backup.Engine != src.Engine {
		return backup.Restore{}, fmt.Errorf("restore of instance %s: %w: backup %s is of engine %s, the instance %s",
			sourceID, backup.ErrInvalid, plan.Backup.ID, plan.Backup.Engine, src.Engine)
	}
	now := r.now().UTC()
	job := backup.Restore{ID: ulid.Make().String(), TenantID: tenant, SourceInstanceID: sourceID, TargetInstanceID: targetID,
		Engine: src.Engine, Target: t, Plan: plan, Status: backup.RestorePending, CreatedAt: now, UpdatedAt: now}
	if err := r.st.CreateRestore(ctx, job); err != nil {
		return backup.Restore{}, fmt.Errorf("record restore into %s: %w", targetID, err)
	}
	r.log.InfoContext(ctx, "restore queued", "restore", job.ID, "tenant", tenant, "instance", sourceID, "target", targetID,
		"backup", plan.Backup.ID, "segments", len(plan.Segments))
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return job, nil
}

// jobFor returns the active job restoring into target.
func (r *Runner) jobFor(ctx context.Context, target string) (backup.Restore, bool, error) {
	jobs, err := r.st.ActiveRestores(ctx)
	if err != nil {
		return backup.Restore{}, false, fmt.Errorf("restore jobs: %w", err)
	}
	for _, j := range jobs {
		if j.TargetInstanceID == target {
			return j, true, nil
		}
	}
	return backup.Restore{}, false, nil
}

// Get returns a job.
func (r *Runner) Get(ctx context.Context, id string) (backup.Restore, error) {
	job, err := r.st.GetRestore(ctx, id)
	if err != nil {
		return backup.Restore{}, fmt.Errorf("restore %s: %w", id, err)
	}
	return job, nil
}

// Done removes a ready job's seed and marks it done (idempotent). A job
// without a seed yet is ErrNotReady; a failed one has nothing to remove.
func (r *Runner) Done(ctx context.Context, id string) error {
	job, err := r.st.GetRestore(ctx, id)
	if err != nil {
		return fmt.Errorf("restore %s: %w", id, err)
	}
	switch job.Status {
	case backup.RestoreDone, backup.RestoreFailed:
		return nil
	case backup.RestorePending, backup.RestoreRunning:
		return fmt.Errorf("restore %s is %s: %w", id, job.Status, ErrNotReady)
	}
	if err := os.RemoveAll(r.jobDir(id)); err != nil {
		return fmt.Errorf("remove seed of restore %s: %w", id, err)
	}
	job.Status, job.UpdatedAt = backup.RestoreDone, r.now().UTC()
	if err := r.st.UpdateRestore(ctx, job); err != nil {
		return fmt.Errorf("mark restore %s done: %w", id, err)
	}
	r.log.InfoContext(ctx, "restore seed taken and removed", "restore", id, "tenant", job.TenantID, "target", job.TargetInstanceID)
	return nil
}

// jobDir is a job's staging directory.
func (r *Runner) jobDir(id string) string { return filepath.Join(r.cfg.StagingDir, id) }
