package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
)

// Rule is an alerting rule as the API shows it. Default rules ship with
// the service: they are read-only except Disabled and ActionEnabled, which
// a tenant (or the platform) overrides for itself.
type Rule struct {
	ID            string            `json:"id"`
	Tenant        string            `json:"tenant,omitempty"`
	Default       bool              `json:"default"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Expr          string            `json:"expr,omitempty"`
	Engine        string            `json:"engine,omitempty"`
	Role          string            `json:"role,omitempty"`
	For           string            `json:"for,omitempty"`
	On            []string          `json:"on,omitempty"`
	ResolveOn     []string          `json:"resolve_on,omitempty"`
	ResolveAfter  string            `json:"resolve_after,omitempty"`
	Match         map[string]string `json:"match,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	Action        string            `json:"action,omitempty"`
	ActionEnabled bool              `json:"action_enabled"`
	Disabled      bool              `json:"disabled"`
}

// ruleBody is a POST or PUT (the whole rule) or a PATCH (what is present
// changes). Durations are Go duration strings ("5m").
type ruleBody struct {
	ID            *string            `json:"id"`
	Name          *string            `json:"name"`
	Kind          *string            `json:"kind"`
	Expr          *string            `json:"expr"`
	Engine        *string            `json:"engine"`
	Role          *string            `json:"role"`
	For           *string            `json:"for"`
	On            *[]string          `json:"on"`
	ResolveOn     *[]string          `json:"resolve_on"`
	ResolveAfter  *string            `json:"resolve_after"`
	Match         *map[string]string `json:"match"`
	Labels        *map[string]string `json:"labels"`
	Annotations   *map[string]string `json:"annotations"`
	Action        *string            `json:"action"`
	ActionEnabled *bool              `json:"action_enabled"`
	Disabled      *bool              `json:"disabled"`
}

func ruleJSON(r rules.Rule, isDefault bool) Rule {
	out := Rule{ID: r.ID, Tenant: r.Tenant, Default: isDefault, Name: r.Name, Kind: string(r.Kind), Expr: r.Expr,
		Engine: r.Engine, Role: r.Role, On: r.On, ResolveOn: r.ResolveOn, Match: r.Match, Labels: r.Labels,
		Annotations: r.Annotations, Action: r.Action, ActionEnabled: r.ActionEnabled, Disabled: r.Disabled}
	if r.For > 0 {
		out.For = alert.FormatDuration(r.For)
	}
	if r.ResolveAfter > 0 {
		out.ResolveAfter = alert.FormatDuration(r.ResolveAfter)
	}
	return out
}

// ruleSet is an owner's view: the defaults (with the owner's overrides
// applied) and the owner's own rules.
type ruleSet struct {
	defaults  []rules.Rule
	overrides map[string]rules.Rule
	own       []rules.Rule
}

func (rs ruleSet) defaultRule(id string) (rules.Rule, bool) {
	for _, d := range rs.defaults {
		if d.ID == id {
			return d, true
		}
	}
	return rules.Rule{}, false
}

func (rs ruleSet) ownRule(id string) (rules.Rule, bool) {
	for _, r := range rs.own {
		if r.ID == id {
			return r, true
		}
	}
	return rules.Rule{}, false
}

// effective is a default rule as the owner runs it.
func (rs ruleSet) effective(d rules.Rule) rules.Rule {
	if o, ok := rs.overrides[d.ID]; ok {
		d.Disabled, d.ActionEnabled = o.Disabled, o.ActionEnabled
	}
	return d
}

// loadRules reads the owner's view.
func (a *API) loadRules(r *http.Request, owner string) (ruleSet, error) {
	defs, err := a.defaultRules()
	if err != nil {
		return ruleSet{}, err
	}
	stored, err := a.store.ListRules(r.Context(), owner, false)
	if err != nil {
		return ruleSet{}, err
	}
	rs := ruleSet{defaults: defs, overrides: map[string]rules.Rule{}}
	for _, st := range stored {
		if st.Tenant != owner {
			continue
		}
		if _, isDefault := rs.defaultRule(st.ID); isDefault {
			rs.overrides[st.ID] = st
			continue
		}
		rs.own = append(rs.own, st)
	}
	return rs, nil
}

// listRules lists the defaults, then the caller's own rules. A
// platform-admin sees the platform's rules, or a tenant's with ?tenant=.
func (a *API) listRules(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "alert rules")
	if !ok {
		return
	}
	rs, err := a.loadRules(r, s.owner())
	if err != nil {
		a.internalError(w, r, "list rules", err)
		return
	}
	out := list[Rule]{Items: make([]Rule, 0, len(rs.defaults)+len(rs.own))}
	for _, d := range rs.defaults {
		eff := rs.effective(d)
		eff.Tenant = s.owner()
		out.Items = append(out.Items, ruleJSON(eff, true))
	}
	for _, o := range rs.own {
		out.Items = append(out.Items, ruleJSON(o, false))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getRule(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionRead, "alert rules")
	if !ok {
		return
	}
	rs, err := a.loadRules(r, s.owner())
	if err != nil {
		a.internalError(w, r, "get rule", err)
		return
	}
	id := chi.URLParam(r, "id")
	if d, ok := rs.defaultRule(id); ok {
		eff := rs.effective(d)
		eff.Tenant = s.owner()
		httpx.WriteJSON(w, http.StatusOK, ruleJSON(eff, true))
		return
	}
	own, ok := rs.ownRule(id)
	if !ok {
		notFound(w, r, "alert rule")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ruleJSON(own, false))
}

func (a *API) createRule(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alert rules")
	if !ok {
		return
	}
	var b ruleBody
	if err := httpx.DecodeJSON(w, r, &b); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	rule := rules.Rule{Tenant: s.owner()}
	fields := applyRule(&rule, b)
	switch {
	case b.ID == nil:
		fields = append(fields, httpx.FieldError{Field: "id", Reason: "is required"})
	case !slug.MatchString(*b.ID):
		fields = append(fields, httpx.FieldError{Field: "id", Reason: "must be 1-63 lower-case letters, digits and dashes"})
	}
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid alert rule", fields...))
		return
	}
	rs, err := a.loadRules(r, s.owner())
	if err != nil {
		a.internalError(w, r, "create rule", err)
		return
	}
	if _, isDefault := rs.defaultRule(rule.ID); isDefault {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "a default rule has id "+rule.ID+"; choose another id"))
		return
	}
	if err := a.validateRule(rule); err != nil {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid alert rule: "+err.Error()))
		return
	}
	created, err := a.store.CreateRule(r.Context(), rule)
	if err != nil {
		a.storeError(w, r, "alert rule", err)
		return
	}
	a.reload(r.Context(), engine.ReloadRules)
	w.Header().Set("Location", "/api/v1/alert-rules/"+created.ID)
	httpx.WriteJSON(w, http.StatusCreated, ruleJSON(created, false))
}

// putRule replaces one of the caller's own rules.
func (a *API) putRule(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alert rules")
	if !ok {
		return
	}
	var b ruleBody
	if err := httpx.DecodeJSON(w, r, &b); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	id := chi.URLParam(r, "id")
	rule := rules.Rule{ID: id, Tenant: s.owner()}
	fields := applyRule(&rule, b)
	if b.ID != nil && *b.ID != id {
		fields = append(fields, httpx.FieldError{Field: "id", Reason: "must be absent or equal the id in the path"})
	}
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid alert rule", fields...))
		return
	}
	a.replaceOwnRule(w, r, s, rule)
}

// patchRule changes a rule in part. Of a default rule only disabled and
// action_enabled change, stored as the caller's override.
func (a *API) patchRule(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alert rules")
	if !ok {
		return
	}
	var b ruleBody
	if err := httpx.DecodeJSON(w, r, &b); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	rs, err := a.loadRules(r, s.owner())
	if err != nil {
		a.internalError(w, r, "patch rule", err)
		return
	}
	id := chi.URLParam(r, "id")
	if d, ok := rs.defaultRule(id); ok {
		a.overrideDefault(w, r, s, rs, d, b)
		return
	}
	rule, ok := rs.ownRule(id)
	if !ok {
		notFound(w, r, "alert rule")
		return
	}
	fields := applyRule(&rule, b)
	if b.ID != nil && *b.ID != id {
		fields = append(fields, httpx.FieldError{Field: "id", Reason: "must be absent or equal the id in the path"})
	}
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid alert rule", fields...))
		return
	}
	a.replaceOwnRule(w, r, s, rule)
}

// replaceOwnRule validates and stores a changed own rule; default rules are
// refused (409).
func (a *API) replaceOwnRule(w http.ResponseWriter, r *http.Request, s scope, rule rules.Rule) {
	defs, err := a.defaultRules()
	if err != nil {
		a.internalError(w, r, "default rules", err)
		return
	}
	for _, d := range defs {
		if d.ID == rule.ID {
			httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
				"default rules are read-only; PATCH only disabled and action_enabled"))
			return
		}
	}
	if err := a.validateRule(rule); err != nil {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid alert rule: "+err.Error()))
		return
	}
	updated, err := a.store.UpdateRule(r.Context(), rule)
	if err != nil {
		a.storeError(w, r, "alert rule", err)
		return
	}
	a.reload(r.Context(), engine.ReloadRules)
	httpx.WriteJSON(w, http.StatusOK, ruleJSON(updated, false))
}

// overrideDefault stores the owner's disabled/action_enabled of a default.
func (a *API) overrideDefault(w http.ResponseWriter, r *http.Request, s scope, rs ruleSet, d rules.Rule, b ruleBody) {
	if fields := onlyOverridable(b); len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("default rules are read-only except disabled and action_enabled", fields...))
		return
	}
	o := rs.effective(d)
	o.Tenant = s.owner()
	if b.Disabled != nil {
		o.Disabled = *b.Disabled
	}
	if b.ActionEnabled != nil {
		o.ActionEnabled = *b.ActionEnabled
	}
	if o.ActionEnabled && o.Action == "" {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid override",
			httpx.FieldError{Field: "action_enabled", Reason: "rule " + d.ID + " has no action"}))
		return
	}
	var err error
	if _, exists := rs.overrides[d.ID]; exists {
		_, err = a.store.UpdateRule(r.Context(), o)
	} else {
		_, err = a.store.CreateRule(r.Context(), o)
	}
	if err != nil {
		a.storeError(w, r, "alert rule", err)
		return
	}
	a.reload(r.Context(), engine.ReloadRules)
	httpx.WriteJSON(w, http.StatusOK, ruleJSON(o, true))
}

// onlyOverridable names the fields a PATCH of a default rule may not set.
func onlyOverridable(b ruleBody) []httpx.FieldError {
	var fields []httpx.FieldError
	for _, f := range []struct {
		name string
		set  bool
	}{{"id", b.ID != nil}, {"name", b.Name != nil}, {"kind", b.Kind != nil}, {"expr", b.Expr != nil},
		{"engine", b.Engine != nil}, {"role", b.Role != nil}, {"for", b.For != nil}, {"on", b.On != nil},
		{"resolve_on", b.ResolveOn != nil}, {"resolve_after", b.ResolveAfter != nil}, {"match", b.Match != nil},
		{"labels", b.Labels != nil}, {"annotations", b.Annotations != nil}, {"action", b.Action != nil}} {
		if f.set {
			fields = append(fields, httpx.FieldError{Field: f.name, Reason: "is read-only on a default rule"})
		}
	}
	return fields
}

// deleteRule deletes one of the caller's rules; on a default rule it
// removes the caller's override (back to the shipped settings).
func (a *API) deleteRule(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alert rules")
	if !ok {
		return
	}
	rs, err := a.loadRules(r, s.owner())
	if err != nil {
		a.internalError(w, r, "delete rule", err)
		return
	}
	id := chi.URLParam(r, "id")
	if _, isDefault := rs.defaultRule(id); isDefault {
		if _, overridden := rs.overrides[id]; !overridden {
			httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
				"default rules cannot be deleted; PATCH disabled to turn one off"))
			return
		}
	}
	if err := a.store.DeleteRule(r.Context(), s.owner(), id); err != nil {
		a.storeError(w, r, "alert rule", err)
		return
	}
	a.reload(r.Context(), engine.ReloadRules)
	w.WriteHeader(http.StatusNoContent)
}

// applyRule folds b into rule; durations that do not parse are named.
func applyRule(rule *rules.Rule, b ruleBody) []httpx.FieldError {
	var fields []httpx.FieldError
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&rule.ID, b.ID)
	set(&rule.Name, b.Name)
	set(&rule.Expr, b.Expr)
	set(&rule.Engine, b.Engine)
	set(&rule.Role, b.Role)
	set(&rule.Action, b.Action)
	if b.Kind != nil {
		rule.Kind = rules.Kind(*b.Kind)
	}
	for _, d := range []struct {
		field string
		in    *string
		dst   *time.Duration
	}{{"for", b.For, &rule.For}, {"resolve_after", b.ResolveAfter, &rule.ResolveAfter}} {
		if d.in == nil {
			continue
		}
		if *d.in == "" {
			*d.dst = 0
			continue
		}
		v, err := time.ParseDuration(*d.in)
		if err != nil || v < 0 {
			fields = append(fields, httpx.FieldError{Field: d.field, Reason: `must be a duration such as "30s" or "5m"`})
			continue
		}
		*d.dst = v
	}
	if b.On != nil {
		rule.On = *b.On
	}
	if b.ResolveOn != nil {
		rule.ResolveOn = *b.ResolveOn
	}
	if b.Match != nil {
		rule.Match = *b.Match
	}
	if b.Labels != nil {
		rule.Labels = *b.Labels
		// A tenant's rule raises that tenant's alerts only.
		if v, ok := rule.Labels[alert.LabelTenant]; ok && rule.Tenant != "" && v != rule.Tenant {
			fields = append(fields, httpx.FieldError{Field: "labels.tenant", Reason: "may only be " + rule.Tenant})
		}
	}
	if b.Annotations != nil {
		rule.Annotations = *b.Annotations
	}
	if b.ActionEnabled != nil {
		rule.ActionEnabled = *b.ActionEnabled
	}
	if b.Disabled != nil {
		rule.Disabled = *b.Disabled
	}
	return fields
}
