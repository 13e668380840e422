package httpapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

// CDCPath is the internal view the cdc service reads an instance's nodes
// and the account it works with from, to choose a capture source, a sync
// job's target, and follow failovers: for MySQL the canopy_cdc account, for
// Redis (a sync job's cache target) the admin account. Like the other
// internal views the gateway does not route it, and it answers only
// CDCReader's signed identity; any other caller gets 404.
const CDCPath = "/internal/v1/cdc/instances"

// CDCReader is the only identity served the cdc view.
const CDCReader = "service:cdc"

// ErrPredatesCDC is the 409 detail for a MySQL instance created before
// Canopy had a cdc account (its nodes do not carry canopy_cdc) that is not
// ready, so the account cannot be added now.
const ErrPredatesCDC = "instance predates CDC support: no canopy_cdc account"

type cdcNode struct {
	ID string `json:"id"`
	// Address is "host:port".
	Address string `json:"address"`
	// Role is primary, replica, or fenced (a former primary a failover
	// replaced, not to be read from).
	Role       string `json:"role"`
	Region     string `json:"region"`
	RegionRole string `json:"region_role"`
	// Healthy is false when provisioning knows the node is not running.
	Healthy bool `json:"healthy"`
}

type cdcInstance struct {
	InstanceID string    `json:"instance_id"`
	TenantID   string    `json:"tenant_id"`
	Name       string    `json:"name"`
	Engine     string    `json:"engine"`
	State      string    `json:"state"`
	Nodes      []cdcNode `json:"nodes"`
	// CDC is the account the cdc service connects with.
	CDC instance.Credentials `json:"cdc"`
}

// toCDC shows an instance to the cdc service: its nodes and one account.
// For MySQL that is canopy_cdc, never the admin, monitor or replication
// accounts. For Redis it is the admin account: a sync job writes its cache
// with it, and a Redis node has no narrower account that may write every
// key (tenants' ACL users are theirs to change).
func toCDC(in *instance.Instance) cdcInstance {
	cred := in.Accounts.CDC
	if in.Plan.Engine == instance.EngineRedis {
		cred = in.Accounts.Admin
	}
	out := cdcInstance{InstanceID: in.ID, TenantID: in.Tenant, Name: in.Name, Engine: in.Plan.Engine, State: string(in.State),
		Nodes: []cdcNode{}, CDC: cred}
	for _, n := range in.Nodes {
		if n.Address == "" {
			continue
		}
		role := string(n.Role)
		if n.Fenced {
			role = instance.FailoverFenced
		}
		regionRole := string(n.RegionRole)
		if regionRole == "" {
			regionRole = string(instance.RegionPrimary)
		}
		out.Nodes = append(out.Nodes, cdcNode{ID: n.ID, Address: n.Address, Role: role, Region: n.Region, RegionRole: regionRole,
			Healthy: nodeHealthy(n.State)})
	}
	return out
}

// nodeHealthy is what provisioning knows of a node's health: only a node
// it saw running (or whose state it does not know) is worth connecting to.
func nodeHealthy(s instance.NodeState) bool {
	return s == instance.NodeRunning || s == ""
}

// predatesCDC reports a MySQL instance without a cdc account.
func predatesCDC(in *instance.Instance) bool {
	return in.Plan.Engine == instance.EngineMySQL && in.Accounts.CDC.Username == ""
}

// listCDC lists the instances whose nodes are meant to run: Redis ones,
// and MySQL ones that have a cdc account; a page may hold fewer than limit
// instances while next_cursor is set.
func (h *Handler) listCDC(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, CDCReader) {
		return
	}
	writeMonitoredSubset(h, w, r, "list cdc instances", func(in *instance.Instance) bool {
		return !predatesCDC(in)
	}, toCDC)
}

// getCDC answers one instance: 404 when unknown or deleted. A MySQL
// instance that predates the cdc account gets it now (saga
// EnsureCDCAccount) when it is ready, else 409; 503 when the account could
// not be created (the engine did not answer: the caller retries). A Redis
// instance is shown with its admin account: sync jobs write caches with it,
// while its engine tells the stream API to refuse it as a capture source.
func (h *Handler) getCDC(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, CDCReader) {
		return
	}
	in, err := h.repo.GetAnyTenant(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, mysqlrepo.ErrNotFound) || (err == nil && in.State == instance.StateDeleted) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such instance"))
		return
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "get cdc instance", "err", err)
		httpx.WriteError(w, r, err)
		return
	}
	switch {
	case predatesCDC(in):
		if in, err = h.saga.EnsureCDCAccount(r.Context(), in.ID); err != nil {
			h.cdcAccountProblem(w, r, in, err)
			return
		}
	case in.Plan.Engine == instance.EngineMySQL && in.Accounts.CDCGrants != driver.CDCGrants && in.State == instance.StateReady:
		// An account from before sync jobs: granted again now. Reading
		// works with the older grants, so a failure is logged, not answered.
		got, err := h.saga.EnsureCDCAccount(r.Context(), in.ID)
		if err != nil {
			h.log.WarnContext(r.Context(), "grant the cdc account what sync jobs need", "tenant", in.Tenant, "instance", in.ID, "err", err)
		} else {
			in = got
		}
	}
	httpx.WriteJSON(w, http.StatusOK, toCDC(in))
}

// cdcAccountProblem answers why an instance that predates the cdc account
// did not get it.
func (h *Handler) cdcAccountProblem(w http.ResponseWriter, r *http.Request, in *instance.Instance, err error) {
	switch {
	case errors.Is(err, mysqlrepo.ErrNotFound), errors.Is(err, saga.ErrGone):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such instance"))
	case errors.Is(err, saga.ErrNotReady):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, ErrPredatesCDC))
	default:
		log := h.log
		if in != nil {
			log = log.With("tenant", in.Tenant, "instance", in.ID)
		}
		log.ErrorContext(r.Context(), "add the cdc account to an instance that predates it", "err", err)
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable,
			"instance predates CDC support: adding its canopy_cdc account failed, retry later"))
	}
}
