package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
)

// RouterPath is the internal view the router service fills its table from:
// every live instance with router ports, its nodes and roles, and a
// verifier (never the password) of each active binding, so the router can
// authenticate clients before it forwards them. Like the failover view the
// gateway does not route it, and it answers only RouterReader's signed
// identity; any other caller gets 404.
const RouterPath = "/internal/v1/router/instances"

// RouterReader is the only identity served the router view.
const RouterReader = "service:router"

type routerPorts struct {
	RWPort int `json:"rw_port"`
	ROPort int `json:"ro_port"`
}

type routerNode struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Address string `json:"address"`
	State   string `json:"state"`
}

type routerBinding struct {
	Username string `json:"username"`
	// PasswordSHA256 is the hex SHA-256 of the binding's password: the
	// router checks a client's password against it and never holds the
	// password itself.
	PasswordSHA256 string `json:"password_sha256"`
}

type routerInstance struct {
	InstanceID    string          `json:"instance_id"`
	TenantID      string          `json:"tenant_id"`
	Name          string          `json:"name"`
	Engine        string          `json:"engine"`
	State         string          `json:"state"`
	FailoverToken int64           `json:"failover_token"`
	Endpoints     routerPorts     `json:"endpoints"`
	Nodes         []routerNode    `json:"nodes"`
	Bindings      []routerBinding `json:"bindings"`
}

// toRouted shows an instance to the router: the nodes' roles (fenced for a
// fenced former primary) and the active bindings' password verifiers. No
// account of Canopy's own (admin, monitor, replication) is shown.
func toRouted(in *instance.Instance, bindings []instance.Binding) routerInstance {
	out := routerInstance{
		InstanceID: in.ID, TenantID: in.Tenant, Name: in.Name, Engine: in.Plan.Engine, State: string(in.State),
		FailoverToken: in.Failover.Token, Endpoints: routerPorts{RWPort: in.Router.RW, ROPort: in.Router.RO},
		Nodes: []routerNode{}, Bindings: []routerBinding{},
	}
	for _, n := range in.Nodes {
		role := string(n.Role)
		if n.Fenced {
			role = instance.FailoverFenced
		}
		out.Nodes = append(out.Nodes, routerNode{ID: n.ID, Role: role, Address: n.Address, State: string(n.State)})
	}
	for _, b := range bindings {
		sum := sha256.Sum256([]byte(b.Credentials.Password))
		out.Bindings = append(out.Bindings, routerBinding{Username: b.Credentials.Username, PasswordSHA256: hex.EncodeToString(sum[:])})
	}
	return out
}

// routed returns the router's view of in with its active bindings.
func (h *Handler) routed(ctx context.Context, in *instance.Instance) (routerInstance, error) {
	bs, err := h.repo.Bindings(ctx, in.Tenant, in.ID)
	if err != nil {
		return routerInstance{}, err
	}
	return toRouted(in, bs), nil
}

func (h *Handler) listRouted(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, RouterReader) {
		return
	}
	limit, cursor, err := paging.ParseRaw(r.URL.Query(), monitoredPageSize)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	ins, err := h.repo.ListRouted(r.Context(), cursor, limit)
	if err != nil {
		h.log.ErrorContext(r.Context(), "list router instances", "err", err)
		httpx.WriteError(w, r, err)
		return
	}
	out := struct {
		Instances  []routerInstance `json:"instances"`
		NextCursor string           `json:"next_cursor"`
	}{Instances: []routerInstance{}}
	for _, in := range ins {
		ri, err := h.routed(r.Context(), in)
		if err != nil {
			h.log.ErrorContext(r.Context(), "list router instances: bindings", "instance", in.ID, "err", err)
			httpx.WriteError(w, r, err)
			return
		}
		out.Instances = append(out.Instances, ri)
	}
	if len(ins) == limit {
		out.NextCursor = ins[len(ins)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getRouted(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, RouterReader) {
		return
	}
	in, err := h.repo.GetAnyTenant(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, mysqlrepo.ErrNotFound) || (err == nil && (in.State == instance.StateDeleted || !in.Router.Allocated())) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such instance"))
		return
	}
	if err == nil {
		var ri routerInstance
		if ri, err = h.routed(r.Context(), in); err == nil {
			httpx.WriteJSON(w, http.StatusOK, ri)
			return
		}
	}
	h.log.ErrorContext(r.Context(), "get router instance", "err", err)
	httpx.WriteError(w, r, err)
}
