package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Backup is a backup as the API shows it: no repository keys or data key.
type Backup struct {
	ID           string            `json:"id"`
	TenantID     string            `json:"tenant_id"`
	InstanceID   string            `json:"instance_id"`
	Engine       string            `json:"engine"`
	Kind         string            `json:"kind"`
	Trigger      string            `json:"trigger"`
	Status       string            `json:"status"`
	NodeID       string            `json:"node_id,omitempty"`
	FromReplica  bool              `json:"from_replica"`
	StartedAt    time.Time         `json:"started_at"`
	FinishedAt   *time.Time        `json:"finished_at,omitempty"`
	DataBytes    int64             `json:"data_bytes"`
	StoredBytes  int64             `json:"stored_bytes"`
	GTID         string            `json:"gtid,omitempty"`
	ConsistentAt *time.Time        `json:"consistent_at,omitempty"`
	Offset       int64             `json:"offset,omitempty"`
	Verified     bool              `json:"verified"`
	VerifiedAt   *time.Time        `json:"verified_at,omitempty"`
	Stats        *backup.DataStats `json:"stats,omitempty"`
	Copies       []string          `json:"copies"`
	Monthly      bool              `json:"monthly"`
	Error        string            `json:"error,omitempty"`
}

// timePtr is nil for the zero time, else t in UTC.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func backupJSON(b backup.Backup) Backup {
	copies := b.Copies
	if copies == nil {
		copies = []string{}
	}
	return Backup{ID: b.ID, TenantID: b.TenantID, InstanceID: b.InstanceID, Engine: string(b.Engine), Kind: string(b.Kind),
		Trigger: string(b.Trigger), Status: string(b.Status), NodeID: b.NodeID, FromReplica: b.FromReplica,
		StartedAt: b.StartedAt.UTC(), FinishedAt: timePtr(b.FinishedAt), DataBytes: b.DataBytes, StoredBytes: b.StoredBytes,
		GTID: b.GTID, ConsistentAt: timePtr(b.ConsistentAt), Offset: b.Offset, Verified: b.Verified,
		VerifiedAt: timePtr(b.VerifiedAt), Stats: b.Stats, Copies: copies, Monthly: b.Monthly, Error: b.Error}
}

// createBackup starts an on-demand backup; 409 while one runs.
func (a *API) createBackup(w http.ResponseWriter, r *http.Request) {
	in, ok := a.instance(w, r, tenancy.ActionWrite, "backups")
	if !ok || !live(w, r, in) {
		return
	}
	b, err := a.engine.BackupNow(r.Context(), in.TenantID, in.ID)
	if err != nil {
		a.domainError(w, r, "instance", err, "tenant", in.TenantID, "instance", in.ID)
		return
	}
	a.log.InfoContext(r.Context(), "on-demand backup started", "tenant", in.TenantID, "instance", in.ID, "backup", b.ID,
		"subject", subject(r))
	w.Header().Set("Location", "/api/v1/instances/"+in.ID+"/backups/"+b.ID)
	httpx.WriteJSON(w, http.StatusAccepted, backupJSON(b))
}

// listBackups pages an instance's backups, newest first; a deleted
// instance's stay listed.
func (a *API) listBackups(w http.ResponseWriter, r *http.Request) {
	in, ok := a.instance(w, r, tenancy.ActionRead, "backups")
	if !ok {
		return
	}
	limit, after, err := paging.ParseKey(r.URL.Query())
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	rows, err := a.store.ListBackups(r.Context(), in.TenantID, in.ID, after, limit+1)
	if errors.Is(err, backup.ErrInvalid) { // a cursor that is no backup of this instance
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid query parameter",
			httpx.FieldError{Field: "cursor", Reason: "is not a cursor this endpoint issued"}))
		return
	}
	if err != nil {
		a.internalError(w, r, "list backups", err, "tenant", in.TenantID, "instance", in.ID)
		return
	}
	items, next := paging.KeyPage(rows, limit, func(b backup.Backup) string { return b.ID }, backupJSON)
	httpx.WriteJSON(w, http.StatusOK, list[Backup]{Items: items, NextCursor: next})
}

func (a *API) getBackup(w http.ResponseWriter, r *http.Request) {
	in, ok := a.instance(w, r, tenancy.ActionRead, "backups")
	if !ok {
		return
	}
	id := chi.URLParam(r, "backup_id")
	b, err := a.store.GetBackup(r.Context(), in.TenantID, in.ID, id)
	if err != nil {
		a.domainError(w, r, "backup", err, "tenant", in.TenantID, "instance", in.ID, "backup", id)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, backupJSON(b))
}

// RestoreWindow is the answer of GET /api/v1/instances/{id}/restore-window.
type RestoreWindow struct {
	// Available is false when nothing can be restored yet (no completed
	// backup); Earliest and Latest are then absent.
	Available  bool       `json:"available"`
	Earliest   *time.Time `json:"earliest,omitempty"`
	Latest     *time.Time `json:"latest,omitempty"`
	LatestGTID string     `json:"latest_gtid,omitempty"`
	// ArchiveLagSeconds is how far the binlog archive is behind the
	// primary; absent when the instance is not archived (Redis, a deleted
	// instance, an archiver not running here).
	ArchiveLagSeconds *float64 `json:"archive_lag_seconds,omitempty"`
}

// restoreWindow computes the range a restore can reach from the stored
// completed backups and archived segments.
func (a *API) restoreWindow(w http.ResponseWriter, r *http.Request) {
	in, ok := a.instance(w, r, tenancy.ActionRead, "backups")
	if !ok {
		return
	}
	all, err := a.store.AllBackups(r.Context(), in.ID)
	if err != nil {
		a.internalError(w, r, "read backups", err, "tenant", in.TenantID, "instance", in.ID)
		return
	}
	completed := make([]backup.Backup, 0, len(all))
	for _, b := range all {
		if b.Status == backup.StatusCompleted {
			completed = append(completed, b)
		}
	}
	// Binlog segments (MySQL) or AOF chains (Redis).
	segs, err := a.store.Segments(r.Context(), in.ID, 0)
	if err != nil {
		a.internalError(w, r, "read segments", err, "tenant", in.TenantID, "instance", in.ID)
		return
	}
	var out RestoreWindow
	if win, ok := backup.RestoreWindow(completed, segs); ok {
		out = RestoreWindow{Available: true, Earliest: timePtr(win.Earliest), Latest: timePtr(win.Latest), LatestGTID: win.LatestGTID}
	}
	if lag, ok := a.engine.ArchiveLag(in.ID); ok {
		s := lag.Seconds()
		out.ArchiveLagSeconds = &s
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// subject names the caller in logs.
func subject(r *http.Request) string {
	p, _ := tenancy.PrincipalFrom(r.Context())
	return p.Subject
}
