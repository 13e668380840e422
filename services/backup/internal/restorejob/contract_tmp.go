// Package restorejob makes the data of restored instances: for a restore
// asked by provisioning it plans (backup + segments), fetches and checks
// the objects, prepares the backup and replays binlogs to the target into
// a seed directory that provisioning copies into the new nodes, and
// removes the seed once taken. Jobs survive a restart: an interrupted one
// starts again from a clean directory.
package restorejob

import (
	"context"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/libs/secrets"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
)

// Config tunes the runner.
type Config struct {
	// StagingDir holds seeds (<StagingDir>/<restore id>/data).
	StagingDir string
	// SeedTTL removes a ready seed never taken after this long.
	SeedTTL time.Duration
	// Workers run jobs concurrently.
	Workers int
}

// Runner runs restore jobs.
type Runner struct{}

// New builds a runner.
func New(cfg Config, st *backupstore.Store, blobs repo.Blobs, box *secrets.Box, phys *mysqlphys.Tools, log *slog.Logger) (*Runner, error) {
	panic("contract")
}

// Start plans a restore of the tenant's source instance into target and
// queues it. Errors: backup.ErrNotFound (source or backup unknown to the
// tenant), backup.ErrInvalid, backup.ErrNoBackup, *backup.OutsideWindowError.
// Starting the same target again returns the existing job.
func (r *Runner) Start(ctx context.Context, tenant, sourceID, targetID string, t backup.Target) (backup.Restore, error) {
	panic("contract")
}

// Get returns a job.
func (r *Runner) Get(ctx context.Context, id string) (backup.Restore, error) { panic("contract") }

// Done removes a ready job's seed and marks it done (idempotent).
func (r *Runner) Done(ctx context.Context, id string) error { panic("contract") }

// Run works on queued jobs until ctx ends.
func (r *Runner) Run(ctx context.Context) error { panic("contract") }
