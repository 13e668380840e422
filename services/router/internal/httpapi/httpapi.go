// Package httpapi is the router's HTTP API, behind the gateway: what one
// router replica serves for an instance right now (its endpoint ports,
// whether they listen, where the read-write endpoint forwards, the
// connections per backend), for the tenant that owns the instance, and the
// same for every instance to platform admins. It reads; the endpoints are
// changed only by the events the router follows.
package httpapi

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// Endpoint is one listening endpoint of an instance as the proxy reports it.
type Endpoint struct {
	InstanceID string
	// Kind is rw or ro.
	Kind      string
	Port      int
	Listening bool
	// Error is why the port is not bound, when it is not.
	Error string
	// Active is the number of open client connections.
	Active int
	// Backends counts the open connections per node address.
	Backends map[string]int
}

// Endpoints reports the proxy's endpoints.
type Endpoints interface {
	Endpoints() []Endpoint
}

// Handler serves the API.
type Handler struct {
	tbl       *table.Table
	endpoints Endpoints
	replica   string
}

// New returns the handler over the table and the proxy; replica names this
// router replica in answers (each replica answers for itself).
func New(tbl *table.Table, endpoints Endpoints, replica string) *Handler {
	return &Handler{tbl: tbl, endpoints: endpoints, replica: replica}
}

// Routes mounts the API on r, behind the identity middleware.
func (h *Handler) Routes(r chi.Router) {
	r.Get("/api/v1/instances/{id}/endpoints", h.instance)
	r.Get("/api/v1/router/endpoints", h.list)
}

type nodeJSON struct {
	NodeID  string `json:"node_id"`
	Address string `json:"address"`
}

type endpointJSON struct {
	Kind              string         `json:"kind"`
	Port              int            `json:"port"`
	Listening         bool           `json:"listening"`
	Error             string         `json:"error,omitempty"`
	ActiveConnections int            `json:"active_connections"`
	Backends          map[string]int `json:"backends"`
}

type instanceJSON struct {
	InstanceID string         `json:"instance_id"`
	TenantID   string         `json:"tenant_id"`
	Name       string         `json:"name"`
	Engine     string         `json:"engine"`
	Replica    string         `json:"router_replica"`
	Switching  bool           `json:"switching"`
	Primary    *nodeJSON      `json:"primary"`
	Replicas   []nodeJSON     `json:"replicas"`
	Endpoints  []endpointJSON `json:"endpoints"`
}

func (h *Handler) render(v table.View, byInstance map[string][]Endpoint) instanceJSON {
	out := instanceJSON{InstanceID: v.ID, TenantID: v.Tenant, Name: v.Name, Engine: string(v.Engine), Replica: h.replica,
		Switching: v.Switching, Replicas: []nodeJSON{}, Endpoints: []endpointJSON{}}
	if p, ok := v.Primary(); ok {
		out.Primary = &nodeJSON{NodeID: p.ID, Address: p.Address}
	}
	for _, n := range v.Replicas() {
		out.Replicas = append(out.Replicas, nodeJSON{NodeID: n.ID, Address: n.Address})
	}
	for _, e := range byInstance[v.ID] {
		b := e.Backends
		if b == nil {
			b = map[string]int{}
		}
		out.Endpoints = append(out.Endpoints, endpointJSON{Kind: e.Kind, Port: e.Port, Listening: e.Listening, Error: e.Error,
			ActiveConnections: e.Active, Backends: b})
	}
	return out
}

func (h *Handler) byInstance() map[string][]Endpoint {
	m := map[string][]Endpoint{}
	for _, e := range h.endpoints.Endpoints() {
		m[e.InstanceID] = append(m[e.InstanceID], e)
	}
	return m
}

func caller(w http.ResponseWriter, r *http.Request) (tenancy.Principal, bool) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, "missing identity"))
		return p, false
	}
	if !tenancy.Can(p.Role, tenancy.ActionRead) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, fmt.Sprintf("role %s may not read endpoints", p.Role)))
		return p, false
	}
	return p, true
}

func (h *Handler) instance(w http.ResponseWriter, r *http.Request) {
	p, ok := caller(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	v, found := h.tbl.Get(id)
	if !found || (p.Role != tenancy.RolePlatformAdmin && string(p.Tenant) != v.Tenant) {
		// Another tenant's instance is indistinguishable from none.
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "instance "+id+" has no router endpoints"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, h.render(v, h.byInstance()))
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	p, ok := caller(w, r)
	if !ok {
		return
	}
	if p.Role != tenancy.RolePlatformAdmin {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "only platform admins list every endpoint"))
		return
	}
	by := h.byInstance()
	out := []instanceJSON{}
	for _, v := range h.tbl.List() {
		out = append(out, h.render(v, by))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"router_replica": h.replica, "instances": out})
}
