// Package drill runs restore drills: the latest verified backup restored
// into a scratch instance through provisioning (the real restore path),
// measured there against what the backup's verification measured, the
// report recorded and published, the scratch instance deleted. A drill a
// dead process left running is finished at start: its scratch instance
// deleted, the drill failed "interrupted".
package drill

import (
	"context"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
)

// Provisioner creates, reads and deletes instances (provclient).
type Provisioner interface {
	// CreateRestored orders an instance of plan for tenant restored from a
	// backup of source; it returns the new instance id.
	CreateRestored(ctx context.Context, tenant, name, planID, sourceID, backupID string) (string, error)
	// Get returns an instance with nodes and admin account;
	// backup.ErrNotFound once gone.
	Get(ctx context.Context, id string) (backup.Instance, error)
	// Delete deletes an instance (idempotent).
	Delete(ctx context.Context, tenant, id string) error
}

// Config tunes drills.
type Config struct {
	// Policy is the platform default (its DrillEvery schedules drills).
	Policy backup.Policy
	// Timeout bounds a drill's restore.
	Timeout time.Duration
	// TickEvery is how often schedules are looked at.
	TickEvery time.Duration
	// Sample is how many tables are compared.
	Sample int
}

// Runner runs drills.
type Runner struct{}

// New builds a runner.
func New(cfg Config, st *backupstore.Store, prov Provisioner, log *slog.Logger) (*Runner, error) {
	panic("contract")
}

// Start runs a drill of the tenant's instance now (in the background) and
// returns its running record; backup.ErrNoBackup when it has no verified
// backup, backup.ErrBusy when a drill of it runs.
func (r *Runner) Start(ctx context.Context, tenant, instanceID string) (backup.Drill, error) {
	panic("contract")
}

// Run runs scheduled drills until ctx ends.
func (r *Runner) Run(ctx context.Context) error { panic("contract") }
