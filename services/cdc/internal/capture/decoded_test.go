package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/envelope"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
)

// nodeServer wraps a nodetest node in the helpers of the other capture
// tests; capture reads it with canopy_cdc.
func nodeServer(m *nodetest.MariaDB) *server {
	return &server{p: m.Proc, root: m.Root, src: Source{Addr: m.Addr, User: nodetest.CDCUser, Password: nodetest.CDCPassword}}
}

// applySession is a connection configured as a sync job's applier session.
func applySession(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(ctx, "SET SESSION time_zone='+00:00', sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', foreign_key_checks=0"); err != nil {
		t.Fatal(err)
	}
	return conn
}

func qid(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// applyChange writes one decoded row change to conn the plainest way: an
// update or delete must match exactly one row whose every column equals
// Before (<=>), so Before's values are checked as well as After's.
func applyChange(t *testing.T, conn *sql.Conn, rc *change.RowChange) {
	t.Helper()
	ctx := context.Background()
	table := qid(rc.DB) + "." + qid(rc.Table)
	cols := make([]string, len(rc.Columns))
	for i, c := range rc.Columns {
		cols[i] = qid(c)
	}
	where := func() string {
		w := make([]string, len(cols))
		for i, c := range cols {
			w[i] = c + " <=> ?"
		}
		return strings.Join(w, " AND ")
	}
	var q string
	var args []any
	switch rc.Op {
	case "c", "r":
		q = "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)-1) + ")"
		args = rc.After
	case "u":
		set := make([]string, len(cols))
		for i, c := range cols {
			set[i] = c + " = ?"
		}
		q = "UPDATE " + table + " SET " + strings.Join(set, ", ") + " WHERE " + where() + " LIMIT 1"
		args = append(append([]any{}, rc.After...), rc.Before...)
	case "d":
		q = "DELETE FROM " + table + " WHERE " + where() + " LIMIT 1"
		args = rc.Before
	default:
		t.Fatalf("op %q", rc.Op)
	}
	res, err := conn.ExecContext(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", q, args, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s %v: %d rows affected, want 1 (Before differs from the stored row)", q, args, n)
	}
}

// tableText reads a table as text in a '+00:00' session, FLOAT widened as
// the snapshot reads it, rows in primary key order.
func tableText(t *testing.T, db *sql.DB, schema, name string) []string {
	t.Helper()
	ctx := context.Background()
	tbl, err := envelope.TableFromSchema(ctx, db, schema, name)
	if err != nil {
		t.Fatal(err)
	}
	conn := applySession(t, db)
	rows, err := conn.QueryContext(ctx, "SELECT "+tbl.SelectList()+" FROM "+qid(schema)+"."+qid(name)+" ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(tbl.Columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				parts[i] = "NULL"
			} else {
				parts[i] = fmt.Sprintf("%q", v)
			}
		}
		out = append(out, strings.Join(parts, ","))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecoded writes a row of every type capture_test covers (and a NULL
// row) on one node, changes each row's key, and applies the decoded
// changes to identical tables on a second node: both must then SELECT the
// same. Applying the update checks Before, the final SELECT After.
func TestDecoded(t *testing.T) {
	t.Parallel()
	src, dst := nodetest.StartMariaDB(t, 21), nodetest.StartMariaDB(t, 22)
	s := nodeServer(src)
	for _, m := range []*nodetest.MariaDB{src, dst} {
		m.Exec(t, "CREATE DATABASE types")
		for _, c := range typeCases {
			m.Exec(t, fmt.Sprintf("CREATE TABLE types.%s (id INT PRIMARY KEY, v %s)", c.name, c.colType))
		}
		m.Exec(t, "CREATE TABLE types.nopk (a INT, b VARCHAR(5))")
	}
	cp := s.start(t, Config{Start: s.pos(t), Decoded: true, Include: func(db, _ string) bool { return db == "types" }}, 4)
	stmts := []string{"SET time_zone='+00:00', sql_mode=''"}
	for _, c := range typeCases {
		if c.zone != "" {
			stmts = append(stmts, "SET time_zone='"+c.zone+"'")
		}
		if strings.Contains(c.colType, "NOT NULL") {
			stmts = append(stmts, fmt.Sprintf("INSERT INTO types.%s VALUES (1, %s)", c.name, c.literal))
		} else {
			stmts = append(stmts, fmt.Sprintf("INSERT INTO types.%s VALUES (1, %s), (2, NULL)", c.name, c.literal))
		}
		stmts = append(stmts, "SET time_zone='+00:00'")
		// A key change: one "u" whose Before holds the value.
		stmts = append(stmts, fmt.Sprintf("UPDATE types.%s SET id = 10 WHERE id = 1", c.name))
	}
	stmts = append(stmts, "INSERT INTO types.nopk VALUES (1, 'x'), (1, 'x')", "DELETE FROM types.nopk LIMIT 1",
		"ALTER TABLE types.nopk ADD COLUMN c INT")
	ctx := context.Background()
	conn, err := src.Root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	end := s.pos(t)
	apply := applySession(t, dst.Root)
	ops := map[string]string{}
	var ddl []*change.SchemaChange
	for _, m := range messages(cp.until(t, end)) {
		if m.Key != nil || m.Value != nil || m.ServerID != 21 || m.GTID == "" || m.EventTime.IsZero() {
			t.Fatalf("decoded message %+v: want no key/value, server id 21, gtid and time", m)
		}
		if m.Schema != nil {
			if m.Change != nil || m.Topic != "cdc.t1.i1.schema-changes" {
				t.Fatalf("schema message %+v", m)
			}
			ddl = append(ddl, m.Schema)
			if _, err := apply.ExecContext(ctx, m.Schema.Statement); err != nil {
				t.Fatal(err)
			}
			continue
		}
		rc := m.Change
		if rc == nil || m.Topic != "cdc.t1.i1.types."+rc.Table || rc.DB != "types" {
			t.Fatalf("message %+v", m)
		}
		if rc.Table == "nopk" {
			if len(rc.Key) != 0 || strings.Join(rc.Columns, ",") != "a,b" {
				t.Fatalf("table without key: %+v", rc)
			}
		} else if len(rc.Key) != 1 || rc.Key[0] != 0 || strings.Join(rc.Columns, ",") != "id,v" {
			t.Fatalf("change %+v: want columns id,v keyed by id", rc)
		}
		if rc.Op == "u" && rc.Before[0] != int64(1) || rc.Op == "u" && rc.After[0] != int64(10) {
			t.Fatalf("key change %+v: want one u from id 1 to 10", rc)
		}
		ops[rc.Table] += rc.Op
		applyChange(t, apply, rc)
	}
	if len(ddl) != 1 || *ddl[0] != (change.SchemaChange{DB: "types", Table: "nopk", Statement: "ALTER TABLE types.nopk ADD COLUMN c INT"}) {
		t.Errorf("schema changes %+v", ddl)
	}
	if ops["nopk"] != "ccd" {
		t.Errorf("nopk ops %q", ops["nopk"])
	}
	for _, c := range append(typeCases, typeCase{name: "nopk"}) {
		t.Run(c.name, func(t *testing.T) {
			if c.name != "nopk" {
				want := "ccu"
				if strings.Contains(c.colType, "NOT NULL") {
					want = "cu"
				}
				if ops[c.name] != want {
					t.Errorf("ops %q, want %q", ops[c.name], want)
				}
			}
			a, b := tableText(t, src.Root, "types", c.name), tableText(t, dst.Root, "types", c.name)
			if strings.Join(a, "\n") != strings.Join(b, "\n") {
				t.Errorf("source\n%s\ntarget\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
			}
			if len(a) == 0 {
				t.Error("no rows compared")
			}
		})
	}
}

// TestSkipServerID: a transaction written with the skipped session
// server_id gives no message and moves the position (counted in
// Checkpoint.Skipped); one without it is captured; a capture without
// SkipServerID sees both, with their server ids. Neither captures the
// _canopy_sync schema, though Include takes every table.
func TestSkipServerID(t *testing.T) {
	t.Parallel()
	const job = 0x7d000123
	src := nodetest.StartMariaDB(t, 31)
	s := nodeServer(src)
	src.Exec(t, "CREATE DATABASE sk", "CREATE TABLE sk.t (id INT PRIMARY KEY)")
	start := s.pos(t)
	var ddls []DDL
	skipping := s.start(t, Config{Start: start, Decoded: true, SkipServerID: job, OnDDL: func(_ context.Context, d DDL) error {
		ddls = append(ddls, d)
		return nil
	}}, 16)
	all := s.start(t, Config{Start: start, Decoded: true, ServerID: 0x7c000009}, 16)

	ctx := context.Background()
	conn, err := src.Root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		fmt.Sprintf("SET SESSION server_id = %d", job),
		"INSERT INTO sk.t VALUES (1)",
		"ALTER TABLE sk.t ADD COLUMN v INT",
		"SET SESSION server_id = 31",
		"CREATE DATABASE _canopy_sync",
		"CREATE TABLE _canopy_sync.watermarks (id INT PRIMARY KEY)",
		"INSERT INTO _canopy_sync.watermarks VALUES (1)",
		"INSERT INTO sk.t VALUES (2, 2)",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	end := s.pos(t)
	bs := skipping.until(t, end)
	ms := messages(bs)
	if len(ms) != 1 || ms[0].Change == nil || ms[0].Change.After[0] != int64(2) || ms[0].ServerID != 31 {
		t.Fatalf("with SkipServerID got %+v, want only row 2 by server 31", ms)
	}
	if len(ddls) != 0 {
		t.Errorf("OnDDL called for a skipped DDL: %+v", ddls)
	}
	last := bs[len(bs)-1].Checkpoint
	if last.GTID != end || last.Skipped != 2 || last.Events != 1 {
		t.Errorf("last checkpoint %+v, want %s with 2 skipped transactions and 1 event", last, end)
	}
	var got []string
	for _, m := range messages(all.until(t, end)) {
		switch {
		case m.Change != nil:
			got = append(got, fmt.Sprintf("%s%v@%d", m.Change.Op, m.Change.After[0], m.ServerID))
		case m.Schema != nil:
			got = append(got, fmt.Sprintf("ddl@%d", m.ServerID))
		}
	}
	if want := fmt.Sprintf("c1@%d ddl@%d c2@31", job, job); strings.Join(got, " ") != want {
		t.Errorf("without SkipServerID got %s, want %s", strings.Join(got, " "), want)
	}
}

// A value the mapping refuses is poison in decoded mode too.
func TestDecodedPoison(t *testing.T) {
	t.Parallel()
	src := nodetest.StartMariaDB(t, 41)
	s := nodeServer(src)
	src.Exec(t, "CREATE DATABASE poi", "CREATE TABLE poi.g (id INT PRIMARY KEY, p POINT)")
	cp := s.start(t, Config{Start: s.pos(t), Decoded: true}, 4)
	src.Exec(t, "INSERT INTO poi.g VALUES (1, POINT(1, 2))")
	select {
	case err := <-cp.errc:
		var pe *PoisonError
		if !errors.As(err, &pe) || pe.Table != "poi.g" || pe.Column != "p" {
			t.Fatalf("error %v, want a PoisonError on poi.g column p", err)
		}
		cp.errc <- nil
	case b := <-cp.out:
		t.Fatalf("batch %+v instead of an error", b)
	case <-time.After(30 * time.Second):
		t.Fatal("no error")
	}
}

// A transaction of exactly MaxBatch rows goes out mid-transaction (the
// batch is full at its last row): its commit must still hand on the
// checkpoint at once, not wait for the stream to go idle, or a backlog of
// such transactions never gets a checkpoint (a sync job would keep its
// target transaction open, a stream its checkpoint stale).
func TestCheckpointAfterFullBatch(t *testing.T) {
	t.Parallel()
	src := nodetest.StartMariaDB(t, 32)
	s := nodeServer(src)
	src.Exec(t, "CREATE DATABASE fb", "CREATE TABLE fb.t (id INT PRIMARY KEY)")
	start := s.pos(t)
	insert := func(from int) string {
		var vals []string
		for i := from; i < from+10; i++ {
			vals = append(vals, fmt.Sprintf("(%d)", i))
		}
		return "INSERT INTO fb.t VALUES " + strings.Join(vals, ",")
	}
	// Both transactions are in the binlog before the capture reads them,
	// so nothing idles in between.
	src.Exec(t, insert(0))
	first := s.pos(t)
	src.Exec(t, insert(10))
	end := s.pos(t)
	c := s.start(t, Config{Start: start, Decoded: true, MaxBatch: 10}, 16)
	var seen []string
	for _, b := range c.until(t, end) {
		if b.Checkpoint != nil {
			seen = append(seen, b.Checkpoint.GTID)
		}
	}
	if !slices.Contains(seen, first) {
		t.Fatalf("checkpoints %v: none at the end of the first full-batch transaction %s", seen, first)
	}
}
