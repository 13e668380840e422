package capture

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/envelope"
)

// Version is source.version in every event this capture publishes.
const Version = "canopy-cdc/1"

// Defaults.
const (
	DefaultMaxBatch = 1000
	// maxBatchBytes bounds a batch's encoded size next to its count.
	maxBatchBytes = 4 << 20
	// idleFlush is how long a checkpoint of filtered-out transactions may
	// wait for more before it is handed on alone.
	idleFlush = 50 * time.Millisecond
	// heartbeat and readTimeout: the source sends a heartbeat every
	// second when idle, so three silent seconds mean it is gone.
	heartbeat   = time.Second
	readTimeout = 3 * time.Second
)

// SyncSchema is the schema where sync jobs keep their watermarks on a
// target. It is never captured, whatever Include says: copying it along a
// chain of jobs (A→B→C) would move another job's position.
const SyncSchema = "_canopy_sync"

// ErrPositionLost is returned when the source no longer has the binlog of
// the start position (purged, or a GTID it never had): streaming cannot
// continue without a new snapshot.
var ErrPositionLost = errors.New("binlog position lost")

// errCodePositionLost is ER_MASTER_FATAL_ERROR_READING_BINLOG, what
// MariaDB answers a dump request it cannot serve from its binlogs.
const errCodePositionLost = 1236

// PoisonError is a row change that cannot be decoded or mapped: the stream
// must stop rather than skip it.
type PoisonError struct {
	GTID, Table, Column string
	Err                 error
}

func (e *PoisonError) Error() string {
	col := ""
	if e.Column != "" {
		col = " column " + e.Column
	}
	return fmt.Sprintf("cannot decode row change of %s%s at GTID %s: %v", e.Table, col, e.GTID, e.Err)
}

func (e *PoisonError) Unwrap() error { return e.Err }

// Source is the node to read the binlog from.
type Source struct{ Addr, User, Password string }

// Config is one capture.
type Config struct {
	Source Source
	// ServerID is the replica server id this capture registers with; it
	// must be unique among the source's replicas.
	ServerID uint32
	// Prefix is the logical server name, cdc.<tenant>.<instance>.
	Prefix string
	// Include says whether a table's changes are published; nil includes
	// every table. SyncSchema's tables are never published.
	Include func(db, table string) bool
	// Tombstones adds a nil-valued message after each delete.
	Tombstones bool
	// Start is the GTID position to start after; "" is the source's
	// current end (@@gtid_binlog_pos), unless FromStart.
	Start string
	// FromStart makes an empty Start mean the beginning of the source's
	// binlog (MariaDB's empty GTID state): a snapshot taken before the
	// source logged any transaction has an empty position, and every
	// change after it must be read.
	FromStart bool
	// MaxBatch is the most messages in one batch (default 1000).
	MaxBatch int
	// OnDDL, when set, is called with each captured table DDL before its
	// schema-change message is emitted.
	OnDDL func(ctx context.Context, d DDL) error
	// Decoded makes messages carry the decoded row change (Message.Change,
	// SQL argument values; ops c, u and d, an update of the primary key
	// staying one "u") or the DDL (Message.Schema) instead of an encoded
	// Key and Value: what a sync job applies to another database.
	// Tombstones has no effect then.
	Decoded bool
	// SkipServerID, when not 0, skips every transaction whose GTID event
	// carries this server id: a sync job's own writes to this node (made
	// with that session server_id) must not be applied back. The position
	// still moves past them; Checkpoint.Skipped counts them.
	SkipServerID uint32
	// Logger is optional (nil: discard).
	Logger *slog.Logger
}

// DDL is a schema change seen in the binlog.
type DDL struct {
	GTID, DB, Table, Statement string
	At                         time.Time
}

// Run reads the source's binlog from cfg.Start and sends batches of
// encoded messages to out, in commit order, until ctx is done (it then
// returns ctx.Err()) or a failure: ErrPositionLost, *PoisonError, or a
// wrapped connection error (the caller reconnects from its checkpoint,
// maybe to another node). Checkpoint.Events counts the row-change
// messages (not tombstones or schema changes) since this Run started.
func Run(ctx context.Context, cfg Config, out chan<- change.Batch) error {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if include := cfg.Include; include == nil {
		cfg.Include = func(db, _ string) bool { return db != SyncSchema }
	} else {
		cfg.Include = func(db, table string) bool { return db != SyncSchema && include(db, table) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, portStr, err := net.SplitHostPort(cfg.Source.Addr)
	if err != nil {
		return fmt.Errorf("source address %q: %w", cfg.Source.Addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fmt.Errorf("source address %q: %w", cfg.Source.Addr, err)
	}
	start := cfg.Start
	if start == "" && !cfg.FromStart {
		if start, err = BinlogPos(ctx, cfg.Source); err != nil {
			return err
		}
	}
	pos, err := parsePosition(start)
	if err != nil {
		return fmt.Errorf("start position %q: %w", start, err)
	}
	gset, err := mysql.ParseMariadbGTIDSet(start)
	if err != nil {
		return fmt.Errorf("start position %q: %w", start, err)
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: cfg.ServerID, Flavor: mysql.MariaDBFlavor,
		Host: host, Port: uint16(port), User: cfg.Source.User, Password: cfg.Source.Password,
		// Temporal values as text, TIMESTAMP formatted in UTC, DECIMAL
		// as its digits: the forms envelope.FromBinlog expects, equal to
		// what a '+00:00' SELECT returns.
		ParseTime: false, TimestampStringLocation: time.UTC, UseDecimal: false,
		HeartbeatPeriod: heartbeat, ReadTimeout: readTimeout,
		// Reconnecting is the pipeline's job: it may pick another node.
		DisableRetrySync: true,
		Logger:           cfg.Logger,
	})
	defer syncer.Close()
	streamer, err := syncer.StartSyncGTID(gset)
	if err != nil {
		return classify(fmt.Errorf("start binlog dump from %s at %q: %w", cfg.Source.Addr, start, err), start)
	}
	r := &reader{cfg: cfg, out: out, pos: pos, tables: map[*replication.TableMapEvent]*envelope.Table{}, lastFlush: time.Now()}
	for {
		ev, err := r.next(ctx, streamer)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return classify(fmt.Errorf("binlog from %s after %q: %w", cfg.Source.Addr, r.position(), err), r.position())
		}
		if ev == nil {
			// Idle: hand on the checkpoint of filtered-out transactions.
			if err := r.flush(ctx, true); err != nil {
				return err
			}
			continue
		}
		if err := r.handle(ctx, ev); err != nil {
			return err
		}
	}
}

// BinlogPos returns the source's current @@gtid_binlog_pos.
func BinlogPos(ctx context.Context, src Source) (string, error) {
	dcfg := gomysql.NewConfig()
	dcfg.User, dcfg.Passwd, dcfg.Net, dcfg.Addr = src.User, src.Password, "tcp", src.Addr
	dcfg.Timeout, dcfg.ReadTimeout = 5*time.Second, 10*time.Second
	conn, err := gomysql.NewConnector(dcfg)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", src.Addr, err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var p string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
		return "", fmt.Errorf("gtid_binlog_pos of %s: %w", src.Addr, err)
	}
	return p, nil
}

func classify(err error, at string) error {
	var me *mysql.MyError
	if errors.As(err, &me) && me.Code == errCodePositionLost {
		return fmt.Errorf("%w at %q: %w", ErrPositionLost, at, err)
	}
	return err
}

// parsePosition reads a gtid_slave_pos style position (one
// domain-server-seq per domain).
func parsePosition(s string) (map[uint32]mysql.MariadbGTID, error) {
	pos := map[uint32]mysql.MariadbGTID{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		g, err := mysql.ParseMariadbGTID(part)
		if err != nil {
			return nil, err
		}
		if _, dup := pos[g.DomainID]; dup {
			return nil, fmt.Errorf("domain %d twice", g.DomainID)
		}
		pos[g.DomainID] = *g
	}
	return pos, nil
}

func formatPosition(pos map[uint32]mysql.MariadbGTID) string {
	domains := make([]uint32, 0, len(pos))
	for d := range pos {
		domains = append(domains, d)
	}
	sort.Slice(domains, func(i, j int) bool { return domains[i] < domains[j] })
	parts := make([]string, len(domains))
	for i, d := range domains {
		g := pos[d]
		parts[i] = fmt.Sprintf("%d-%d-%d", g.DomainID, g.ServerID, g.SequenceNumber)
	}
	return strings.Join(parts, ",")
}

// reader turns binlog events into batches.
type reader struct {
	cfg Config
	out chan<- change.Batch

	pos map[uint32]mysql.MariadbGTID // position after the last complete transaction
	// The transaction being read.
	gtid       mysql.MariadbGTID
	gtidStr    string
	inTx       bool
	standalone bool
	serverID   uint32
	skip       bool // the transaction is SkipServerID's
	row        int
	tables     map[*replication.TableMapEvent]*envelope.Table
	file       string

	pending      []change.Message
	pendingBytes int
	dirty        bool // a commit since the last checkpoint handed on
	events       int64
	skipped      int64
	lastFlush    time.Time
	flushedInTx  bool
}

func (r *reader) position() string { return formatPosition(r.pos) }

// next waits for the next event; while a checkpoint waits to be handed on
// it waits at most idleFlush and returns (nil, nil) on timeout.
func (r *reader) next(ctx context.Context, s *replication.BinlogStreamer) (*replication.BinlogEvent, error) {
	if !r.dirty || len(r.pending) > 0 || r.inTx {
		return s.GetEvent(ctx)
	}
	wctx, cancel := context.WithTimeout(ctx, idleFlush)
	defer cancel()
	ev, err := s.GetEvent(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, nil
	}
	return ev, err
}

// gtidOf reads a GTID event's GTID from the event's own bytes. go-mysql's
// syncer keeps a pointer to the decoded event's GTID in its position set
// when the set has no entry for that server yet (a start from an empty
// position, a new primary after a failover) and moves it forward with
// later events, concurrently with our read: the decoded struct may already
// name a later transaction. The raw bytes are never changed.
func gtidOf(ev *replication.BinlogEvent, e *replication.MariadbGTIDEvent) mysql.MariadbGTID {
	body := ev.RawData
	if len(body) < replication.EventHeaderSize+12 {
		return mysql.MariadbGTID{DomainID: e.GTID.DomainID, ServerID: ev.Header.ServerID, SequenceNumber: e.GTID.SequenceNumber}
	}
	body = body[replication.EventHeaderSize:]
	return mysql.MariadbGTID{SequenceNumber: binary.LittleEndian.Uint64(body), DomainID: binary.LittleEndian.Uint32(body[8:]),
		ServerID: ev.Header.ServerID}
}

func (r *reader) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		r.file = string(e.NextLogName)
	case *replication.MariadbGTIDEvent:
		r.gtid = gtidOf(ev, e)
		r.gtidStr = r.gtid.String()
		r.serverID = ev.Header.ServerID
		r.skip = r.cfg.SkipServerID != 0 && r.serverID == r.cfg.SkipServerID
		r.inTx, r.standalone, r.row = true, e.IsStandalone(), 0
		r.flushedInTx = false
		clear(r.tables)
	case *replication.XIDEvent:
		return r.commit(ctx)
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		switch {
		case strings.EqualFold(q, "BEGIN"):
			return nil
		case strings.EqualFold(q, "COMMIT"), strings.EqualFold(q, "ROLLBACK"):
			// A ROLLBACK ends a group whose logged rows are the
			// non-transactional ones, which did happen.
			return r.commit(ctx)
		}
		if err := r.ddl(ctx, ev, e, q); err != nil {
			return err
		}
		if r.standalone {
			return r.commit(ctx)
		}
	case *replication.RowsEvent:
		return r.rows(ctx, ev, e)
	}
	return nil
}

// commit ends the transaction: the position moves past it and, when
// messages wait or a checkpoint has waited long enough, a batch goes out.
func (r *reader) commit(ctx context.Context) error {
	if !r.inTx {
		return nil
	}
	r.inTx = false
	r.pos[r.gtid.DomainID] = r.gtid
	if r.skip {
		r.skipped++
	}
	r.dirty = true
	return r.flush(ctx, len(r.pending) > 0 || r.flushedInTx || time.Since(r.lastFlush) >= idleFlush)
}

// flush hands on the pending messages, with the checkpoint when no
// transaction is open. force also sends a checkpoint with no messages.
func (r *reader) flush(ctx context.Context, force bool) error {
	if !force && len(r.pending) == 0 {
		return nil
	}
	var b change.Batch
	b.Messages = r.pending
	if !r.inTx && r.dirty {
		b.Checkpoint = &change.Checkpoint{GTID: r.position(), Events: r.events, Skipped: r.skipped}
		r.dirty = false
	}
	if len(b.Messages) == 0 && b.Checkpoint == nil {
		return nil
	}
	select {
	case r.out <- b:
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.inTx && len(b.Messages) > 0 {
		r.flushedInTx = true
	}
	r.pending, r.pendingBytes = nil, 0
	r.lastFlush = time.Now()
	return nil
}

func (r *reader) emit(ctx context.Context, m change.Message) error {
	r.pending = append(r.pending, m)
	r.pendingBytes += len(m.Key) + len(m.Value)
	if m.Change != nil {
		r.pendingBytes += decodedSize(m.Change.Before) + decodedSize(m.Change.After)
	}
	if len(r.pending) >= r.cfg.MaxBatch || r.pendingBytes >= maxBatchBytes {
		return r.flush(ctx, false)
	}
	return nil
}

func (r *reader) source(ev *replication.BinlogEvent, db, table string) envelope.Source {
	return envelope.Source{
		Version: Version, Connector: "mysql", Name: r.cfg.Prefix,
		TsMs: int64(ev.Header.Timestamp) * 1000, Snapshot: "false",
		DB: db, Table: table, ServerID: r.serverID, GTID: r.gtidStr,
		File: r.file, Pos: ev.Header.LogPos - ev.Header.EventSize, Row: r.row,
	}
}

func (r *reader) rows(ctx context.Context, ev *replication.BinlogEvent, e *replication.RowsEvent) error {
	var op string
	switch ev.Header.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		op = envelope.OpCreate
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		op = envelope.OpUpdate
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		op = envelope.OpDelete
	default:
		return &PoisonError{GTID: r.gtidStr, Table: "?", Err: fmt.Errorf("rows event type %s", ev.Header.EventType)}
	}
	db, table := string(e.Table.Schema), string(e.Table.Table)
	changes := len(e.Rows)
	if op == envelope.OpUpdate {
		changes /= 2
	}
	if r.skip || !r.cfg.Include(db, table) {
		// Counted all the same: a row's index does not depend on the
		// stream's filter.
		r.row += changes
		return nil
	}
	t, ok := r.tables[e.Table]
	if !ok {
		var err error
		if t, err = envelope.TableFromMap(db, table, e.Table); err != nil {
			return &PoisonError{GTID: r.gtidStr, Table: db + "." + table, Err: err}
		}
		r.tables[e.Table] = t
	}
	topic := r.cfg.Prefix + "." + db + "." + table
	at := time.Unix(int64(ev.Header.Timestamp), 0)
	step := 1
	if op == envelope.OpUpdate {
		step = 2
	}
	if r.cfg.Decoded {
		return r.decodedRows(ctx, t, op, topic, at, e.Rows, step)
	}
	for i := 0; i+step <= len(e.Rows); i += step {
		env := envelope.Envelope{Op: op, Source: r.source(ev, db, table), TsMs: time.Now().UnixMilli()}
		var keyRow envelope.Row
		switch op {
		case envelope.OpCreate:
			after, err := r.decode(t, e.Rows[i])
			if err != nil {
				return err
			}
			env.After, keyRow = &after, after
		case envelope.OpUpdate:
			before, err := r.decode(t, e.Rows[i])
			if err != nil {
				return err
			}
			after, err := r.decode(t, e.Rows[i+1])
			if err != nil {
				return err
			}
			env.Before, env.After, keyRow = &before, &after, after
			moved, err := r.keyMoved(ctx, t, topic, &env, at)
			if err != nil {
				return err
			}
			if moved {
				continue
			}
		case envelope.OpDelete:
			before, err := r.decode(t, e.Rows[i])
			if err != nil {
				return err
			}
			env.Before, keyRow = &before, before
		}
		key, err := t.Key(keyRow)
		if err != nil {
			return &PoisonError{GTID: r.gtidStr, Table: db + "." + table, Err: err}
		}
		val, err := env.Encode()
		if err != nil {
			return &PoisonError{GTID: r.gtidStr, Table: db + "." + table, Err: err}
		}
		m := change.Message{Topic: topic, Key: key, Value: val, GTID: r.gtidStr, Row: r.row, EventTime: at, ServerID: r.serverID}
		r.events++
		if err := r.emit(ctx, m); err != nil {
			return err
		}
		if op == envelope.OpDelete && r.cfg.Tombstones {
			m.Value = nil
			if err := r.emit(ctx, m); err != nil {
				return err
			}
		}
		r.row++
	}
	return nil
}

// keyMoved publishes an update that changes the row's primary key the way
// Debezium does: a delete under the old key (and its tombstone), then a
// create under the new one, so a consumer keyed by the primary key (a
// compacted topic, a sink table) drops the old row. Each gets its own row
// index so (gtid, row) stays unique. It reports false, publishing nothing,
// when the key did not change.
func (r *reader) keyMoved(ctx context.Context, t *envelope.Table, topic string, env *envelope.Envelope, at time.Time) (bool, error) {
	oldKey, err := t.Key(*env.Before)
	if err != nil {
		return false, &PoisonError{GTID: r.gtidStr, Table: t.DB + "." + t.Name, Err: err}
	}
	newKey, err := t.Key(*env.After)
	if err != nil {
		return false, &PoisonError{GTID: r.gtidStr, Table: t.DB + "." + t.Name, Err: err}
	}
	if oldKey == nil || bytes.Equal(oldKey, newKey) {
		return false, nil
	}
	del, ins := *env, *env
	del.Op, del.After = envelope.OpDelete, nil
	ins.Op, ins.Before = envelope.OpCreate, nil
	for _, step := range []struct {
		env envelope.Envelope
		key []byte
	}{{del, oldKey}, {ins, newKey}} {
		step.env.Source.Row = r.row
		val, err := step.env.Encode()
		if err != nil {
			return false, &PoisonError{GTID: r.gtidStr, Table: t.DB + "." + t.Name, Err: err}
		}
		m := change.Message{Topic: topic, Key: step.key, Value: val, GTID: r.gtidStr, Row: r.row, EventTime: at, ServerID: r.serverID}
		r.events++
		if err := r.emit(ctx, m); err != nil {
			return false, err
		}
		if step.env.Op == envelope.OpDelete && r.cfg.Tombstones {
			m.Value = nil
			if err := r.emit(ctx, m); err != nil {
				return false, err
			}
		}
		r.row++
	}
	return true, nil
}

func (r *reader) decode(t *envelope.Table, values []any) (envelope.Row, error) {
	row, err := t.FromBinlog(values)
	if err != nil {
		pe := &PoisonError{GTID: r.gtidStr, Table: t.DB + "." + t.Name, Err: err}
		var ve *envelope.ValueError
		if errors.As(err, &ve) {
			pe.Column = ve.Column
		}
		return envelope.Row{}, pe
	}
	return row, nil
}

// decodedRows emits the row changes of one rows event as RowChanges (Decoded
// mode). An update of the primary key stays one "u" with both images: the
// applier finds the old row by Before's key.
func (r *reader) decodedRows(ctx context.Context, t *envelope.Table, op, topic string, at time.Time, rows [][]any, step int) error {
	cols, key := t.ColumnNames(), t.KeyIndexes()
	for i := 0; i+step <= len(rows); i += step {
		rc := &change.RowChange{DB: t.DB, Table: t.Name, Op: op, Columns: cols, Key: key}
		var err error
		switch op {
		case envelope.OpCreate:
			rc.After, err = r.sqlValues(t, rows[i])
		case envelope.OpUpdate:
			if rc.Before, err = r.sqlValues(t, rows[i]); err == nil {
				rc.After, err = r.sqlValues(t, rows[i+1])
			}
		case envelope.OpDelete:
			rc.Before, err = r.sqlValues(t, rows[i])
		}
		if err != nil {
			return err
		}
		m := change.Message{Topic: topic, GTID: r.gtidStr, Row: r.row, EventTime: at, Change: rc, ServerID: r.serverID}
		r.events++
		if err := r.emit(ctx, m); err != nil {
			return err
		}
		r.row++
	}
	return nil
}

func (r *reader) sqlValues(t *envelope.Table, values []any) ([]any, error) {
	out, err := t.SQLFromBinlog(values)
	if err != nil {
		pe := &PoisonError{GTID: r.gtidStr, Table: t.DB + "." + t.Name, Err: err}
		var ve *envelope.ValueError
		if errors.As(err, &ve) {
			pe.Column = ve.Column
		}
		return nil, pe
	}
	return out, nil
}

// decodedSize estimates a decoded row image's memory, so that batches of
// decoded messages stay bounded by maxBatchBytes like encoded ones.
func decodedSize(values []any) int {
	n := 0
	for _, v := range values {
		switch x := v.(type) {
		case string:
			n += len(x) + 16
		case []byte:
			n += len(x) + 24
		default:
			n += 16
		}
	}
	return n
}
