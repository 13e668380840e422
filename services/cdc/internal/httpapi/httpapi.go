// Package httpapi serves the cdc service's tenant API behind the gateway's
// signed identity: an instance's CDC streams, created, listed, read,
// paused, resumed, re-snapshotted and deleted under
// /api/v1/instances/{id}/cdc-streams (Handler), and the tenant's sync jobs
// under /api/v1/sync-jobs with their conflicts and verifications
// (SyncHandler). Another tenant's instance, stream or job answers 404 like
// an unknown one; platform-admin sees every tenant's. It maps streams and
// jobs to JSON, wakes the pipeline or the sync runner after every change
// and holds no state; what a transition may do is the stream and syncjob
// domains'.
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
)

// EngineMySQL is the only engine CDC captures.
const EngineMySQL = "mysql"

// InstanceInfo is what the API needs of an instance.
type InstanceInfo struct {
	ID     string
	Tenant string
	Engine string
	State  string
}

// Instances reads an instance from provisioning. Get returns an error
// wrapping stream.ErrNotFound for an unknown instance, and for another
// tenant's when tenant is not empty (platform-admin passes "").
type Instances interface {
	Get(ctx context.Context, tenant, id string) (InstanceInfo, error)
}

// Streams is the streams' storage; *mysqlstore.Store fits.
type Streams interface {
	Create(ctx context.Context, s stream.Stream) error
	// List returns up to limit+1 streams of the instance after the cursor
	// (a stream id), oldest first.
	List(ctx context.Context, tenant, instance, after string, limit int) ([]stream.Stream, error)
	GetForTenant(ctx context.Context, tenant, id string) (stream.Stream, error)
	Transition(ctx context.Context, tenant, id string, a stream.Action) (stream.Stream, error)
}

// Kicker wakes the pipeline for a stream that was created or changed, so
// it starts, stops or restarts the stream's runner at once.
type Kicker interface {
	Kick(streamID string)
}

// Handler serves the API.
type Handler struct {
	streams   Streams
	instances Instances
	kicker    Kicker
	now       func() time.Time
	newID     func() string
}

// New returns the handler; every dependency is required.
func New(streams Streams, instances Instances, kicker Kicker) (*Handler, error) {
	if streams == nil || instances == nil || kicker == nil {
		return nil, errors.New("httpapi: nil streams, instances or kicker")
	}
	return &Handler{streams: streams, instances: instances, kicker: kicker, now: time.Now,
		newID: func() string { return ulid.Make().String() }}, nil
}

// Routes mounts the API on r (behind tenancy.Middleware). Colon actions
// ({stream}:pause) have slash aliases ({stream}/pause) for proxies that
// route on path segments.
func (h *Handler) Routes(r chi.Router) {
	const base = "/api/v1/instances/{id}/cdc-streams"
	r.Post(base, h.create)
	r.Get(base, h.list)
	r.Get(base+"/{stream}", h.get)
	r.Delete(base+"/{stream}", h.action(stream.ActionDelete, http.StatusAccepted))
	for _, a := range []stream.Action{stream.ActionPause, stream.ActionResume, stream.ActionResnapshot} {
		r.Post(base+"/{stream}:"+string(a), h.action(a, http.StatusOK))
		r.Post(base+"/{stream}/"+string(a), h.action(a, http.StatusOK))
	}
}

// CreateRequest is the body of POST .../cdc-streams.
type CreateRequest struct {
	Tables        []string `json:"tables"`
	ExcludeTables []string `json:"exclude_tables,omitempty"`
	// Snapshot is initial (the default) or never.
	Snapshot   string `json:"snapshot,omitempty"`
	Tombstones bool   `json:"tombstones,omitempty"`
}

// Position is where a stream is in the source's binlog.
type Position struct {
	// GTID is the checkpoint: streaming resumes after it.
	GTID string `json:"gtid"`
	// SnapshotGTID is the position of the last snapshot, when one ran.
	SnapshotGTID string `json:"snapshot_gtid,omitempty"`
}

// Lag is how far behind its source a stream is.
type Lag struct {
	MS     int64 `json:"ms"`
	Events int64 `json:"events"`
}

// Stream is a CDC stream in the API.
type Stream struct {
	ID             string    `json:"id"`
	InstanceID     string    `json:"instance_id"`
	TenantID       string    `json:"tenant_id"`
	Tables         []string  `json:"tables"`
	ExcludeTables  []string  `json:"exclude_tables"`
	Snapshot       string    `json:"snapshot"`
	Tombstones     bool      `json:"tombstones"`
	State          string    `json:"state"`
	CapturedTables []string  `json:"captured_tables"`
	TopicPrefix    string    `json:"topic_prefix"`
	Position       Position  `json:"position"`
	SourceNode     string    `json:"source_node,omitempty"`
	Lag            Lag       `json:"lag"`
	RowsPerSecond  float64   `json:"rows_per_second"`
	EventsTotal    int64     `json:"events_total"`
	LastError      string    `json:"last_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// StreamList is a page of an instance's streams.
type StreamList struct {
	Items      []Stream `json:"items"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func streamOf(s stream.Stream) Stream {
	return Stream{ID: s.ID, InstanceID: s.Instance, TenantID: s.Tenant, Tables: nonNil(s.Spec.Tables),
		ExcludeTables: nonNil(s.Spec.Exclude), Snapshot: string(s.Spec.Snapshot), Tombstones: s.Spec.Tombstones,
		State: string(s.State), CapturedTables: nonNil(s.Status.CapturedTables), TopicPrefix: s.Prefix(),
		Position:   Position{GTID: s.Checkpoint.GTID, SnapshotGTID: s.Status.SnapshotGTID},
		SourceNode: s.Status.SourceNode, Lag: Lag{MS: s.Status.LagMs, Events: s.Status.LagEvents},
		RowsPerSecond: s.Status.RowsPerSecond, EventsTotal: s.Checkpoint.Events, LastError: s.Status.LastError,
		CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC()}
}

// caller returns the principal when it may do action.
func caller(w http.ResponseWriter, r *http.Request, action tenancy.Action) (tenancy.Principal, bool) {
	return httpx.Authorize(w, r, action, "CDC streams")
}

// instance returns the path's instance if the caller may see it.
func (h *Handler) instance(w http.ResponseWriter, r *http.Request, action tenancy.Action) (InstanceInfo, bool) {
	p, ok := caller(w, r, action)
	if !ok {
		return InstanceInfo{}, false
	}
	tenant := string(p.Tenant)
	if p.Role == tenancy.RolePlatformAdmin {
		tenant = ""
	}
	id := chi.URLParam(r, "id")
	in, err := h.instances.Get(r.Context(), tenant, id)
	switch {
	case errors.Is(err, stream.ErrNotFound) || (err == nil && tenant != "" && in.Tenant != tenant):
		// Another tenant's instance is indistinguishable from none.
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "instance "+id+" not found"))
		return in, false
	case err != nil:
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "the instance cannot be read from provisioning; try again"))
		return in, false
	}
	return in, true
}

// writeError maps the domain's errors to problems.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, stream.ErrNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, err.Error()))
	case errors.Is(err, stream.ErrConflict):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, err.Error()))
	default:
		httpx.WriteError(w, r, err)
	}
}

// validationProblem is the 422 of a spec's *ValidationErrors.
func validationProblem(err error) *httpx.Problem {
	var fields []httpx.FieldError
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ve *stream.ValidationError
		if errors.As(e, &ve) {
			fields = append(fields, httpx.FieldError{Field: ve.Field, Reason: ve.Reason})
		}
	}
	return httpx.Unprocessable("invalid stream", fields...)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	in, ok := h.instance(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req CreateRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if in.Engine != EngineMySQL {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict,
			fmt.Sprintf("instance %s runs %s; CDC streams capture MySQL instances only", in.ID, in.Engine)))
		return
	}
	if in.State == "deleting" || in.State == "deleted" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, fmt.Sprintf("instance %s is %s", in.ID, in.State)))
		return
	}
	spec := stream.Spec{Tables: req.Tables, Exclude: req.ExcludeTables, Snapshot: stream.Snapshot(req.Snapshot),
		Tombstones: req.Tombstones}.WithDefaults()
	if err := spec.Validate(); err != nil {
		httpx.WriteProblem(w, r, validationProblem(err))
		return
	}
	s := stream.New(h.newID(), in.Tenant, in.ID, spec, h.now())
	if err := h.streams.Create(r.Context(), s); err != nil {
		writeError(w, r, err)
		return
	}
	h.kicker.Kick(s.ID)
	w.Header().Set("Location", "/api/v1/instances/"+in.ID+"/cdc-streams/"+s.ID)
	httpx.WriteJSON(w, http.StatusCreated, streamOf(s))
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	in, ok := h.instance(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	limit, after, err := paging.ParseKey(r.URL.Query())
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	rows, err := h.streams.List(r.Context(), in.Tenant, in.ID, after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var out StreamList
	out.Items, out.NextCursor = paging.KeyPage(rows, limit, func(s stream.Stream) string { return s.ID }, streamOf)
	if out.Items == nil {
		out.Items = []Stream{}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// stream returns the path's stream of the instance.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, in InstanceInfo) (stream.Stream, bool) {
	id := chi.URLParam(r, "stream")
	s, err := h.streams.GetForTenant(r.Context(), in.Tenant, id)
	if err == nil && s.Instance != in.ID {
		err = fmt.Errorf("stream %s of instance %s: %w", id, in.ID, stream.ErrNotFound)
	}
	if err != nil {
		writeError(w, r, err)
		return s, false
	}
	return s, true
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	in, ok := h.instance(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	s, ok := h.stream(w, r, in)
	if !ok {
		return
	}
	httpx.WriteJSON(w, http.StatusOK, streamOf(s))
}

// action applies a to the path's stream and answers status with the stream.
func (h *Handler) action(a stream.Action, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		in, ok := h.instance(w, r, tenancy.ActionWrite)
		if !ok {
			return
		}
		s, ok := h.stream(w, r, in)
		if !ok {
			return
		}
		s, err := h.streams.Transition(r.Context(), in.Tenant, s.ID, a)
		if err != nil {
			writeError(w, r, err)
			return
		}
		h.kicker.Kick(s.ID)
		httpx.WriteJSON(w, status, streamOf(s))
	}
}
