// Package engine is the backup service's one active worker: it keeps the
// list of instances in step with provisioning, takes scheduled and
// on-demand backups (verified, sealed into the repository, copied to the
// secondary one), runs one binlog archiver per MySQL instance into sealed
// segments, applies retention, and exports the archive lag and backup
// health as metrics and events.
package engine

import (
	"context"
	"log/slog"
	"time"

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

// Engine runs backups, archiving and retention.
type Engine struct{}

// New builds the engine; secondary may be nil (no second copy).
func New(cfg Config, db *store.DB, st *backupstore.Store, inst Instances, blobs, secondary repo.Blobs,
	box *secrets.Box, phys *mysqlphys.Tools, log *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	panic("contract")
}

// Run works while it holds the single-active lock, until ctx ends.
// Backups left running by a dead process are cleaned up (objects removed,
// marked failed "interrupted") at start.
func (e *Engine) Run(ctx context.Context) error { panic("contract") }

// Ready is closed once the engine is active and has synced instances.
func (e *Engine) Ready() <-chan struct{} { panic("contract") }

// BackupNow starts an on-demand backup of the tenant's instance and
// returns its running record; backup.ErrBusy when one runs,
// backup.ErrNotFound for an unknown or another tenant's instance.
func (e *Engine) BackupNow(ctx context.Context, tenant, instanceID string) (backup.Backup, error) {
	panic("contract")
}

// Policy returns an instance's effective policy.
func (e *Engine) Policy(ctx context.Context, instanceID string) (backup.Policy, error) { panic("contract") }

// ArchiveLag is the instance's current archive lag (false: not archived).
func (e *Engine) ArchiveLag(instanceID string) (time.Duration, bool) { panic("contract") }
