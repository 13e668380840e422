package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// RestoreRequest is the body of POST /internal/v1/restores, as
// provisioning sends it when an order carries restore_from.
type RestoreRequest struct {
	TenantID         string        `json:"tenant_id"`
	SourceInstanceID string        `json:"source_instance_id"`
	TargetInstanceID string        `json:"target_instance_id"`
	Engine           string        `json:"engine"`
	Target           RestoreTarget `json:"target"`
}

// RestoreTarget is exactly one of a backup id, a point in time (RFC 3339,
// to the second) and a GTID.
type RestoreTarget struct {
	BackupID    string `json:"backup_id,omitempty"`
	PointInTime string `json:"point_in_time,omitempty"`
	GTID        string `json:"gtid,omitempty"`
}

// restorer admits only the signed identity of provisioning; anyone else
// gets 404, as if the routes did not exist: they restore any tenant's data
// into new instances.
func restorer(w http.ResponseWriter, r *http.Request) (tenancy.Principal, bool) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, "missing identity"))
		return p, false
	}
	if p.Subject != Restorer {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such resource"))
		return p, false
	}
	return p, true
}

// target checks the request's target; the fields it names are the
// request's (target.point_in_time, ...).
func (rt RestoreTarget) target() (backup.Target, []httpx.FieldError) {
	var t backup.Target
	var fields []httpx.FieldError
	n := 0
	if rt.BackupID != "" {
		n++
		t.BackupID = rt.BackupID
	}
	if rt.GTID != "" {
		n++
		t.GTID = rt.GTID
	}
	if rt.PointInTime != "" {
		n++
		at, err := time.Parse(time.RFC3339, rt.PointInTime)
		switch {
		case err != nil:
			fields = append(fields, httpx.FieldError{Field: "target.point_in_time", Reason: "must be an RFC 3339 time (2026-12-03T10:00:00Z)"})
		case at.Nanosecond() != 0:
			fields = append(fields, httpx.FieldError{Field: "target.point_in_time", Reason: "must be to the second"})
		default:
			t.PointInTime = at.UTC()
		}
	}
	if n != 1 {
		fields = append(fields, httpx.FieldError{Field: "target", Reason: "exactly one of backup_id, point_in_time and gtid is required"})
	}
	return t, fields
}

// startRestore plans a restore of a tenant's instance into the instance
// provisioning is creating and queues the job: 404 when the source (or the
// named backup) is unknown to the tenant, 422 for a target that cannot be
// reached (the window's earliest and latest named) or an engine mismatch.
func (a *API) startRestore(w http.ResponseWriter, r *http.Request) {
	p, ok := restorer(w, r)
	if !ok {
		return
	}
	var req RestoreRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var fields []httpx.FieldError
	for _, f := range []struct{ name, v string }{
		{"tenant_id", req.TenantID}, {"source_instance_id", req.SourceInstanceID},
		{"target_instance_id", req.TargetInstanceID}, {"engine", req.Engine},
	} {
		if f.v == "" {
			fields = append(fields, httpx.FieldError{Field: f.name, Reason: "is required"})
		}
	}
	t, tf := req.Target.target()
	fields = append(fields, tf...)
	if len(fields) > 0 {
		// provisioning shows the detail to its user: it says it all.
		reasons := make([]string, len(fields))
		for i, fe := range fields {
			reasons[i] = fe.Field + " " + fe.Reason
		}
		httpx.WriteProblem(w, r, httpx.Unprocessable("invalid restore: "+strings.Join(reasons, "; "), fields...))
		return
	}
	if p.Tenant != "" && string(p.Tenant) != req.TenantID {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "tenant_id is not the signed tenant"))
		return
	}
	ctx := r.Context()
	src, err := a.store.GetInstance(ctx, req.TenantID, req.SourceInstanceID)
	if err != nil {
		a.domainError(w, r, "source instance", err, "tenant", req.TenantID, "instance", req.SourceInstanceID)
		return
	}
	if string(src.Engine) != req.Engine {
		httpx.WriteProblem(w, r, httpx.Unprocessable("the source instance's engine is "+string(src.Engine)+", not "+req.Engine,
			httpx.FieldError{Field: "engine", Reason: "must be the source instance's engine (" + string(src.Engine) + ")"}))
		return
	}
	job, err := a.restores.Start(ctx, req.TenantID, src.ID, req.TargetInstanceID, t)
	if err != nil {
		what := "source instance"
		if t.BackupID != "" && errors.Is(err, backup.ErrNotFound) {
			what = "backup " + t.BackupID + " of instance " + src.ID
		}
		a.domainError(w, r, what, err, "tenant", req.TenantID, "instance", src.ID, "target_instance", req.TargetInstanceID)
		return
	}
	a.log.InfoContext(ctx, "restore queued", "tenant", req.TenantID, "instance", src.ID, "target_instance", req.TargetInstanceID,
		"restore", job.ID)
	httpx.WriteJSON(w, http.StatusOK, job)
}

// job returns the {id} job of the signed tenant (any with no tenant in
// the identity); on false the problem has been written.
func (a *API) job(w http.ResponseWriter, r *http.Request, p tenancy.Principal) (backup.Restore, bool) {
	id := chi.URLParam(r, "id")
	job, err := a.restores.Get(r.Context(), id)
	if err == nil && p.Tenant != "" && job.TenantID != string(p.Tenant) {
		err = backup.ErrNotFound
	}
	if err != nil {
		a.domainError(w, r, "restore", err, "tenant", string(p.Tenant), "restore", id)
		return backup.Restore{}, false
	}
	return job, true
}

// getRestore is what provisioning polls while its instance is restoring.
func (a *API) getRestore(w http.ResponseWriter, r *http.Request) {
	p, ok := restorer(w, r)
	if !ok {
		return
	}
	if job, ok := a.job(w, r, p); ok {
		httpx.WriteJSON(w, http.StatusOK, job)
	}
}

// doneRestore says provisioning copied the seed: it can go (204, also
// when the job was done already).
func (a *API) doneRestore(w http.ResponseWriter, r *http.Request) {
	p, ok := restorer(w, r)
	if !ok {
		return
	}
	job, ok := a.job(w, r, p)
	if !ok {
		return
	}
	if err := a.restores.Done(r.Context(), job.ID); err != nil {
		a.domainError(w, r, "restore", err, "tenant", job.TenantID, "restore", job.ID)
		return
	}
	a.log.InfoContext(r.Context(), "restore seed taken", "tenant", job.TenantID, "instance", job.SourceInstanceID,
		"target_instance", job.TargetInstanceID, "restore", job.ID)
	w.WriteHeader(http.StatusNoContent)
}
