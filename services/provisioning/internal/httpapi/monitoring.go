package httpapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
)

// MonitoringPath is the internal view the health checker reads its targets
// from: every node of every running instance with the least-privilege monitor
// account. The gateway does not route it, and it answers only MonitorReader's
// signed identity (for the provisioning audience), never another service's nor
// a platform admin's API-key identity forwarded by the gateway.
const MonitoringPath = "/internal/v1/monitoring/instances"

// MonitorReader is the only identity served monitor credentials.
const MonitorReader = "service:healthcheck"

type monitoredNode struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Address string `json:"address"`
	State   string `json:"state"`
}

type monitoredInstance struct {
	InstanceID     string               `json:"instance_id"`
	TenantID       string               `json:"tenant_id"`
	Engine         string               `json:"engine"`
	DeploymentMode string               `json:"deployment_mode"`
	State          string               `json:"state"`
	SemiSync       bool                 `json:"semi_sync"`
	Nodes          []monitoredNode      `json:"nodes"`
	Monitor        instance.Credentials `json:"monitor"`
}

func toMonitored(in *instance.Instance) monitoredInstance {
	m := monitoredInstance{
		InstanceID: in.ID, TenantID: in.Tenant, Engine: string(in.Plan.Engine), DeploymentMode: string(in.Plan.DeploymentMode),
		State: string(in.State), SemiSync: in.Plan.SemiSync(), Monitor: in.Accounts.Monitor, Nodes: []monitoredNode{},
	}
	for _, n := range in.Nodes {
		if n.Address == "" {
			continue
		}
		m.Nodes = append(m.Nodes, monitoredNode{ID: n.ID, Role: string(n.Role), Address: n.Address, State: string(n.State)})
	}
	return m
}

// internalReader admits only the signed platform-admin identity subject
// to an internal view; anyone else gets 404, as if the view did not exist:
// these views hold accounts (monitor, admin, replication) or verifiers
// that exist for that one Canopy service.
func internalReader(w http.ResponseWriter, r *http.Request, subject string) bool {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, "missing identity"))
		return false
	}
	if p.Role != tenancy.RolePlatformAdmin || p.Subject != subject {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such resource"))
		return false
	}
	return true
}

// monitoredPageSize is the default page of the monitoring view: its one
// reader, the health checker, asks for 500 anyway.
const monitoredPageSize = 100

func (h *Handler) listMonitored(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, MonitorReader) {
		return
	}
	writeMonitoredPage(h, w, r, "list monitored instances", toMonitored)
}

// writeMonitoredPage answers one page of the instances whose nodes are
// meant to run, each shown through view: the monitoring and the failover
// views list the same instances, with different fields. what names the
// listing in the error log.
func writeMonitoredPage[T any](h *Handler, w http.ResponseWriter, r *http.Request, what string, view func(*instance.Instance) T) {
	writeMonitoredSubset(h, w, r, what, nil, view)
}

// writeMonitoredSubset is writeMonitoredPage showing only the instances
// keep accepts (nil: all); a page may then hold fewer than limit
// instances while next_cursor is set.
func writeMonitoredSubset[T any](h *Handler, w http.ResponseWriter, r *http.Request, what string, keep func(*instance.Instance) bool, view func(*instance.Instance) T) {
	limit, cursor, err := paging.ParseRaw(r.URL.Query(), monitoredPageSize)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	ins, err := h.repo.ListMonitored(r.Context(), cursor, limit)
	if err != nil {
		h.log.ErrorContext(r.Context(), what, "err", err)
		httpx.WriteError(w, r, err)
		return
	}
	out := struct {
		Instances  []T    `json:"instances"`
		NextCursor string `json:"next_cursor"`
	}{Instances: []T{}}
	for _, in := range ins {
		if keep == nil || keep(in) {
			out.Instances = append(out.Instances, view(in))
		}
	}
	if len(ins) == limit {
		out.NextCursor = ins[len(ins)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getMonitored(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, MonitorReader) {
		return
	}
	in, err := h.repo.GetAnyTenant(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, mysqlrepo.ErrNotFound) || (err == nil && in.State == instance.StateDeleted) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such instance"))
		return
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "get monitored instance", "err", err)
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toMonitored(in))
}
