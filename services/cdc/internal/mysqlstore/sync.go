package mysqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// serverIDAttempts bounds the search for a free server id: 24 bits of hash
// make a second collision for one job all but impossible.
const serverIDAttempts = 8

var _ syncjob.Conflicts = (*Store)(nil)

// validJobState reports whether st is a state a job may be stored in.
func validJobState(st syncjob.State) bool {
	switch st {
	case syncjob.StateLoading, syncjob.StateRunning, syncjob.StatePaused, syncjob.StateFailed, syncjob.StateDeleting:
		return true
	}
	return false
}

// jobStatus is syncjob.Status in the status column; LastError has a column
// of its own.
type jobStatus struct {
	Directions []jobDirection                 `json:"directions"`
	Tables     map[string]syncjob.TableStatus `json:"tables"`
	Applied    int64                          `json:"applied_rows"`
	Conflicts  int64                          `json:"conflicts"`
	// NextVerify is when the scheduled verification is due (zero: none).
	NextVerify time.Time `json:"next_verification,omitzero"`
}

type jobDirection struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Watermark  string `json:"watermark"`
	SourceNode string `json:"source_node"`
	Applied    int64  `json:"applied_rows"`
	Conflicts  int64  `json:"conflicts"`
	Skipped    int64  `json:"skipped"`
	LagMs      int64  `json:"lag_ms"`
}

func encodeStatus(st syncjob.Status) (string, error) {
	j := jobStatus{Tables: st.Tables, Applied: st.Applied, Conflicts: st.Conflicts, NextVerify: st.NextVerification,
		Directions: []jobDirection{}}
	for _, d := range st.Directions {
		j.Directions = append(j.Directions, jobDirection{From: d.From, To: d.To, Watermark: d.Watermark, SourceNode: d.SourceNode,
			Applied: d.Applied, Conflicts: d.Conflicts, Skipped: d.Skipped, LagMs: d.LagMs})
	}
	if j.Tables == nil {
		j.Tables = map[string]syncjob.TableStatus{}
	}
	b, err := json.Marshal(j)
	return string(b), err
}

func decodeStatus(raw string) (syncjob.Status, error) {
	var j jobStatus
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		return syncjob.Status{}, err
	}
	st := syncjob.Status{Tables: j.Tables, Applied: j.Applied, Conflicts: j.Conflicts, NextVerification: j.NextVerify}
	for _, d := range j.Directions {
		st.Directions = append(st.Directions, syncjob.DirectionStatus{From: d.From, To: d.To, Watermark: d.Watermark,
			SourceNode: d.SourceNode, Applied: d.Applied, Conflicts: d.Conflicts, Skipped: d.Skipped, LagMs: d.LagMs})
	}
	return st, nil
}

// isDuplicate reports whether err is a duplicate key error, on key when
// key is not empty.
func isDuplicate(err error, key string) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == errDuplicate && (key == "" || strings.Contains(me.Message, "'"+key+"'"))
}

// CreateJob stores a new job and returns it as stored: with its server id,
// the first candidate (syncjob.ServerIDFor) no other job holds, and its
// times. A job id that exists is ErrConflict.
func (s *Store) CreateJob(ctx context.Context, j syncjob.Job) (syncjob.Job, error) {
	if j.ID == "" || j.Tenant == "" || j.Spec.SourceInstance == "" || !validJobState(j.State) {
		return syncjob.Job{}, fmt.Errorf("create sync job %q: id, tenant, source instance and a valid state are required", j.ID)
	}
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return syncjob.Job{}, fmt.Errorf("create sync job %s: encode spec: %w", j.ID, err)
	}
	status, err := encodeStatus(j.Status)
	if err != nil {
		return syncjob.Job{}, fmt.Errorf("create sync job %s: encode status: %w", j.ID, err)
	}
	now := s.now().UTC()
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now
	}
	if j.UpdatedAt.IsZero() {
		j.UpdatedAt = now
	}
	j.CreatedAt, j.UpdatedAt = j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	for n := range serverIDAttempts {
		j.ServerID = syncjob.ServerIDFor(j.ID, n)
		_, err = s.db.SQL().ExecContext(ctx, `INSERT INTO sync_jobs (id, tenant_id, source_instance, target_instance, spec, state,
			server_id, status, last_error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			j.ID, j.Tenant, j.Spec.SourceInstance, j.Spec.TargetInstance(), string(spec), string(j.State), j.ServerID, status,
			j.Status.LastError, j.CreatedAt, j.UpdatedAt)
		if !isDuplicate(err, "sync_jobs_server_id") {
			break
		}
	}
	switch {
	case isDuplicate(err, ""):
		return syncjob.Job{}, fmt.Errorf("create sync job %s: %w", j.ID, syncjob.ErrConflict)
	case err != nil:
		return syncjob.Job{}, fmt.Errorf("create sync job %s: %w", j.ID, err)
	}
	return j, nil
}

const jobColumns = `id, tenant_id, spec, state, server_id, status, last_error, created_at, updated_at`

func scanJob(row store.Scanner) (syncjob.Job, error) {
	var j syncjob.Job
	var spec, state, status string
	if err := row.Scan(&j.ID, &j.Tenant, &spec, &state, &j.ServerID, &status, &j.Status.LastError, &j.CreatedAt,
		&j.UpdatedAt); err != nil {
		return syncjob.Job{}, err
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return syncjob.Job{}, fmt.Errorf("decode spec of sync job %s: %w", j.ID, err)
	}
	st, err := decodeStatus(status)
	if err != nil {
		return syncjob.Job{}, fmt.Errorf("decode status of sync job %s: %w", j.ID, err)
	}
	st.LastError = j.Status.LastError
	j.Status, j.State = st, syncjob.State(state)
	j.CreatedAt, j.UpdatedAt = j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	return j, nil
}

// oneRow scans one row with scan, turning no row into ErrNotFound.
func oneRow[T any](row store.Scanner, scan func(store.Scanner) (T, error), what string) (T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("%s: %w", what, syncjob.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// GetJob returns a job of tenant ("": of any tenant); another tenant's job
// is ErrNotFound like an unknown one.
func (s *Store) GetJob(ctx context.Context, tenant, id string) (syncjob.Job, error) {
	return oneRow(s.db.SQL().QueryRowContext(ctx, "SELECT "+jobColumns+" FROM sync_jobs WHERE id = ? AND (? = '' OR tenant_id = ?)",
		id, tenant, tenant), scanJob, "sync job "+id)
}

// ListJobs returns up to limit jobs of tenant ("": every tenant's), oldest
// first (ids are ULIDs), after the cursor (the last id of the previous
// page; "" for the first). It returns one more than limit when there are
// more.
func (s *Store) ListJobs(ctx context.Context, tenant, after string, limit int) ([]syncjob.Job, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list sync jobs of tenant "+tenant, scanJob,
		"SELECT "+jobColumns+" FROM sync_jobs WHERE (? = '' OR tenant_id = ?) AND id > ? ORDER BY id LIMIT ?",
		tenant, tenant, after, limit+1)
}

// ActiveJobs returns every job not removed yet, paused, failed and
// deleting ones included (the runner stops or finishes them), oldest first.
func (s *Store) ActiveJobs(ctx context.Context) ([]syncjob.Job, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list sync jobs", scanJob, "SELECT "+jobColumns+" FROM sync_jobs ORDER BY id")
}

// TransitionJob applies the API's action to tenant's job ("": any
// tenant's) under a row lock, so concurrent actions serialise, and returns
// the job as stored.
func (s *Store) TransitionJob(ctx context.Context, tenant, id string, a syncjob.Action) (syncjob.Job, error) {
	var out syncjob.Job
	err := s.db.Tx(ctx, func(tx *store.Tx) error {
		j, err := oneRow(tx.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM sync_jobs WHERE id = ? AND (? = '' OR tenant_id = ?) FOR UPDATE",
			id, tenant, tenant), scanJob, "sync job "+id)
		if err != nil {
			return err
		}
		if err := j.Apply(a, s.now()); err != nil {
			return fmt.Errorf("sync job %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE sync_jobs SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
			string(j.State), j.Status.LastError, j.UpdatedAt, id); err != nil {
			return fmt.Errorf("%s sync job %s: %w", a, id, err)
		}
		out = j
		return nil
	})
	return out, err
}

// SetJobState stores the runner's word on a job: its state (loading,
// running or failed) and last error. The state changes only while the job
// is loading or running, so a pause or a delete the user asked for
// meanwhile is never overwritten; the last error is stored either way.
// A job turning failed emits cdc.sync.failed in the same transaction.
func (s *Store) SetJobState(ctx context.Context, id string, state syncjob.State, lastError string) error {
	if !validJobState(state) {
		return fmt.Errorf("set state of sync job %s: invalid state %q", id, state)
	}
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		j, err := oneRow(tx.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM sync_jobs WHERE id = ? FOR UPDATE", id), scanJob,
			"sync job "+id)
		if err != nil {
			return fmt.Errorf("set state of %w", err)
		}
		next := j.State
		if j.State.Running() {
			next = state
		}
		if _, err := tx.ExecContext(ctx, "UPDATE sync_jobs SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
			string(next), lastError, s.now().UTC(), id); err != nil {
			return fmt.Errorf("set state of sync job %s: %w", id, err)
		}
		if next != syncjob.StateFailed || j.State == syncjob.StateFailed {
			return nil
		}
		return emit(ctx, tx, events.TypeCDCSyncFailed, j.ID, j.Tenant, events.CDCSyncFailed{JobID: j.ID, TenantID: j.Tenant,
			SourceInstance: j.Spec.SourceInstance, TargetInstance: j.Spec.TargetInstance(), State: string(next), Reason: lastError})
	})
}

// SaveJobStatus stores what the runner reports of a job: its directions,
// tables and counters. st.LastError is not written: SetJobState owns it.
func (s *Store) SaveJobStatus(ctx context.Context, id string, st syncjob.Status) error {
	status, err := encodeStatus(st)
	if err != nil {
		return fmt.Errorf("save status of sync job %s: encode: %w", id, err)
	}
	res, err := s.db.SQL().ExecContext(ctx, "UPDATE sync_jobs SET status = ?, updated_at = ? WHERE id = ?", status, s.now().UTC(), id)
	if err != nil {
		return fmt.Errorf("save status of sync job %s: %w", id, err)
	}
	return s.exists(ctx, res, "sync_jobs", id, "save status of sync job "+id)
}

// exists turns an update that matched no row into ErrNotFound. MariaDB
// counts changed rows, so an update that changed nothing is checked for
// the row's existence.
func (s *Store) exists(ctx context.Context, res sql.Result, table, id, what string) error {
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	var one int
	err := s.db.SQL().QueryRowContext(ctx, "SELECT 1 FROM "+table+" WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, syncjob.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// DeleteJob removes a job with its conflicts and verifications, once its
// runner stopped and dropped the watermarks. Deleting a removed job is not
// an error.
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		for _, q := range []string{"DELETE FROM sync_conflicts WHERE job_id = ?", "DELETE FROM sync_verifications WHERE job_id = ?",
			"DELETE FROM sync_jobs WHERE id = ?"} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return fmt.Errorf("delete sync job %s: %s: %w", id, strings.Fields(q)[2], err)
			}
		}
		return nil
	})
}

// emit writes a cdc.sync.* event of job to the outbox in tx, keyed by the
// job id.
func emit(ctx context.Context, tx *store.Tx, typ, jobID, tenant string, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s of sync job %s: %w", typ, jobID, err)
	}
	ev := eventbus.Event{Type: typ, Source: events.SourceCDC, Subject: jobID, Key: jobID, Tenant: tenant,
		ContentType: "application/json", Data: data}
	if err := tx.Emit(ctx, events.TopicCDC, ev); err != nil {
		return fmt.Errorf("emit %s of sync job %s: %w", typ, jobID, err)
	}
	return nil
}

// jsonOr returns raw as a string, or def when raw is empty.
func jsonOr(raw json.RawMessage, def string) string {
	if len(raw) == 0 {
		return def
	}
	return string(raw)
}

// Record stores a conflict and emits cdc.sync.conflict in the same
// transaction. A redelivered change (same job, direction, GTID and row)
// was recorded already: nothing is stored or emitted again. Missing ID,
// At, Tenant (the job's) and Resolution (pending) are filled in.
func (s *Store) Record(ctx context.Context, c syncjob.Conflict) error {
	if c.JobID == "" || c.From == "" || c.GTID == "" {
		return fmt.Errorf("record conflict of sync job %q: job, from instance and gtid are required", c.JobID)
	}
	if c.ID == "" {
		c.ID = ulid.Make().String()
	}
	if c.At.IsZero() {
		c.At = s.now()
	}
	if c.Resolution == "" {
		c.Resolution = syncjob.ResolvedPending
	}
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		if c.Tenant == "" {
			if err := tx.QueryRowContext(ctx, "SELECT tenant_id FROM sync_jobs WHERE id = ?", c.JobID).Scan(&c.Tenant); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					err = syncjob.ErrNotFound
				}
				return fmt.Errorf("record conflict of sync job %s: %w", c.JobID, err)
			}
		}
		var resolvedAt any
		if c.ResolvedAt != nil {
			resolvedAt = c.ResolvedAt.UTC()
		}
		var target any
		if len(c.TargetRow) > 0 && string(c.TargetRow) != "null" {
			target = string(c.TargetRow)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sync_conflicts (id, job_id, tenant_id, from_instance, to_instance, db, table_name,
			kind, row_key, change_data, target_row, gtid, row_idx, strategy, resolution, at, resolved_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.JobID, c.Tenant, c.From, c.To, c.DB, c.Table, string(c.Kind), jsonOr(c.Key, "{}"), jsonOr(c.Change, "{}"),
			target, c.GTID, c.Row, string(c.Strategy), string(c.Resolution), c.At.UTC(), resolvedAt)
		switch {
		case isDuplicate(err, "sync_conflicts_change"):
			return nil // redelivered: recorded and published the first time
		case err != nil:
			return fmt.Errorf("record conflict %s of sync job %s: %w", c.GTID, c.JobID, err)
		}
		return emit(ctx, tx, events.TypeCDCSyncConflict, c.JobID, c.Tenant, events.CDCSyncConflict{JobID: c.JobID,
			TenantID: c.Tenant, ConflictID: c.ID, FromInstance: c.From, ToInstance: c.To, DB: c.DB, Table: c.Table,
			Kind: string(c.Kind), Key: json.RawMessage(jsonOr(c.Key, "{}")), Strategy: string(c.Strategy),
			Resolution: string(c.Resolution), GTID: c.GTID, At: c.At.UTC()})
	})
}

const conflictColumns = `id, job_id, tenant_id, from_instance, to_instance, db, table_name, kind, row_key, change_data, target_row,
	gtid, row_idx, strategy, resolution, at, resolved_at`

func scanConflict(row store.Scanner) (syncjob.Conflict, error) {
	var c syncjob.Conflict
	var kind, key, change, strategy, resolution string
	var target sql.NullString
	var resolved sql.NullTime
	if err := row.Scan(&c.ID, &c.JobID, &c.Tenant, &c.From, &c.To, &c.DB, &c.Table, &kind, &key, &change, &target, &c.GTID, &c.Row,
		&strategy, &resolution, &c.At, &resolved); err != nil {
		return syncjob.Conflict{}, err
	}
	c.Kind, c.Strategy, c.Resolution = syncjob.ConflictKind(kind), syncjob.Strategy(strategy), syncjob.Resolution(resolution)
	c.Key, c.Change = json.RawMessage(key), json.RawMessage(change)
	if target.Valid {
		c.TargetRow = json.RawMessage(target.String)
	}
	c.At = c.At.UTC()
	if resolved.Valid {
		t := resolved.Time.UTC()
		c.ResolvedAt = &t
	}
	return c, nil
}

// ListConflicts returns up to limit conflicts of tenant's ("": any
// tenant's) job, only the pending ones when pendingOnly, oldest first
// (ids are ULIDs), after the cursor; one more than limit when there are
// more.
func (s *Store) ListConflicts(ctx context.Context, tenant, jobID string, pendingOnly bool, after string, limit int) ([]syncjob.Conflict, error) {
	q := "SELECT " + conflictColumns + " FROM sync_conflicts WHERE job_id = ? AND (? = '' OR tenant_id = ?) AND id > ?"
	args := []any{jobID, tenant, tenant, after}
	if pendingOnly {
		q += " AND resolution = ?"
		args = append(args, string(syncjob.ResolvedPending))
	}
	return store.QueryAll(ctx, s.db.SQL(), "list conflicts of sync job "+jobID, scanConflict, q+" ORDER BY id LIMIT ?",
		append(args, limit+1)...)
}

// GetConflict returns a conflict of tenant's ("": any tenant's) job.
func (s *Store) GetConflict(ctx context.Context, tenant, jobID, id string) (syncjob.Conflict, error) {
	return oneRow(s.db.SQL().QueryRowContext(ctx, "SELECT "+conflictColumns+
		" FROM sync_conflicts WHERE id = ? AND job_id = ? AND (? = '' OR tenant_id = ?)", id, jobID, tenant, tenant),
		scanConflict, "conflict "+id+" of sync job "+jobID)
}

// ResolveConflict settles a pending conflict with use (source or target).
// Settling it again the same way is not an error; the other way is
// ErrConflict.
func (s *Store) ResolveConflict(ctx context.Context, id string, use syncjob.Resolution) error {
	if use != syncjob.ResolvedSource && use != syncjob.ResolvedTarget {
		return fmt.Errorf("resolve conflict %s: resolution must be source or target, not %q", id, use)
	}
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		var current string
		err := tx.QueryRowContext(ctx, "SELECT resolution FROM sync_conflicts WHERE id = ? FOR UPDATE", id).Scan(&current)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("resolve conflict %s: %w", id, syncjob.ErrNotFound)
		case err != nil:
			return fmt.Errorf("resolve conflict %s: %w", id, err)
		case current == string(use):
			return nil
		case current != string(syncjob.ResolvedPending):
			return fmt.Errorf("resolve conflict %s: it was resolved with %s already: %w", id, current, syncjob.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE sync_conflicts SET resolution = ?, resolved_at = ? WHERE id = ?",
			string(use), s.now().UTC(), id); err != nil {
			return fmt.Errorf("resolve conflict %s: %w", id, err)
		}
		return nil
	})
}

// encodeReport writes a report with empty lists as [], not null.
func encodeReport(r syncjob.Report) (string, error) {
	if r.Tables == nil {
		r.Tables = []syncjob.TableReport{}
	}
	for i := range r.Tables {
		if r.Tables[i].Differences == nil {
			r.Tables[i].Differences = []syncjob.RowDiff{}
		}
	}
	b, err := json.Marshal(r)
	return string(b), err
}

// CreateVerification stores a new verification of a job, running. A job
// runs one verification at a time: while another is running this is
// ErrConflict; an unknown job is ErrNotFound.
func (s *Store) CreateVerification(ctx context.Context, v syncjob.Verification) error {
	if v.ID == "" || v.JobID == "" {
		return fmt.Errorf("create verification %q: id and job are required", v.ID)
	}
	if v.State == "" {
		v.State = syncjob.VerifyRunning
	}
	if v.StartedAt.IsZero() {
		v.StartedAt = s.now()
	}
	report, err := encodeReport(v.Report)
	if err != nil {
		return fmt.Errorf("create verification %s: encode report: %w", v.ID, err)
	}
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		// The job's row lock serialises concurrent requests, so two cannot
		// both see no running verification.
		var tenant string
		if err := tx.QueryRowContext(ctx, "SELECT tenant_id FROM sync_jobs WHERE id = ? FOR UPDATE", v.JobID).Scan(&tenant); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				err = syncjob.ErrNotFound
			}
			return fmt.Errorf("create verification of sync job %s: %w", v.JobID, err)
		}
		var running string
		err := tx.QueryRowContext(ctx, "SELECT id FROM sync_verifications WHERE job_id = ? AND state = ? LIMIT 1", v.JobID,
			string(syncjob.VerifyRunning)).Scan(&running)
		switch {
		case err == nil:
			return fmt.Errorf("sync job %s: verification %s is still running: %w", v.JobID, running, syncjob.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("create verification of sync job %s: %w", v.JobID, err)
		}
		if v.Tenant == "" {
			v.Tenant = tenant
		}
		var finished any
		if v.FinishedAt != nil {
			finished = v.FinishedAt.UTC()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sync_verifications (id, job_id, tenant_id, repair, state, report, error,
			started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, v.ID, v.JobID, v.Tenant, v.Repair, string(v.State), report,
			v.Error, v.StartedAt.UTC(), finished); err != nil {
			if isDuplicate(err, "") {
				err = syncjob.ErrConflict
			}
			return fmt.Errorf("create verification %s: %w", v.ID, err)
		}
		return nil
	})
}

// FinishVerification stores a verification's end: its state (done or
// failed), report and error. A done verification whose report is not
// consistent emits cdc.sync.inconsistent in the same transaction. Finishing
// a finished verification again changes nothing and emits nothing.
func (s *Store) FinishVerification(ctx context.Context, v syncjob.Verification) error {
	if v.State != syncjob.VerifyDone && v.State != syncjob.VerifyFailed {
		return fmt.Errorf("finish verification %s: state must be done or failed, not %q", v.ID, v.State)
	}
	finished := s.now().UTC()
	if v.FinishedAt != nil {
		finished = v.FinishedAt.UTC()
	}
	report, err := encodeReport(v.Report)
	if err != nil {
		return fmt.Errorf("finish verification %s: encode report: %w", v.ID, err)
	}
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		var jobID, state string
		var repair bool
		err := tx.QueryRowContext(ctx, "SELECT job_id, state, repair FROM sync_verifications WHERE id = ? FOR UPDATE", v.ID).
			Scan(&jobID, &state, &repair)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("finish verification %s: %w", v.ID, syncjob.ErrNotFound)
		case err != nil:
			return fmt.Errorf("finish verification %s: %w", v.ID, err)
		case state != string(syncjob.VerifyRunning):
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE sync_verifications SET state = ?, report = ?, error = ?, finished_at = ? WHERE id = ?",
			string(v.State), report, v.Error, finished, v.ID); err != nil {
			return fmt.Errorf("finish verification %s: %w", v.ID, err)
		}
		if v.State != syncjob.VerifyDone || v.Report.Consistent {
			return nil
		}
		j, err := oneRow(tx.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM sync_jobs WHERE id = ?", jobID), scanJob, "sync job "+jobID)
		if err != nil {
			return fmt.Errorf("finish verification %s: %w", v.ID, err)
		}
		ev := events.CDCSyncInconsistent{JobID: j.ID, TenantID: j.Tenant, VerificationID: v.ID, SourceInstance: j.Spec.SourceInstance,
			TargetInstance: j.Spec.TargetInstance(), Tables: []events.CDCSyncTableDiff{}, RowsChecked: v.Report.RowsChecked,
			DifferingRows: v.Report.DifferingRows, Repair: repair, RepairedRows: v.Report.Repaired, FinishedAt: finished}
		for _, t := range v.Report.Tables {
			if len(t.Differences) > 0 {
				ev.Tables = append(ev.Tables, events.CDCSyncTableDiff{Table: t.Table, DifferingRows: int64(len(t.Differences))})
			}
		}
		return emit(ctx, tx, events.TypeCDCSyncInconsistent, j.ID, j.Tenant, ev)
	})
}

const verificationColumns = `id, job_id, tenant_id, repair, state, report, error, started_at, finished_at`

func scanVerification(row store.Scanner) (syncjob.Verification, error) {
	var v syncjob.Verification
	var state, report string
	var finished sql.NullTime
	if err := row.Scan(&v.ID, &v.JobID, &v.Tenant, &v.Repair, &state, &report, &v.Error, &v.StartedAt, &finished); err != nil {
		return syncjob.Verification{}, err
	}
	if err := json.Unmarshal([]byte(report), &v.Report); err != nil {
		return syncjob.Verification{}, fmt.Errorf("decode report of verification %s: %w", v.ID, err)
	}
	v.State, v.StartedAt = syncjob.VerifyState(state), v.StartedAt.UTC()
	if finished.Valid {
		t := finished.Time.UTC()
		v.FinishedAt = &t
	}
	return v, nil
}

// GetVerification returns a verification of tenant's ("": any tenant's)
// job.
func (s *Store) GetVerification(ctx context.Context, tenant, jobID, id string) (syncjob.Verification, error) {
	return oneRow(s.db.SQL().QueryRowContext(ctx, "SELECT "+verificationColumns+
		" FROM sync_verifications WHERE id = ? AND job_id = ? AND (? = '' OR tenant_id = ?)", id, jobID, tenant, tenant),
		scanVerification, "verification "+id+" of sync job "+jobID)
}

// ListVerifications returns up to limit verifications of tenant's ("": any
// tenant's) job, oldest first, after the cursor; one more than limit when
// there are more.
func (s *Store) ListVerifications(ctx context.Context, tenant, jobID, after string, limit int) ([]syncjob.Verification, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list verifications of sync job "+jobID, scanVerification,
		"SELECT "+verificationColumns+" FROM sync_verifications WHERE job_id = ? AND (? = '' OR tenant_id = ?) AND id > ? ORDER BY id LIMIT ?",
		jobID, tenant, tenant, after, limit+1)
}
