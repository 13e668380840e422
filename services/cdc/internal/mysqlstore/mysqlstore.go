// Package mysqlstore keeps the cdc service's streams and sync jobs on
// MariaDB (libs/store): each stream's spec, state, checkpoint and last
// reported status, the schema history (every DDL a stream read, with its
// GTID), each sync job's spec, state and status with its conflicts and
// verifications, and the outbox the cdc.stream.* and cdc.sync.* events go
// out through. It is the pipeline's and the sync runner's Repo and the
// APIs' storage; it decides nothing: transitions are the stream and
// syncjob domains'. A sync job's position is not here: the target holds
// it (exactly once with the applied rows).
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

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
	"github.com/canopy-platform/canopy/services/cdc/migrations"
)

// errDuplicate is MySQL's duplicate key error.
const errDuplicate = 1062

// Store is the MariaDB store of streams.
type Store struct {
	db  *store.DB
	now func() time.Time
}

// New returns a store on db; Migrate must have run (launch.DatabaseStages
// does it in the service).
func New(db *store.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("mysqlstore: nil database")
	}
	return &Store{db: db, now: time.Now}, nil
}

// Migrate applies the outbox's and the cdc service's migrations.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.db.Migrate(ctx, store.OutboxMigrations(), migrations.FS); err != nil {
		return fmt.Errorf("mysqlstore: migrate: %w", err)
	}
	return nil
}

// spec is the JSON of a stream.Spec in the spec column.
type spec struct {
	Tables     []string `json:"tables"`
	Exclude    []string `json:"exclude_tables"`
	Snapshot   string   `json:"snapshot"`
	Tombstones bool     `json:"tombstones"`
}

func encodeSpec(sp stream.Spec) (string, error) {
	j := spec{Tables: sp.Tables, Exclude: sp.Exclude, Snapshot: string(sp.Snapshot), Tombstones: sp.Tombstones}
	if j.Tables == nil {
		j.Tables = []string{}
	}
	if j.Exclude == nil {
		j.Exclude = []string{}
	}
	b, err := json.Marshal(j)
	return string(b), err
}

func encodeTables(t []string) (string, error) {
	if t == nil {
		t = []string{}
	}
	b, err := json.Marshal(t)
	return string(b), err
}

// nullBytes stores nil (no snapshot progress) as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Create stores a new stream.
func (s *Store) Create(ctx context.Context, st stream.Stream) error {
	if st.ID == "" || st.Tenant == "" || st.Instance == "" || !st.State.Valid() {
		return fmt.Errorf("create stream %q: id, tenant, instance and a valid state are required", st.ID)
	}
	sp, err := encodeSpec(st.Spec)
	if err != nil {
		return fmt.Errorf("create stream %s: encode spec: %w", st.ID, err)
	}
	tables, err := encodeTables(st.Status.CapturedTables)
	if err != nil {
		return fmt.Errorf("create stream %s: encode tables: %w", st.ID, err)
	}
	now := s.now().UTC()
	if st.CreatedAt.IsZero() {
		st.CreatedAt = now
	}
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = now
	}
	if _, err := s.db.SQL().ExecContext(ctx, `INSERT INTO streams (id, tenant_id, instance_id, spec, state, checkpoint_gtid,
		snapshot_gtid, snapshot_progress, events_total, last_error, source_node, captured_tables, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		st.ID, st.Tenant, st.Instance, sp, string(st.State), st.Checkpoint.GTID, st.Status.SnapshotGTID,
		nullBytes(st.Checkpoint.Snapshot), st.Checkpoint.Events, st.Status.LastError, st.Status.SourceNode, tables,
		st.CreatedAt.UTC(), st.UpdatedAt.UTC()); err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == errDuplicate {
			return fmt.Errorf("create stream %s: %w", st.ID, stream.ErrConflict)
		}
		return fmt.Errorf("create stream %s: %w", st.ID, err)
	}
	return nil
}

const columns = `id, tenant_id, instance_id, spec, state, checkpoint_gtid, snapshot_gtid, snapshot_progress, events_total,
	last_error, source_node, captured_tables, lag_ms, lag_events, rows_per_second, created_at, updated_at`

func scan(row store.Scanner) (stream.Stream, error) {
	var st stream.Stream
	var sp, state, tables string
	var progress []byte
	if err := row.Scan(&st.ID, &st.Tenant, &st.Instance, &sp, &state, &st.Checkpoint.GTID, &st.Status.SnapshotGTID, &progress,
		&st.Checkpoint.Events, &st.Status.LastError, &st.Status.SourceNode, &tables, &st.Status.LagMs, &st.Status.LagEvents,
		&st.Status.RowsPerSecond, &st.CreatedAt, &st.UpdatedAt); err != nil {
		return stream.Stream{}, err
	}
	var j spec
	if err := json.Unmarshal([]byte(sp), &j); err != nil {
		return stream.Stream{}, fmt.Errorf("decode spec of stream %s: %w", st.ID, err)
	}
	st.Spec = stream.Spec{Tables: j.Tables, Exclude: j.Exclude, Snapshot: stream.Snapshot(j.Snapshot), Tombstones: j.Tombstones}
	if len(st.Spec.Exclude) == 0 {
		st.Spec.Exclude = nil
	}
	if err := json.Unmarshal([]byte(tables), &st.Status.CapturedTables); err != nil {
		return stream.Stream{}, fmt.Errorf("decode captured tables of stream %s: %w", st.ID, err)
	}
	if len(st.Status.CapturedTables) == 0 {
		st.Status.CapturedTables = nil
	}
	if len(progress) > 0 {
		st.Checkpoint.Snapshot = progress
	}
	st.State = stream.State(state)
	st.Status.State = st.State
	st.Status.EventsTotal = st.Checkpoint.Events
	st.CreatedAt, st.UpdatedAt = st.CreatedAt.UTC(), st.UpdatedAt.UTC()
	return st, nil
}

func (s *Store) one(ctx context.Context, q store.Scanner, what string) (stream.Stream, error) {
	st, err := scan(q)
	if errors.Is(err, sql.ErrNoRows) {
		return stream.Stream{}, fmt.Errorf("%s: %w", what, stream.ErrNotFound)
	}
	if err != nil {
		return stream.Stream{}, fmt.Errorf("%s: %w", what, err)
	}
	return st, nil
}

func (s *Store) many(ctx context.Context, what, q string, args ...any) ([]stream.Stream, error) {
	return store.QueryAll(ctx, s.db.SQL(), what, scan, q, args...)
}

// Get returns a stream by id, whatever its tenant (the pipeline's read).
func (s *Store) Get(ctx context.Context, id string) (stream.Stream, error) {
	return s.one(ctx, s.db.SQL().QueryRowContext(ctx, "SELECT "+columns+" FROM streams WHERE id = ?", id), "stream "+id)
}

// GetForTenant returns a stream of tenant; another tenant's stream is
// ErrNotFound like an unknown one.
func (s *Store) GetForTenant(ctx context.Context, tenant, id string) (stream.Stream, error) {
	return s.one(ctx, s.db.SQL().QueryRowContext(ctx, "SELECT "+columns+" FROM streams WHERE id = ? AND tenant_id = ?", id, tenant),
		"stream "+id)
}

// List returns up to limit streams of tenant's instance, oldest first (ids
// are ULIDs), after the cursor (the id of the last stream of the previous
// page; "" for the first page). It returns one more than limit when there
// are more.
func (s *Store) List(ctx context.Context, tenant, instance, after string, limit int) ([]stream.Stream, error) {
	return s.many(ctx, "list streams of "+instance,
		"SELECT "+columns+" FROM streams WHERE tenant_id = ? AND instance_id = ? AND id > ? ORDER BY id LIMIT ?",
		tenant, instance, after, limit+1)
}

// Active returns every stream not removed yet, deleting ones included (the
// pipeline finishes their deletion), oldest first (ids are ULIDs).
func (s *Store) Active(ctx context.Context) ([]stream.Stream, error) {
	return s.many(ctx, "list streams", "SELECT "+columns+" FROM streams ORDER BY id")
}

// Transition applies the API's action to tenant's stream under a row lock,
// so concurrent actions serialise, and returns the stream as stored.
func (s *Store) Transition(ctx context.Context, tenant, id string, a stream.Action) (stream.Stream, error) {
	var out stream.Stream
	err := s.db.Tx(ctx, func(tx *store.Tx) error {
		st, err := s.one(ctx, tx.QueryRowContext(ctx, "SELECT "+columns+" FROM streams WHERE id = ? AND tenant_id = ? FOR UPDATE",
			id, tenant), "stream "+id)
		if err != nil {
			return err
		}
		if err := st.Apply(a, s.now()); err != nil {
			return fmt.Errorf("stream %s: %w", id, err)
		}
		sp, err := encodeSpec(st.Spec)
		if err != nil {
			return fmt.Errorf("stream %s: encode spec: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE streams SET spec = ?, state = ?, checkpoint_gtid = ?, snapshot_gtid = ?,
			snapshot_progress = ?, events_total = ?, last_error = ?, lag_ms = ?, lag_events = ?, rows_per_second = ?, updated_at = ?
			WHERE id = ?`, sp, string(st.State), st.Checkpoint.GTID, st.Status.SnapshotGTID, nullBytes(st.Checkpoint.Snapshot),
			st.Checkpoint.Events, st.Status.LastError, st.Status.LagMs, st.Status.LagEvents, st.Status.RowsPerSecond,
			st.UpdatedAt.UTC(), id); err != nil {
			return fmt.Errorf("%s stream %s: %w", a, id, err)
		}
		out = st
		return nil
	})
	return out, err
}

// runnerStates is the SQL guard of the pipeline's writes: a runner may move
// a stream only while it is one a runner runs, so a pause, a resnapshot or
// a delete the user asked for meanwhile is never overwritten.
const runnerStates = "state IN ('snapshotting', 'streaming')"

// SaveCheckpoint stores cp (after Kafka acknowledged everything before it)
// and the runner's state, and adds rows — the data rows cp covers that no
// stored checkpoint did — to the stream's unreported usage in the same
// statement, so a row is counted exactly when its checkpoint is stored.
// A checkpoint with snapshot progress records its GTID as the snapshot's.
// The state changes only while the stream is snapshotting or streaming.
func (s *Store) SaveCheckpoint(ctx context.Context, id string, cp change.Checkpoint, state stream.State, rows int64) error {
	if !state.Valid() {
		return fmt.Errorf("save checkpoint of stream %s: invalid state %q", id, state)
	}
	if rows < 0 {
		return fmt.Errorf("save checkpoint of stream %s: negative usage %d", id, rows)
	}
	now := s.now().UTC()
	res, err := s.db.SQL().ExecContext(ctx, `UPDATE streams SET checkpoint_gtid = ?, snapshot_progress = ?, events_total = ?,
		snapshot_gtid = IF(? IS NULL, snapshot_gtid, ?), state = IF(`+runnerStates+`, ?, state),
		usage_from = IF(? > 0 AND usage_from IS NULL, ?, usage_from), usage_rows = usage_rows + ?, updated_at = ? WHERE id = ?`,
		cp.GTID, nullBytes(cp.Snapshot), cp.Events, nullBytes(cp.Snapshot), cp.GTID, string(state), rows, now, rows, now, id)
	if err != nil {
		return fmt.Errorf("save checkpoint of stream %s: %w", id, err)
	}
	return s.affected(ctx, res, id, "save checkpoint of stream "+id)
}

// SetStatus stores what the runner reports: state (when set, and only while
// the stream is snapshotting or streaming), last error, source node,
// captured tables, lag and rate. EventsTotal is the checkpoint's and is not
// written here.
func (s *Store) SetStatus(ctx context.Context, id string, st stream.Status) error {
	if st.State != "" && !st.State.Valid() {
		return fmt.Errorf("set status of stream %s: invalid state %q", id, st.State)
	}
	tables, err := encodeTables(st.CapturedTables)
	if err != nil {
		return fmt.Errorf("set status of stream %s: encode tables: %w", id, err)
	}
	res, err := s.db.SQL().ExecContext(ctx, `UPDATE streams SET state = IF(? <> '' AND `+runnerStates+`, ?, state),
		last_error = ?, source_node = ?, captured_tables = ?, lag_ms = ?, lag_events = ?, rows_per_second = ?, updated_at = ?
		WHERE id = ?`, string(st.State), string(st.State), st.LastError, st.SourceNode, tables, st.LagMs, st.LagEvents,
		st.RowsPerSecond, s.now().UTC(), id)
	if err != nil {
		return fmt.Errorf("set status of stream %s: %w", id, err)
	}
	return s.affected(ctx, res, id, "set status of stream "+id)
}

// affected turns an update that matched no row into ErrNotFound. MariaDB
// counts changed rows, so an update that changed nothing is checked for
// existence.
func (s *Store) affected(ctx context.Context, res sql.Result, id, what string) error {
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	var one int
	err := s.db.SQL().QueryRowContext(ctx, "SELECT 1 FROM streams WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, stream.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// RecordDDL appends a DDL the stream read to its schema history.
func (s *Store) RecordDDL(ctx context.Context, streamID string, d capture.DDL) error {
	at := d.At
	if at.IsZero() {
		at = s.now()
	}
	if _, err := s.db.SQL().ExecContext(ctx, `INSERT INTO schema_history (stream_id, gtid, db, table_name, ddl, at)
		VALUES (?, ?, ?, ?, ?, ?)`, streamID, d.GTID, d.DB, d.Table, d.Statement, at.UTC()); err != nil {
		return fmt.Errorf("record ddl %s of stream %s: %w", d.GTID, streamID, err)
	}
	return nil
}

// SchemaHistory returns a stream's recorded DDL, oldest first.
func (s *Store) SchemaHistory(ctx context.Context, streamID string) ([]capture.DDL, error) {
	rows, err := s.db.SQL().QueryContext(ctx,
		"SELECT gtid, db, table_name, ddl, at FROM schema_history WHERE stream_id = ? ORDER BY id", streamID)
	if err != nil {
		return nil, fmt.Errorf("schema history of stream %s: %w", streamID, err)
	}
	defer rows.Close()
	var out []capture.DDL
	for rows.Next() {
		var d capture.DDL
		if err := rows.Scan(&d.GTID, &d.DB, &d.Table, &d.Statement, &d.At); err != nil {
			return nil, fmt.Errorf("schema history of stream %s: %w", streamID, err)
		}
		d.At = d.At.UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("schema history of stream %s: %w", streamID, err)
	}
	return out, nil
}

// Publish writes ev to the outbox for canopy.cdc.v1; the relay publishes it
// once committed. Source defaults to the cdc service's, ContentType to JSON
// and Key to Subject (the stream id).
func (s *Store) Publish(ctx context.Context, ev eventbus.Event) error {
	return s.db.Tx(ctx, func(tx *store.Tx) error { return emitStream(ctx, tx, ev) })
}

// emitStream writes a stream's event ev to the outbox for canopy.cdc.v1
// in tx, with Publish's defaults.
func emitStream(ctx context.Context, tx *store.Tx, ev eventbus.Event) error {
	if ev.Source == "" {
		ev.Source = events.SourceCDC
	}
	if ev.ContentType == "" {
		ev.ContentType = "application/json"
	}
	if ev.Key == "" {
		ev.Key = ev.Subject
	}
	if err := tx.Emit(ctx, events.TopicCDC, ev); err != nil {
		return fmt.Errorf("emit %s of %s: %w", ev.Type, ev.Subject, err)
	}
	return nil
}

// EmitUsage reports the stream's unreported usage: in one transaction it
// writes cdc.stream.usage with the rows counted since the previous one to
// the outbox and zeroes the count. ok is false, and nothing is written,
// when there was none. The rows were counted with the checkpoints that
// cover them, so each published row is reported once, whichever process
// counted it.
func (s *Store) EmitUsage(ctx context.Context, id string) (u events.CDCStreamUsage, ok bool, err error) {
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		u, ok, err = s.emitUsage(ctx, tx, id)
		return err
	})
	if err != nil {
		return events.CDCStreamUsage{}, false, fmt.Errorf("emit usage of stream %s: %w", id, err)
	}
	return u, ok, nil
}

// emitUsage is EmitUsage in tx; a stream that does not exist has none.
func (s *Store) emitUsage(ctx context.Context, tx *store.Tx, id string) (events.CDCStreamUsage, bool, error) {
	var from sql.NullTime
	u := events.CDCStreamUsage{StreamID: id}
	err := tx.QueryRowContext(ctx, "SELECT tenant_id, instance_id, usage_rows, usage_from FROM streams WHERE id = ? FOR UPDATE",
		id).Scan(&u.TenantID, &u.InstanceID, &u.Rows, &from)
	if errors.Is(err, sql.ErrNoRows) || err == nil && u.Rows <= 0 {
		return events.CDCStreamUsage{}, false, nil
	}
	if err != nil {
		return events.CDCStreamUsage{}, false, err
	}
	u.To = s.now().UTC()
	u.From = u.To
	if from.Valid && from.Time.Before(u.To) {
		u.From = from.Time.UTC()
	}
	ev, err := eventbus.NewEvent(events.TypeCDCStreamUsage, events.SourceCDC, id, u)
	if err != nil {
		return events.CDCStreamUsage{}, false, err
	}
	ev.Tenant, ev.Time = u.TenantID, u.To
	if err := emitStream(ctx, tx, ev); err != nil {
		return events.CDCStreamUsage{}, false, err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE streams SET usage_rows = 0, usage_from = NULL WHERE id = ?", id); err != nil {
		return events.CDCStreamUsage{}, false, fmt.Errorf("reset usage: %w", err)
	}
	return u, true, nil
}

// Delete removes a stream and its schema history, once its runner stopped,
// reporting the usage its runner did not (cdc.stream.usage) in the same
// transaction. Deleting a removed stream is not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		if _, _, err := s.emitUsage(ctx, tx, id); err != nil {
			return fmt.Errorf("delete stream %s: emit usage: %w", id, err)
		}
		for _, q := range []string{"DELETE FROM schema_history WHERE stream_id = ?", "DELETE FROM streams WHERE id = ?"} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return fmt.Errorf("delete stream %s: %s: %w", id, strings.Fields(q)[2], err)
			}
		}
		return nil
	})
}
