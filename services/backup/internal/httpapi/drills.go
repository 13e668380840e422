package httpapi

import (
	"net/http"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Drill is a restore drill's report as the API shows it.
type Drill struct {
	ID                string            `json:"id"`
	TenantID          string            `json:"tenant_id"`
	InstanceID        string            `json:"instance_id"`
	BackupID          string            `json:"backup_id,omitempty"`
	Status            string            `json:"status"`
	ScratchInstanceID string            `json:"scratch_instance_id,omitempty"`
	StartedAt         time.Time         `json:"started_at"`
	FinishedAt        *time.Time        `json:"finished_at,omitempty"`
	Expected          *backup.DataStats `json:"expected,omitempty"`
	Measured          *backup.DataStats `json:"measured,omitempty"`
	Mismatches        []string          `json:"mismatches"`
	RestoreSeconds    float64           `json:"restore_seconds"`
	Error             string            `json:"error,omitempty"`
}

func drillJSON(d backup.Drill) Drill {
	mm := d.Mismatches
	if mm == nil {
		mm = []string{}
	}
	return Drill{ID: d.ID, TenantID: d.TenantID, InstanceID: d.InstanceID, BackupID: d.BackupID, Status: string(d.Status),
		ScratchInstanceID: d.ScratchInstanceID, StartedAt: d.StartedAt.UTC(), FinishedAt: timePtr(d.FinishedAt),
		Expected: d.Expected, Measured: d.Measured, Mismatches: mm, RestoreSeconds: d.RestoreSeconds, Error: d.Error}
}

// listDrills lists an instance's drills, newest first, at most limit.
func (a *API) listDrills(w http.ResponseWriter, r *http.Request) {
	in, ok := a.instance(w, r, tenancy.ActionRead, "restore drills")
	if !ok {
		return
	}
	limit, err := paging.ParseLimit(r.URL.Query(), paging.DefaultLimit)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	ds, err := a.store.ListDrills(r.Context(), in.TenantID, in.ID, limit)
	if err != nil {
		a.internalError(w, r, "list drills", err, "tenant", in.TenantID, "instance", in.ID)
		return
	}
	out := list[Drill]{Items: make([]Drill, 0, len(ds))}
	for _, d := range ds {
		out.Items = append(out.Items, drillJSON(d))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// createDrill starts a drill now; it runs in the background and its
// report is listed.
func (a *API) createDrill(w http.ResponseWriter, r *http.Request) {
	in, ok := a.instance(w, r, tenancy.ActionWrite, "restore drills")
	if !ok || !live(w, r, in) {
		return
	}
	d, err := a.drills.Start(r.Context(), in.TenantID, in.ID)
	if err != nil {
		a.domainError(w, r, "instance", err, "tenant", in.TenantID, "instance", in.ID)
		return
	}
	a.log.InfoContext(r.Context(), "restore drill started", "tenant", in.TenantID, "instance", in.ID, "drill", d.ID, "subject", subject(r))
	httpx.WriteJSON(w, http.StatusAccepted, drillJSON(d))
}
