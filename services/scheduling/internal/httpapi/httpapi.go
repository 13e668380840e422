// Package httpapi serves the scheduling service's operator API under
// /api/v1: inventory (regions, zones, hosts, cordon/uncordon) and placements
// (simulate, read, confirm, release). Every route is platform-admin; the
// identity comes from the gateway's signed headers (tenancy.Middleware, mounted
// by the caller). Request and response types are transport shapes, mapped to
// the domain at the edge; errors are RFC 9457 problems naming the field.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// Prefix is where Routes is mounted.
const Prefix = "/api/v1"

// Inventory is the inventory store (mysqlrepo.Repo).
type Inventory interface {
	ListRegions(ctx context.Context) ([]inventory.Region, error)
	ListLatencies(ctx context.Context) ([]inventory.Latency, error)
	ListZones(ctx context.Context, region string) ([]inventory.Zone, error)
	ListHosts(ctx context.Context, f inventory.HostFilter) ([]inventory.Host, error)
	GetHost(ctx context.Context, id string) (inventory.Host, error)
	CreateRegion(ctx context.Context, r inventory.Region, lat []inventory.Latency) error
	UpdateRegion(ctx context.Context, id string, fn func(*inventory.Region) error, lat []inventory.Latency) (inventory.Region, error)
	CreateZone(ctx context.Context, z inventory.Zone, lat []inventory.Latency) error
	UpdateZone(ctx context.Context, id string, name *string, lat []inventory.Latency) (inventory.Zone, error)
	CreateHost(ctx context.Context, h inventory.Host) (inventory.Host, error)
	UpdateHost(ctx context.Context, id string, fn func(*inventory.Host) error) (inventory.Host, error)
}

// Placements is the placement engine (scheduler.PlacementEngine).
type Placements interface {
	Simulate(ctx context.Context, req placement.Request) (placement.Decision, error)
	Get(ctx context.Context, instanceID string) (placement.Record, error)
	Confirm(ctx context.Context, instanceID string) (placement.Record, error)
	Release(ctx context.Context, instanceID, reason string) error
	HostChanged(ctx context.Context, id string) error
	Load(ctx context.Context) error
}

// PlanResolver turns a catalog plan id into the plan's shape; optional.
type PlanResolver interface {
	Resolve(ctx context.Context, planID string) (placement.PlanShape, error)
}

// API is the HTTP API.
type API struct {
	inv    Inventory
	pl     Placements
	plans  PlanResolver
	logger *slog.Logger
}

// New returns the API. plans may be nil (plan_id is then refused).
func New(inv Inventory, pl Placements, plans PlanResolver, logger *slog.Logger) (*API, error) {
	if inv == nil || pl == nil {
		return nil, errors.New("httpapi: nil inventory or placements")
	}
	if logger == nil {
		return nil, errors.New("httpapi: nil logger")
	}
	return &API{inv: inv, pl: pl, plans: plans, logger: logger}, nil
}

// Routes returns the routes below Prefix. Colon actions (hosts/{id}:cordon,
// placements:simulate) have slash aliases (hosts/{id}/cordon,
// placements/simulate) for proxies that route on path segments.
func (a *API) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(platformAdmin)
	r.Route("/inventory", func(r chi.Router) {
		r.Get("/regions", a.listRegions)
		r.Post("/regions", a.createRegion)
		r.Get("/regions/{id}", a.getRegion)
		r.Patch("/regions/{id}", a.patchRegion)
		r.Get("/latencies", a.listLatencies)
		r.Get("/zones", a.listZones)
		r.Post("/zones", a.createZone)
		r.Get("/zones/{id}", a.getZone)
		r.Patch("/zones/{id}", a.patchZone)
		r.Get("/hosts", a.listHosts)
		r.Post("/hosts", a.createHost)
		r.Get("/hosts/{id}", a.getHost)
		r.Patch("/hosts/{id}", a.patchHost)
		r.Post("/hosts/{id}:cordon", a.setState(inventory.StateCordoned))
		r.Post("/hosts/{id}:uncordon", a.setState(inventory.StateReady))
		r.Post("/hosts/{id}/cordon", a.setState(inventory.StateCordoned))
		r.Post("/hosts/{id}/uncordon", a.setState(inventory.StateReady))
	})
	r.Post("/placements:simulate", a.simulate)
	r.Post("/placements/simulate", a.simulate)
	r.Get("/placements/{instance_id}", a.getPlacement)
	r.Post("/placements/{instance_id}:confirm", a.confirm)
	r.Post("/placements/{instance_id}:release", a.release)
	r.Post("/placements/{instance_id}/confirm", a.confirm)
	r.Post("/placements/{instance_id}/release", a.release)
	return r
}

// platformAdmin lets only platform admins through; tenancy.Middleware (mounted
// in front) has verified the identity.
func platformAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := tenancy.PrincipalFrom(r.Context())
		if !ok {
			httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, "authentication required"))
			return
		}
		if !tenancy.Can(p.Role, tenancy.ActionAdmin) {
			httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "inventory and placements are for platform admins"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeErr maps domain errors to problems.
func (a *API) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var ve *inventory.ValidationError
	var re *placement.RefusalError
	switch {
	case errors.As(err, &re):
		p := httpx.Unprocessable(re.Explanation.Summary)
		p.Title = "No placement possible"
		p.Extensions = map[string]any{"filters": filtersJSON(re.Explanation.Filters), "zones": zonesJSON(re.Explanation.Zones), "node": re.Explanation.Node}
		httpx.WriteProblem(w, r, p)
	case errors.As(err, &ve):
		fields := make([]httpx.FieldError, 0, len(ve.Fields))
		for _, f := range ve.Fields {
			fields = append(fields, httpx.FieldError{Field: f.Field, Reason: f.Reason})
		}
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid input: "+ve.Error(), fields...))
	case errors.Is(err, inventory.ErrNotFound), errors.Is(err, placement.ErrNotPlaced):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, err.Error()))
	case errors.Is(err, inventory.ErrConflict):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, err.Error()))
	case errors.Is(err, placement.ErrUnknownPlan):
		httpx.WriteProblem(w, r, httpx.BadRequest("unknown plan", httpx.FieldError{Field: "plan_id", Reason: err.Error()}))
	default:
		if p, ok := httpx.ProblemFrom(err); ok {
			httpx.WriteProblem(w, r, p)
			return
		}
		a.logger.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		httpx.WriteError(w, r, err)
	}
}
