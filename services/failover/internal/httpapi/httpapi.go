// Package httpapi serves the failover service's public API behind the
// gateway's signed identity: an instance's failover history, acknowledging
// a failover (lifting its hold-off), planned switchovers, DR drills and
// their schedule, and the tenant's drill reports. Every instance route reads
// the instance's tenant from provisioning first: another tenant's instance
// answers 404 like an unknown one; platform-admin sees every tenant's. It
// maps store records to the JSON of api/openapi/failover.paths.yaml and
// holds no state.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/failover/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// History is the recoveries' and drills' storage; *mysqlstore.Store fits.
type History interface {
	Get(ctx context.Context, instanceID, id string) (topology.Recovery, error)
	List(ctx context.Context, instanceID, after string, limit int) ([]topology.Recovery, error)
	Acknowledge(ctx context.Context, instanceID, id string) error
	GetDrill(ctx context.Context, id string) (mysqlstore.Drill, error)
	ListDrills(ctx context.Context, tenant, after string, limit int) ([]mysqlstore.Drill, error)
	PutSchedule(ctx context.Context, sc mysqlstore.Schedule) error
}

// Instances reads an instance as provisioning knows it; *provclient.Client fits.
type Instances interface {
	Get(ctx context.Context, instanceID string) (topology.Instance, error)
}

// Actions are the operations the API starts; the recoverer and the drill
// runner provide them.
type Actions interface {
	// Switchover starts a planned switchover to target (a node id; "" lets
	// the recovery choose) and returns its recorded recovery.
	Switchover(ctx context.Context, instanceID, target string, force bool) (topology.Recovery, error)
	// Drill records a drill report and starts the drill.
	Drill(ctx context.Context, in topology.Instance, kind, requestedBy string) (mysqlstore.Drill, error)
	// RebuildReplica replaces a MySQL replica's data with the primary's and
	// makes it replicate again, returning once done.
	RebuildReplica(ctx context.Context, in topology.Instance, nodeID string) error
}

// Handler serves the API.
type Handler struct {
	history   History
	instances Instances
	actions   Actions
	now       func() time.Time
}

// New returns the handler.
func New(history History, instances Instances, actions Actions) (*Handler, error) {
	if history == nil || instances == nil || actions == nil {
		return nil, errors.New("httpapi: nil history, instances or actions")
	}
	return &Handler{history: history, instances: instances, actions: actions, now: time.Now}, nil
}

// Routes mounts the API on r (behind tenancy.Middleware).
func (h *Handler) Routes(r chi.Router) {
	r.Get("/api/v1/instances/{id}/failovers", h.listFailovers)
	r.Get("/api/v1/instances/{id}/failovers/{fid}", h.getFailover)
	r.Post("/api/v1/instances/{id}/failovers/{fid}/acknowledge", h.acknowledge)
	r.Post("/api/v1/instances/{id}/switchover", h.switchover)
	r.Post("/api/v1/instances/{id}/nodes/{node}/rebuild", h.rebuildReplica)
	r.Post("/api/v1/instances/{id}/drills", h.startDrill)
	r.Put("/api/v1/instances/{id}/drill-schedule", h.putSchedule)
	r.Get("/api/v1/drills", h.listDrills)
	r.Get("/api/v1/drills/{did}", h.getDrill)
}

// Failover is one recovery in the API.
type Failover struct {
	ID               string     `json:"id"`
	InstanceID       string     `json:"instance_id"`
	Kind             string     `json:"kind"`
	Problem          string     `json:"problem"`
	State            string     `json:"state"`
	Step             string     `json:"step"`
	OldPrimary       string     `json:"old_primary"`
	NewPrimary       string     `json:"new_primary,omitempty"`
	Acknowledged     bool       `json:"acknowledged"`
	DetectedAt       time.Time  `json:"detected_at"`
	PromotedAt       *time.Time `json:"promoted_at,omitempty"`
	CompletedAt      *time.Time `json:"completed_at,omitempty"`
	RTOMS            int64      `json:"rto_ms"`
	DetectionMS      int64      `json:"detection_ms"`
	PromotionMS      int64      `json:"promotion_ms"`
	LostTransactions []string   `json:"lost_transactions"`
	Reason           string     `json:"reason,omitempty"`
}

// FailoverList is a page of failovers.
type FailoverList struct {
	Items      []Failover `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// Drill is a drill report in the API.
type Drill struct {
	ID          string     `json:"id"`
	InstanceID  string     `json:"instance_id"`
	Kind        string     `json:"kind"`
	State       string     `json:"state"`
	RecoveryID  string     `json:"recovery_id,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// DrillList is a page of drill reports.
type DrillList struct {
	Items      []Drill `json:"items"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// Schedule is an instance's drill schedule in the API.
type Schedule struct {
	InstanceID string    `json:"instance_id"`
	Cadence    string    `json:"cadence"`
	Kind       string    `json:"kind"`
	NextAt     time.Time `json:"next_at"`
}

func failoverOf(r topology.Recovery) Failover {
	f := Failover{ID: r.ID, InstanceID: r.InstanceID, Kind: string(r.Kind), Problem: r.Problem, State: string(r.State),
		Step: string(r.Step), OldPrimary: r.OldPrimary, Acknowledged: r.Acknowledged, DetectedAt: r.DetectedAt.UTC(),
		PromotedAt: r.PromotedAt, CompletedAt: r.CompletedAt, RTOMS: r.RTOMS, DetectionMS: r.DetectionMS,
		PromotionMS: r.PromotionMS, LostTransactions: r.LostTransactions, Reason: r.Reason}
	if r.PromotedAt != nil || r.State == topology.StateCompleted {
		f.NewPrimary = r.Candidate
	}
	if f.LostTransactions == nil {
		f.LostTransactions = []string{}
	}
	return f
}

func drillOf(d mysqlstore.Drill) Drill {
	return Drill{ID: d.ID, InstanceID: d.InstanceID, Kind: d.Kind, State: d.State, RecoveryID: d.RecoveryID, Reason: d.Reason,
		RequestedAt: d.RequestedAt.UTC(), FinishedAt: d.FinishedAt}
}

// caller returns the principal when it may do action.
func caller(w http.ResponseWriter, r *http.Request, action tenancy.Action) (tenancy.Principal, bool) {
	return httpx.Authorize(w, r, action, "failovers")
}

// instance returns the path's instance if the caller may see it.
func (h *Handler) instance(w http.ResponseWriter, r *http.Request, action tenancy.Action) (topology.Instance, tenancy.Principal, bool) {
	p, ok := caller(w, r, action)
	if !ok {
		return topology.Instance{}, p, false
	}
	id := chi.URLParam(r, "id")
	in, err := h.instances.Get(r.Context(), id)
	switch {
	case errors.Is(err, topology.ErrNotFound) || (err == nil && p.Role != tenancy.RolePlatformAdmin && string(p.Tenant) != in.Tenant):
		// Another tenant's instance is indistinguishable from none.
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "instance "+id+" not found"))
		return in, p, false
	case err != nil:
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "the instance cannot be read from provisioning; try again"))
		return in, p, false
	}
	return in, p, true
}

// writeError maps the domain's errors to problems.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, topology.ErrNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, err.Error()))
	case errors.Is(err, topology.ErrHoldOff):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
			"the instance failed over within the hold-off; acknowledge that failover first: "+err.Error()))
	case errors.Is(err, topology.ErrNoCandidate):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "no safe candidate: "+err.Error()))
	case errors.Is(err, recovery.ErrNotReplica), errors.Is(err, recovery.ErrNoRebuilder), errors.Is(err, recovery.ErrRecoveryOpen):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, err.Error()))
	case errors.Is(err, topology.ErrLeaseHeld):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "a recovery of this instance is in progress"))
	default:
		httpx.WriteError(w, r, err)
	}
}

func (h *Handler) listFailovers(w http.ResponseWriter, r *http.Request) {
	in, _, ok := h.instance(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	limit, after, err := paging.ParseKey(r.URL.Query())
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	rows, err := h.history.List(r.Context(), in.ID, after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var out FailoverList
	out.Items, out.NextCursor = paging.KeyPage(rows, limit, func(r topology.Recovery) string { return r.ID }, failoverOf)
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getFailover(w http.ResponseWriter, r *http.Request) {
	in, _, ok := h.instance(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	rec, err := h.history.Get(r.Context(), in.ID, chi.URLParam(r, "fid"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, failoverOf(rec))
}

func (h *Handler) acknowledge(w http.ResponseWriter, r *http.Request) {
	in, _, ok := h.instance(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	fid := chi.URLParam(r, "fid")
	if err := h.history.Acknowledge(r.Context(), in.ID, fid); err != nil {
		writeError(w, r, err)
		return
	}
	rec, err := h.history.Get(r.Context(), in.ID, fid)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, failoverOf(rec))
}

// SwitchoverRequest is the body of POST .../switchover.
type SwitchoverRequest struct {
	TargetNode string `json:"target_node,omitempty"`
	Force      bool   `json:"force,omitempty"`
}

func (h *Handler) switchover(w http.ResponseWriter, r *http.Request) {
	in, _, ok := h.instance(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req SwitchoverRequest
	if r.ContentLength != 0 {
		if err := httpx.DecodeJSON(w, r, &req); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	}
	if req.TargetNode != "" {
		n, ok := in.Node(req.TargetNode)
		if !ok {
			httpx.WriteProblem(w, r, httpx.Unprocessable("no such node", httpx.FieldError{Field: "target_node", Reason: "is not a node of the instance"}))
			return
		}
		if n.Role != topology.RoleReplica {
			httpx.WriteProblem(w, r, httpx.Unprocessable("not a replica", httpx.FieldError{Field: "target_node", Reason: "is not a replica"}))
			return
		}
	}
	rec, err := h.actions.Switchover(r.Context(), in.ID, req.TargetNode, req.Force)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/instances/"+in.ID+"/failovers/"+rec.ID)
	httpx.WriteJSON(w, http.StatusAccepted, failoverOf(rec))
}

// rebuildReplica rebuilds a replica from the primary (an alert's
// rebuild-replica remediation, or an operator's): 204 once it replicates
// again.
func (h *Handler) rebuildReplica(w http.ResponseWriter, r *http.Request) {
	in, _, ok := h.instance(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	node := chi.URLParam(r, "node")
	if _, ok := in.Node(node); !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such node"))
		return
	}
	if err := h.actions.RebuildReplica(r.Context(), in, node); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DrillRequest is the body of POST .../drills.
type DrillRequest struct {
	Kind string `json:"kind"`
}

func validDrill(kind string) bool {
	switch kind {
	case mysqlstore.DrillKillPrimary, mysqlstore.DrillStopPrimary, mysqlstore.DrillSwitchover:
		return true
	}
	return false
}

func (h *Handler) startDrill(w http.ResponseWriter, r *http.Request) {
	in, p, ok := h.instance(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req DrillRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if !validDrill(req.Kind) {
		httpx.WriteProblem(w, r, httpx.Unprocessable("unknown drill", httpx.FieldError{Field: "kind", Reason: "must be kill-primary, stop-primary or switchover"}))
		return
	}
	d, err := h.actions.Drill(r.Context(), in, req.Kind, p.Subject)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/drills/"+d.ID)
	httpx.WriteJSON(w, http.StatusAccepted, drillOf(d))
}

// ScheduleRequest is the body of PUT .../drill-schedule.
type ScheduleRequest struct {
	Cadence string `json:"cadence"`
	Kind    string `json:"kind,omitempty"`
}

func (h *Handler) putSchedule(w http.ResponseWriter, r *http.Request) {
	in, _, ok := h.instance(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req ScheduleRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	every, ok := mysqlstore.CadencePeriod(req.Cadence)
	if !ok {
		httpx.WriteProblem(w, r, httpx.Unprocessable("unknown cadence", httpx.FieldError{Field: "cadence", Reason: "must be weekly, monthly or quarterly"}))
		return
	}
	if req.Kind == "" {
		req.Kind = mysqlstore.DrillKillPrimary
	}
	if !validDrill(req.Kind) {
		httpx.WriteProblem(w, r, httpx.Unprocessable("unknown drill", httpx.FieldError{Field: "kind", Reason: "must be kill-primary, stop-primary or switchover"}))
		return
	}
	sc := mysqlstore.Schedule{InstanceID: in.ID, Tenant: in.Tenant, Cadence: req.Cadence, DrillKind: req.Kind,
		NextAt: h.now().UTC().Add(every).Truncate(time.Microsecond)}
	if err := h.history.PutSchedule(r.Context(), sc); err != nil {
		writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, Schedule{InstanceID: sc.InstanceID, Cadence: sc.Cadence, Kind: sc.DrillKind, NextAt: sc.NextAt})
}

func (h *Handler) listDrills(w http.ResponseWriter, r *http.Request) {
	p, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	limit, after, err := paging.ParseKey(r.URL.Query())
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	tenant := string(p.Tenant)
	if p.Role == tenancy.RolePlatformAdmin {
		tenant = r.URL.Query().Get("tenant") // "": every tenant's
	}
	rows, err := h.history.ListDrills(r.Context(), tenant, after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var out DrillList
	out.Items, out.NextCursor = paging.KeyPage(rows, limit, func(d mysqlstore.Drill) string { return d.ID }, drillOf)
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getDrill(w http.ResponseWriter, r *http.Request) {
	p, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	d, err := h.history.GetDrill(r.Context(), chi.URLParam(r, "did"))
	if err == nil && p.Role != tenancy.RolePlatformAdmin && string(p.Tenant) != d.Tenant {
		err = fmt.Errorf("drill %s: %w", d.ID, topology.ErrNotFound)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, drillOf(d))
}
