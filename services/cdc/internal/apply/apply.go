// Package apply applies a sync job direction's decoded row changes to a
// MySQL (MariaDB) target: inserts, updates and deletes matched against
// their before images, conflicts decided by the job's strategy and
// recorded, DDL replayed or refused, and the direction's watermark kept in
// the target itself (_canopy_sync.watermarks) in the same transaction as
// the changes, so a restart resumes exactly after what was committed. It
// does not read binlogs (package capture does) nor schedule directions
// (package syncrun does).
package apply

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// ErrNoPrimaryKey is wrapped when a change's table has no primary key:
// without one a row cannot be matched on the target.
var ErrNoPrimaryKey = errors.New("table has no primary key")

// ErrDDLStopped is DDLError.Err for a statement refused by DDLStop.
var ErrDDLStopped = errors.New("DDL stops this job (ddl: stop)")

// DDLError is a DDL statement the job cannot get past: one refused by
// DDLStop, or a replay the target rejected.
type DDLError struct {
	Statement string
	Err       error
}

// Error names the statement and why the job cannot get past it.
func (e *DDLError) Error() string {
	return fmt.Sprintf("DDL %q: %v", e.Statement, e.Err)
}

// Unwrap returns the cause (ErrDDLStopped or the target's error).
func (e *DDLError) Unwrap() error { return e.Err }

// Config is one direction's target.
type Config struct {
	JobID, Tenant string
	// From and To are the direction's instance ids; From keys the
	// watermark row.
	From, To string
	// Target is the target primary, reached with the canopy_cdc account.
	Target capture.Source
	// ServerID is the session server_id of every write, so the job's own
	// captures recognise (and skip) them.
	ServerID uint32
	Strategy syncjob.Strategy
	// Column is the column latest-wins compares.
	Column string
	// SourceFirst: on a latest-wins tie the source's version wins.
	SourceFirst bool
	// DDL: replay runs a synced table's DDL on the target; anything else
	// (stop, or unset) fails the direction with a *DDLError.
	DDL syncjob.DDLMode
	// Schema returns the source's CREATE TABLE statement (SHOW CREATE
	// TABLE) of db.table.
	Schema    func(ctx context.Context, db, table string) (string, error)
	Conflicts syncjob.Conflicts
	// Logger carries the job's ids (the runner's does); nil discards.
	Logger *slog.Logger
}

// Validate reports a config Open cannot work with.
func (c Config) Validate() error {
	switch {
	case c.JobID == "" || c.From == "":
		return errors.New("apply: job id and from instance are required")
	case c.Target.Addr == "":
		return errors.New("apply: target address is required")
	case c.Conflicts == nil:
		return errors.New("apply: a conflicts recorder is required")
	}
	switch c.Strategy {
	case syncjob.SourceWins, syncjob.TargetWins, syncjob.Manual:
	case syncjob.LatestWins:
		if c.Column == "" {
			return errors.New("apply: latest-wins needs a column")
		}
	default:
		return fmt.Errorf("apply: unknown conflict strategy %q", c.Strategy)
	}
	return nil
}

// Applier is a MySQL target of one sync job direction. Apply calls are
// sequential (one direction owns the applier); Watermark, Resolve and Drop
// may run beside them.
type Applier struct {
	cfg Config
	log *slog.Logger
	db  *sql.DB
	now func() time.Time

	mu     sync.Mutex
	tables map[string]*table // "db.table" known to exist with a primary key

	// Apply's session: a pinned connection holding the open transaction.
	sess *session
	inTx bool
	// reconcile is the current batch's change.Batch.Reconcile.
	reconcile bool
	// pos is the committed position; running adds the GTIDs applied in
	// the open transaction (what a DDL's pre-statement watermark is).
	pos, running string
	lastGTID     string
	pending      syncjob.Stats
}

var _ syncjob.Applier = (*Applier)(nil)

const watermarkDDL = `CREATE TABLE IF NOT EXISTS _canopy_sync.watermarks (
  job_id VARCHAR(64) NOT NULL,
  source_instance VARCHAR(64) NOT NULL,
  position TEXT NOT NULL,
  load_progress LONGBLOB NULL,
  applied BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (job_id, source_instance)
) ENGINE=InnoDB`

// Open connects to the target and creates _canopy_sync.watermarks if it
// is missing.
func Open(ctx context.Context, cfg Config) (*Applier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = cfg.Target.User, cfg.Target.Password, "tcp", cfg.Target.Addr
	mc.Timeout = 10 * time.Second
	// Affected rows = matched rows, so an UPDATE that matched its before
	// image but changed nothing is not taken for a conflict.
	mc.ClientFoundRows = true
	// Multi-row INSERTs go out as one text statement: one round trip and
	// no server-side statement per row count.
	mc.InterpolateParams = true
	// Every session: values as the capture decoded them (UTC temporal text,
	// explicit zeros in AUTO_INCREMENT columns), no FK ordering between
	// tables, and the job's server id on every write.
	mc.Params = map[string]string{
		"time_zone":          "'+00:00'",
		"sql_mode":           "'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
		"foreign_key_checks": "0",
	}
	if cfg.ServerID != 0 {
		mc.Params["server_id"] = strconv.FormatUint(uint64(cfg.ServerID), 10)
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("apply target %s: %w", cfg.Target.Addr, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	a := &Applier{cfg: cfg, log: log, db: db, now: time.Now, tables: map[string]*table{}}
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS _canopy_sync", watermarkDDL} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, fmt.Errorf("create watermark table on %s: %w", cfg.Target.Addr, err)
		}
	}
	w, err := a.Watermark(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	a.pos, a.running = w.Position, w.Position
	return a, nil
}

// Watermark reads this direction's committed watermark; the zero value
// when nothing was applied yet.
func (a *Applier) Watermark(ctx context.Context) (syncjob.Watermark, error) {
	var w syncjob.Watermark
	err := a.db.QueryRowContext(ctx, "SELECT position, load_progress, applied FROM _canopy_sync.watermarks WHERE job_id = ? AND source_instance = ?",
		a.cfg.JobID, a.cfg.From).Scan(&w.Position, &w.Load, &w.Applied)
	if errors.Is(err, sql.ErrNoRows) {
		return syncjob.Watermark{}, nil
	}
	if err != nil {
		return syncjob.Watermark{}, fmt.Errorf("read watermark of job %s from %s on %s: %w", a.cfg.JobID, a.cfg.From, a.cfg.Target.Addr, err)
	}
	return w, nil
}

// Drop removes this direction's watermark (the job is deleted).
func (a *Applier) Drop(ctx context.Context) error {
	if _, err := a.db.ExecContext(ctx, "DELETE FROM _canopy_sync.watermarks WHERE job_id = ? AND source_instance = ?", a.cfg.JobID, a.cfg.From); err != nil {
		return fmt.Errorf("drop watermark of job %s from %s on %s: %w", a.cfg.JobID, a.cfg.From, a.cfg.Target.Addr, err)
	}
	return nil
}

// Close ends the applier; an open transaction (changes of batches without
// a checkpoint) is rolled back.
func (a *Applier) Close() error {
	a.discard()
	return a.db.Close()
}

// Apply applies b's changes in the open target transaction and, when b has
// a checkpoint, moves the watermark and commits. It returns what this call
// committed. After an error the open transaction is gone (rolled back with
// every uncommitted batch before it): the caller resumes from Watermark.
func (a *Applier) Apply(ctx context.Context, b change.Batch) (syncjob.Stats, error) {
	var done syncjob.Stats
	if err := a.apply(ctx, b, &done); err != nil {
		a.discard()
		var de *DDLError
		if errors.As(err, &de) || errors.Is(err, ErrNoPrimaryKey) {
			return done, err
		}
		return done, fmt.Errorf("apply batch of job %s to %s: %w", a.cfg.JobID, a.cfg.Target.Addr, err)
	}
	return done, nil
}

func (a *Applier) apply(ctx context.Context, b change.Batch, done *syncjob.Stats) error {
	a.reconcile = b.Reconcile
	if err := a.begin(ctx); err != nil {
		return err
	}
	msgs := b.Messages
	for i := 0; i < len(msgs); {
		m := msgs[i]
		switch {
		case m.Schema != nil:
			if err := a.ddl(ctx, m, done); err != nil {
				return err
			}
			i++
			continue
		case m.Change == nil:
			i++
			continue
		}
		rc := m.Change
		start := i
		t, err := a.table(ctx, rc)
		if err != nil {
			return err
		}
		switch rc.Op {
		case "c", "r":
			j := i + 1
			for j < len(msgs) && sameRun(rc, msgs[j].Change) {
				j++
			}
			if err := a.insertRun(ctx, a.sess, t, msgs[i:j], &a.pending); err != nil {
				return err
			}
			i = j
		case "u":
			if err := a.update(ctx, a.sess, t, m, &a.pending); err != nil {
				return err
			}
			i++
		case "d":
			if err := a.delete(ctx, a.sess, t, m, &a.pending); err != nil {
				return err
			}
			i++
		default:
			return fmt.Errorf("change of %s.%s at %s/%d: unknown op %q", rc.DB, rc.Table, m.GTID, m.Row, rc.Op)
		}
		if rc.Op != "r" {
			for _, m := range msgs[start:i] {
				if m.GTID != a.lastGTID {
					a.running = mergePosition(a.running, m.GTID)
					a.lastGTID = m.GTID
				}
			}
		}
	}
	if b.Checkpoint == nil {
		return nil
	}
	return a.commit(ctx, b.Checkpoint.GTID, b.Checkpoint.Snapshot, done)
}

// sameRun says whether next continues rc's run of inserts (or snapshot
// rows) into one table with the same columns.
func sameRun(rc, next *change.RowChange) bool {
	if next == nil || next.Op != rc.Op || next.DB != rc.DB || next.Table != rc.Table || len(next.Columns) != len(rc.Columns) {
		return false
	}
	for i, c := range rc.Columns {
		if next.Columns[i] != c {
			return false
		}
	}
	return true
}

// begin opens the session and its transaction unless one is open.
func (a *Applier) begin(ctx context.Context) error {
	if a.sess == nil {
		conn, err := a.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		a.sess = newSession(conn)
	}
	if a.inTx {
		return nil
	}
	if _, err := a.sess.conn.ExecContext(ctx, "BEGIN"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	a.inTx = true
	return nil
}

const upsertWatermark = `INSERT INTO _canopy_sync.watermarks (job_id, source_instance, position, load_progress, applied) VALUES (?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE position = VALUES(position), load_progress = VALUES(load_progress), applied = applied + VALUES(applied)`

// commit writes the watermark in the open transaction and commits it.
func (a *Applier) commit(ctx context.Context, pos string, load []byte, done *syncjob.Stats) error {
	if _, err := a.sess.exec(ctx, upsertWatermark, a.cfg.JobID, a.cfg.From, pos, load, a.pending.Applied); err != nil {
		return fmt.Errorf("write watermark: %w", err)
	}
	if _, err := a.sess.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	a.inTx = false
	a.pos, a.running, a.lastGTID = pos, pos, ""
	addStats(done, a.pending)
	a.pending = syncjob.Stats{}
	return nil
}

// discard drops the session and rolls back its transaction.
func (a *Applier) discard() {
	if a.sess != nil {
		a.sess.close()
		closeConn(a.sess.conn)
		a.sess = nil
	}
	a.inTx = false
	a.running, a.lastGTID = a.pos, ""
	a.pending = syncjob.Stats{}
}

// closeConn rolls back what conn may hold open and gives it back. A
// connection the ROLLBACK cannot reach is broken, and the driver reports
// it invalid, so the pool drops it instead of reusing it mid-transaction.
func closeConn(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.ExecContext(ctx, "ROLLBACK")
	_ = conn.Close()
}

func addStats(to *syncjob.Stats, s syncjob.Stats) {
	to.Applied += s.Applied
	to.Conflicts += s.Conflicts
	for k, n := range s.Tables {
		if to.Tables == nil {
			to.Tables = map[string]int64{}
		}
		to.Tables[k] += n
	}
}

// countApplied counts n rows of t as applied in st.
func countApplied(st *syncjob.Stats, t *table, n int64) {
	st.Applied += n
	if st.Tables == nil {
		st.Tables = map[string]int64{}
	}
	st.Tables[t.name] += n
}
