package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/tenant"
)

// InternalPrefix is the path prefix of the service-to-service API. Requests
// under it never reach the public router (API keys, proxied routes); they
// must carry identity headers signed with the internal secret.
const InternalPrefix = "/internal/"

// ProblemUnknownTenant is the problem type of the internal API's 404 for a
// tenant the gateway does not know, so that a caller can tell it from a 404
// of a gateway without the route (an older version, a wrong URL).
const ProblemUnknownTenant = "https://canopy.dev/problems/unknown-tenant"

// TenantReader reads the tenant in ctx; *mysqlrepo.Repo implements it.
type TenantReader interface {
	Tenant(ctx context.Context) (tenant.Tenant, error)
}

// InternalDeps are the internal API's collaborators.
type InternalDeps struct {
	Store TenantReader
	// Secret is the internal secret the services sign their requests with.
	Secret []byte
	Logger *slog.Logger
	// RouterOptions are passed to httpx.NewRouter.
	RouterOptions []httpx.RouterOption
}

// NewInternalHandler returns the service-to-service API the gateway owns:
//
//	GET /internal/v1/tenants/{id}/quota  the stored quota (provisioning enforces it)
//
// Only requests signed with the internal secret (tenancy.Middleware) by a
// platform-admin identity are served; API keys are not accepted here.
func NewInternalHandler(d InternalDeps) (http.Handler, error) {
	if d.Store == nil || d.Logger == nil || len(d.Secret) == 0 {
		return nil, errors.New("new gateway internal handler: missing dependency")
	}
	h := &internalAPI{store: d.Store, log: d.Logger}
	r := httpx.NewRouter(d.Logger, d.RouterOptions...)
	r.Route("/internal/v1", func(r chi.Router) {
		r.Use(tenancy.Middleware(d.Secret), requirePlatformAdmin)
		r.Get("/tenants/{id}/quota", h.quota)
	})
	return r, nil
}

// WithInternal sends requests under InternalPrefix to internal and all
// others to public, so the public router (and its proxy) never sees them.
func WithInternal(public, internal http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, InternalPrefix) {
			internal.ServeHTTP(w, r)
			return
		}
		public.ServeHTTP(w, r)
	})
}

// requirePlatformAdmin refuses verified identities other than platform-admin:
// the internal API answers for every tenant, so only services may call it.
func requirePlatformAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := tenancy.PrincipalFrom(r.Context()); !ok || p.Role != tenancy.RolePlatformAdmin {
			httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "the internal API is for Canopy's services only"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type internalAPI struct {
	store TenantReader
	log   *slog.Logger
}

// quota answers the tenant's stored quota in the public quota's shape.
func (h *internalAPI) quota(w http.ResponseWriter, r *http.Request) {
	unknown := &httpx.Problem{Type: ProblemUnknownTenant, Title: "Not Found", Status: http.StatusNotFound, Detail: "no such tenant"}
	id, err := tenancy.Parse(chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteProblem(w, r, unknown)
		return
	}
	t, err := h.store.Tenant(tenancy.WithTenant(r.Context(), id))
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		httpx.WriteProblem(w, r, unknown)
	case err != nil:
		h.log.ErrorContext(r.Context(), "read tenant quota", "tenant", id, "err", err)
		w.Header().Set("Retry-After", "1")
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "the tenant store is temporarily unavailable"))
	default:
		httpx.WriteJSON(w, http.StatusOK, toQuotaJSON(t.Quota))
	}
}
