package apply

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}

const jobServerID = 0x7d000001

// fakeConflicts is an in-memory syncjob.Conflicts that ignores a
// redelivered conflict as the store does.
type fakeConflicts struct {
	mu   sync.Mutex
	list []syncjob.Conflict
}

func (f *fakeConflicts) Record(_ context.Context, c syncjob.Conflict) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.list {
		if o.JobID == c.JobID && o.From == c.From && o.GTID == c.GTID && o.Row == c.Row {
			return nil
		}
	}
	f.list = append(f.list, c)
	return nil
}

func (f *fakeConflicts) all() []syncjob.Conflict {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]syncjob.Conflict(nil), f.list...)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func baseConfig(node *nodetest.MariaDB, fc syncjob.Conflicts) Config {
	return Config{
		JobID: "job-1", Tenant: "tenant-1", From: "inst-src", To: "inst-dst",
		Target:   capture.Source{Addr: node.Addr, User: nodetest.CDCUser, Password: nodetest.CDCPassword},
		ServerID: jobServerID, Strategy: syncjob.SourceWins, DDL: syncjob.DDLReplay, Conflicts: fc,
	}
}

func open(t *testing.T, cfg Config) *Applier {
	t.Helper()
	a, err := Open(testCtx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	return a
}

// The test table: app.<name> (id BIGINT PK, name VARCHAR, v BIGINT, bin VARBINARY).
var tcols = []string{"id", "name", "v", "bin"}

func makeTable(t *testing.T, node *nodetest.MariaDB, name string) {
	node.Exec(t, "CREATE DATABASE IF NOT EXISTS app",
		"CREATE TABLE app."+name+" (id BIGINT PRIMARY KEY, name VARCHAR(32) NULL, v BIGINT NULL, bin VARBINARY(16) NULL)")
}

func rowChange(table, op string, before, after []any) *change.RowChange {
	return &change.RowChange{DB: "app", Table: table, Op: op, Columns: tcols, Key: []int{0}, Before: before, After: after}
}

func row(id int64, name any, v any, bin any) []any { return []any{id, name, v, bin} }

func msg(gtid string, n int, rc *change.RowChange) change.Message {
	return change.Message{GTID: gtid, Row: n, Change: rc, EventTime: time.Now()}
}

func batch(cp string, msgs ...change.Message) change.Batch {
	b := change.Batch{Messages: msgs}
	if cp != "" {
		b.Checkpoint = &change.Checkpoint{GTID: cp}
	}
	return b
}

// dump is the table's rows as text, in key order ("NULL" for NULL, binary
// as hex).
func dump(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT id, IFNULL(name,'NULL'), IFNULL(v,'NULL'), IFNULL(HEX(bin),'NULL') FROM " + table + " ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a, b, c, d string
		require.NoError(t, rows.Scan(&a, &b, &c, &d))
		out = append(out, strings.Join([]string{a, b, c, d}, "|"))
	}
	require.NoError(t, rows.Err())
	return out
}

// Inserts, updates (one changing the key), deletes, NULLs and binary values
// reach the target; the watermark moves with them and the writes carry the
// job's server id.
func TestApplyRows(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	makeTable(t, node, "t")
	fc := &fakeConflicts{}
	a := open(t, baseConfig(node, fc))

	bin := []byte{0x00, 0xff, 0x10, 0x80}
	st, err := a.Apply(ctx, batch("0-1-1",
		msg("0-1-1", 0, rowChange("t", "c", nil, row(1, "one", int64(10), nil))),
		msg("0-1-1", 1, rowChange("t", "c", nil, row(2, nil, nil, bin))),
		msg("0-1-1", 2, rowChange("t", "c", nil, row(3, "three", uint64(30), []byte("x")))),
	))
	require.NoError(t, err)
	require.Equal(t, int64(3), st.Applied)
	require.Equal(t, map[string]int64{"app.t": 3}, st.Tables)

	st, err = a.Apply(ctx, batch("0-1-2",
		msg("0-1-2", 0, rowChange("t", "u", row(1, "one", int64(10), nil), row(1, "uno", nil, []byte{0x01}))),
		msg("0-1-2", 1, rowChange("t", "u", row(2, nil, nil, bin), row(20, "moved", int64(-5), bin))),
		msg("0-1-2", 2, rowChange("t", "d", row(3, "three", uint64(30), []byte("x")), nil)),
	))
	require.NoError(t, err)
	require.Equal(t, int64(3), st.Applied)
	require.Equal(t, int64(0), st.Conflicts)
	require.Equal(t, []string{"1|uno|NULL|01", "20|moved|-5|00FF1080"}, dump(t, node.Root, "app.t"))
	require.Empty(t, fc.all())

	w, err := a.Watermark(ctx)
	require.NoError(t, err)
	require.Equal(t, syncjob.Watermark{Position: "0-1-2", Applied: 6}, w)
	require.Contains(t, node.Pos(t), fmt.Sprintf("-%d-", jobServerID), "writes carry the job's server id")

	require.NoError(t, a.Drop(ctx))
	w, err = a.Watermark(ctx)
	require.NoError(t, err)
	require.Equal(t, syncjob.Watermark{}, w)
}

// Snapshot rows are inserts like any other: a row the target already has
// differently is an "exists" conflict its strategy decides (source-wins
// here: overwritten, and recorded), an identical one is no conflict; the
// load progress rides in the watermark until the last checkpoint clears it.
func TestSnapshotRowsOverExistingRows(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	makeTable(t, node, "t")
	node.Exec(t, "INSERT INTO app.t VALUES (1,'old',1,NULL), (3,'same',NULL,NULL)")
	fc := &fakeConflicts{}
	a := open(t, baseConfig(node, fc))
	snap := func(id int64, name string, v []byte) change.Message {
		// A snapshot reads every value as text.
		return msg("0-1-9", int(id), rowChange("t", "r", nil, []any{[]byte(fmt.Sprint(id)), []byte(name), v, nil}))
	}
	b := batch("", snap(1, "new", nil), snap(2, "two", nil), snap(3, "same", nil))
	b.Checkpoint = &change.Checkpoint{GTID: "0-1-9", Snapshot: []byte(`{"tables":[]}`)}
	_, err := a.Apply(ctx, b)
	require.NoError(t, err)
	w, err := a.Watermark(ctx)
	require.NoError(t, err)
	require.Equal(t, `{"tables":[]}`, string(w.Load))
	_, err = a.Apply(ctx, batch("0-1-9"))
	require.NoError(t, err)
	w, err = a.Watermark(ctx)
	require.NoError(t, err)
	require.Equal(t, "0-1-9", w.Position)
	require.Nil(t, w.Load)
	require.Equal(t, []string{"1|new|NULL|NULL", "2|two|NULL|NULL", "3|same|NULL|NULL"}, dump(t, node.Root, "app.t"))
	cs := fc.all()
	require.Len(t, cs, 1)
	require.Equal(t, syncjob.KindExists, cs[0].Kind)
	require.JSONEq(t, `{"id":"1"}`, string(cs[0].Key))
}

// cdcConnections are the ids of the applier's connections to the node.
func cdcConnections(t *testing.T, node *nodetest.MariaDB) []int64 {
	rows, err := node.Root.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", nodetest.CDCUser)
	require.NoError(t, err)
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	return ids
}

// A crash between batches (the connection killed with a transaction open,
// or a batch failing half way) loses only what was not committed; resuming
// from the watermark applies everything exactly once, conflicts included.
func TestExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	makeTable(t, node, "t")
	node.Exec(t, "INSERT INTO app.t VALUES (100,'target',1,NULL)")
	fc := &fakeConflicts{}
	cfg := baseConfig(node, fc)
	a := open(t, cfg)

	stream := []change.Batch{
		batch("0-1-1", msg("0-1-1", 0, rowChange("t", "c", nil, row(1, "a", int64(1), nil)))),
		// A transaction split over two batches, with a conflict in it.
		batch("", msg("0-1-2", 0, rowChange("t", "c", nil, row(2, "b", int64(2), nil))),
			msg("0-1-2", 1, rowChange("t", "c", nil, row(100, "source", int64(2), nil)))),
		batch("0-1-2", msg("0-1-2", 2, rowChange("t", "u", row(1, "a", int64(1), nil), row(1, "a2", int64(1), nil)))),
		batch("0-1-3", msg("0-1-3", 0, rowChange("t", "d", row(2, "b", int64(2), nil), nil))),
	}
	want := []string{"1|a2|1|NULL", "100|source|2|NULL"}

	_, err := a.Apply(ctx, stream[0])
	require.NoError(t, err)
	_, err = a.Apply(ctx, stream[1])
	require.NoError(t, err)
	// Crash: the target loses the connection with the transaction open.
	for _, id := range cdcConnections(t, node) {
		node.Exec(t, fmt.Sprintf("KILL %d", id))
	}
	_, err = a.Apply(ctx, stream[2])
	require.Error(t, err)
	require.Equal(t, []string{"1|a|1|NULL", "100|target|1|NULL"}, dump(t, node.Root, "app.t"), "nothing of the open transaction committed")

	// Resume from the watermark with a fresh applier, as a runner would.
	a.Close()
	a = open(t, cfg)
	w, err := a.Watermark(ctx)
	require.NoError(t, err)
	require.Equal(t, "0-1-1", w.Position)
	resume := 1
	// A batch that fails half way (a row for a column the target lacks)
	// commits none of its rows.
	bad := rowChange("t", "c", nil, []any{int64(7), "x", int64(7), nil, int64(1)})
	bad.Columns = append(append([]string{}, tcols...), "nope")
	_, err = a.Apply(ctx, batch("0-1-2", stream[1].Messages[0], msg("0-1-2", 9, bad)))
	require.Error(t, err)
	for _, b := range stream[resume:] {
		_, err := a.Apply(ctx, b)
		require.NoError(t, err)
	}
	require.Equal(t, want, dump(t, node.Root, "app.t"))
	w, err = a.Watermark(ctx)
	require.NoError(t, err)
	require.Equal(t, syncjob.Watermark{Position: "0-1-3", Applied: 5}, w)
	require.Len(t, fc.all(), 1, "the redelivered conflict is recorded once")
	require.Equal(t, syncjob.KindExists, fc.all()[0].Kind)
}

// A cancelled context mid-batch leaves the target as the watermark says.
func TestCancelMidBatch(t *testing.T) {
	t.Parallel()
	node := nodetest.StartMariaDB(t, 1)
	makeTable(t, node, "t")
	cfg := baseConfig(node, &fakeConflicts{})
	a := open(t, cfg)
	var msgs []change.Message
	for i := range 5000 {
		msgs = append(msgs, msg("0-1-1", i, rowChange("t", "c", nil, row(int64(i), strings.Repeat("n", 30), int64(i), nil))))
	}
	// A root transaction holds a key of the batch's last statement, so the
	// batch waits on the server, its earlier rows written, until it is
	// cancelled.
	hold, err := node.Root.Conn(testCtx(t))
	require.NoError(t, err)
	defer hold.Close()
	for _, q := range []string{"BEGIN", "INSERT INTO app.t (id) VALUES (4999)"} {
		_, err := hold.ExecContext(testCtx(t), q)
		require.NoError(t, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := a.Apply(ctx, batch("0-1-1", msgs...))
		done <- err
	}()
	// Polled slowly: INNODB_TRX is refreshed only when not read for 100ms.
	require.Eventually(t, func() bool {
		var n int
		_ = node.Root.QueryRow("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'").Scan(&n)
		return n > 0
	}, 30*time.Second, 250*time.Millisecond)
	cancel()
	err = <-done
	_, rerr := hold.ExecContext(testCtx(t), "ROLLBACK")
	require.NoError(t, rerr)
	require.ErrorIs(t, err, context.Canceled)
	w, werr := a.Watermark(testCtx(t))
	require.NoError(t, werr)
	require.Equal(t, "", w.Position)
	require.Empty(t, dump(t, node.Root, "app.t"))
	// Re-applying from the watermark gets everything.
	st, err := a.Apply(testCtx(t), batch("0-1-1", msgs...))
	require.NoError(t, err)
	require.Equal(t, int64(len(msgs)), st.Applied)
	var n int
	require.NoError(t, node.Root.QueryRow("SELECT COUNT(*) FROM app.t").Scan(&n))
	require.Equal(t, len(msgs), n)
}

func TestNoPrimaryKey(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	node.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.nopk (id BIGINT, name VARCHAR(32), v BIGINT, bin VARBINARY(16))")
	a := open(t, baseConfig(node, &fakeConflicts{}))
	keyless := rowChange("nopk", "c", nil, row(1, "a", nil, nil))
	keyless.Key = nil
	_, err := a.Apply(ctx, batch("0-1-1", msg("0-1-1", 0, keyless)))
	require.ErrorIs(t, err, ErrNoPrimaryKey)
	_, err = a.Apply(ctx, batch("0-1-1", msg("0-1-1", 0, rowChange("nopk", "c", nil, row(1, "a", nil, nil)))))
	require.ErrorIs(t, err, ErrNoPrimaryKey, "the target table has no primary key")
}

// A table missing on the target is created from the source's schema.
func TestMissingTableCreated(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	cfg := baseConfig(node, &fakeConflicts{})
	var asked []string
	cfg.Schema = func(_ context.Context, db, table string) (string, error) {
		asked = append(asked, db+"."+table)
		return "CREATE TABLE `fresh` (\n  `id` bigint(20) NOT NULL,\n  `name` varchar(32) DEFAULT NULL,\n  `v` bigint(20) DEFAULT NULL,\n" +
			"  `bin` varbinary(16) DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", nil
	}
	a := open(t, cfg)
	// An open transaction (a batch without checkpoint) survives the
	// creation: it runs on another connection.
	_, err := a.Apply(ctx, batch("", msg("0-1-1", 0, rowChange("fresh", "c", nil, row(1, "a", nil, nil)))))
	require.NoError(t, err)
	_, err = a.Apply(ctx, batch("0-1-1", msg("0-1-1", 1, rowChange("fresh", "c", nil, row(2, "b", nil, nil)))))
	require.NoError(t, err)
	require.Equal(t, []string{"app.fresh"}, asked)
	require.Equal(t, []string{"1|a|NULL|NULL", "2|b|NULL|NULL"}, dump(t, node.Root, "app.fresh"))
}

// DDL replay runs the statement and later changes use the new shape; DDL
// stop commits what came before and fails with the statement.
func TestDDL(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	makeTable(t, node, "t")
	makeTable(t, node, "s")
	cfg := baseConfig(node, &fakeConflicts{})
	a := open(t, cfg)

	wide := rowChange("t", "c", nil, []any{int64(2), "b", nil, nil, "extra"})
	wide.Columns = append(append([]string{}, tcols...), "note")
	st, err := a.Apply(ctx, batch("0-1-3",
		msg("0-1-1", 0, rowChange("t", "c", nil, row(1, "a", nil, nil))),
		change.Message{GTID: "0-1-2", Schema: &change.SchemaChange{DB: "app", Table: "t", Statement: "ALTER TABLE t ADD COLUMN note VARCHAR(10)"}},
		msg("0-1-3", 0, wide),
	))
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Applied)
	// Replaying it again (a crash lost the watermark after the DDL) is
	// taken as done.
	_, err = a.Apply(ctx, batch("0-1-2", change.Message{GTID: "0-1-2", Schema: &change.SchemaChange{DB: "app", Table: "t", Statement: "ALTER TABLE t ADD COLUMN note VARCHAR(10)"}}))
	require.NoError(t, err)
	var note sql.NullString
	require.NoError(t, node.Root.QueryRow("SELECT note FROM app.t WHERE id = 2").Scan(&note))
	require.Equal(t, "extra", note.String)
	w, err := a.Watermark(ctx)
	require.NoError(t, err)
	require.Equal(t, "0-1-2", w.Position)

	cfg.JobID = "job-stop"
	cfg.DDL = syncjob.DDLStop
	b := open(t, cfg)
	_, err = b.Apply(ctx, batch("", msg("0-1-4", 0, rowChange("s", "c", nil, row(1, "a", nil, nil)))))
	require.NoError(t, err)
	_, err = b.Apply(ctx, batch("0-1-6",
		change.Message{GTID: "0-1-5", Schema: &change.SchemaChange{DB: "app", Table: "s", Statement: "DROP TABLE s"}},
		msg("0-1-6", 0, rowChange("s", "c", nil, row(2, "b", nil, nil))),
	))
	var de *DDLError
	require.ErrorAs(t, err, &de)
	require.ErrorIs(t, err, ErrDDLStopped)
	require.Equal(t, "DROP TABLE s", de.Statement)
	require.Equal(t, []string{"1|a|NULL|NULL"}, dump(t, node.Root, "app.s"), "the statement did not run; the changes before it committed")
	w, err = b.Watermark(ctx)
	require.NoError(t, err)
	require.Equal(t, "0-1-4", w.Position, "the job resumes at the DDL")

	// A replay the target rejects is a DDLError too.
	cfg.JobID, cfg.DDL = "job-bad", syncjob.DDLReplay
	c := open(t, cfg)
	_, err = c.Apply(ctx, batch("0-1-7", change.Message{GTID: "0-1-7", Schema: &change.SchemaChange{DB: "app", Table: "s", Statement: "ALTER TABLE s ADD COLUMN x INT AFTER nope"}}))
	require.ErrorAs(t, err, &de)
	require.False(t, errors.Is(err, ErrDDLStopped))
}

func TestMergePosition(t *testing.T) {
	for _, c := range []struct{ pos, gtid, want string }{
		{"", "0-1-5", "0-1-5"},
		{"0-1-4", "0-1-5", "0-1-5"},
		{"0-1-4,2-3-9", "1-7-1", "0-1-4,1-7-1,2-3-9"},
		{"0-1-4", "", "0-1-4"},
	} {
		require.Equal(t, c.want, mergePosition(c.pos, c.gtid), "%+v", c)
	}
}

// Values as the decoded capture gives them (temporal text, DECIMAL and
// JSON text, ENUM/SET member text, BIT as uint64, FLOAT as float32) insert,
// and match as before images: the update and delete find their row with
// no conflict.
func TestTypedValuesMatchBeforeImages(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	node := nodetest.StartMariaDB(t, 1)
	node.Exec(t, "CREATE DATABASE app", `CREATE TABLE app.typed (
  id INT UNSIGNED PRIMARY KEY, big BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec1 DECIMAL(10,2),
  dt DATETIME(6), ts TIMESTAMP(3) NULL, dte DATE, tm TIME, yr YEAR,
  e ENUM('a','b','c'), s SET('x','y','z'), bits BIT(12), j JSON, txt TEXT, blb BLOB, ch CHAR(4))`)
	fc := &fakeConflicts{}
	a := open(t, baseConfig(node, fc))
	cols := []string{"id", "big", "f", "d", "dec1", "dt", "ts", "dte", "tm", "yr", "e", "s", "bits", "j", "txt", "blb", "ch"}
	v1 := []any{uint64(1), uint64(18446744073709551615), float32(0.1), 1.0 / 3, "12.50",
		"2026-01-02 03:04:05.123456", "2026-06-30 23:59:59.500", "2026-01-02", "-12:34:56", int64(2026),
		"b", "x,z", uint64(0xabc), `{"a": [1, 2]}`, "héllo wörld", []byte{0, 1, 2, 0xff}, "ab"}
	v2 := []any{uint64(1), uint64(0), float32(-2.75), -1e100, "-0.01",
		"1970-01-01 00:00:01.000000", nil, "1999-12-31", "00:00:00", int64(1999),
		"c", "", uint64(1), `[]`, "", []byte{}, "abcd"}
	rc := func(op string, before, after []any) *change.RowChange {
		return &change.RowChange{DB: "app", Table: "typed", Op: op, Columns: cols, Key: []int{0}, Before: before, After: after}
	}
	st, err := a.Apply(ctx, batch("0-1-3",
		msg("0-1-1", 0, rc("c", nil, v1)),
		msg("0-1-2", 0, rc("u", v1, v2)),
	))
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Applied)
	require.Equal(t, int64(0), st.Conflicts, "%+v", fc.all())
	var got string
	require.NoError(t, node.Root.QueryRow(`SELECT CONCAT_WS('|', big, f, dec1, dt, IFNULL(ts,'NULL'), yr, e, s, bits+0, j, HEX(blb), ch) FROM app.typed`).Scan(&got))
	require.Equal(t, "0|-2.75|-0.01|1970-01-01 00:00:01.000000|NULL|1999|c||1|[]||abcd", got)
	st, err = a.Apply(ctx, batch("0-1-4", msg("0-1-4", 0, rc("d", v2, nil))))
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Applied)
	require.Empty(t, fc.all())
	var n int
	require.NoError(t, node.Root.QueryRow("SELECT COUNT(*) FROM app.typed").Scan(&n))
	require.Zero(t, n)
}
