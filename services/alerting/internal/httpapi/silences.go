package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// SilenceMatcher is Alertmanager v2's matcher object.
type SilenceMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	// IsEqual is true when absent (Alertmanager's default).
	IsEqual *bool `json:"isEqual,omitempty"`
}

// SilenceStatus is the silence's state now.
type SilenceStatus struct {
	State string `json:"state"`
}

// Silence is Alertmanager v2's gettableSilence, plus the tenant.
type Silence struct {
	ID        string           `json:"id"`
	Tenant    string           `json:"tenant,omitempty"`
	Status    SilenceStatus    `json:"status"`
	UpdatedAt time.Time        `json:"updatedAt"`
	Matchers  []SilenceMatcher `json:"matchers"`
	StartsAt  time.Time        `json:"startsAt"`
	EndsAt    time.Time        `json:"endsAt"`
	CreatedBy string           `json:"createdBy"`
	Comment   string           `json:"comment"`
}

// silenceBody is Alertmanager v2's postableSilence (without id: a silence
// is changed by expiring it and creating another).
type silenceBody struct {
	Matchers  []SilenceMatcher `json:"matchers"`
	StartsAt  *time.Time       `json:"startsAt"`
	EndsAt    *time.Time       `json:"endsAt"`
	CreatedBy string           `json:"createdBy"`
	Comment   string           `json:"comment"`
}

// Limits of a silence's fields.
const (
	maxCommentLen = 4096
	maxCreatedBy  = 255
)

func silenceJSON(s alert.Silence, now time.Time) Silence {
	out := Silence{ID: s.ID, Tenant: s.Tenant, Status: SilenceStatus{State: string(s.State(now))},
		UpdatedAt: s.UpdatedAt.UTC(), StartsAt: s.StartsAt.UTC(), EndsAt: s.EndsAt.UTC(), CreatedBy: s.CreatedBy,
		Comment: s.Comment, Matchers: make([]SilenceMatcher, 0, len(s.Matchers))}
	for _, m := range s.Matchers {
		eq := m.Type == alert.MatchEqual || m.Type == alert.MatchRegexp
		out.Matchers = append(out.Matchers, SilenceMatcher{Name: m.Name, Value: m.Value,
			IsRegex: m.Type == alert.MatchRegexp || m.Type == alert.MatchNotRegexp, IsEqual: &eq})
	}
	return out
}

func (a *API) listSilences(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "silences")
	if !ok {
		return
	}
	var states []string
	for _, v := range r.URL.Query()["state"] {
		for _, st := range strings.Split(v, ",") {
			switch alert.SilenceState(st) {
			case alert.SilencePending, alert.SilenceActive, alert.SilenceExpired:
				states = append(states, st)
			default:
				httpx.WriteProblem(w, r, httpx.BadRequest("invalid query parameter",
					httpx.FieldError{Field: "state", Reason: "must be pending, active or expired (comma-separated)"}))
				return
			}
		}
	}
	sils, err := a.store.ListSilences(r.Context(), s.tenant, s.all)
	if err != nil {
		a.internalError(w, r, "list silences", err)
		return
	}
	now := a.now()
	out := list[Silence]{Items: make([]Silence, 0, len(sils))}
	for _, sil := range sils {
		js := silenceJSON(sil, now)
		if len(states) == 0 || slices.Contains(states, js.Status.State) {
			out.Items = append(out.Items, js)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getSilence(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "silences")
	if !ok {
		return
	}
	sil, err := a.store.GetSilence(r.Context(), s.tenant, s.all, chi.URLParam(r, "id"))
	if err != nil {
		a.storeError(w, r, "silence", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, silenceJSON(sil, a.now()))
}

func (a *API) createSilence(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "silences")
	if !ok {
		return
	}
	var b silenceBody
	if err := httpx.DecodeJSON(w, r, &b); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	now := a.now().UTC()
	sil, fields := buildSilence(b, s.owner(), s.p.Subject, now)
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid silence", fields...))
		return
	}
	created, err := a.store.CreateSilence(r.Context(), sil)
	if err != nil {
		a.storeError(w, r, "silence", err)
		return
	}
	a.reload(r.Context(), engine.ReloadSilences)
	w.Header().Set("Location", "/api/v1/silences/"+created.ID)
	httpx.WriteJSON(w, http.StatusCreated, silenceJSON(created, now))
}

// expireSilence ends a silence now; it stays listed as expired.
func (a *API) expireSilence(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "silences")
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	now := a.now().UTC()
	if err := a.store.ExpireSilence(r.Context(), s.tenant, s.all, id, now); err != nil {
		a.storeError(w, r, "silence", err)
		return
	}
	a.reload(r.Context(), engine.ReloadSilences)
	sil, err := a.store.GetSilence(r.Context(), s.tenant, s.all, id)
	if err != nil {
		a.storeError(w, r, "silence", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, silenceJSON(sil, now))
}

// buildSilence validates b as Alertmanager does (at least one matcher, not
// all matching the empty string, regexps compile, endsAt in the future and
// after startsAt; a startsAt in the past becomes now) and adds a tenant's
// implicit tenant="<id>" matcher, refusing a tenant matcher that names
// another tenant.
func buildSilence(b silenceBody, tenant, subject string, now time.Time) (alert.Silence, []httpx.FieldError) {
	var fields []httpx.FieldError
	bad := func(f, why string) { fields = append(fields, httpx.FieldError{Field: f, Reason: why}) }
	sil := alert.Silence{Tenant: tenant, CreatedBy: b.CreatedBy, Comment: b.Comment, StartsAt: now, UpdatedAt: now}
	if sil.CreatedBy == "" {
		sil.CreatedBy = subject
	}
	if len(sil.CreatedBy) > maxCreatedBy {
		bad("createdBy", fmt.Sprintf("must be at most %d characters", maxCreatedBy))
	}
	if len(sil.Comment) > maxCommentLen {
		bad("comment", fmt.Sprintf("must be at most %d characters", maxCommentLen))
	}
	if len(b.Matchers) == 0 {
		bad("matchers", "at least one matcher is required")
	}
	if len(b.Matchers) > maxMatchers {
		bad("matchers", fmt.Sprintf("at most %d matchers", maxMatchers))
	}
	hasTenant := false
	for i, jm := range b.Matchers {
		field := fmt.Sprintf("matchers[%d]", i)
		m, err := silenceMatcher(jm)
		if err != nil {
			bad(field, err.Error())
			continue
		}
		if reason := tenantMatcherProblem(m, tenant); reason != "" {
			bad(field, reason)
			continue
		}
		hasTenant = hasTenant || m.Name == alert.LabelTenant
		sil.Matchers = append(sil.Matchers, m)
	}
	if len(fields) == 0 && !slices.ContainsFunc(sil.Matchers, func(m *alert.Matcher) bool { return !m.Matches("") }) {
		bad("matchers", "at least one matcher must not match the empty string")
	}
	if tenant != "" && !hasTenant {
		sil.Matchers = append(sil.Matchers, &alert.Matcher{Type: alert.MatchEqual, Name: alert.LabelTenant, Value: tenant})
	}
	if b.StartsAt != nil && b.StartsAt.After(now) {
		sil.StartsAt = b.StartsAt.UTC()
	}
	switch {
	case b.EndsAt == nil:
		bad("endsAt", "is required")
	case !b.EndsAt.After(now):
		bad("endsAt", "must be in the future")
	case !b.EndsAt.After(sil.StartsAt):
		bad("endsAt", "must be after startsAt")
	default:
		sil.EndsAt = b.EndsAt.UTC()
	}
	return sil, fields
}

// silenceMatcher converts Alertmanager's matcher object.
func silenceMatcher(jm SilenceMatcher) (*alert.Matcher, error) {
	if !alert.ValidLabelName(jm.Name) {
		return nil, fmt.Errorf("invalid label name %q", jm.Name)
	}
	eq := jm.IsEqual == nil || *jm.IsEqual
	t := alert.MatchEqual
	switch {
	case jm.IsRegex && eq:
		t = alert.MatchRegexp
	case jm.IsRegex:
		t = alert.MatchNotRegexp
	case !eq:
		t = alert.MatchNotEqual
	}
	return alert.NewMatcher(t, jm.Name, jm.Value)
}
