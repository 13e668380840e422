package httpapi

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// Receiver is a webhook receiver as the API shows it; the secret is never
// shown, only whether one is set.
type Receiver struct {
	ID             string    `json:"id"`
	Tenant         string    `json:"tenant,omitempty"`
	Name           string    `json:"name"`
	URL            string    `json:"url"`
	HasSecret      bool      `json:"has_secret"`
	Matchers       []string  `json:"matchers"`
	GroupBy        []string  `json:"group_by"`
	GroupWait      string    `json:"group_wait"`
	GroupInterval  string    `json:"group_interval"`
	RepeatInterval string    `json:"repeat_interval"`
	SendResolved   bool      `json:"send_resolved"`
	Continue       bool      `json:"continue"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// receiverBody is a POST (defaults for what is absent) or PATCH (what is
// absent is kept). An empty secret removes the secret.
type receiverBody struct {
	Name           *string   `json:"name"`
	URL            *string   `json:"url"`
	Secret         *string   `json:"secret"`
	Matchers       *[]string `json:"matchers"`
	GroupBy        *[]string `json:"group_by"`
	GroupWait      *string   `json:"group_wait"`
	GroupInterval  *string   `json:"group_interval"`
	RepeatInterval *string   `json:"repeat_interval"`
	SendResolved   *bool     `json:"send_resolved"`
	Continue       *bool     `json:"continue"`
}

// Limits of a receiver's fields.
const (
	maxSecretLen = 1024
	maxURLLen    = 2048
	maxMatchers  = 32
)

// slug is a receiver name (and rule id): lower-case letters, digits and
// dashes, as tenant ids.
var slug = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// defaultGroupBy is Canopy's default grouping.
var defaultGroupBy = []string{alert.LabelAlertName, alert.LabelInstance}

func receiverJSON(r alertstore.Receiver) Receiver {
	out := Receiver{ID: r.ID, Tenant: r.Tenant, Name: r.Name, URL: r.URL, HasSecret: r.Secret != "" || r.HasSecret,
		Matchers: r.Matchers, GroupBy: r.GroupBy, GroupWait: alert.FormatDuration(r.GroupWait),
		GroupInterval: alert.FormatDuration(r.GroupInterval), RepeatInterval: alert.FormatDuration(r.RepeatInterval),
		SendResolved: r.SendResolved, Continue: r.Continue, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if out.Matchers == nil {
		out.Matchers = []string{}
	}
	if out.GroupBy == nil {
		out.GroupBy = []string{}
	}
	return out
}

func (a *API) listReceivers(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "alert receivers")
	if !ok {
		return
	}
	rs, err := a.store.ListReceivers(r.Context(), s.tenant, s.all)
	if err != nil {
		a.internalError(w, r, "list receivers", err)
		return
	}
	out := list[Receiver]{Items: make([]Receiver, 0, len(rs))}
	for _, rc := range rs {
		out.Items = append(out.Items, receiverJSON(rc))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getReceiver(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "alert receivers")
	if !ok {
		return
	}
	rc, err := a.store.GetReceiver(r.Context(), s.tenant, s.all, chi.URLParam(r, "id"))
	if err != nil {
		a.storeError(w, r, "alert receiver", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, receiverJSON(rc))
}

func (a *API) createReceiver(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alert receivers")
	if !ok {
		return
	}
	var b receiverBody
	if err := httpx.DecodeJSON(w, r, &b); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	rc := alertstore.Receiver{Tenant: s.owner(), GroupBy: defaultGroupBy, GroupWait: dispatch.DefaultGroupWait,
		GroupInterval: dispatch.DefaultGroupInterval, RepeatInterval: dispatch.DefaultRepeatInterval, SendResolved: true}
	var fields []httpx.FieldError
	if b.Name == nil {
		fields = append(fields, httpx.FieldError{Field: "name", Reason: "is required"})
	}
	if b.URL == nil {
		fields = append(fields, httpx.FieldError{Field: "url", Reason: "is required"})
	}
	fields = append(fields, a.applyReceiver(r, &rc, b)...)
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid alert receiver", fields...))
		return
	}
	created, err := a.store.CreateReceiver(r.Context(), rc)
	if err != nil {
		a.storeError(w, r, "alert receiver", err)
		return
	}
	a.reload(r.Context(), engine.ReloadReceivers)
	w.Header().Set("Location", "/api/v1/alert-receivers/"+created.ID)
	httpx.WriteJSON(w, http.StatusCreated, receiverJSON(created))
}

func (a *API) patchReceiver(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alert receivers")
	if !ok {
		return
	}
	var b receiverBody
	if err := httpx.DecodeJSON(w, r, &b); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	rc, err := a.store.GetReceiver(r.Context(), s.tenant, s.all, chi.URLParam(r, "id"))
	if err != nil {
		a.storeError(w, r, "alert receiver", err)
		return
	}
	if fields := a.applyReceiver(r, &rc, b); len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid alert receiver", fields...))
		return
	}
	updated, err := a.store.UpdateReceiver(r.Context(), rc)
	if err != nil {
		a.storeError(w, r, "alert receiver", err)
		return
	}
	a.reload(r.Context(), engine.ReloadReceivers)
	httpx.WriteJSON(w, http.StatusOK, receiverJSON(updated))
}

func (a *API) deleteReceiver(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alert receivers")
	if !ok {
		return
	}
	if err := a.store.DeleteReceiver(r.Context(), s.tenant, s.all, chi.URLParam(r, "id")); err != nil {
		a.storeError(w, r, "alert receiver", err)
		return
	}
	a.reload(r.Context(), engine.ReloadReceivers)
	w.WriteHeader(http.StatusNoContent)
}

// applyReceiver folds b into rc and validates the result, naming each bad
// field. The tenant of rc decides which tenant matchers are allowed.
func (a *API) applyReceiver(r *http.Request, rc *alertstore.Receiver, b receiverBody) []httpx.FieldError {
	var fields []httpx.FieldError
	bad := func(f, why string) { fields = append(fields, httpx.FieldError{Field: f, Reason: why}) }
	if b.Name != nil {
		rc.Name = *b.Name
		if !slug.MatchString(rc.Name) {
			bad("name", "must be 1-63 lower-case letters, digits and dashes, starting with a letter or digit")
		}
	}
	if b.URL != nil {
		rc.URL = strings.TrimSpace(*b.URL)
		switch {
		case len(rc.URL) > maxURLLen:
			bad("url", fmt.Sprintf("must be at most %d characters", maxURLLen))
		default:
			if err := a.urls.Check(r.Context(), rc.URL); err != nil {
				bad("url", err.Error())
			}
		}
	}
	if b.Secret != nil {
		if len(*b.Secret) > maxSecretLen {
			bad("secret", fmt.Sprintf("must be at most %d bytes", maxSecretLen))
		}
		rc.Secret = *b.Secret
		rc.HasSecret = rc.Secret != ""
	}
	if b.Matchers != nil {
		ms, mf := receiverMatchers(*b.Matchers, rc.Tenant)
		rc.Matchers = ms
		fields = append(fields, mf...)
	}
	if b.GroupBy != nil {
		rc.GroupBy = *b.GroupBy
		fields = append(fields, checkGroupBy(rc.GroupBy)...)
	}
	for _, d := range []struct {
		field string
		in    *string
		dst   *time.Duration
	}{{"group_wait", b.GroupWait, &rc.GroupWait}, {"group_interval", b.GroupInterval, &rc.GroupInterval},
		{"repeat_interval", b.RepeatInterval, &rc.RepeatInterval}} {
		if d.in == nil {
			continue
		}
		v, err := time.ParseDuration(*d.in)
		if err != nil {
			bad(d.field, `must be a duration such as "30s", "5m" or "4h"`)
			continue
		}
		*d.dst = v
	}
	if b.SendResolved != nil {
		rc.SendResolved = *b.SendResolved
	}
	if b.Continue != nil {
		rc.Continue = *b.Continue
	}
	switch {
	case rc.GroupWait < 0:
		bad("group_wait", "must not be negative")
	case rc.GroupInterval <= 0:
		bad("group_interval", "must be positive")
	case rc.RepeatInterval < rc.GroupInterval:
		bad("repeat_interval", "must be at least group_interval")
	}
	return fields
}

// receiverMatchers parses and normalises a receiver's matchers (one per
// element). A tenant's route already matches only its own alerts, so a
// tenant matcher may only name that tenant.
func receiverMatchers(in []string, tenant string) ([]string, []httpx.FieldError) {
	var fields []httpx.FieldError
	if len(in) > maxMatchers {
		return nil, []httpx.FieldError{{Field: "matchers", Reason: fmt.Sprintf("at most %d matchers", maxMatchers)}}
	}
	out := make([]string, 0, len(in))
	for i, s := range in {
		field := fmt.Sprintf("matchers[%d]", i)
		m, err := alert.ParseMatcher(s)
		if err != nil {
			fields = append(fields, httpx.FieldError{Field: field, Reason: err.Error()})
			continue
		}
		if reason := tenantMatcherProblem(m, tenant); reason != "" {
			fields = append(fields, httpx.FieldError{Field: field, Reason: reason})
			continue
		}
		out = append(out, m.String())
	}
	return out, fields
}

// tenantMatcherProblem says why m may not be used in tenant's routes or
// silences ("" when it may): a tenant matcher of a tenant's must be
// tenant="<that tenant>". The platform may match tenants freely.
func tenantMatcherProblem(m *alert.Matcher, tenant string) string {
	if tenant == "" || m.Name != alert.LabelTenant {
		return ""
	}
	if m.Type != alert.MatchEqual || m.Value != tenant {
		return fmt.Sprintf(`a tenant matcher may only be tenant=%q`, tenant)
	}
	return ""
}

// checkGroupBy: label names, or "..." alone for all labels.
func checkGroupBy(gb []string) []httpx.FieldError {
	var fields []httpx.FieldError
	for i, l := range gb {
		if l == "..." {
			if len(gb) != 1 {
				fields = append(fields, httpx.FieldError{Field: fmt.Sprintf("group_by[%d]", i), Reason: `"..." must be the only element`})
			}
			continue
		}
		if !alert.ValidLabelName(l) {
			fields = append(fields, httpx.FieldError{Field: fmt.Sprintf("group_by[%d]", i), Reason: "not a label name"})
		}
	}
	return fields
}
