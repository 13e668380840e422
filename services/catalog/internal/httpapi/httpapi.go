// Package httpapi serves the catalog's part of the public API under
// /api/v1/catalog: the tenant view of services and plans, the platform-admin
// operations on plans and OSB broker credentials. Callers are authenticated
// by the gateway; the identity it signs is verified by tenancy.Middleware.
// It maps HTTP to the domain (internal/plan, internal/brokercred) and the
// repository; it holds no business rules of its own.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

// Repo is what the handlers need from the repository.
type Repo interface {
	GetPlan(ctx context.Context, id string) (plan.Plan, error)
	ListPlans(ctx context.Context, q mysqlrepo.PlanQuery) ([]plan.Plan, error)
	CreatePlan(ctx context.Context, p plan.Plan, idem *mysqlrepo.IdempotentResponse) error
	UpdatePlan(ctx context.Context, id string, fn func(p plan.Plan) (plan.Plan, mysqlrepo.Change, error)) (plan.Plan, error)
	LookupIdempotent(ctx context.Context, scope, key string) (mysqlrepo.IdempotentResponse, bool, error)
	CreateCredential(ctx context.Context, c brokercred.Credential, idem *mysqlrepo.IdempotentResponse) error
	GetCredential(ctx context.Context, id string) (brokercred.Credential, error)
	ListCredentials(ctx context.Context, after *mysqlrepo.CredentialCursor, limit int) ([]brokercred.Credential, error)
	RevokeCredential(ctx context.Context, id string, now time.Time) error
}

var _ Repo = (*mysqlrepo.Repo)(nil)

// Tenants tells whether a tenant exists: nil, or an error wrapping
// tenantclient.ErrUnknownTenant or tenantclient.ErrUnavailable.
// *tenantclient.Client implements it.
type Tenants interface {
	Check(ctx context.Context, tenant tenancy.ID) error
}

// Engines tells which engine builds some host runs: the builds and true,
// or false when that is not known (versions are then listed as stored).
// *engineclient.Client implements it.
type Engines interface {
	Builds(ctx context.Context) ([]plan.Build, bool)
}

// Handler serves /api/v1/catalog.
type Handler struct {
	repo    Repo
	tenants Tenants
	engines Engines
	logger  *slog.Logger
	now     func() time.Time
	newID   func() string
}

// New returns the handler. now and newID may be nil (time.Now, random UUIDs).
// tenants may be nil only where no gateway exists (standalone runs): then
// broker credentials are bound to tenants unchecked.
func New(repo Repo, tenants Tenants, logger *slog.Logger, now func() time.Time, newID func() string) (*Handler, error) {
	if repo == nil {
		return nil, errors.New("httpapi: nil repo")
	}
	if logger == nil {
		return nil, errors.New("httpapi: nil logger")
	}
	if now == nil {
		now = time.Now
	}
	if newID == nil {
		newID = newUUID
	}
	return &Handler{repo: repo, tenants: tenants, logger: logger, now: now, newID: newID}, nil
}

// WithEngines makes the views offer only the versions some host runs, as e
// says; without it (or while e does not know) versions are listed as
// stored.
func (h *Handler) WithEngines(e Engines) { h.engines = e }

// builds is what the hosts run; false when unknown.
func (h *Handler) builds(r *http.Request) ([]plan.Build, bool) {
	if h.engines == nil {
		return nil, false
	}
	return h.engines.Builds(r.Context())
}

// planView renders p with the versions some host runs.
func (h *Handler) planView(r *http.Request, p plan.Plan) planJSON {
	builds, known := h.builds(r)
	return toPlanJSON(p, p.Offer(builds, known))
}

// Prefix is where Routes is mounted.
const Prefix = "/api/v1/catalog"

// Routes returns the routes below Prefix. Identity is verified by the caller
// (tenancy.Middleware); every route checks the role itself.
func (h *Handler) Routes() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such resource"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusMethodNotAllowed, r.Method+" is not allowed here"))
	})
	r.Group(func(r chi.Router) {
		r.Use(require(tenancy.ActionRead))
		r.Get("/services", h.listServices)
		r.Get("/plans", h.listPlans)
		r.Get("/plans/{id}", h.getPlan)
	})
	r.Group(func(r chi.Router) {
		r.Use(require(tenancy.ActionAdmin))
		r.Post("/plans", h.createPlan)
		r.Patch("/plans/{id}", h.patchPlan)
		r.Post("/plans/{id}/deprecate", h.deprecatePlan)
		r.Post("/broker-credentials", h.createCredential)
		r.Get("/broker-credentials", h.listCredentials)
		r.Get("/broker-credentials/{id}", h.getCredential)
		r.Delete("/broker-credentials/{id}", h.revokeCredential)
	})
	return r
}

// require refuses callers whose role may not perform action: 401 without a
// verified principal, 403 with one.
func require(action tenancy.Action) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := tenancy.PrincipalFrom(r.Context())
			if !ok {
				httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, "missing or invalid gateway identity"))
				return
			}
			if !tenancy.Can(p.Role, action) {
				httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "role "+string(p.Role)+" may not do this; platform-admin only"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// writeInternal logs err once and answers a 500 problem.
func (h *Handler) writeInternal(w http.ResponseWriter, r *http.Request, err error) {
	h.logger.ErrorContext(r.Context(), "catalog request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	httpx.WriteError(w, r, err)
}

func notFound(what string) *httpx.Problem {
	return httpx.NewProblem(http.StatusNotFound, what+" not found")
}

// violationsProblem maps domain violations to a 422 problem.
func violationsProblem(vs []plan.Violation) *httpx.Problem {
	fields := make([]httpx.FieldError, 0, len(vs))
	for _, v := range vs {
		fields = append(fields, httpx.FieldError{Field: v.Field, Reason: v.Reason})
	}
	return httpx.Unprocessable("the plan is invalid", fields...)
}
