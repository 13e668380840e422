package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
)

// Settings are a tenant's alerting settings.
type Settings struct {
	// Remediation allows rules' actions (switchover, restart-node,
	// rebuild-replica) to run for the tenant's instances; off by default.
	Remediation bool `json:"remediation"`
}

type settingsBody struct {
	Remediation *bool `json:"remediation"`
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "alert settings")
	if !ok {
		return
	}
	on, err := a.store.Remediation(r.Context(), s.owner())
	if err != nil {
		a.internalError(w, r, "get settings", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, Settings{Remediation: on})
}

// putSettings switches remediation. Letting the platform act on a tenant's
// instances by itself is the tenant's decision: tenant-admin (or a
// platform-admin) only.
func (a *API) putSettings(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alert settings")
	if !ok {
		return
	}
	if s.p.Role != tenancy.RoleTenantAdmin && !s.admin() {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "role "+string(s.p.Role)+" may not change alert settings; tenant-admin may"))
		return
	}
	var b settingsBody
	if err := httpx.DecodeJSON(w, r, &b); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if b.Remediation == nil {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid alert settings", httpx.FieldError{Field: "remediation", Reason: "is required"}))
		return
	}
	if err := a.store.SetRemediation(r.Context(), s.owner(), *b.Remediation); err != nil {
		a.internalError(w, r, "set settings", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, Settings{Remediation: *b.Remediation})
}

// DeadLetter is a notification that could not be delivered.
type DeadLetter struct {
	ID        int64           `json:"id"`
	Receiver  string          `json:"receiver"`
	Tenant    string          `json:"tenant,omitempty"`
	GroupKey  string          `json:"group_key"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error"`
	CreatedAt time.Time       `json:"created_at"`
	DeadAt    time.Time       `json:"dead_at"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

func deadLetterJSON(d alertstore.Delivery) DeadLetter {
	out := DeadLetter{ID: d.ID, Receiver: d.Receiver, Tenant: d.Owner, GroupKey: d.GroupKey, Attempts: d.Attempts,
		LastError: d.LastError, CreatedAt: d.CreatedAt.UTC(), DeadAt: d.DeadAt.UTC()}
	if json.Valid(d.Payload) {
		out.Payload = d.Payload
	}
	return out
}

func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "dead letters")
	if !ok {
		return
	}
	limit, err := paging.ParseLimit(r.URL.Query(), paging.DefaultLimit)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	ds, err := a.store.DeadLetters(r.Context(), s.tenant, s.all, limit)
	if err != nil {
		a.internalError(w, r, "list dead letters", err)
		return
	}
	out := list[DeadLetter]{Items: make([]DeadLetter, 0, len(ds))}
	for _, d := range ds {
		out.Items = append(out.Items, deadLetterJSON(d))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// retryDeadLetter queues a dead letter again with its attempts reset.
func (a *API) retryDeadLetter(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "dead letters")
	if !ok {
		return
	}
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		notFound(w, r, "dead letter")
		return
	}
	err = a.store.RetryDeadLetter(r.Context(), s.tenant, s.all, id, a.now().UTC())
	switch {
	case errors.Is(err, alertstore.ErrConflict):
		// Deleting a receiver dead-letters its queue; those letters have
		// nowhere to go, which storeError's "name or id exists" would hide.
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
			"the dead letter's receiver was deleted: it cannot be delivered again"))
		return
	case err != nil:
		a.storeError(w, r, "dead letter", err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (a *API) listActions(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "remediation actions")
	if !ok {
		return
	}
	limit, err := paging.ParseLimit(r.URL.Query(), paging.DefaultLimit)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	runs, err := a.store.ListActions(r.Context(), s.tenant, s.all, limit)
	if err != nil {
		a.internalError(w, r, "list actions", err)
		return
	}
	out := list[Action]{Items: make([]Action, 0, len(runs))}
	for _, run := range runs {
		out.Items = append(out.Items, actionJSON(run))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// targets is Prometheus' HTTP service discovery: a JSON array of target
// groups, the caller's nodes (a platform-admin's: every node).
func (a *API) targets(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "scrape targets")
	if !ok {
		return
	}
	groups := a.nodes.Targets(s.tenant, s.all)
	out := make([]nodes.TargetGroup, 0, len(groups))
	for _, g := range groups {
		if g.Targets == nil {
			g.Targets = []string{}
		}
		if g.Labels == nil {
			g.Labels = map[string]string{}
		}
		out = append(out, g)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// status is Alertmanager v2's GET /api/v2/status, enough for tools that
// check they talk to an Alertmanager: no cluster, no configuration file.
func (a *API) status(w http.ResponseWriter, r *http.Request) {
	if _, ok := authorize(w, r, tenancy.ActionRead, "status"); !ok {
		return
	}
	type cluster struct {
		Status string   `json:"status"`
		Peers  []string `json:"peers"`
	}
	type config struct {
		Original string `json:"original"`
	}
	httpx.WriteJSON(w, http.StatusOK, struct {
		Cluster     cluster           `json:"cluster"`
		VersionInfo map[string]string `json:"versionInfo"`
		Config      config            `json:"config"`
		Uptime      time.Time         `json:"uptime"`
	}{
		Cluster: cluster{Status: "disabled", Peers: []string{}},
		VersionInfo: map[string]string{"version": "canopy-alerting", "revision": "", "branch": "", "buildUser": "",
			"buildDate": "", "goVersion": runtime.Version()},
		Uptime: a.started,
	})
}

// Group is a live aggregation group: the alerts one receiver gets together.
type Group struct {
	Receiver    string            `json:"receiver"`
	ReceiverID  string            `json:"receiver_id"`
	Tenant      string            `json:"tenant,omitempty"`
	GroupKey    string            `json:"group_key"`
	Labels      map[string]string `json:"labels"`
	Alerts      int               `json:"alerts"`
	NextFlushAt time.Time         `json:"next_flush_at"`
}

// listGroups lists the caller's live aggregation groups (a platform-admin's:
// every group, or one tenant's with ?tenant=), as the engine holds them.
func (a *API) listGroups(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "alert groups")
	if !ok {
		return
	}
	gs, err := a.engine.Groups(r.Context())
	if errors.Is(err, engine.ErrStopped) {
		w.Header().Set("Retry-After", "1")
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "the alerting engine is not active yet; try again shortly"))
		return
	}
	if err != nil {
		a.internalError(w, r, "list groups", err)
		return
	}
	out := list[Group]{Items: []Group{}}
	for _, g := range gs {
		if !s.all && g.Owner != s.tenant {
			continue
		}
		out.Items = append(out.Items, Group{Receiver: g.ReceiverName, ReceiverID: g.Receiver, Tenant: g.Owner,
			GroupKey: g.GroupKey, Labels: labelMap(g.Labels), Alerts: g.Alerts, NextFlushAt: g.NextAt.UTC()})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
