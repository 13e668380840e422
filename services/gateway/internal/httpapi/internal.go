package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/tenant"
)

// InternalPrefix is the path prefix of the service-to-service API. It is
// served only on the gateway's internal listener; on the public one requests
// under it get a 404 and never reach the public router (API keys, proxied
// routes). They must carry identity headers signed with the internal secret.
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
	// Secrets are the internal secrets the services sign their requests with:
	// the current one first, then the previous one during a rotation.
	Secrets [][]byte
	Logger  *slog.Logger
	// RouterOptions are passed to httpx.NewRouter.
	RouterOptions []httpx.RouterOption
}

// NewInternalHandler returns the service-to-service API the gateway owns:
//
//	GET /internal/v1/tenants/{id}/quota  the stored quota (provisioning enforces it)
//
// Only requests signed with an internal secret for the gateway audience
// (tenancy.Verifier) by the services that need a route are served: quotas by
// service:provisioning and service:catalog. API keys, and the gateway's own
// signatures of API-key callers (platform admins included), are not accepted.
func NewInternalHandler(d InternalDeps) (http.Handler, error) {
	if d.Store == nil || d.Logger == nil {
		return nil, errors.New("new gateway internal handler: missing dependency")
	}
	verifier, err := tenancy.NewVerifier(tenancy.VerifierConfig{Audience: tenancy.AudienceGateway, Secrets: d.Secrets})
	if err != nil {
		return nil, fmt.Errorf("new gateway internal handler: %w", err)
	}
	h := &internalAPI{store: d.Store, log: d.Logger}
	r := httpx.NewRouter(d.Logger, d.RouterOptions...)
	r.Route("/internal/v1", func(r chi.Router) {
		r.Use(verifier.Middleware)
		r.With(requireService("service:provisioning", "service:catalog")).Get("/tenants/{id}/quota", h.quota)
	})
	return r, nil
}

// WithoutInternal answers 404 for every path under InternalPrefix and passes
// the others to public: the public listener must not even reveal whether an
// internal route exists, so the request stops before API-key authentication.
func WithoutInternal(public http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, InternalPrefix) || r.URL.Path+"/" == InternalPrefix {
			httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such resource"))
			return
		}
		public.ServeHTTP(w, r)
	})
}

// requireService refuses verified identities other than the platform-admin
// service identities in subjects: the internal API answers for every tenant,
// so only the services that need a route may call it.
func requireService(subjects ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := tenancy.PrincipalFrom(r.Context())
			if !ok || p.Role != tenancy.RolePlatformAdmin || !slices.Contains(subjects, p.Subject) {
				httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "this internal route is for other Canopy services only"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
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
