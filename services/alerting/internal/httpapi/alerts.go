package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
)

// AlertStatus is where an alert stands now and who mutes it.
type AlertStatus struct {
	State       string   `json:"state"`
	SilencedBy  []string `json:"silencedBy"`
	InhibitedBy []string `json:"inhibitedBy"`
}

// Action is one remediation run an alert triggered.
type Action struct {
	ID          int64     `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Tenant      string    `json:"tenant,omitempty"`
	InstanceID  string    `json:"instance_id"`
	NodeID      string    `json:"node_id,omitempty"`
	Action      string    `json:"action"`
	Status      string    `json:"status"`
	Detail      string    `json:"detail,omitempty"`
	At          time.Time `json:"at"`
}

// Alert is an alert as the API shows it (Alertmanager's gettableAlert with
// Canopy's states). EndsAt is absent while the alert fires with no known
// end.
type Alert struct {
	Fingerprint  string            `json:"fingerprint"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL"`
	Rule         string            `json:"rule,omitempty"`
	Status       AlertStatus       `json:"status"`
	Actions      []Action          `json:"actions"`
}

func actionJSON(r alertstore.ActionRun) Action {
	return Action{ID: r.ID, Fingerprint: r.Fingerprint, Tenant: r.Tenant, InstanceID: r.InstanceID, NodeID: r.NodeID,
		Action: r.Action, Status: r.Status, Detail: r.Detail, At: r.At.UTC()}
}

// alertJSON shows a stored alert with its muting now.
func (a *API) alertJSON(sa alertstore.StoredAlert, now time.Time) Alert {
	out := Alert{Fingerprint: sa.Fingerprint.String(), Labels: labelMap(sa.Labels),
		Annotations: labelMap(sa.Annotations), StartsAt: sa.StartsAt.UTC(), UpdatedAt: sa.UpdatedAt.UTC(),
		GeneratorURL: sa.GeneratorURL, Rule: sa.Rule, Actions: make([]Action, 0, len(sa.ActionRuns))}
	if !sa.EndsAt.IsZero() {
		e := sa.EndsAt.UTC()
		out.EndsAt = &e
	}
	out.Status.State = string(sa.State)
	// A pushed alert's endsAt is a timeout: past it, the alert is resolved
	// whatever was stored.
	if !sa.EndsAt.IsZero() && !sa.EndsAt.After(now) {
		out.Status.State = string(alert.StateResolved)
	}
	if out.Status.State == "" {
		out.Status.State = string(alert.StateFiring)
	}
	silenced, inhibited := a.engine.Muting(sa.Fingerprint)
	out.Status.SilencedBy, out.Status.InhibitedBy = nonNil(silenced), nonNil(inhibited)
	for _, run := range sa.ActionRuns {
		out.Actions = append(out.Actions, actionJSON(run))
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func labelMap(ls alert.LabelSet) map[string]string {
	if ls == nil {
		return map[string]string{}
	}
	return ls
}

// listAlerts: ?state= (pending, firing, resolved; comma-separated or
// repeated), ?filter= (matchers in Alertmanager syntax, repeatable),
// ?tenant= (platform-admin), limit and cursor.
func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "alerts")
	if !ok {
		return
	}
	q := r.URL.Query()
	f := alertstore.AlertFilter{Tenant: s.tenant, All: s.all}
	var fields []httpx.FieldError
	for _, v := range q["state"] {
		for _, st := range strings.Split(v, ",") {
			switch alert.State(st) {
			case alert.StatePending, alert.StateFiring, alert.StateResolved:
				f.States = append(f.States, alert.State(st))
			default:
				fields = append(fields, httpx.FieldError{Field: "state", Reason: "must be pending, firing or resolved (comma-separated)"})
			}
		}
	}
	for _, v := range q["filter"] {
		ms, err := alert.ParseMatchers(v)
		if err != nil {
			fields = append(fields, httpx.FieldError{Field: "filter", Reason: err.Error()})
			continue
		}
		f.Matchers = append(f.Matchers, ms...)
	}
	limit, after, err := paging.ParseKey(q)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid query parameter", fields...))
		return
	}
	f.Limit, f.After = limit, after
	items, next, err := a.store.ListAlerts(r.Context(), f)
	if err != nil {
		a.internalError(w, r, "list alerts", err)
		return
	}
	now := a.now()
	out := list[Alert]{Items: make([]Alert, 0, len(items))}
	for _, sa := range items {
		out.Items = append(out.Items, a.alertJSON(sa, now))
	}
	if next != "" {
		out.NextCursor = paging.EncodeKey(next)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "alerts")
	if !ok {
		return
	}
	fp, err := alert.ParseFingerprint(chi.URLParam(r, "fingerprint"))
	if err != nil {
		notFound(w, r, "alert")
		return
	}
	sa, err := a.store.GetAlert(r.Context(), s.tenant, s.all, fp)
	if err != nil {
		a.storeError(w, r, "alert", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a.alertJSON(sa, a.now()))
}
