package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
)

// Policy is an effective policy with durations as Go duration strings
// ("2h", "720h").
type Policy struct {
	Enabled           bool   `json:"enabled"`
	WindowStart       string `json:"window_start"`
	WindowLength      string `json:"window_length"`
	DailyKeepDays     int    `json:"daily_keep_days"`
	PITRDays          int    `json:"pitr_days"`
	MonthlyKeepMonths int    `json:"monthly_keep_months"`
	DrillEvery        string `json:"drill_every"`
	SnapshotEvery     string `json:"snapshot_every"`
}

// PolicyOverride is a plan's or an instance's change to the policy below
// it; an absent member keeps the value below.
type PolicyOverride struct {
	Enabled           *bool   `json:"enabled,omitempty"`
	WindowStart       *string `json:"window_start,omitempty"`
	WindowLength      *string `json:"window_length,omitempty"`
	DailyKeepDays     *int    `json:"daily_keep_days,omitempty"`
	PITRDays          *int    `json:"pitr_days,omitempty"`
	MonthlyKeepMonths *int    `json:"monthly_keep_months,omitempty"`
	DrillEvery        *string `json:"drill_every,omitempty"`
	SnapshotEvery     *string `json:"snapshot_every,omitempty"`
}

// InstancePolicy is the answer of /api/v1/instances/{id}/backup-policy.
type InstancePolicy struct {
	InstanceID string `json:"instance_id"`
	PlanID     string `json:"plan_id"`
	// Effective is what the engine applies: the platform default, then the
	// plan's override, then the instance's.
	Effective    Policy         `json:"effective"`
	PlanOverride PolicyOverride `json:"plan_override"`
	Override     PolicyOverride `json:"override"`
}

// PlanPolicy is the answer of /api/v1/backup-policies/plans/{plan_id}.
type PlanPolicy struct {
	PlanID string `json:"plan_id"`
	// Effective is the platform default changed by the plan's override:
	// what an instance of the plan without an override of its own gets.
	Effective Policy         `json:"effective"`
	Override  PolicyOverride `json:"override"`
}

func policyJSON(p backup.Policy) Policy {
	return Policy{Enabled: p.Enabled, WindowStart: backup.FormatDuration(p.WindowStart), WindowLength: backup.FormatDuration(p.WindowLength),
		DailyKeepDays: p.DailyKeepDays, PITRDays: p.PITRDays, MonthlyKeepMonths: p.MonthlyKeepMonths,
		DrillEvery: backup.FormatDuration(p.DrillEvery), SnapshotEvery: backup.FormatDuration(p.SnapshotEvery)}
}

func durationJSON(d *time.Duration) *string {
	if d == nil {
		return nil
	}
	s := backup.FormatDuration(*d)
	return &s
}

func overrideJSON(o backup.PolicyOverride) PolicyOverride {
	return PolicyOverride{Enabled: o.Enabled, WindowStart: durationJSON(o.WindowStart), WindowLength: durationJSON(o.WindowLength),
		DailyKeepDays: o.DailyKeepDays, PITRDays: o.PITRDays, MonthlyKeepMonths: o.MonthlyKeepMonths,
		DrillEvery: durationJSON(o.DrillEvery), SnapshotEvery: durationJSON(o.SnapshotEvery)}
}

// toOverride parses the durations of o; unparsable ones are named.
func toOverride(o PolicyOverride) (backup.PolicyOverride, []httpx.FieldError) {
	var fields []httpx.FieldError
	parse := func(field string, s *string) *time.Duration {
		if s == nil {
			return nil
		}
		d, err := time.ParseDuration(*s)
		if err != nil {
			fields = append(fields, httpx.FieldError{Field: field, Reason: fmt.Sprintf("must be a duration such as \"2h\" or \"720h\", not %q", *s)})
			return nil
		}
		return &d
	}
	out := backup.PolicyOverride{Enabled: o.Enabled, WindowStart: parse("window_start", o.WindowStart),
		WindowLength: parse("window_length", o.WindowLength), DailyKeepDays: o.DailyKeepDays, PITRDays: o.PITRDays,
		MonthlyKeepMonths: o.MonthlyKeepMonths, DrillEvery: parse("drill_every", o.DrillEvery),
		SnapshotEvery: parse("snapshot_every", o.SnapshotEvery)}
	return out, fields
}

// decodeOverride reads and validates a PUT body; on false the problem has
// been written.
func decodeOverride(w http.ResponseWriter, r *http.Request) (backup.PolicyOverride, bool) {
	var body PolicyOverride
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, r, err)
		return backup.PolicyOverride{}, false
	}
	o, fields := toOverride(body)
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid backup policy", fields...))
		return backup.PolicyOverride{}, false
	}
	if err := o.Validate(); err != nil {
		unprocessable(w, r, err)
		return backup.PolicyOverride{}, false
	}
	return o, true
}

// unprocessable answers 422 for a policy the domain refused, naming its
// field when it says which.
func unprocessable(w http.ResponseWriter, r *http.Request, err error) {
	var fe *backup.FieldError
	if errors.As(err, &fe) {
		httpx.WriteProblem(w, r, httpx.Unprocessable("invalid backup policy", httpx.FieldError{Field: fe.Field, Reason: fe.Reason}))
		return
	}
	httpx.WriteProblem(w, r, httpx.Unprocessable(err.Error()))
}

func (a *API) getInstancePolicy(w http.ResponseWriter, r *http.Request) {
	in, ok := a.instance(w, r, tenancy.ActionRead, "backup policies")
	if !ok {
		return
	}
	a.writeInstancePolicy(w, r, in)
}

// putInstancePolicy replaces the instance's override; the engine applies
// the stored policy from its next schedule decision.
func (a *API) putInstancePolicy(w http.ResponseWriter, r *http.Request) {
	in, ok := a.instance(w, r, tenancy.ActionWrite, "backup policies")
	if !ok || !live(w, r, in) {
		return
	}
	o, ok := decodeOverride(w, r)
	if !ok {
		return
	}
	plan, _, err := a.store.PolicyOverride(r.Context(), backupstore.ScopePlan, in.PlanID)
	if err != nil {
		a.internalError(w, r, "read plan backup policy", err, "tenant", in.TenantID, "instance", in.ID, "plan", in.PlanID)
		return
	}
	// An override valid on its own may still clash with the values below
	// it (pitr_days above the plan's daily_keep_days).
	if err := backup.Resolve(a.base, plan, o).Validate(); err != nil {
		unprocessable(w, r, err)
		return
	}
	if err := a.store.SetPolicyOverride(r.Context(), backupstore.ScopeInstance, in.ID, o); err != nil {
		a.internalError(w, r, "store backup policy", err, "tenant", in.TenantID, "instance", in.ID)
		return
	}
	a.log.InfoContext(r.Context(), "instance backup policy changed", "tenant", in.TenantID, "instance", in.ID, "subject", subject(r))
	a.writeInstancePolicy(w, r, in)
}

func (a *API) writeInstancePolicy(w http.ResponseWriter, r *http.Request, in backup.Instance) {
	ctx := r.Context()
	eff, err := a.engine.Policy(ctx, in.ID)
	if err != nil {
		a.domainError(w, r, "instance", err, "tenant", in.TenantID, "instance", in.ID)
		return
	}
	out := InstancePolicy{InstanceID: in.ID, PlanID: in.PlanID, Effective: policyJSON(eff)}
	for _, o := range []struct {
		scope, id string
		dst       *PolicyOverride
	}{{backupstore.ScopePlan, in.PlanID, &out.PlanOverride}, {backupstore.ScopeInstance, in.ID, &out.Override}} {
		if o.id == "" {
			continue
		}
		po, _, err := a.store.PolicyOverride(ctx, o.scope, o.id)
		if err != nil {
			a.internalError(w, r, "read backup policy", err, "tenant", in.TenantID, "instance", in.ID)
			return
		}
		*o.dst = overrideJSON(po)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// maxPlanID bounds a plan id in a path (catalog ids are UUIDs).
const maxPlanID = 128

// planID reads {plan_id}; on false the problem has been written.
func planID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "plan_id")
	if id == "" || len(id) > maxPlanID {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid plan id",
			httpx.FieldError{Field: "plan_id", Reason: fmt.Sprintf("must be 1 to %d characters", maxPlanID)}))
		return "", false
	}
	return id, true
}

// getPlanPolicy shows a plan's override; plans are the catalog's, public
// to every role.
func (a *API) getPlanPolicy(w http.ResponseWriter, r *http.Request) {
	if _, ok := authorize(w, r, tenancy.ActionRead, "backup policies"); !ok {
		return
	}
	id, ok := planID(w, r)
	if !ok {
		return
	}
	o, _, err := a.store.PolicyOverride(r.Context(), backupstore.ScopePlan, id)
	if err != nil {
		a.internalError(w, r, "read plan backup policy", err, "plan", id)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a.planPolicy(id, o))
}

func (a *API) planPolicy(id string, o backup.PolicyOverride) PlanPolicy {
	return PlanPolicy{PlanID: id, Effective: policyJSON(backup.Resolve(a.base, o)), Override: overrideJSON(o)}
}

// putPlanPolicy replaces a plan's override: a platform operation, since
// it changes every tenant's instances of the plan.
func (a *API) putPlanPolicy(w http.ResponseWriter, r *http.Request) {
	if _, ok := authorize(w, r, tenancy.ActionAdmin, "plan backup policies"); !ok {
		return
	}
	id, ok := planID(w, r)
	if !ok {
		return
	}
	o, ok := decodeOverride(w, r)
	if !ok {
		return
	}
	if err := backup.Resolve(a.base, o).Validate(); err != nil {
		unprocessable(w, r, err)
		return
	}
	if err := a.store.SetPolicyOverride(r.Context(), backupstore.ScopePlan, id, o); err != nil {
		a.internalError(w, r, "store plan backup policy", err, "plan", id)
		return
	}
	a.log.InfoContext(r.Context(), "plan backup policy changed", "plan", id, "subject", subject(r))
	httpx.WriteJSON(w, http.StatusOK, a.planPolicy(id, o))
}
