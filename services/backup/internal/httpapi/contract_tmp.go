// Package httpapi is the backup service's HTTP API: a tenant's backups,
// on-demand backups, the restore window, backup policies and restore
// drills; and the internal restore jobs provisioning drives.
package httpapi

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
)

// Engine is what the API asks of the engine.
type Engine interface {
	BackupNow(ctx context.Context, tenant, instanceID string) (backup.Backup, error)
	Policy(ctx context.Context, instanceID string) (backup.Policy, error)
	ArchiveLag(instanceID string) (time.Duration, bool)
}

// Restores is what the API asks of the restore jobs.
type Restores interface {
	Start(ctx context.Context, tenant, sourceID, targetID string, t backup.Target) (backup.Restore, error)
	Get(ctx context.Context, id string) (backup.Restore, error)
	Done(ctx context.Context, id string) error
}

// Drills is what the API asks of the drill runner.
type Drills interface {
	Start(ctx context.Context, tenant, instanceID string) (backup.Drill, error)
}

// Deps are the API's collaborators.
type Deps struct {
	Store    *backupstore.Store
	Engine   Engine
	Restores Restores
	Drills   Drills
	Log      *slog.Logger
}

// API serves the routes.
type API struct{}

// New checks deps.
func New(d Deps) (*API, error) { panic("contract") }

// Routes mounts every route on r (behind the service's signed-identity
// middleware).
func (a *API) Routes(r chi.Router) { panic("contract") }
