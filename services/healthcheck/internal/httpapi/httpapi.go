// Package httpapi serves the healthcheck's HTTP API: an instance's node
// health for its tenant (GET /api/v1/instances/{id}/health) and the
// platform-admin view of every target and this replica's share
// (GET /api/v1/health/targets). It maps monitor views to the JSON of
// api/openapi/healthcheck.paths.yaml; it holds no state.
package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/monitor"
)

// View is what the handlers read; *monitor.Monitor fits.
type View interface {
	Instance(instanceID string) []monitor.NodeView
	All() []monitor.NodeView
	Counts() (runs, skipped int64)
}

// Share is this replica's part of the targets.
type Share interface {
	Owned() (partitions []int, total int)
}

// Handler serves the API.
type Handler struct {
	view    View
	share   Share
	replica string
}

// New returns the handler; share may be nil (no sharding).
func New(view View, share Share, replica string) *Handler {
	return &Handler{view: view, share: share, replica: replica}
}

// Routes mounts the API on r (behind tenancy.Middleware).
func (h *Handler) Routes(r chi.Router) {
	r.Get("/api/v1/instances/{id}/health", h.instanceHealth)
	r.Get("/api/v1/health/targets", h.targets)
}

// Node is one node in the API.
type Node struct {
	ID               string           `json:"id"`
	Address          string           `json:"address"`
	Role             string           `json:"role"`
	ObservedRole     string           `json:"observed_role,omitempty"`
	Status           string           `json:"status"`
	Reason           string           `json:"reason,omitempty"`
	Evidence         string           `json:"evidence,omitempty"`
	LastProbeAt      *time.Time       `json:"last_probe_at"`
	LastTransitionAt *time.Time       `json:"last_transition_at"`
	Sample           map[string]int64 `json:"sample"`
	SampleAt         *time.Time       `json:"sample_at,omitempty"`
}

// InstanceHealth is the body of GET /api/v1/instances/{id}/health.
type InstanceHealth struct {
	InstanceID string `json:"instance_id"`
	Nodes      []Node `json:"nodes"`
}

// Target is one target in the admin view.
type Target struct {
	Node
	InstanceID string `json:"instance_id"`
	TenantID   string `json:"tenant_id"`
	Engine     string `json:"engine"`
	Partition  int    `json:"partition"`
}

// Targets is the body of GET /api/v1/health/targets.
type Targets struct {
	Replica         string   `json:"replica"`
	Partitions      []int    `json:"partitions"`
	PartitionsTotal int      `json:"partitions_total"`
	TargetCount     int      `json:"target_count"`
	ProbesTotal     int64    `json:"probes_total"`
	SkippedTotal    int64    `json:"skipped_total"`
	Targets         []Target `json:"targets"`
}

func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func nodeOf(v monitor.NodeView) Node {
	n := Node{ID: v.NodeID, Address: v.Address, Role: string(v.Role), ObservedRole: string(v.ObservedRole),
		Status: string(v.Status), Reason: v.Reason, Evidence: v.Evidence, LastProbeAt: ts(v.LastProbeAt),
		LastTransitionAt: ts(v.LastTransitionAt), Sample: v.Sample, SampleAt: ts(v.SampleAt)}
	if n.Sample == nil {
		n.Sample = map[string]int64{}
	}
	return n
}

func (h *Handler) instanceHealth(w http.ResponseWriter, r *http.Request) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, "no identity"))
		return
	}
	id := chi.URLParam(r, "id")
	views := h.view.Instance(id)
	if len(views) > 0 && p.Role != tenancy.RolePlatformAdmin && string(p.Tenant) != views[0].Tenant {
		views = nil // another tenant's instance is indistinguishable from none
	}
	if len(views) == 0 {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound,
			"instance "+id+" is not probed by this healthcheck replica (unknown, not ready, or another replica owns its partition)"))
		return
	}
	out := InstanceHealth{InstanceID: id, Nodes: make([]Node, 0, len(views))}
	for _, v := range views {
		out.Nodes = append(out.Nodes, nodeOf(v))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) targets(w http.ResponseWriter, r *http.Request) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok || p.Role != tenancy.RolePlatformAdmin {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "platform-admin only"))
		return
	}
	views := h.view.All()
	out := Targets{Replica: h.replica, TargetCount: len(views), Targets: make([]Target, 0, len(views)), Partitions: []int{}}
	out.ProbesTotal, out.SkippedTotal = h.view.Counts()
	if h.share != nil {
		parts, total := h.share.Owned()
		if parts != nil {
			out.Partitions = parts
		}
		out.PartitionsTotal = total
	}
	for _, v := range views {
		out.Targets = append(out.Targets, Target{Node: nodeOf(v), InstanceID: v.InstanceID, TenantID: v.Tenant,
			Engine: string(v.Engine), Partition: v.Partition})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
