package apply

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// MariaDB error codes the applier branches on.
const (
	errDupEntry = 1062
	// errNoSuchTable is ER_NO_SUCH_TABLE.
	errNoSuchTable = 1146
)

func isCode(err error, code uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == code
}

// Bounds of one multi-row INSERT: under the server's max_allowed_packet
// (16 MiB by default) with room to spare.
const (
	maxRunRows  = 2000
	maxRunBytes = 4 << 20
)

// session is one pinned connection and its prepared statements, keyed by
// their text (one per table and statement shape).
type session struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
}

func newSession(conn *sql.Conn) *session { return &session{conn: conn, stmts: map[string]*sql.Stmt{}} }

func (s *session) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts[q]; ok {
		return st, nil
	}
	st, err := s.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s.stmts[q] = st
	return st, nil
}

func (s *session) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := s.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// close closes the prepared statements (DDL changed a table, or the
// session ends).
func (s *session) close() {
	for q, st := range s.stmts {
		st.Close()
		delete(s.stmts, q)
	}
}

// table is a target table known to exist with a primary key.
type table struct {
	db, table string
	name      string // "db.table"
	quoted    string // `db`.`table`
}

func quote(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

// table returns rc's target table, creating it from the source's schema
// when it is missing. Creation runs on a connection of its own: DDL would
// commit the open transaction.
func (a *Applier) table(ctx context.Context, rc *change.RowChange) (*table, error) {
	name := rc.DB + "." + rc.Table
	if len(rc.Key) == 0 {
		return nil, fmt.Errorf("sync %s: %w", name, ErrNoPrimaryKey)
	}
	if len(rc.Columns) == 0 {
		return nil, fmt.Errorf("change of %s has no columns", name)
	}
	a.mu.Lock()
	t, ok := a.tables[name]
	a.mu.Unlock()
	if ok {
		return t, nil
	}
	exists, hasPK, err := a.lookup(ctx, rc.DB, rc.Table)
	if err != nil {
		return nil, err
	}
	if !exists {
		if err := a.create(ctx, rc.DB, rc.Table); err != nil {
			return nil, err
		}
		if exists, hasPK, err = a.lookup(ctx, rc.DB, rc.Table); err != nil {
			return nil, err
		}
		if !exists {
			return nil, fmt.Errorf("create %s on %s: table still missing", name, a.cfg.Target.Addr)
		}
	}
	if !hasPK {
		return nil, fmt.Errorf("target table %s on %s: %w", name, a.cfg.Target.Addr, ErrNoPrimaryKey)
	}
	t = &table{db: rc.DB, table: rc.Table, name: name, quoted: quote(rc.DB) + "." + quote(rc.Table)}
	a.mu.Lock()
	a.tables[name] = t
	a.mu.Unlock()
	return t, nil
}

// forget drops db.table from the known tables (a DDL touched it).
func (a *Applier) forget(db, tbl string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tbl == "" {
		for k, t := range a.tables {
			if t.db == db {
				delete(a.tables, k)
			}
		}
		return
	}
	delete(a.tables, db+"."+tbl)
}

func (a *Applier) lookup(ctx context.Context, db, tbl string) (exists, hasPK bool, err error) {
	var n, pk int
	// Constant schema and table names let the server open only this
	// table's metadata, not every table's.
	err = a.db.QueryRowContext(ctx, `SELECT
  (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?),
  (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY')`,
		db, tbl, db, tbl).Scan(&n, &pk)
	if err != nil {
		return false, false, fmt.Errorf("look up %s.%s on %s: %w", db, tbl, a.cfg.Target.Addr, err)
	}
	return n > 0, pk > 0, nil
}

var createTable = regexp.MustCompile(`(?is)^\s*CREATE\s+(TEMPORARY\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?`)

// create makes db.tbl on the target as the source has it.
func (a *Applier) create(ctx context.Context, db, tbl string) error {
	if a.cfg.Schema == nil {
		return fmt.Errorf("table %s.%s is missing on %s and no schema source is configured", db, tbl, a.cfg.Target.Addr)
	}
	stmt, err := a.cfg.Schema(ctx, db, tbl)
	if err != nil {
		return fmt.Errorf("read source schema of %s.%s: %w", db, tbl, err)
	}
	if !createTable.MatchString(stmt) {
		return fmt.Errorf("source schema of %s.%s is not a CREATE TABLE: %.60q", db, tbl, stmt)
	}
	stmt = createTable.ReplaceAllString(stmt, "CREATE TABLE IF NOT EXISTS ")
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", a.cfg.Target.Addr, err)
	}
	defer conn.Close()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + quote(db), "USE " + quote(db), stmt} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create %s.%s on %s: %s: %w", db, tbl, a.cfg.Target.Addr, q, err)
		}
	}
	a.log.Info("created missing target table", "table", db+"."+tbl)
	return nil
}

// columnList is "`a`,`b`".
func columnList(cols []string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quote(c))
	}
	return b.String()
}

func onDuplicateUpdate(cols []string) string {
	var b strings.Builder
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		q := quote(c)
		b.WriteString(q + "=VALUES(" + q + ")")
	}
	return b.String()
}

// keyWhere is "`k1` = ? AND `k2` = ?" over rc's key columns.
func keyWhere(rc *change.RowChange) string {
	parts := make([]string, len(rc.Key))
	for i, k := range rc.Key {
		parts[i] = quote(rc.Columns[k]) + " = ?"
	}
	return strings.Join(parts, " AND ")
}

// imageWhere matches every column null-safely: "`a` <=> ? AND …".
func imageWhere(cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = quote(c) + " <=> ?"
	}
	return strings.Join(parts, " AND ")
}

func keyValues(rc *change.RowChange, row []any) []any {
	vs := make([]any, len(rc.Key))
	for i, k := range rc.Key {
		vs[i] = row[k]
	}
	return vs
}

func keyChanged(rc *change.RowChange) bool {
	for _, k := range rc.Key {
		if !sameValue(rc.Before[k], rc.After[k]) {
			return true
		}
	}
	return false
}

func sameValue(x, y any) bool {
	switch xv := x.(type) {
	case []byte:
		switch yv := y.(type) {
		case []byte:
			return string(xv) == string(yv)
		case string:
			return string(xv) == yv
		}
		return false
	case string:
		if yv, ok := y.([]byte); ok {
			return xv == string(yv)
		}
	}
	return x == y
}

func checkImage(rc *change.RowChange, row []any, which string) error {
	if len(row) != len(rc.Columns) {
		return fmt.Errorf("change of %s.%s: %s has %d values for %d columns", rc.DB, rc.Table, which, len(row), len(rc.Columns))
	}
	return nil
}

// insertRun applies a run of inserts (or snapshot rows) into one table:
// multi-row INSERTs, each in a savepoint; one that hits an existing row is
// rolled back and its rows applied one by one with conflict handling.
// Snapshot rows are inserts too: a row the target already has differently
// is a conflict its strategy decides (a manual job must not overwrite the
// target's rows in its initial load); only a reconciling batch upserts.
func (a *Applier) insertRun(ctx context.Context, s *session, t *table, msgs []change.Message, st *syncjob.Stats) error {
	rc := msgs[0].Change
	upsert := rc.Op == "r" && a.reconcile
	head := "INSERT INTO " + t.quoted + " (" + columnList(rc.Columns) + ") VALUES "
	tuple := store.Placeholders(len(rc.Columns))
	tail := ""
	if upsert {
		tail = onDuplicateUpdate(rc.Columns)
	}
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && n < maxRunRows && size < maxRunBytes {
			size += rowSize(msgs[n].Change.After)
			n++
		}
		chunk := msgs[:n]
		msgs = msgs[n:]
		var q strings.Builder
		q.Grow(len(head) + n*(len(tuple)+1) + len(tail))
		q.WriteString(head)
		args := make([]any, 0, n*len(rc.Columns))
		for i, m := range chunk {
			if err := checkImage(m.Change, m.Change.After, "after"); err != nil {
				return err
			}
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(tuple)
			args = append(args, m.Change.After...)
		}
		q.WriteString(tail)
		if upsert {
			if _, err := s.conn.ExecContext(ctx, q.String(), args...); err != nil {
				return fmt.Errorf("upsert %d rows into %s: %w", n, t.name, err)
			}
			countApplied(st, t, int64(n))
			continue
		}
		if _, err := s.conn.ExecContext(ctx, "SAVEPOINT canopy_run"); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		_, err := s.conn.ExecContext(ctx, q.String(), args...)
		if err == nil {
			countApplied(st, t, int64(n))
			continue
		}
		if !isCode(err, errDupEntry) {
			return fmt.Errorf("insert %d rows into %s: %w", n, t.name, err)
		}
		if _, err := s.conn.ExecContext(ctx, "ROLLBACK TO SAVEPOINT canopy_run"); err != nil {
			return fmt.Errorf("roll back to savepoint: %w", err)
		}
		for _, m := range chunk {
			if err := a.insertRow(ctx, s, t, m, st); err != nil {
				return err
			}
		}
	}
	return nil
}

func rowSize(row []any) int {
	n := 8
	for _, v := range row {
		switch v := v.(type) {
		case string:
			n += 2*len(v) + 4
		case []byte:
			n += 2*len(v) + 12
		default:
			n += 24
		}
	}
	return n
}

// insertRow inserts one row; an existing row is a conflict (unless it is
// already the inserted one).
func (a *Applier) insertRow(ctx context.Context, s *session, t *table, m change.Message, st *syncjob.Stats) error {
	rc := m.Change
	q := "INSERT INTO " + t.quoted + " (" + columnList(rc.Columns) + ") VALUES " + store.Placeholders(len(rc.Columns))
	_, err := s.exec(ctx, q, rc.After...)
	if err == nil {
		countApplied(st, t, 1)
		return nil
	}
	if !isCode(err, errDupEntry) {
		return fmt.Errorf("insert into %s: %w", t.name, err)
	}
	p, err := a.probe(ctx, s, t, rc, keyValues(rc, rc.After), rc.After, latestValue(a.cfg, rc, rc.After))
	if err != nil {
		return err
	}
	if p.found && p.same {
		return nil // already there as inserted
	}
	return a.conflict(ctx, s, t, m, syncjob.KindExists, p, st)
}

// update applies an update whose before image must match the target row.
func (a *Applier) update(ctx context.Context, s *session, t *table, m change.Message, st *syncjob.Stats) error {
	rc := m.Change
	if err := checkImage(rc, rc.Before, "before"); err != nil {
		return err
	}
	if err := checkImage(rc, rc.After, "after"); err != nil {
		return err
	}
	var set strings.Builder
	for i, c := range rc.Columns {
		if i > 0 {
			set.WriteByte(',')
		}
		set.WriteString(quote(c) + "=?")
	}
	q := "UPDATE " + t.quoted + " SET " + set.String() + " WHERE " + keyWhere(rc) + " AND " + imageWhere(rc.Columns)
	args := make([]any, 0, 2*len(rc.Columns)+len(rc.Key))
	args = append(args, rc.After...)
	args = append(args, keyValues(rc, rc.Before)...)
	args = append(args, rc.Before...)
	res, err := s.exec(ctx, q, args...)
	if isCode(err, errDupEntry) {
		// The new key is taken on the target.
		p, err := a.probe(ctx, s, t, rc, keyValues(rc, rc.After), rc.After, latestValue(a.cfg, rc, rc.After))
		if err != nil {
			return err
		}
		return a.conflict(ctx, s, t, m, syncjob.KindExists, p, st)
	}
	if err != nil {
		return fmt.Errorf("update %s: %w", t.name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update %s: %w", t.name, err)
	} else if n > 0 {
		countApplied(st, t, 1)
		return nil
	}
	latest := latestValue(a.cfg, rc, rc.After)
	if !keyChanged(rc) {
		p, err := a.probe(ctx, s, t, rc, keyValues(rc, rc.Before), rc.After, latest)
		if err != nil {
			return err
		}
		if p.found && p.same {
			return nil // already applied
		}
		kind := syncjob.KindMissing
		if p.found {
			kind = syncjob.KindDiffers
		}
		return a.conflict(ctx, s, t, m, kind, p, st)
	}
	p, err := a.probe(ctx, s, t, rc, keyValues(rc, rc.Before), rc.Before, latest)
	if err != nil {
		return err
	}
	if p.found {
		return a.conflict(ctx, s, t, m, syncjob.KindDiffers, p, st)
	}
	np, err := a.probe(ctx, s, t, rc, keyValues(rc, rc.After), rc.After, latest)
	if err != nil {
		return err
	}
	if np.found && np.same {
		return nil // already applied
	}
	return a.conflict(ctx, s, t, m, syncjob.KindMissing, p, st)
}

// delete applies a delete whose before image must match the target row.
func (a *Applier) delete(ctx context.Context, s *session, t *table, m change.Message, st *syncjob.Stats) error {
	rc := m.Change
	if err := checkImage(rc, rc.Before, "before"); err != nil {
		return err
	}
	q := "DELETE FROM " + t.quoted + " WHERE " + keyWhere(rc) + " AND " + imageWhere(rc.Columns)
	args := append(keyValues(rc, rc.Before), rc.Before...)
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("delete from %s: %w", t.name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete from %s: %w", t.name, err)
	} else if n > 0 {
		countApplied(st, t, 1)
		return nil
	}
	p, err := a.probe(ctx, s, t, rc, keyValues(rc, rc.Before), rc.Before, latestValue(a.cfg, rc, rc.Before))
	if err != nil {
		return err
	}
	kind := syncjob.KindMissing
	if p.found {
		kind = syncjob.KindDiffers
	}
	return a.conflict(ctx, s, t, m, kind, p, st)
}

// force makes the target row what the change made it on the source,
// whatever the target row is now.
func (a *Applier) force(ctx context.Context, s *session, t *table, rc *change.RowChange) error {
	if rc.Op == "d" || (rc.Op == "u" && keyChanged(rc)) {
		if err := checkImage(rc, rc.Before, "before"); err != nil {
			return err
		}
		q := "DELETE FROM " + t.quoted + " WHERE " + keyWhere(rc)
		if _, err := s.exec(ctx, q, keyValues(rc, rc.Before)...); err != nil {
			return fmt.Errorf("delete from %s: %w", t.name, err)
		}
	}
	if rc.Op == "d" {
		return nil
	}
	if err := checkImage(rc, rc.After, "after"); err != nil {
		return err
	}
	q := "INSERT INTO " + t.quoted + " (" + columnList(rc.Columns) + ") VALUES " + store.Placeholders(len(rc.Columns)) + onDuplicateUpdate(rc.Columns)
	if _, err := s.exec(ctx, q, rc.After...); err != nil {
		return fmt.Errorf("upsert into %s: %w", t.name, err)
	}
	return nil
}
