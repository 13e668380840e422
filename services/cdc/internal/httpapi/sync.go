package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// EngineRedis is the engine of a sync job's cache target.
const EngineRedis = "redis"

// SyncJobs is the sync jobs' storage; *mysqlstore.Store fits. Lists return
// up to limit+1 rows after the cursor (an id), oldest first; tenant ""
// means any tenant's.
type SyncJobs interface {
	CreateJob(ctx context.Context, j syncjob.Job) (syncjob.Job, error)
	GetJob(ctx context.Context, tenant, id string) (syncjob.Job, error)
	ListJobs(ctx context.Context, tenant, after string, limit int) ([]syncjob.Job, error)
	TransitionJob(ctx context.Context, tenant, id string, a syncjob.Action) (syncjob.Job, error)
	ListConflicts(ctx context.Context, tenant, jobID string, pendingOnly bool, after string, limit int) ([]syncjob.Conflict, error)
	GetConflict(ctx context.Context, tenant, jobID, id string) (syncjob.Conflict, error)
	ResolveConflict(ctx context.Context, id string, use syncjob.Resolution) error
	CreateVerification(ctx context.Context, v syncjob.Verification) error
	FinishVerification(ctx context.Context, v syncjob.Verification) error
	GetVerification(ctx context.Context, tenant, jobID, id string) (syncjob.Verification, error)
	ListVerifications(ctx context.Context, tenant, jobID, after string, limit int) ([]syncjob.Verification, error)
}

// SyncRunner is the sync runner as the API uses it: Kick wakes it for a
// job that was created or changed; Resolve applies the chosen side of a
// manual conflict to the target; Verify starts a verification, which it
// finishes (FinishVerification) on its own.
type SyncRunner interface {
	Kick(id string)
	Resolve(ctx context.Context, j syncjob.Job, c syncjob.Conflict, use syncjob.Resolution) error
	Verify(ctx context.Context, j syncjob.Job, v syncjob.Verification) error
}

// SyncHandler serves the sync jobs' API.
type SyncHandler struct {
	jobs      SyncJobs
	instances Instances
	runner    SyncRunner
	now       func() time.Time
	newID     func() string
}

// NewSync returns the sync jobs' handler; every dependency is required.
// instances is the same provisioning view the streams' API reads.
func NewSync(jobs SyncJobs, instances Instances, runner SyncRunner) (*SyncHandler, error) {
	if jobs == nil || instances == nil || runner == nil {
		return nil, errors.New("httpapi: nil sync jobs, instances or runner")
	}
	return &SyncHandler{jobs: jobs, instances: instances, runner: runner, now: time.Now,
		newID: func() string { return ulid.Make().String() }}, nil
}

// Routes mounts the sync jobs' API on r (behind tenancy.Middleware). Colon
// actions ({id}:pause) have slash aliases ({id}/pause) for proxies that
// route on path segments.
func (h *SyncHandler) Routes(r chi.Router) {
	const base = "/api/v1/sync-jobs"
	r.Post(base, h.create)
	r.Get(base, h.list)
	r.Get(base+"/{id}", h.get)
	r.Delete(base+"/{id}", h.action(syncjob.ActionDelete, http.StatusAccepted))
	for _, a := range []syncjob.Action{syncjob.ActionPause, syncjob.ActionResume} {
		r.Post(base+"/{id}:"+string(a), h.action(a, http.StatusOK))
		r.Post(base+"/{id}/"+string(a), h.action(a, http.StatusOK))
	}
	r.Get(base+"/{id}/conflicts", h.listConflicts)
	r.Get(base+"/{id}/conflicts/{cid}", h.getConflict)
	r.Post(base+"/{id}/conflicts/{cid}:resolve", h.resolve)
	r.Post(base+"/{id}/conflicts/{cid}/resolve", h.resolve)
	r.Post(base+"/{id}/verifications", h.verify)
	r.Get(base+"/{id}/verifications", h.listVerifications)
	r.Get(base+"/{id}/verifications/{vid}", h.getVerification)
}

// SyncTarget is where a job applies: instance (MySQL) or redis_instance
// with its key pattern, format and TTL.
type SyncTarget struct {
	Instance      string `json:"instance,omitempty"`
	RedisInstance string `json:"redis_instance,omitempty"`
	// Database is the MySQL target's database for the source's one.
	Database   string `json:"database,omitempty"`
	KeyPattern string `json:"key_pattern,omitempty"`
	Format     string `json:"format,omitempty"`
	// TTL is Go duration text ("1h"); absent: keys do not expire.
	TTL string `json:"ttl,omitempty"`
}

// SyncJobRequest is the body of POST /api/v1/sync-jobs.
type SyncJobRequest struct {
	SourceInstance string     `json:"source_instance"`
	Tables         []string   `json:"tables"`
	Target         SyncTarget `json:"target"`
	Conflict       string     `json:"conflict,omitempty"`
	Column         string     `json:"column,omitempty"`
	Direction      string     `json:"direction,omitempty"`
	DDL            string     `json:"ddl,omitempty"`
	InitialLoad    *bool      `json:"initial_load,omitempty"`
	// VerifyEvery is Go duration text ("6h"); absent: only on request.
	VerifyEvery string `json:"verify_every,omitempty"`
}

// SyncDirection is one direction of a job in the API.
type SyncDirection struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Watermark   string `json:"watermark"`
	SourceNode  string `json:"source_node,omitempty"`
	AppliedRows int64  `json:"applied_rows"`
	Conflicts   int64  `json:"conflicts"`
	// SkippedTransactions are the job's own writes read back (two-way).
	SkippedTransactions int64 `json:"skipped_transactions"`
	LagMs               int64 `json:"lag_ms"`
}

// SyncTableStatus is one table of a job in the API.
type SyncTableStatus struct {
	AppliedRows int64 `json:"applied_rows"`
	LagMs       int64 `json:"lag_ms"`
}

// SyncStatus is what the runner last reported of a job.
type SyncStatus struct {
	Directions  []SyncDirection            `json:"directions"`
	Tables      map[string]SyncTableStatus `json:"tables"`
	AppliedRows int64                      `json:"applied_rows"`
	Conflicts   int64                      `json:"conflicts"`
}

// SyncJob is a sync job in the API.
type SyncJob struct {
	ID             string     `json:"id"`
	TenantID       string     `json:"tenant_id"`
	SourceInstance string     `json:"source_instance"`
	Tables         []string   `json:"tables"`
	Target         SyncTarget `json:"target"`
	Conflict       string     `json:"conflict"`
	Column         string     `json:"column,omitempty"`
	Direction      string     `json:"direction"`
	DDL            string     `json:"ddl"`
	InitialLoad    bool       `json:"initial_load"`
	VerifyEvery    string     `json:"verify_every,omitempty"`
	State          string     `json:"state"`
	// ServerID is the session server_id the job's writes carry on a MySQL
	// target (binlog events of the job's own writes show it).
	ServerID  uint32     `json:"server_id"`
	Status    SyncStatus `json:"status"`
	LastError string     `json:"last_error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// SyncJobList is a page of jobs.
type SyncJobList struct {
	Items      []SyncJob `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// SyncConflict is a conflict in the API. Change is the source's row change
// and TargetRow the target's row as it was (null when missing).
type SyncConflict struct {
	ID           string     `json:"id"`
	JobID        string     `json:"job_id"`
	FromInstance string     `json:"from_instance"`
	ToInstance   string     `json:"to_instance"`
	DB           string     `json:"db"`
	Table        string     `json:"table"`
	Kind         string     `json:"kind"`
	Key          rawJSON    `json:"key"`
	Change       rawJSON    `json:"change"`
	TargetRow    rawJSON    `json:"target_row"`
	GTID         string     `json:"gtid"`
	Row          int        `json:"row"`
	Strategy     string     `json:"strategy"`
	Resolution   string     `json:"resolution"`
	At           time.Time  `json:"at"`
	ResolvedAt   *time.Time `json:"resolved_at,omitempty"`
}

// rawJSON is stored JSON passed through as is; empty is null.
type rawJSON []byte

// MarshalJSON writes r, or null when empty.
func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON keeps the bytes.
func (r *rawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// SyncConflictList is a page of conflicts.
type SyncConflictList struct {
	Items      []SyncConflict `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// ResolveRequest is the body of POST …/conflicts/{cid}:resolve.
type ResolveRequest struct {
	// Use is source (apply the change) or target (keep the target's row).
	Use string `json:"use"`
}

// VerifyRequest is the (optional) body of POST …/verifications.
type VerifyRequest struct {
	// Repair re-copies the differing rows from the source.
	Repair bool `json:"repair"`
}

// SyncRowDiff is one differing row of a verification.
type SyncRowDiff struct {
	Key      rawJSON `json:"key"`
	Kind     string  `json:"kind"`
	Repaired bool    `json:"repaired"`
}

// SyncTableReport is one table of a verification.
type SyncTableReport struct {
	Table       string        `json:"table"`
	Chunks      int64         `json:"chunks"`
	RowsChecked int64         `json:"rows_checked"`
	Differences []SyncRowDiff `json:"differences"`
}

// SyncReport is what a verification found (so far).
type SyncReport struct {
	Tables          []SyncTableReport `json:"tables"`
	Chunks          int64             `json:"chunks"`
	RowsChecked     int64             `json:"rows_checked"`
	DifferingRows   int64             `json:"differing_rows"`
	RepairedRows    int64             `json:"repaired_rows"`
	RecheckedChunks int64             `json:"rechecked_chunks"`
	DurationMs      int64             `json:"duration_ms"`
	Consistent      bool              `json:"consistent"`
}

// SyncVerification is a verification in the API.
type SyncVerification struct {
	ID         string     `json:"id"`
	JobID      string     `json:"job_id"`
	Repair     bool       `json:"repair"`
	State      string     `json:"state"`
	Report     SyncReport `json:"report"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// SyncVerificationList is a page of verifications.
type SyncVerificationList struct {
	Items      []SyncVerification `json:"items"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

func durationText(d syncjob.Duration) string {
	if d == 0 {
		return ""
	}
	return time.Duration(d).String()
}

func syncJobOf(j syncjob.Job) SyncJob {
	sp := j.Spec
	out := SyncJob{ID: j.ID, TenantID: j.Tenant, SourceInstance: sp.SourceInstance, Tables: nonNil(sp.Tables),
		Target: SyncTarget{Instance: sp.Target.Instance, RedisInstance: sp.Target.RedisInstance, Database: sp.Target.Database, KeyPattern: sp.Target.KeyPattern,
			Format: string(sp.Target.Format), TTL: durationText(sp.Target.TTL)},
		Conflict: string(sp.Conflict), Column: sp.Column, Direction: string(sp.Direction), DDL: string(sp.DDL),
		InitialLoad: sp.InitialLoad == nil || *sp.InitialLoad, VerifyEvery: durationText(sp.VerifyEvery), State: string(j.State),
		ServerID: j.ServerID, LastError: j.Status.LastError, CreatedAt: j.CreatedAt.UTC(), UpdatedAt: j.UpdatedAt.UTC(),
		Status: SyncStatus{Directions: []SyncDirection{}, Tables: map[string]SyncTableStatus{}, AppliedRows: j.Status.Applied,
			Conflicts: j.Status.Conflicts}}
	for _, d := range j.Status.Directions {
		out.Status.Directions = append(out.Status.Directions, SyncDirection{From: d.From, To: d.To, Watermark: d.Watermark,
			SourceNode: d.SourceNode, AppliedRows: d.Applied, Conflicts: d.Conflicts, SkippedTransactions: d.Skipped, LagMs: d.LagMs})
	}
	for name, t := range j.Status.Tables {
		out.Status.Tables[name] = SyncTableStatus{AppliedRows: t.Applied, LagMs: t.LagMs}
	}
	return out
}

func syncConflictOf(c syncjob.Conflict) SyncConflict {
	out := SyncConflict{ID: c.ID, JobID: c.JobID, FromInstance: c.From, ToInstance: c.To, DB: c.DB, Table: c.Table,
		Kind: string(c.Kind), Key: rawJSON(c.Key), Change: rawJSON(c.Change), TargetRow: rawJSON(c.TargetRow), GTID: c.GTID,
		Row: c.Row, Strategy: string(c.Strategy), Resolution: string(c.Resolution), At: c.At.UTC()}
	if len(out.Key) == 0 {
		out.Key = rawJSON("{}")
	}
	if c.ResolvedAt != nil {
		t := c.ResolvedAt.UTC()
		out.ResolvedAt = &t
	}
	return out
}

func syncVerificationOf(v syncjob.Verification) SyncVerification {
	r := v.Report
	out := SyncVerification{ID: v.ID, JobID: v.JobID, Repair: v.Repair, State: string(v.State), Error: v.Error,
		StartedAt: v.StartedAt.UTC(), Report: SyncReport{Tables: []SyncTableReport{}, Chunks: r.Chunks, RowsChecked: r.RowsChecked,
			DifferingRows: r.DifferingRows, RepairedRows: r.Repaired, RecheckedChunks: r.Rechecked, DurationMs: r.DurationMs,
			Consistent: r.Consistent}}
	for _, t := range r.Tables {
		tr := SyncTableReport{Table: t.Table, Chunks: t.Chunks, RowsChecked: t.RowsChecked, Differences: []SyncRowDiff{}}
		for _, d := range t.Differences {
			tr.Differences = append(tr.Differences, SyncRowDiff{Key: rawJSON(d.Key), Kind: d.Kind, Repaired: d.Repaired})
		}
		out.Report.Tables = append(out.Report.Tables, tr)
	}
	if v.FinishedAt != nil {
		t := v.FinishedAt.UTC()
		out.FinishedAt = &t
	}
	return out
}

// syncCaller returns the principal when it may do action, and the tenant
// it sees: its own, or "" (every tenant) for platform-admin.
func syncCaller(w http.ResponseWriter, r *http.Request, action tenancy.Action) (string, bool) {
	p, ok := httpx.Authorize(w, r, action, "sync jobs")
	if !ok {
		return "", false
	}
	if p.Role == tenancy.RolePlatformAdmin {
		return "", true
	}
	return string(p.Tenant), true
}

// writeSyncError maps the domain's errors to problems.
func writeSyncError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, syncjob.ErrNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, err.Error()))
	case errors.Is(err, syncjob.ErrConflict):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, err.Error()))
	default:
		httpx.WriteError(w, r, err)
	}
}

// specProblem is the 422 of invalid fields.
func specProblem(fields ...httpx.FieldError) *httpx.Problem {
	return httpx.Unprocessable("invalid sync job", fields...)
}

// specFields lists the fields of a spec's *ValidationErrors.
func specFields(err error) []httpx.FieldError {
	var fields []httpx.FieldError
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ve *syncjob.ValidationError
		if errors.As(e, &ve) {
			fields = append(fields, httpx.FieldError{Field: ve.Field, Reason: ve.Reason})
		}
	}
	return fields
}

// specOf maps the request to a spec with defaults; unreadable durations
// are field errors.
func specOf(req SyncJobRequest) (syncjob.Spec, []httpx.FieldError) {
	var fields []httpx.FieldError
	duration := func(field, text string) syncjob.Duration {
		if text == "" {
			return 0
		}
		d, err := time.ParseDuration(text)
		if err != nil {
			fields = append(fields, httpx.FieldError{Field: field, Reason: fmt.Sprintf("%q is not a duration like \"30s\" or \"6h\"", text)})
		}
		return syncjob.Duration(d)
	}
	sp := syncjob.Spec{SourceInstance: req.SourceInstance, Tables: req.Tables,
		Target: syncjob.Target{Instance: req.Target.Instance, RedisInstance: req.Target.RedisInstance, Database: req.Target.Database,
			KeyPattern: req.Target.KeyPattern, Format: syncjob.Format(req.Target.Format), TTL: duration("target.ttl", req.Target.TTL)},
		Conflict: syncjob.Strategy(req.Conflict), Column: req.Column, Direction: syncjob.Direction(req.Direction),
		DDL: syncjob.DDLMode(req.DDL), InitialLoad: req.InitialLoad, VerifyEvery: duration("verify_every", req.VerifyEvery)}
	return sp.WithDefaults(), fields
}

// instanceFor reads instance id for tenant ("": any); ok false when it
// answered (404 for another tenant's or an unknown instance, 503 when
// provisioning cannot be read).
func (h *SyncHandler) instanceFor(w http.ResponseWriter, r *http.Request, tenant, id string) (InstanceInfo, bool) {
	in, err := h.instances.Get(r.Context(), tenant, id)
	switch {
	case errors.Is(err, stream.ErrNotFound) || errors.Is(err, syncjob.ErrNotFound) || (err == nil && tenant != "" && in.Tenant != tenant):
		// Another tenant's instance is indistinguishable from none.
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "instance "+id+" not found"))
		return in, false
	case err != nil:
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "the instance cannot be read from provisioning; try again"))
		return in, false
	}
	return in, true
}

// usable answers 409 for an instance being deleted.
func usable(w http.ResponseWriter, r *http.Request, in InstanceInfo) bool {
	if in.State == "deleting" || in.State == "deleted" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, fmt.Sprintf("instance %s is %s", in.ID, in.State)))
		return false
	}
	return true
}

func (h *SyncHandler) create(w http.ResponseWriter, r *http.Request) {
	tenant, ok := syncCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req SyncJobRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	spec, fields := specOf(req)
	if err := spec.Validate(); err != nil || len(fields) > 0 {
		httpx.WriteProblem(w, r, specProblem(append(fields, specFields(err)...)...))
		return
	}
	src, ok := h.instanceFor(w, r, tenant, spec.SourceInstance)
	if !ok {
		return
	}
	// The target must be the source's tenant's, platform-admin's jobs too.
	dst, ok := h.instanceFor(w, r, src.Tenant, spec.TargetInstance())
	if !ok {
		return
	}
	if src.Engine != EngineMySQL {
		fields = append(fields, httpx.FieldError{Field: "source_instance",
			Reason: fmt.Sprintf("instance %s runs %s; a sync job reads a MySQL instance's binlog", src.ID, src.Engine)})
	}
	switch {
	case spec.Redis() && dst.Engine != EngineRedis:
		fields = append(fields, httpx.FieldError{Field: "target.redis_instance",
			Reason: fmt.Sprintf("instance %s runs %s, not redis", dst.ID, dst.Engine)})
	case !spec.Redis() && dst.Engine != EngineMySQL:
		fields = append(fields, httpx.FieldError{Field: "target.instance",
			Reason: fmt.Sprintf("instance %s runs %s, not mysql (a Redis cache is target.redis_instance)", dst.ID, dst.Engine)})
	}
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, specProblem(fields...))
		return
	}
	if !usable(w, r, src) || !usable(w, r, dst) {
		return
	}
	state := syncjob.StateRunning
	if *spec.InitialLoad {
		state = syncjob.StateLoading
	}
	now := h.now().UTC()
	j, err := h.jobs.CreateJob(r.Context(), syncjob.Job{ID: h.newID(), Tenant: src.Tenant, Spec: spec, State: state,
		CreatedAt: now, UpdatedAt: now})
	if err != nil {
		writeSyncError(w, r, err)
		return
	}
	h.runner.Kick(j.ID)
	w.Header().Set("Location", "/api/v1/sync-jobs/"+j.ID)
	httpx.WriteJSON(w, http.StatusCreated, syncJobOf(j))
}

func (h *SyncHandler) list(w http.ResponseWriter, r *http.Request) {
	tenant, ok := syncCaller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	limit, after, err := paging.ParseKey(r.URL.Query())
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	rows, err := h.jobs.ListJobs(r.Context(), tenant, after, limit)
	if err != nil {
		writeSyncError(w, r, err)
		return
	}
	var out SyncJobList
	out.Items, out.NextCursor = paging.KeyPage(rows, limit, func(j syncjob.Job) string { return j.ID }, syncJobOf)
	httpx.WriteJSON(w, http.StatusOK, out)
}

// job returns the path's job if the caller may do action on it.
func (h *SyncHandler) job(w http.ResponseWriter, r *http.Request, action tenancy.Action) (syncjob.Job, bool) {
	tenant, ok := syncCaller(w, r, action)
	if !ok {
		return syncjob.Job{}, false
	}
	j, err := h.jobs.GetJob(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		writeSyncError(w, r, err)
		return j, false
	}
	return j, true
}

func (h *SyncHandler) get(w http.ResponseWriter, r *http.Request) {
	if j, ok := h.job(w, r, tenancy.ActionRead); ok {
		httpx.WriteJSON(w, http.StatusOK, syncJobOf(j))
	}
}

// action applies a to the path's job and answers status with the job.
func (h *SyncHandler) action(a syncjob.Action, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		j, ok := h.job(w, r, tenancy.ActionWrite)
		if !ok {
			return
		}
		j, err := h.jobs.TransitionJob(r.Context(), j.Tenant, j.ID, a)
		if err != nil {
			writeSyncError(w, r, err)
			return
		}
		h.runner.Kick(j.ID)
		httpx.WriteJSON(w, status, syncJobOf(j))
	}
}

func (h *SyncHandler) listConflicts(w http.ResponseWriter, r *http.Request) {
	j, ok := h.job(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && state != string(syncjob.ResolvedPending) && state != "all" {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid state filter",
			httpx.FieldError{Field: "state", Reason: `must be "pending" or "all"`}))
		return
	}
	limit, after, err := paging.ParseKey(q)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	rows, err := h.jobs.ListConflicts(r.Context(), j.Tenant, j.ID, state == string(syncjob.ResolvedPending), after, limit)
	if err != nil {
		writeSyncError(w, r, err)
		return
	}
	var out SyncConflictList
	out.Items, out.NextCursor = paging.KeyPage(rows, limit, func(c syncjob.Conflict) string { return c.ID }, syncConflictOf)
	httpx.WriteJSON(w, http.StatusOK, out)
}

// conflict returns the path's conflict of the path's job.
func (h *SyncHandler) conflict(w http.ResponseWriter, r *http.Request, action tenancy.Action) (syncjob.Job, syncjob.Conflict, bool) {
	j, ok := h.job(w, r, action)
	if !ok {
		return j, syncjob.Conflict{}, false
	}
	c, err := h.jobs.GetConflict(r.Context(), j.Tenant, j.ID, chi.URLParam(r, "cid"))
	if err != nil {
		writeSyncError(w, r, err)
		return j, c, false
	}
	return j, c, true
}

func (h *SyncHandler) getConflict(w http.ResponseWriter, r *http.Request) {
	if _, c, ok := h.conflict(w, r, tenancy.ActionRead); ok {
		httpx.WriteJSON(w, http.StatusOK, syncConflictOf(c))
	}
}

func (h *SyncHandler) resolve(w http.ResponseWriter, r *http.Request) {
	j, c, ok := h.conflict(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req ResolveRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	use := syncjob.Resolution(req.Use)
	if use != syncjob.ResolvedSource && use != syncjob.ResolvedTarget {
		httpx.WriteProblem(w, r, httpx.Unprocessable("invalid resolution",
			httpx.FieldError{Field: "use", Reason: `must be "source" (apply the change) or "target" (keep the target's row)`}))
		return
	}
	switch {
	case c.Resolution == use:
		// Resolved this way already (a retried request): nothing to apply.
		httpx.WriteJSON(w, http.StatusOK, syncConflictOf(c))
		return
	case c.Resolution != syncjob.ResolvedPending:
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
			fmt.Sprintf("conflict %s was resolved with %s already", c.ID, c.Resolution)))
		return
	case j.State == syncjob.StateDeleting:
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, fmt.Sprintf("sync job %s is being deleted", j.ID)))
		return
	}
	if err := h.runner.Resolve(r.Context(), j, c, use); err != nil {
		if errors.Is(err, syncjob.ErrNotFound) || errors.Is(err, syncjob.ErrConflict) {
			writeSyncError(w, r, err)
			return
		}
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable,
			fmt.Sprintf("the resolution could not be applied to the target (%v); try again", err)))
		return
	}
	// The runner records the resolution too; recording it here as well
	// (idempotent) keeps the answer right whatever it did.
	if err := h.jobs.ResolveConflict(r.Context(), c.ID, use); err != nil {
		writeSyncError(w, r, err)
		return
	}
	c, err := h.jobs.GetConflict(r.Context(), j.Tenant, j.ID, c.ID)
	if err != nil {
		writeSyncError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, syncConflictOf(c))
}

func (h *SyncHandler) verify(w http.ResponseWriter, r *http.Request) {
	j, ok := h.job(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req VerifyRequest
	if r.ContentLength != 0 {
		if err := httpx.DecodeJSON(w, r, &req); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	}
	switch {
	case j.Spec.Redis():
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
			fmt.Sprintf("sync job %s writes a Redis cache; verification compares MySQL tables", j.ID)))
		return
	case j.State != syncjob.StateRunning:
		// Verification waits for the job to catch up; a job that does not
		// run (or still loads) never would.
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
			fmt.Sprintf("sync job %s is %s; only a running job can be verified", j.ID, j.State)))
		return
	}
	v := syncjob.Verification{ID: h.newID(), JobID: j.ID, Tenant: j.Tenant, Repair: req.Repair, State: syncjob.VerifyRunning,
		StartedAt: h.now().UTC()}
	if err := h.jobs.CreateVerification(r.Context(), v); err != nil {
		writeSyncError(w, r, err)
		return
	}
	if err := h.runner.Verify(r.Context(), j, v); err != nil {
		// Not started: it must not block the next one as "running".
		v.State, v.Error = syncjob.VerifyFailed, err.Error()
		if ferr := h.jobs.FinishVerification(context.WithoutCancel(r.Context()), v); ferr != nil {
			err = errors.Join(err, ferr)
		}
		if errors.Is(err, syncjob.ErrConflict) || errors.Is(err, syncjob.ErrNotFound) {
			writeSyncError(w, r, err)
			return
		}
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable,
			fmt.Sprintf("the verification could not be started (%v); try again", err)))
		return
	}
	w.Header().Set("Location", "/api/v1/sync-jobs/"+j.ID+"/verifications/"+v.ID)
	httpx.WriteJSON(w, http.StatusAccepted, syncVerificationOf(v))
}

func (h *SyncHandler) listVerifications(w http.ResponseWriter, r *http.Request) {
	j, ok := h.job(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	limit, after, err := paging.ParseKey(r.URL.Query())
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	rows, err := h.jobs.ListVerifications(r.Context(), j.Tenant, j.ID, after, limit)
	if err != nil {
		writeSyncError(w, r, err)
		return
	}
	var out SyncVerificationList
	out.Items, out.NextCursor = paging.KeyPage(rows, limit, func(v syncjob.Verification) string { return v.ID }, syncVerificationOf)
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *SyncHandler) getVerification(w http.ResponseWriter, r *http.Request) {
	j, ok := h.job(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	v, err := h.jobs.GetVerification(r.Context(), j.Tenant, j.ID, chi.URLParam(r, "vid"))
	if err != nil {
		writeSyncError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, syncVerificationOf(v))
}
