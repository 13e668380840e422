package snapshot

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/envelope"
)

// DefaultChunkSize is the rows per chunk when Config.ChunkSize is 0.
const DefaultChunkSize = 1000

// attemptStride separates the source.row ranges of successive attempts (see
// the package comment): 10^12 rows per attempt, and ~9000 attempts before
// the index leaves JSON's exact integer range.
const attemptStride = 1_000_000_000_000

// Debezium's source block values for our events.
const (
	sourceConnector = "mysql"
	sourceVersion   = capture.Version
)

// Schemas never captured, whatever Include says: the server's own, and
// _canopy_sync, where sync jobs keep their watermarks on a target (copying
// those would move another job's position).
var systemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys", capture.SyncSchema}

// ErrNoBinlog means the source cannot give a snapshot position: its binary
// log is off, so there is nothing to stream from after the snapshot.
var ErrNoBinlog = errors.New("snapshot: source has no binary log position")

// Progress is how far a snapshot got; it is JSON-marshalled into
// change.Checkpoint.Snapshot and handed back to Run to resume.
type Progress struct {
	// GTID is the position of the first snapshot attempt; streaming starts
	// there once all tables are done. It is empty when the source had
	// never logged a transaction: streaming must then start at the
	// binlog's beginning, not at its current end.
	GTID string `json:"gtid"`
	// File and Pos are the binlog coordinates of that first snapshot
	// (source.file/source.pos of the events).
	File string `json:"file,omitempty"`
	Pos  uint32 `json:"pos,omitempty"`
	// Attempt counts the resumes (0 for the first run); it offsets
	// source.row so that attempts never reuse a (gtid, row) pair.
	Attempt int `json:"attempt,omitempty"`
	// Latest is the position of the last attempt that read rows (empty
	// for a snapshot read in one attempt): rows read by a resumed attempt
	// may show changes up to it, which streaming from GTID replays.
	Latest string `json:"latest_gtid,omitempty"`
	// Tables are the captured tables in the order they are read.
	Tables []TableProgress `json:"tables"`
}

// TableProgress is one table's part of a Progress.
type TableProgress struct {
	// Name is db.table.
	Name string `json:"name"`
	Done bool   `json:"done"`
	// LastKey is the primary key of the last row emitted: each key column's
	// text, or {"base64": ...} for bytes; nil before the first chunk and
	// once Done.
	LastKey []any `json:"last_key,omitempty"`
	// Rows counts the rows emitted so far.
	Rows int64 `json:"rows"`
}

// Config says what to snapshot and from where.
type Config struct {
	// Source is the node read (with Canopy's cdc account).
	Source capture.Source
	// Prefix is the logical server name cdc.<tenant>.<instance>: topics are
	// Prefix.<db>.<table>, and source.name.
	Prefix string
	// Include selects the tables (system schemas are always excluded); nil
	// includes every table.
	Include func(db, table string) bool
	// ChunkSize is the rows per chunk and batch (default DefaultChunkSize).
	ChunkSize int
	// Decoded makes messages carry the row as a change.RowChange (op "r",
	// After integers as int64/uint64 and the raw text of every other
	// column as []byte, nil for NULL) and no Key or Value: what a sync
	// job's initial load applies.
	Decoded bool
	// Logger is optional.
	Logger *slog.Logger
}

// Run takes a consistent snapshot of the included tables and sends it on
// out, one Batch per chunk, each with a checkpoint holding the snapshot
// position and the progress after it. With resume it continues that
// snapshot (see the package comment). It returns the final Progress (every
// table Done) once the last batch was handed to out; the caller then
// streams from Progress.GTID. It returns ctx's error when ctx ends; on any
// error the Progress is zero: resume from the last stored checkpoint.
func Run(ctx context.Context, cfg Config, resume *Progress, out chan<- change.Batch) (Progress, error) {
	if cfg.Prefix == "" && !cfg.Decoded {
		return Progress{}, errors.New("snapshot: empty topic prefix")
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("source", cfg.Source.Addr, "prefix", cfg.Prefix)

	r := &runner{cfg: cfg, log: log, out: out}
	p, err := r.run(ctx, resume)
	if err != nil && ctx.Err() != nil {
		// The driver reports a cancelled query in its own words; callers
		// branch on the context's error.
		return Progress{}, fmt.Errorf("snapshot of %s: %w", cfg.Source.Addr, ctx.Err())
	}
	return p, err
}

type runner struct {
	cfg Config
	log *slog.Logger
	out chan<- change.Batch

	db   *sql.DB
	conn *sql.Conn

	prog    Progress
	start   time.Time // this attempt's snapshot time: EventTime and source.ts_ms
	counter int64     // rows emitted over all attempts: Checkpoint.Events

	// pending is the last batch, held back until the next one exists so
	// that the very last row of the snapshot can be marked "last".
	pending     *change.Batch
	pendingLast *envelope.Envelope

	// The decoded mode's column names and key of the table being read,
	// shared by its RowChanges.
	shape     *envelope.Table
	shapeCols []string
	shapeKey  []int
}

func (r *runner) run(ctx context.Context, resume *Progress) (Progress, error) {
	if err := r.open(ctx); err != nil {
		return Progress{}, err
	}
	defer r.db.Close()
	defer r.conn.Close()

	file, pos, gtid, err := r.begin(ctx)
	if err != nil {
		return Progress{}, err
	}
	r.start = time.Now()
	tables, err := r.tables(ctx)
	if err != nil {
		return Progress{}, err
	}
	r.prog = plan(Progress{GTID: gtid, File: file, Pos: pos}, resume, tables)
	if resume != nil && slices.ContainsFunc(r.prog.Tables, func(t TableProgress) bool { return !t.Done }) {
		r.prog.Latest = gtid
	}
	for _, t := range r.prog.Tables {
		r.counter += t.Rows
	}
	r.log.InfoContext(ctx, "snapshot started", "gtid", r.prog.GTID, "snapshot_gtid", gtid,
		"attempt", r.prog.Attempt, "tables", len(r.prog.Tables), "resumed", resume != nil)

	for i := range r.prog.Tables {
		if r.prog.Tables[i].Done {
			continue
		}
		if err := r.table(ctx, i); err != nil {
			return Progress{}, err
		}
	}
	if err := r.flush(ctx, true); err != nil {
		return Progress{}, err
	}
	// Read-only: ending the transaction only releases its read view.
	if _, err := r.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return Progress{}, fmt.Errorf("end snapshot transaction: %w", err)
	}
	r.log.InfoContext(ctx, "snapshot done", "gtid", r.prog.GTID, "rows", r.counter)
	return r.prog, nil
}

// plan is the progress this attempt starts from: a fresh snapshot's tables,
// or the resumed progress with its finished and partial tables kept, its
// first position and attempt + 1, tables created since added and tables
// dropped since marked done.
func plan(fresh Progress, resume *Progress, tables []string) Progress {
	if resume == nil {
		for _, t := range tables {
			fresh.Tables = append(fresh.Tables, TableProgress{Name: t})
		}
		return fresh
	}
	p := Progress{GTID: resume.GTID, File: resume.File, Pos: resume.Pos, Attempt: resume.Attempt + 1, Latest: resume.Latest}
	old := map[string]TableProgress{}
	for _, t := range resume.Tables {
		old[t.Name] = t
	}
	for _, t := range tables {
		tp, ok := old[t]
		if !ok {
			tp = TableProgress{Name: t}
		}
		delete(old, t)
		p.Tables = append(p.Tables, tp)
	}
	for _, tp := range old {
		tp.Done, tp.LastKey = true, nil // gone: its drop is in the binlog after G
		p.Tables = append(p.Tables, tp)
	}
	slices.SortFunc(p.Tables, func(a, b TableProgress) int { return strings.Compare(a.Name, b.Name) })
	return p
}

// open connects to the source with one session for the snapshot
// transaction; the pool's other connection serves schema reads.
func (r *runner) open(ctx context.Context) error {
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = r.cfg.Source.User, r.cfg.Source.Password, "tcp", r.cfg.Source.Addr
	mc.Timeout = 10 * time.Second
	// TIMESTAMP values are read in UTC, as the binlog carries them.
	mc.Params = map[string]string{"time_zone": "'+00:00'"}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return fmt.Errorf("snapshot source %s: %w", r.cfg.Source.Addr, err)
	}
	r.db = sql.OpenDB(connector)
	r.db.SetMaxOpenConns(2)
	r.conn, err = r.db.Conn(ctx)
	if err != nil {
		r.db.Close()
		return fmt.Errorf("connect to %s: %w", r.cfg.Source.Addr, err)
	}
	return nil
}

// begin starts the consistent snapshot and returns its binlog position and
// the matching GTID position.
func (r *runner) begin(ctx context.Context) (file string, pos uint32, gtid string, err error) {
	for _, q := range []string{
		"SET SESSION time_zone = '+00:00'",
		// A slow consumer may hold a keyless table's result set open for a
		// long time; the server must not drop the connection meanwhile.
		"SET SESSION net_write_timeout = 86400",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
	} {
		if _, err := r.conn.ExecContext(ctx, q); err != nil {
			return "", 0, "", fmt.Errorf("%s on %s: %w", q, r.cfg.Source.Addr, err)
		}
	}
	rows, err := r.conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return "", 0, "", fmt.Errorf("snapshot position on %s: %w", r.cfg.Source.Addr, err)
	}
	status := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return "", 0, "", fmt.Errorf("snapshot position on %s: %w", r.cfg.Source.Addr, err)
		}
		status[strings.ToLower(k)] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", 0, "", fmt.Errorf("snapshot position on %s: %w", r.cfg.Source.Addr, err)
	}
	file = status["binlog_snapshot_file"]
	p, perr := strconv.ParseUint(status["binlog_snapshot_position"], 10, 32)
	if file == "" || perr != nil {
		return "", 0, "", fmt.Errorf("%w: %s says file %q position %q", ErrNoBinlog, r.cfg.Source.Addr, file, status["binlog_snapshot_position"])
	}
	var g sql.NullString
	if err := r.conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", file, p).Scan(&g); err != nil {
		return "", 0, "", fmt.Errorf("BINLOG_GTID_POS(%s, %d) on %s: %w", file, p, r.cfg.Source.Addr, err)
	}
	if !g.Valid {
		return "", 0, "", fmt.Errorf("%w: BINLOG_GTID_POS(%s, %d) is NULL on %s", ErrNoBinlog, file, p, r.cfg.Source.Addr)
	}
	return file, uint32(p), g.String, nil
}

// tables lists the included base tables as db.table, sorted.
func (r *runner) tables(ctx context.Context) ([]string, error) {
	q := "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN (?" +
		strings.Repeat(", ?", len(systemSchemas)-1) + ")"
	args := make([]any, len(systemSchemas))
	for i, s := range systemSchemas {
		args[i] = s
	}
	rows, err := r.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", r.cfg.Source.Addr, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var db, t string
		if err := rows.Scan(&db, &t); err != nil {
			return nil, fmt.Errorf("list tables on %s: %w", r.cfg.Source.Addr, err)
		}
		if r.cfg.Include == nil || r.cfg.Include(db, t) {
			names = append(names, db+"."+t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", r.cfg.Source.Addr, err)
	}
	slices.Sort(names)
	return names, nil
}

// table reads the rest of table i, chunk by chunk.
func (r *runner) table(ctx context.Context, i int) error {
	name := r.prog.Tables[i].Name
	db, tname, _ := strings.Cut(name, ".")
	t, err := envelope.TableFromSchema(ctx, r.db, db, tname)
	if err != nil {
		return fmt.Errorf("schema of %s: %w", name, err)
	}
	keys, err := r.keyColumns(ctx, t)
	if err != nil {
		return err
	}
	log := r.log.With("table", name)
	if len(keys) == 0 {
		log.InfoContext(ctx, "table has no primary key: read in one pass, events without key")
		return r.keyless(ctx, i, t)
	}
	if tp := &r.prog.Tables[i]; tp.LastKey != nil && len(tp.LastKey) != len(keys) {
		// Its key changed since the last attempt: read it again from the
		// start (duplicates, never a gap).
		log.WarnContext(ctx, "primary key changed since the last attempt: table read again", "last_key", tp.LastKey)
		tp.LastKey = nil
	}
	for {
		done, err := r.chunk(ctx, i, t, keys)
		if err != nil {
			return fmt.Errorf("snapshot of %s: %w", name, err)
		}
		if done {
			log.DebugContext(ctx, "table done", "rows", r.prog.Tables[i].Rows)
			return nil
		}
	}
}

// keyColumns returns the indexes in t.Columns of its key columns, in the
// key's index order (so that ORDER BY follows the clustered index), or nil
// when it has none.
func (r *runner) keyColumns(ctx context.Context, t *envelope.Table) ([]int, error) {
	pos := map[string]int{}
	for i, c := range t.Columns {
		if c.Key {
			pos[c.Name] = i
		}
	}
	if len(pos) == 0 {
		return nil, nil
	}
	if len(t.PrimaryKey) == len(pos) {
		// TableFromSchema already read the primary key's order.
		return slices.Clone(t.PrimaryKey), nil
	}
	rows, err := r.conn.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0
		ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX`, t.DB, t.Name)
	if err != nil {
		return nil, fmt.Errorf("indexes of %s.%s: %w", t.DB, t.Name, err)
	}
	defer rows.Close()
	byIndex := map[string][]string{}
	var order []string
	for rows.Next() {
		var idx, col string
		if err := rows.Scan(&idx, &col); err != nil {
			return nil, fmt.Errorf("indexes of %s.%s: %w", t.DB, t.Name, err)
		}
		if _, ok := byIndex[idx]; !ok {
			order = append(order, idx)
		}
		byIndex[idx] = append(byIndex[idx], col)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("indexes of %s.%s: %w", t.DB, t.Name, err)
	}
	for _, idx := range order {
		cols := byIndex[idx]
		if len(cols) != len(pos) {
			continue
		}
		keys := make([]int, 0, len(cols))
		for _, c := range cols {
			if i, ok := pos[c]; ok {
				keys = append(keys, i)
			}
		}
		if len(keys) == len(pos) {
			return keys, nil
		}
	}
	// No index with exactly the key columns: any fixed order paginates
	// correctly, only slower.
	keys := make([]int, 0, len(pos))
	for i, c := range t.Columns {
		if c.Key {
			keys = append(keys, i)
		}
	}
	return keys, nil
}

func quote(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

func selectList(t *envelope.Table) string {
	// SelectList reads FLOAT through a DOUBLE cast: a plain SELECT rounds it
	// to 6 digits where the binlog holds the exact value.
	return "SELECT " + t.SelectList() + " FROM " + quote(t.DB) + "." + quote(t.Name)
}

// chunkQuery is the keyset query of the chunk after last (nil: the first):
// k1 >= ? AND (k1 > ? OR (k1 = ? AND k2 > ?) ...), spelled out rather than
// as a row comparison so that the range optimizer always uses the key.
func chunkQuery(t *envelope.Table, keys []int, last []any, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString(selectList(t))
	var args []any
	if last != nil {
		k0 := quote(t.Columns[keys[0]].Name)
		b.WriteString(" WHERE " + k0 + " >= ? AND (")
		args = append(args, last[0])
		for i := range keys {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteString("(")
			for j := 0; j < i; j++ {
				b.WriteString(quote(t.Columns[keys[j]].Name) + " = ? AND ")
				args = append(args, last[j])
			}
			b.WriteString(quote(t.Columns[keys[i]].Name) + " > ?)")
			args = append(args, last[i])
		}
		b.WriteString(")")
	}
	order := make([]string, len(keys))
	for i, k := range keys {
		order[i] = quote(t.Columns[k].Name)
	}
	b.WriteString(" ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(limit))
	return b.String(), args
}

// keyText is a key value as stored in LastKey: its text, or {"base64": ...}
// for binary columns and any value that is not UTF-8 (JSON strings must be).
func keyText(c envelope.Column, v []byte) any {
	if c.Binary || !utf8.Valid(v) {
		return map[string]any{"base64": base64.StdEncoding.EncodeToString(v)}
	}
	return string(v)
}

// keyArg turns a LastKey value back into a query argument of the column's
// type: integers as integers (MariaDB compares an integer column with a
// string as doubles, wrong past 2^53), bytes as bytes, the rest as text
// (decimal and temporal columns compare with a string in their own type).
func keyArg(c envelope.Column, v any) (any, error) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case float64: // a progress written by hand or another encoder
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case map[string]any:
		enc, ok := v["base64"].(string)
		if !ok {
			return nil, fmt.Errorf("last key column %s: unexpected %v", c.Name, v)
		}
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("last key column %s: %w", c.Name, err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("last key column %s: unexpected %T", c.Name, v)
	}
	switch {
	case isInteger(c.Type) && c.Unsigned:
		return strconv.ParseUint(s, 10, 64)
	case isInteger(c.Type):
		return strconv.ParseInt(s, 10, 64)
	}
	return s, nil
}

func isInteger(typ string) bool {
	switch typ {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year":
		return true
	}
	return false
}

// chunk reads and emits the next chunk of table i; done when the table has
// no rows left. It reads one row more than it emits to know that without
// another query.
func (r *runner) chunk(ctx context.Context, i int, t *envelope.Table, keys []int) (bool, error) {
	var last []any
	if prev := r.prog.Tables[i].LastKey; prev != nil {
		last = make([]any, len(keys))
		for j, k := range keys {
			a, err := keyArg(t.Columns[k], prev[j])
			if err != nil {
				return false, err
			}
			last[j] = a
		}
	}
	q, args := chunkQuery(t, keys, last, r.cfg.ChunkSize+1)
	rows, err := r.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("read chunk: %w", err)
	}
	defer rows.Close()
	var msgs []change.Message
	var lastEnv *envelope.Envelope
	var lastKey []any
	done := true
	for rows.Next() {
		if len(msgs) == r.cfg.ChunkSize {
			done = false
			break
		}
		raw, err := scanRaw(rows, len(t.Columns))
		if err != nil {
			return false, err
		}
		m, env, err := r.message(t, raw, true)
		if err != nil {
			return false, err
		}
		msgs, lastEnv = append(msgs, m), env
		lastKey = make([]any, len(keys))
		for j, k := range keys {
			lastKey[j] = keyText(t.Columns[k], raw[k])
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("read chunk: %w", err)
	}
	rows.Close()

	tp := &r.prog.Tables[i]
	tp.Rows += int64(len(msgs))
	tp.Done = done
	if lastKey != nil {
		tp.LastKey = lastKey
	}
	if done {
		tp.LastKey = nil
	}
	cp, err := r.checkpoint()
	if err != nil {
		return false, err
	}
	if len(msgs) == 0 {
		r.advance(cp)
		return done, nil
	}
	return done, r.push(ctx, change.Batch{Messages: msgs, Checkpoint: cp}, lastEnv)
}

// keyless reads a table without primary key in one pass.
func (r *runner) keyless(ctx context.Context, i int, t *envelope.Table) error {
	rows, err := r.conn.QueryContext(ctx, selectList(t))
	if err != nil {
		return fmt.Errorf("read %s.%s: %w", t.DB, t.Name, err)
	}
	defer rows.Close()
	var msgs []change.Message
	var lastEnv *envelope.Envelope
	n := int64(0)
	for rows.Next() {
		if len(msgs) == r.cfg.ChunkSize {
			// No resume point inside the table: no checkpoint.
			if err := r.push(ctx, change.Batch{Messages: msgs}, lastEnv); err != nil {
				return err
			}
			msgs = nil
		}
		raw, err := scanRaw(rows, len(t.Columns))
		if err != nil {
			return err
		}
		m, env, err := r.message(t, raw, false)
		if err != nil {
			return err
		}
		msgs, lastEnv = append(msgs, m), env
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s.%s: %w", t.DB, t.Name, err)
	}
	rows.Close()
	tp := &r.prog.Tables[i]
	tp.Rows += n
	tp.Done, tp.LastKey = true, nil
	cp, err := r.checkpoint()
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		r.advance(cp)
		return nil
	}
	return r.push(ctx, change.Batch{Messages: msgs, Checkpoint: cp}, lastEnv)
}

func scanRaw(rows *sql.Rows, n int) ([][]byte, error) {
	raw := make([]sql.RawBytes, n)
	ptrs := make([]any, n)
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("scan row: %w", err)
	}
	// RawBytes point into the driver's buffer: copy before the next row.
	out := make([][]byte, n)
	for i, b := range raw {
		if b != nil {
			out[i] = append([]byte{}, b...)
		}
	}
	return out, nil
}

// message builds the op "r" event of one row, counting it. In decoded mode
// it returns no envelope.
func (r *runner) message(t *envelope.Table, raw [][]byte, keyed bool) (change.Message, *envelope.Envelope, error) {
	if r.cfg.Decoded {
		return r.decoded(t, raw), nil, nil
	}
	row, err := t.FromText(raw)
	if err != nil {
		return change.Message{}, nil, fmt.Errorf("map row of %s.%s: %w", t.DB, t.Name, err)
	}
	var key []byte
	if keyed {
		if key, err = t.Key(row); err != nil {
			return change.Message{}, nil, fmt.Errorf("key of %s.%s: %w", t.DB, t.Name, err)
		}
	}
	idx := r.prog.Attempt*attemptStride + int(r.counter)
	r.counter++
	env := &envelope.Envelope{
		After: &row,
		Source: envelope.Source{
			Version: sourceVersion, Connector: sourceConnector, Name: r.cfg.Prefix,
			TsMs: r.start.UnixMilli(), Snapshot: "true", DB: t.DB, Table: t.Name,
			GTID: r.prog.GTID, File: r.prog.File, Pos: r.prog.Pos, Row: idx,
		},
		Op:   envelope.OpRead,
		TsMs: time.Now().UnixMilli(),
	}
	value, err := json.Marshal(env)
	if err != nil {
		return change.Message{}, nil, fmt.Errorf("encode row of %s.%s: %w", t.DB, t.Name, err)
	}
	return change.Message{
		Topic: r.cfg.Prefix + "." + t.DB + "." + t.Name, Key: key, Value: value,
		GTID: r.prog.GTID, Row: idx, EventTime: r.start,
	}, env, nil
}

// decoded builds the op "r" RowChange of one row, counting it. Integers
// become int64/uint64 as the binlog's decoded values are, so a row's key
// reads the same whether it was loaded or streamed (conflict keys, cache
// keys); the other values stay the text SELECT returned (FLOAT widened to
// DOUBLE, see SelectList): bound as arguments in a '+00:00' session they
// store the same value.
func (r *runner) decoded(t *envelope.Table, raw [][]byte) change.Message {
	idx := r.prog.Attempt*attemptStride + int(r.counter)
	r.counter++
	after := make([]any, len(raw))
	for i, v := range raw {
		if v == nil {
			continue
		}
		after[i] = v
		if c := t.Columns[i]; isInteger(c.Type) {
			if c.Unsigned {
				if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
					after[i] = n
				}
			} else if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				after[i] = n
			}
		}
	}
	if r.shape != t {
		r.shape, r.shapeCols, r.shapeKey = t, t.ColumnNames(), t.KeyIndexes()
	}
	rc := &change.RowChange{DB: t.DB, Table: t.Name, Op: envelope.OpRead, Columns: r.shapeCols, Key: r.shapeKey, After: after}
	return change.Message{Topic: r.cfg.Prefix + "." + t.DB + "." + t.Name, GTID: r.prog.GTID, Row: idx, EventTime: r.start, Change: rc}
}

func (r *runner) checkpoint() (*change.Checkpoint, error) {
	b, err := json.Marshal(r.prog)
	if err != nil {
		return nil, fmt.Errorf("encode progress: %w", err)
	}
	return &change.Checkpoint{GTID: r.prog.GTID, Snapshot: b, Events: r.counter}, nil
}

// advance records progress made without rows (a table found empty): the
// held-back batch's checkpoint becomes it, as nothing was read in between.
func (r *runner) advance(cp *change.Checkpoint) {
	if r.pending != nil && r.pending.Checkpoint != nil {
		r.pending.Checkpoint = cp
	}
}

// push holds b back and sends the batch held before it.
func (r *runner) push(ctx context.Context, b change.Batch, last *envelope.Envelope) error {
	if err := r.flush(ctx, false); err != nil {
		return err
	}
	r.pending, r.pendingLast = &b, last
	return nil
}

// flush sends the held-back batch; final marks its last row as the last of
// the snapshot.
func (r *runner) flush(ctx context.Context, final bool) error {
	if r.pending == nil {
		return nil
	}
	b := *r.pending
	if final && r.pendingLast != nil {
		env := *r.pendingLast
		env.Source.Snapshot = "last"
		v, err := json.Marshal(&env)
		if err != nil {
			return fmt.Errorf("encode last row: %w", err)
		}
		msgs := slices.Clone(b.Messages)
		msgs[len(msgs)-1].Value = v
		b.Messages = msgs
	}
	select {
	case r.out <- b:
		r.pending, r.pendingLast = nil, nil
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
