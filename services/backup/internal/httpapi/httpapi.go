// Package httpapi is the backup service's HTTP API: a tenant's backups,
// on-demand backups, the restore window, backup policies and restore
// drills; and the internal restore jobs provisioning drives. It enforces
// tenancy and roles and maps JSON to the domain at the edge; it takes,
// verifies and restores nothing itself (the engine, restore jobs and drill
// runner do).
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

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
	// Base is the platform's default policy the engine resolves overrides
	// on (engine.Config.Policy); zero: backup.DefaultPolicy(). A policy
	// override is refused when the policy it resolves to is invalid.
	Base backup.Policy
}

// store is the part of *backupstore.Store the API reads and writes.
type store interface {
	GetInstance(ctx context.Context, tenant, id string) (backup.Instance, error)
	GetBackup(ctx context.Context, tenant, instanceID, id string) (backup.Backup, error)
	ListBackups(ctx context.Context, tenant, instanceID, after string, limit int) ([]backup.Backup, error)
	AllBackups(ctx context.Context, instanceID string) ([]backup.Backup, error)
	Segments(ctx context.Context, instanceID string, fromSeq int64) ([]backup.Segment, error)
	PolicyOverride(ctx context.Context, scope, id string) (backup.PolicyOverride, bool, error)
	SetPolicyOverride(ctx context.Context, scope, id string, o backup.PolicyOverride) error
	ListDrills(ctx context.Context, tenant, instanceID string, limit int) ([]backup.Drill, error)
}

var _ store = (*backupstore.Store)(nil)

// Restorer is the only identity served the internal restore routes.
const Restorer = "service:provisioning"

// API serves the routes.
type API struct {
	store    store
	engine   Engine
	restores Restores
	drills   Drills
	log      *slog.Logger
	base     backup.Policy
}

// New checks deps: every collaborator but the logger is required.
func New(d Deps) (*API, error) {
	if d.Store == nil {
		return nil, errors.New("backup httpapi: nil store")
	}
	return newAPI(d, d.Store)
}

// newAPI builds the API over st (the store, or a test's stand-in).
func newAPI(d Deps, st store) (*API, error) {
	if d.Engine == nil || d.Restores == nil || d.Drills == nil {
		return nil, errors.New("backup httpapi: nil engine, restores or drills")
	}
	a := &API{store: st, engine: d.Engine, restores: d.Restores, drills: d.Drills, log: d.Log, base: d.Base}
	if a.base == (backup.Policy{}) {
		a.base = backup.DefaultPolicy()
	}
	if err := a.base.Validate(); err != nil {
		return nil, fmt.Errorf("backup httpapi: base policy: %w", err)
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// Routes mounts every route on r (behind the service's signed-identity
// middleware).
func (a *API) Routes(r chi.Router) {
	r.Post("/api/v1/instances/{id}/backups", a.createBackup)
	r.Get("/api/v1/instances/{id}/backups", a.listBackups)
	r.Get("/api/v1/instances/{id}/backups/{backup_id}", a.getBackup)
	r.Get("/api/v1/instances/{id}/restore-window", a.restoreWindow)
	r.Get("/api/v1/instances/{id}/backup-policy", a.getInstancePolicy)
	r.Put("/api/v1/instances/{id}/backup-policy", a.putInstancePolicy)
	r.Get("/api/v1/backup-policies/plans/{plan_id}", a.getPlanPolicy)
	r.Put("/api/v1/backup-policies/plans/{plan_id}", a.putPlanPolicy)
	r.Get("/api/v1/instances/{id}/restore-drills", a.listDrills)
	r.Post("/api/v1/instances/{id}/restore-drills", a.createDrill)

	r.Post("/internal/v1/restores", a.startRestore)
	r.Get("/internal/v1/restores/{id}", a.getRestore)
	r.Post("/internal/v1/restores/{id}/done", a.doneRestore)
}

// scope is who a request acts for: a tenant's own tenant; a
// platform-admin's ?tenant=, or every tenant ("") without it.
type scope struct {
	p      tenancy.Principal
	tenant string
}

// authorize checks the role for action on what and reads the scope. A
// tenant naming another tenant in ?tenant= gets 403. On false the problem
// has been written.
func authorize(w http.ResponseWriter, r *http.Request, action tenancy.Action, what string) (scope, bool) {
	p, ok := httpx.Authorize(w, r, action, what)
	if !ok {
		return scope{}, false
	}
	asked := r.URL.Query().Get("tenant")
	if asked != "" {
		if _, err := tenancy.Parse(asked); err != nil {
			httpx.WriteProblem(w, r, httpx.BadRequest("invalid query parameter",
				httpx.FieldError{Field: "tenant", Reason: "not a tenant id"}))
			return scope{}, false
		}
	}
	if p.Role == tenancy.RolePlatformAdmin {
		return scope{p: p, tenant: asked}, true
	}
	if p.Tenant == "" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "a tenant role needs a tenant"))
		return scope{}, false
	}
	if asked != "" && asked != string(p.Tenant) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "a tenant may only see its own "+what))
		return scope{}, false
	}
	return scope{p: p, tenant: string(p.Tenant)}, true
}

// learner is an engine that can record an instance provisioning holds but
// its last sync did not see yet.
type learner interface {
	Learn(ctx context.Context, instanceID string) error
}

// instance authorizes the request and resolves the {id} instance in its
// scope; another tenant's instance answers 404 like an unknown one. On
// false the problem has been written.
func (a *API) instance(w http.ResponseWriter, r *http.Request, action tenancy.Action, what string) (backup.Instance, bool) {
	s, ok := authorize(w, r, action, what)
	if !ok {
		return backup.Instance{}, false
	}
	id := chi.URLParam(r, "id")
	in, err := a.store.GetInstance(r.Context(), s.tenant, id)
	if errors.Is(err, backup.ErrNotFound) {
		// An instance ordered since the engine's last sync: ask for it
		// once, then look again in the tenant's scope.
		if l, ok := a.engine.(learner); ok && l.Learn(r.Context(), id) == nil {
			in, err = a.store.GetInstance(r.Context(), s.tenant, id)
		}
	}
	if err != nil {
		a.domainError(w, r, "instance", err, "tenant", s.tenant, "instance", id)
		return backup.Instance{}, false
	}
	return in, true
}

// live refuses changes to a deleted instance: its backups stay readable
// until retention removes them, but nothing new is taken of it.
func live(w http.ResponseWriter, r *http.Request, in backup.Instance) bool {
	if in.DeletedAt.IsZero() {
		return true
	}
	httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
		"instance "+in.ID+" was deleted; its backups stay readable until retention removes them"))
	return false
}

// domainError answers a domain error: ErrNotFound 404 (naming what),
// ErrBusy and ErrNoSource 409, ErrUnavailable 503, ErrInvalid, ErrNoBackup and *OutsideWindowError 422 (the
// latter with the window's earliest and latest, a *FieldError naming its
// field), anything else a logged
// 500. attrs are logged with a 500 (tenant and instance ids).
func (a *API) domainError(w http.ResponseWriter, r *http.Request, what string, err error, attrs ...any) {
	var (
		ow *backup.OutsideWindowError
		fe *backup.FieldError
	)
	switch {
	case errors.As(err, &ow):
		p := httpx.Unprocessable(err.Error())
		p.Extensions = map[string]any{
			"earliest": ow.Window.Earliest.UTC().Format(time.RFC3339),
			"latest":   ow.Window.Latest.UTC().Format(time.RFC3339),
		}
		if ow.Window.LatestGTID != "" {
			p.Extensions["latest_gtid"] = ow.Window.LatestGTID
		}
		httpx.WriteProblem(w, r, p)
	case errors.Is(err, backup.ErrNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such "+what))
	case errors.Is(err, backup.ErrBusy), errors.Is(err, backup.ErrNoSource):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, err.Error()))
	case errors.Is(err, backup.ErrUnavailable):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, err.Error()))
	case errors.As(err, &fe):
		httpx.WriteProblem(w, r, httpx.Unprocessable(err.Error(), httpx.FieldError{Field: fe.Field, Reason: fe.Reason}))
	case errors.Is(err, backup.ErrInvalid), errors.Is(err, backup.ErrNoBackup):
		httpx.WriteProblem(w, r, httpx.Unprocessable(err.Error()))
	default:
		a.internalError(w, r, what, err, attrs...)
	}
}

// internalError logs err with attrs and answers 500.
func (a *API) internalError(w http.ResponseWriter, r *http.Request, what string, err error, attrs ...any) {
	attrs = append(attrs, "err", err, "method", r.Method, "path", r.URL.Path)
	a.log.ErrorContext(r.Context(), "backup api: "+what, attrs...)
	httpx.WriteError(w, r, err)
}

// list is the shape of every list answer.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}
