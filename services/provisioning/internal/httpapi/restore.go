package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"

	"github.com/canopy-platform/canopy/services/provisioning/internal/backupclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// Backups starts and releases the backup service's restore jobs;
// *backupclient.Client implements it.
type Backups interface {
	Start(ctx context.Context, r backupclient.StartRequest) (port.RestoreJob, error)
	Done(ctx context.Context, tenant, id string) error
}

// WithBackups lets orders name restore_from: the backup service makes
// their data. Without it such orders are refused with 503.
func (h *Handler) WithBackups(b Backups) { h.backups = b }

// restoreFromJSON is an order's restore_from: the source instance and
// exactly one target.
type restoreFromJSON struct {
	InstanceID  string `json:"instance_id"`
	BackupID    string `json:"backup_id,omitempty"`
	PointInTime string `json:"point_in_time,omitempty"`
	GTID        string `json:"gtid,omitempty"`
}

// ProblemNoSuchBackup is the detail of the 404 of an order whose
// restore_from names what the tenant does not have.
const ProblemNoSuchBackup = "restore_from: no such instance or backup"

// parse checks restore_from: instance_id is required (400), exactly one
// target and a point in time in RFC 3339 to the second (422).
func (rf *restoreFromJSON) parse() (instance.Restore, *httpx.Problem) {
	if rf.InstanceID == "" {
		return instance.Restore{}, httpx.BadRequest("required fields are missing", httpx.FieldError{Field: "restore_from.instance_id", Reason: "is required"})
	}
	out := instance.Restore{SourceInstanceID: rf.InstanceID, BackupID: rf.BackupID, GTID: rf.GTID}
	set := 0
	for _, v := range []string{rf.BackupID, rf.PointInTime, rf.GTID} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return instance.Restore{}, httpx.Unprocessable("invalid restore_from",
			httpx.FieldError{Field: "restore_from", Reason: "must name exactly one of backup_id, point_in_time and gtid"})
	}
	if rf.PointInTime != "" {
		t, err := time.Parse(time.RFC3339Nano, rf.PointInTime)
		if err != nil || t.Nanosecond() != 0 {
			return instance.Restore{}, httpx.Unprocessable("invalid restore_from",
				httpx.FieldError{Field: "restore_from.point_in_time", Reason: "must be an RFC 3339 time to the second, e.g. 2026-03-01T12:30:05Z"})
		}
		out.PointInTime = t.UTC()
	}
	return out, nil
}

// startRestore checks the source (the tenant's own instance of the plan's
// engine, on a plan no bigger than this one: the data must fit) and asks the backup service for a restore job making instance id
// from it. It answers the problem the caller writes when the restore cannot
// start: 404 (the tenant has no such instance or backup), 422 (the backup
// service refuses the target, or another engine), 503 (the backup service
// does not answer).
func (h *Handler) startRestore(ctx context.Context, tenant, id string, plan instance.Plan, rf instance.Restore) (*instance.Restore, error) {
	engine := plan.Engine
	if h.backups == nil {
		return nil, backupUnavailable("restores are not available: provisioning has no backup service")
	}
	notFound := func() error {
		return &httpx.Problem{Title: "Not Found", Status: http.StatusNotFound, Detail: ProblemNoSuchBackup,
			Errors: []httpx.FieldError{{Field: "restore_from", Reason: "no such instance or backup in this tenant"}}}
	}
	src, err := h.repo.Get(ctx, tenant, rf.SourceInstanceID)
	if errors.Is(err, mysqlrepo.ErrNotFound) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	if src.Plan.Engine != engine {
		return nil, httpx.Unprocessable("restore_from: the source instance runs another engine than the plan",
			httpx.FieldError{Field: "restore_from.instance_id", Reason: fmt.Sprintf("is a %s instance; the plan is %s", src.Plan.Engine, engine)})
	}
	if small := smallerThan(plan.Resources, src.Plan.Resources); small != "" {
		return nil, httpx.Unprocessable("restore_from: the plan is smaller than the source instance's",
			httpx.FieldError{Field: "plan_id", Reason: fmt.Sprintf("restoring %s needs a plan at least as big as its plan %s: %s",
				rf.SourceInstanceID, src.Plan.Name, small)})
	}
	job, err := h.backups.Start(ctx, backupclient.StartRequest{TenantID: tenant, SourceID: rf.SourceInstanceID, TargetID: id, Engine: engine,
		Target: backupclient.Target{BackupID: rf.BackupID, PointInTime: rf.PointInTime, GTID: rf.GTID}})
	var rej *backupclient.RejectedError
	switch {
	case errors.Is(err, backupclient.ErrNotFound):
		return nil, notFound()
	case errors.As(err, &rej):
		return nil, httpx.Unprocessable("restore_from: "+rej.Detail, httpx.FieldError{Field: restoreField(rf), Reason: rej.Detail})
	case err != nil:
		h.log.WarnContext(ctx, "start a restore; refusing the order", "tenant", tenant, "source", rf.SourceInstanceID, "err", err)
		return nil, backupUnavailable("the backup service could not be reached to start the restore; try again")
	}
	out := rf
	out.ID = job.ID
	if engine == instance.EngineMySQL {
		// The tenant's tables are in the source's database.
		out.Database = src.Database()
	}
	h.log.InfoContext(ctx, "restore started for an order", "tenant", tenant, "instance", id, "source", rf.SourceInstanceID, "restore", job.ID)
	return &out, nil
}

// restoreField names the target member of restore_from a refusal is about.
func restoreField(rf instance.Restore) string {
	switch {
	case rf.BackupID != "":
		return "restore_from.backup_id"
	case !rf.PointInTime.IsZero():
		return "restore_from.point_in_time"
	case rf.GTID != "":
		return "restore_from.gtid"
	}
	return "restore_from"
}

// releaseRestore tells the backup service a restore job started for an
// order that was then refused is not needed (best effort: seeds expire).
func (h *Handler) releaseRestore(ctx context.Context, tenant string, r *instance.Restore) {
	if r == nil || h.backups == nil {
		return
	}
	if err := h.backups.Done(ctx, tenant, r.ID); err != nil {
		h.log.WarnContext(ctx, "release the restore job of a refused order", "tenant", tenant, "restore", r.ID, "err", err)
	}
}

// backupUnavailable is the 503 of an order whose restore could not start.
func backupUnavailable(detail string) *httpx.Problem {
	p := httpx.NewProblem(http.StatusServiceUnavailable, detail)
	p.Type = "https://canopy.dev/problems/backup-unavailable"
	return p
}

// smallerThan names the first per-node resource in which plan is smaller
// than the source's ("" when none): a restore goes into the same or a
// bigger plan, so that the data and its working set fit.
func smallerThan(plan, source instance.Resources) string {
	switch {
	case plan.StorageGB < source.StorageGB:
		return fmt.Sprintf("storage %d GB < %d GB", plan.StorageGB, source.StorageGB)
	case plan.MemoryMB < source.MemoryMB:
		return fmt.Sprintf("memory %d MB < %d MB", plan.MemoryMB, source.MemoryMB)
	case plan.VCPU < source.VCPU:
		return fmt.Sprintf("vCPU %g < %g", plan.VCPU, source.VCPU)
	}
	return ""
}
