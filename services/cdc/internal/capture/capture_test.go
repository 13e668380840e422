package capture

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/envelope"
)

// event is the part of a message value the tests look at.
type event struct {
	Before map[string]json.RawMessage `json:"before"`
	After  map[string]json.RawMessage `json:"after"`
	Op     string                     `json:"op"`
	TsMs   int64                      `json:"ts_ms"`
	Source envelope.Source            `json:"source"`
}

func decode(t *testing.T, m change.Message) event {
	t.Helper()
	var e event
	if err := json.Unmarshal(m.Value, &e); err != nil {
		t.Fatalf("value %s: %v", m.Value, err)
	}
	return e
}

// TestCapture runs one MariaDB node for all capture scenarios; each
// scenario uses its own database and starts from the position before its
// writes. PurgedBinlog runs last: it removes the binlogs the others read.
func TestCapture(t *testing.T) {
	s := startServer(t)
	t.Run("Types", func(t *testing.T) { testTypes(t, s) })
	t.Run("DML", func(t *testing.T) { testDML(t, s) })
	t.Run("KeyChange", func(t *testing.T) { testKeyChange(t, s) })
	t.Run("FromStart", func(t *testing.T) { testFromStart(t, s) })
	t.Run("NonTransactional", func(t *testing.T) { testNonTransactional(t, s) })
	t.Run("CompressedBinlog", func(t *testing.T) { testCompressed(t, s) })
	t.Run("AlterTable", func(t *testing.T) { testAlter(t, s) })
	t.Run("LargeTransaction", func(t *testing.T) { testLarge(t, s) })
	t.Run("Resume", func(t *testing.T) { testResume(t, s) })
	t.Run("Include", func(t *testing.T) { testInclude(t, s) })
	t.Run("Poison", func(t *testing.T) { testPoison(t, s) })
	t.Run("StartAtEnd", func(t *testing.T) { testStartAtEnd(t, s) })
	t.Run("ReplicationSlaveSuffices", func(t *testing.T) { testGrants(t, s) })
	t.Run("PurgedBinlog", func(t *testing.T) { testPurged(t, s) })
}

type typeCase struct {
	name, colType, literal, want string
	// zone is the session time zone of the insert (default UTC).
	zone string
}

var typeCases = []typeCase{
	{"decimal", "DECIMAL(10,2)", "-12345.60", `"-12345.60"`, ""},
	{"decimal_small", "DECIMAL(5,3)", "0.5", `"0.500"`, ""},
	{"decimal_wide", "DECIMAL(30,0)", "123456789012345678901234567890", `"123456789012345678901234567890"`, ""},
	{"datetime0", "DATETIME", "'2024-01-02 03:04:05'", `1704164645000`, ""},
	{"datetime3", "DATETIME(3)", "'2024-01-02 03:04:05.123'", `1704164645123`, ""},
	{"datetime6", "DATETIME(6)", "'2024-01-02 03:04:05.123456'", `1704164645123456`, ""},
	{"datetime_before_epoch", "DATETIME", "'1969-12-31 23:59:59'", `-1000`, ""},
	{"timestamp0", "TIMESTAMP NULL", "'2024-01-02 03:04:05'", `"2024-01-02T03:04:05Z"`, ""},
	{"timestamp_other_zone", "TIMESTAMP NULL", "'2024-01-02 08:04:05'", `"2024-01-02T03:04:05Z"`, "+05:00"},
	{"timestamp_zero_not_null", "TIMESTAMP NOT NULL DEFAULT 0", "'0000-00-00 00:00:00'", `"1970-01-01T00:00:00Z"`, ""},
	{"date_zero_nullable", "DATE", "'0000-00-00'", `null`, ""},
	{"date_zero_not_null", "DATE NOT NULL", "'0000-00-00'", `0`, ""},
	{"datetime_zero_not_null", "DATETIME(3) NOT NULL", "'0000-00-00 00:00:00'", `0`, ""},
	{"timestamp6", "TIMESTAMP(6) NULL", "'2024-01-02 03:04:05.000123'", `"2024-01-02T03:04:05.000123Z"`, ""},
	{"date", "DATE", "'2024-01-02'", `19724`, ""},
	{"date_before_epoch", "DATE", "'1969-12-31'", `-1`, ""},
	{"time6_negative", "TIME(6)", "'-12:34:56.789'", `-45296789000`, ""},
	{"time0_max", "TIME", "'838:59:59'", `3020399000000`, ""},
	{"time3", "TIME(3)", "'00:00:01.5'", `1500000`, ""},
	{"year", "YEAR", "2024", `2024`, ""},
	{"json", "JSON", `'{"a": [1, 2], "b": "é"}'`, `"{\"a\": [1, 2], \"b\": \"é\"}"`, ""},
	{"blob", "BLOB", "x'00ff10'", `"AP8Q"`, ""},
	{"varbinary", "VARBINARY(10)", "x'0102'", `"AQI="`, ""},
	{"enum", "ENUM('a','b','c')", "'b'", `"b"`, ""},
	{"set", "SET('a','b','c')", "'a,c'", `"a,c"`, ""},
	{"bit1", "BIT(1)", "b'1'", `true`, ""},
	{"bit10", "BIT(10)", "b'1000000001'", `"AQI="`, ""},
	{"bigint_unsigned_max", "BIGINT UNSIGNED", "18446744073709551615", `18446744073709551615`, ""},
	{"bigint_min", "BIGINT", "-9223372036854775808", `-9223372036854775808`, ""},
	{"int_unsigned_max", "INT UNSIGNED", "4294967295", `4294967295`, ""},
	{"mediumint_unsigned_max", "MEDIUMINT UNSIGNED", "16777215", `16777215`, ""},
	{"smallint_unsigned_max", "SMALLINT UNSIGNED", "65535", `65535`, ""},
	{"tinyint_signed", "TINYINT", "-128", `-128`, ""},
	{"tinyint_unsigned", "TINYINT UNSIGNED", "255", `255`, ""},
	{"utf8mb4_varchar", "VARCHAR(20) CHARACTER SET utf8mb4", "'😀 ünï'", `"😀 ünï"`, ""},
	{"utf8mb4_text", "TEXT CHARACTER SET utf8mb4", "'text 🚀'", `"text 🚀"`, ""},
	{"char", "CHAR(5)", "'ab'", `"ab"`, ""},
	{"binary_padded", "BINARY(4)", "x'0102'", `"AQIAAA=="`, ""},
	{"float", "FLOAT", "1.5", `1.5`, ""},
	{"double", "DOUBLE", "0.1", `0.1`, ""},
	{"float_7_digits", "FLOAT", "1.2345678", `1.2345678`, ""},
	{"double_17_digits", "DOUBLE", "0.30000000000000004", `0.30000000000000004`, ""},
}

// testTypes writes one row per type (and one of NULLs) and checks the
// value read from the binlog against Debezium's mapping and against the
// same row read with SELECT (what the snapshot publishes).
func testTypes(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE types")
	defer s.exec(t, "DROP DATABASE types")
	for _, c := range typeCases {
		s.exec(t, fmt.Sprintf("CREATE TABLE types.%s (id INT PRIMARY KEY, v %s)", c.name, c.colType))
	}
	start := s.pos(t)
	cp := s.start(t, Config{Start: start}, 4)
	// TIMESTAMP literals are read in the session's zone: UTC, as the
	// snapshot's sessions.
	// sql_mode '' lets zero dates in.
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
	}
	ctx := context.Background()
	conn, err := s.root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	got := map[string][]change.Message{}
	for _, m := range messages(cp.until(t, s.pos(t))) {
		got[m.Topic] = append(got[m.Topic], m)
	}
	for _, c := range typeCases {
		t.Run(c.name, func(t *testing.T) {
			ms := got["cdc.t1.i1.types."+c.name]
			want := 2
			if strings.Contains(c.colType, "NOT NULL") {
				want = 1
			}
			if len(ms) != want {
				t.Fatalf("%d messages, want %d", len(ms), want)
			}
			for i, m := range ms {
				if want := fmt.Sprintf(`{"id":%d}`, i+1); string(m.Key) != want {
					t.Errorf("key %s, want %s", m.Key, want)
				}
				e := decode(t, m)
				if e.Op != "c" || e.Before != nil {
					t.Errorf("op %q before %v", e.Op, e.Before)
				}
				want := c.want
				if i == 1 {
					want = "null"
				}
				if v := string(e.After["v"]); v != want {
					t.Errorf("binlog value %s, want %s", v, want)
				}
			}
			// The snapshot's path: information_schema + SELECT text.
			tbl, err := envelope.TableFromSchema(ctx, s.root, "types", c.name)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := conn.QueryContext(ctx, "SELECT "+tbl.SelectList()+" FROM types."+c.name+" ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			i := 0
			for rows.Next() {
				var id, v sql.RawBytes
				if err := rows.Scan(&id, &v); err != nil {
					t.Fatal(err)
				}
				r, err := tbl.FromText([][]byte{id, v})
				if err != nil {
					t.Fatal(err)
				}
				text, _ := json.Marshal(r)
				var bin event
				bin = decode(t, ms[i])
				binJSON, _ := json.Marshal(bin.After)
				if string(text) != compact(t, binJSON) {
					t.Errorf("row %d: SELECT gives %s, binlog %s", i, text, binJSON)
				}
				i++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// compact re-encodes a map-ordered JSON object in id, v order (the only
// columns here).
func compact(t *testing.T, b []byte) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`{"id":%s,"v":%s}`, m["id"], m["v"])
}

// testDML checks ops, images, row indexes and commit order over single
// statements, a multi-row statement and a multi-statement transaction.
func testDML(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE dml", "CREATE TABLE dml.kv (k VARCHAR(10) PRIMARY KEY, v INT)")
	defer s.exec(t, "DROP DATABASE dml")
	cp := s.start(t, Config{Start: s.pos(t), Tombstones: true}, 4)
	s.exec(t, "INSERT INTO dml.kv VALUES ('a', 1)")
	gtidA := strings.Split(s.pos(t), ",")[0]
	s.exec(t, "INSERT INTO dml.kv VALUES ('b', 2), ('c', 3)")
	s.tx(t, "UPDATE dml.kv SET v = v + 10 WHERE k IN ('a', 'b')", "DELETE FROM dml.kv WHERE k = 'c'", "INSERT INTO dml.kv VALUES ('d', 4)")
	end := s.pos(t)
	bs := cp.until(t, end)
	ms := messages(bs)
	type want struct {
		op, key, before, after string
		row                    int
		tombstone              bool
	}
	wants := []want{
		{op: "c", key: `{"k":"a"}`, after: `{"k":"a","v":1}`},
		{op: "c", key: `{"k":"b"}`, after: `{"k":"b","v":2}`},
		{op: "c", key: `{"k":"c"}`, after: `{"k":"c","v":3}`, row: 1},
		{op: "u", key: `{"k":"a"}`, before: `{"k":"a","v":1}`, after: `{"k":"a","v":11}`},
		{op: "u", key: `{"k":"b"}`, before: `{"k":"b","v":2}`, after: `{"k":"b","v":12}`, row: 1},
		{op: "d", key: `{"k":"c"}`, before: `{"k":"c","v":3}`, row: 2},
		{key: `{"k":"c"}`, row: 2, tombstone: true},
		{op: "c", key: `{"k":"d"}`, after: `{"k":"d","v":4}`, row: 3},
	}
	if len(ms) != len(wants) {
		t.Fatalf("%d messages, want %d", len(ms), len(wants))
	}
	gtids := map[string]bool{}
	for i, w := range wants {
		m := ms[i]
		if m.Topic != "cdc.t1.i1.dml.kv" || string(m.Key) != w.key || m.Row != w.row {
			t.Errorf("message %d: topic %s key %s row %d, want key %s row %d", i, m.Topic, m.Key, m.Row, w.key, w.row)
		}
		if m.ServerID != 7 || m.Change != nil || m.Schema != nil {
			t.Errorf("message %d: server id %d, change %v, schema %v; want 7 and no decoded parts", i, m.ServerID, m.Change, m.Schema)
		}
		gtids[m.GTID] = true
		if w.tombstone {
			if m.Value != nil {
				t.Errorf("message %d: tombstone value %s", i, m.Value)
			}
			continue
		}
		// Exact value bytes: column order kept.
		var raw struct {
			Before, After json.RawMessage
		}
		json.Unmarshal(m.Value, &raw)
		if w.before == "" {
			w.before = "null"
		}
		if w.after == "" {
			w.after = "null"
		}
		if string(raw.Before) != w.before || string(raw.After) != w.after {
			t.Errorf("message %d: before %s after %s, want %s %s", i, raw.Before, raw.After, w.before, w.after)
		}
		e := decode(t, m)
		src := e.Source
		if e.Op != w.op || src.Version != Version || src.Connector != "mysql" || src.Name != "cdc.t1.i1" ||
			src.Snapshot != "false" || src.DB != "dml" || src.Table != "kv" || src.ServerID != 7 ||
			src.GTID != m.GTID || src.Row != w.row || src.File == "" || src.Pos == 0 || src.TsMs == 0 || e.TsMs == 0 {
			t.Errorf("message %d: op %s source %+v", i, e.Op, src)
		}
	}
	if ms[0].GTID != gtidA || len(gtids) != 3 {
		t.Errorf("gtids %v, first %s want %s", gtids, ms[0].GTID, gtidA)
	}
	// A checkpoint only at commits: the last batch's is the end.
	if last := bs[len(bs)-1].Checkpoint; last == nil || last.GTID != end || last.Events != 7 {
		t.Errorf("last checkpoint %+v, want %s with 7 events", last, end)
	}
}

// testAlter decodes rows on both sides of ADD/DROP COLUMN with the
// columns valid when each was written, and publishes the DDL.
func testAlter(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE alt", "CREATE TABLE alt.t (id INT PRIMARY KEY, a VARCHAR(5))")
	defer s.exec(t, "DROP DATABASE alt")
	var ddls []DDL
	cp := s.start(t, Config{Start: s.pos(t), OnDDL: func(_ context.Context, d DDL) error {
		ddls = append(ddls, d)
		return nil
	}}, 4)
	s.exec(t, "INSERT INTO alt.t VALUES (1, 'x')",
		"ALTER TABLE alt.t ADD COLUMN b INT NOT NULL DEFAULT 7",
		"INSERT INTO alt.t VALUES (2, 'y', 8)",
		"ALTER TABLE alt.t DROP COLUMN a",
		"INSERT INTO alt.t VALUES (3, 9)")
	ms := messages(cp.until(t, s.pos(t)))
	var got []string
	for _, m := range ms {
		var raw struct {
			After        json.RawMessage
			DDL          string
			DatabaseName string
			TableChanges []struct{ Type, ID string }
		}
		if err := json.Unmarshal(m.Value, &raw); err != nil {
			t.Fatal(err)
		}
		if m.Topic == "cdc.t1.i1.schema-changes" {
			if string(m.Key) != `{"databaseName":"alt"}` || raw.DatabaseName != "alt" || len(raw.TableChanges) != 1 ||
				raw.TableChanges[0].Type != "ALTER" || raw.TableChanges[0].ID != `"alt"."t"` {
				t.Errorf("schema change %s: %s", m.Key, m.Value)
			}
			got = append(got, raw.DDL)
			continue
		}
		got = append(got, string(raw.After))
	}
	want := []string{`{"id":1,"a":"x"}`, "ALTER TABLE alt.t ADD COLUMN b INT NOT NULL DEFAULT 7",
		`{"id":2,"a":"y","b":8}`, "ALTER TABLE alt.t DROP COLUMN a", `{"id":3,"b":9}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(ddls) != 2 || ddls[0].DB != "alt" || ddls[0].Table != "t" || ddls[0].GTID == "" || ddls[1].Statement != want[3] {
		t.Errorf("OnDDL got %+v", ddls)
	}
}

// testLarge streams a 20k-row transaction through a channel of two
// batches of at most 500: memory stays bounded and only the commit yields
// a checkpoint.
func testLarge(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE big", "CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(20))")
	defer s.exec(t, "DROP DATABASE big")
	cp := s.start(t, Config{Start: s.pos(t), MaxBatch: 500}, 2)
	s.tx(t, "INSERT INTO big.t SELECT seq, CONCAT('row-', seq) FROM big.seq_1_to_20000")
	end := s.pos(t)
	bs := cp.until(t, end)
	n := 0
	for i, b := range bs {
		if len(b.Messages) > 500 {
			t.Fatalf("batch %d has %d messages", i, len(b.Messages))
		}
		if b.Checkpoint != nil && i != len(bs)-1 {
			t.Fatalf("checkpoint %+v inside the transaction (batch %d of %d)", b.Checkpoint, i, len(bs))
		}
		for _, m := range b.Messages {
			if m.Row != n {
				t.Fatalf("message %d has row %d", n, m.Row)
			}
			n++
		}
	}
	if n != 20000 {
		t.Fatalf("%d messages, want 20000", n)
	}
}

// testResume restarts from a checkpoint in the middle and gets exactly
// the transactions after it.
func testResume(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE res", "CREATE TABLE res.t (id INT PRIMARY KEY)")
	defer s.exec(t, "DROP DATABASE res")
	first := s.start(t, Config{Start: s.pos(t)}, 4)
	s.exec(t, "INSERT INTO res.t VALUES (1)")
	mid := s.pos(t)
	s.exec(t, "INSERT INTO res.t VALUES (2)", "INSERT INTO res.t VALUES (3)")
	end := s.pos(t)
	var midSeen bool
	for _, b := range first.until(t, end) {
		if b.Checkpoint != nil && b.Checkpoint.GTID == mid {
			midSeen = true
		}
	}
	if !midSeen {
		t.Errorf("no checkpoint %s on the way", mid)
	}
	first.stop()
	second := s.start(t, Config{Start: mid, ServerID: 0x7c000002}, 4)
	var keys []string
	for _, m := range messages(second.until(t, end)) {
		keys = append(keys, string(m.Key))
	}
	if got := strings.Join(keys, " "); got != `{"id":2} {"id":3}` {
		t.Errorf("after resume got %s", got)
	}
}

// testInclude publishes only included tables, while checkpoints still
// advance over the others.
func testInclude(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE inc", "CREATE TABLE inc.yes (id INT PRIMARY KEY)", "CREATE TABLE inc.no (id INT PRIMARY KEY)")
	defer s.exec(t, "DROP DATABASE inc")
	cp := s.start(t, Config{Start: s.pos(t), Include: func(db, table string) bool { return db == "inc" && table == "yes" }}, 4)
	s.exec(t, "INSERT INTO inc.no VALUES (1)")
	onlyNo := s.pos(t)
	bs := cp.until(t, onlyNo)
	if n := len(messages(bs)); n != 0 {
		t.Fatalf("%d messages for an excluded table", n)
	}
	s.tx(t, "INSERT INTO inc.no VALUES (2)", "INSERT INTO inc.yes VALUES (1)", "ALTER TABLE inc.no ADD COLUMN x INT")
	ms := messages(cp.until(t, s.pos(t)))
	if len(ms) != 1 || ms[0].Topic != "cdc.t1.i1.inc.yes" || ms[0].Row != 1 {
		t.Fatalf("got %+v", ms)
	}
}

// testPoison: a column type without a Debezium mapping stops the capture
// with the table and column, never skipping the row.
func testPoison(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE poi", "CREATE TABLE poi.g (id INT PRIMARY KEY, p POINT)")
	defer s.exec(t, "DROP DATABASE poi")
	cp := s.start(t, Config{Start: s.pos(t)}, 4)
	s.exec(t, "INSERT INTO poi.g VALUES (1, POINT(1, 2))")
	select {
	case err := <-cp.errc:
		var pe *PoisonError
		if !errors.As(err, &pe) || pe.Table != "poi.g" || pe.Column != "p" || pe.GTID == "" {
			t.Fatalf("error %v, want a PoisonError on poi.g column p", err)
		}
		cp.errc <- nil
	case b := <-cp.out:
		t.Fatalf("batch %+v instead of an error", b)
	case <-time.After(30 * time.Second):
		t.Fatal("no error")
	}
}

// testStartAtEnd: an empty Start begins at the source's current end.
func testStartAtEnd(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE sae", "CREATE TABLE sae.t (id INT PRIMARY KEY)", "INSERT INTO sae.t VALUES (1)")
	defer s.exec(t, "DROP DATABASE sae")
	cp := s.start(t, Config{}, 4)
	// The capture has started once it hands on an idle checkpoint; until
	// then a write may land before its start position, so wait on a
	// marker write seen at the end.
	deadline := time.Now().Add(30 * time.Second)
	for id := 2; ; id++ {
		s.exec(t, fmt.Sprintf("INSERT INTO sae.t VALUES (%d)", id))
		select {
		case b := <-cp.out:
			for _, m := range b.Messages {
				if strings.Contains(string(m.Key), `"id":1`) {
					t.Fatalf("saw row 1 written before the start: %s", m.Value)
				}
			}
			if len(b.Messages) > 0 {
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message")
		}
	}
}

// testPurged: starting from a position whose binlog is purged fails with
// ErrPositionLost.
func testPurged(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE pur", "CREATE TABLE pur.t (id INT PRIMARY KEY)")
	defer s.exec(t, "DROP DATABASE pur")
	old := s.pos(t)
	s.exec(t, "INSERT INTO pur.t VALUES (1)", "FLUSH BINARY LOGS")
	var file string
	var pos any
	var a, b any
	if err := s.root.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &a, &b); err != nil {
		t.Fatal(err)
	}
	// PURGE leaves files a dump thread still reads or InnoDB still needs
	// for recovery (binlog checkpoint): repeat until the older ones are gone.
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.exec(t, "PURGE BINARY LOGS TO '"+file+"'")
		var first string
		if err := s.root.QueryRow("SHOW BINARY LOGS").Scan(&first, new(any)); err != nil {
			t.Fatal(err)
		}
		if first == file {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("binlogs before %s not purged (first %s)", file, first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, Config{Source: s.src, ServerID: 0x7c000003, Prefix: "cdc.t1.i1", Start: old}, make(chan change.Batch, 4))
	if !errors.Is(err, ErrPositionLost) {
		t.Fatalf("Run from a purged position: %v, want ErrPositionLost", err)
	}
}

// testNonTransactional covers a MyISAM table (its transaction ends with a
// COMMIT query event, not an XID) and a table without a primary key
// (published with no key, as Debezium does).
func testNonTransactional(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE myi", "CREATE TABLE myi.m (id INT PRIMARY KEY, v INT) ENGINE=MyISAM", "CREATE TABLE myi.nopk (a INT, b INT)",
		"CREATE TABLE myi.comp (a INT, b INT, c INT, PRIMARY KEY (b, a))")
	defer s.exec(t, "DROP DATABASE myi")
	cp := s.start(t, Config{Start: s.pos(t)}, 4)
	s.exec(t, "INSERT INTO myi.m VALUES (1, 1), (2, 2)")
	afterMyISAM := s.pos(t)
	bs := cp.until(t, afterMyISAM)
	if ms := messages(bs); len(ms) != 2 || string(ms[1].Key) != `{"id":2}` {
		t.Fatalf("MyISAM insert gave %+v", ms)
	}
	s.exec(t, "INSERT INTO myi.nopk VALUES (1, 2)")
	ms := messages(cp.until(t, s.pos(t)))
	if len(ms) != 1 || ms[0].Key != nil || !strings.Contains(string(ms[0].Value), `"after":{"a":1,"b":2}`) {
		t.Fatalf("table without a key gave %+v", ms)
	}
	// A composite key is published in key order, from the binlog and
	// from the schema alike.
	s.exec(t, "INSERT INTO myi.comp VALUES (1, 2, 3)")
	ms = messages(cp.until(t, s.pos(t)))
	if len(ms) != 1 || string(ms[0].Key) != `{"b":2,"a":1}` {
		t.Fatalf("composite key gave %+v", ms)
	}
	tbl, err := envelope.TableFromSchema(context.Background(), s.root, "myi", "comp")
	if err != nil {
		t.Fatal(err)
	}
	r, err := tbl.FromText([][]byte{[]byte("1"), []byte("2"), []byte("3")})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := tbl.Key(r); err != nil || string(k) != `{"b":2,"a":1}` {
		t.Fatalf("key from the schema %s, %v", k, err)
	}
}

// testCompressed reads MariaDB's compressed row and query events
// (log_bin_compress).
func testCompressed(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE cmp", "CREATE TABLE cmp.t (id INT PRIMARY KEY, v TEXT)", "SET GLOBAL log_bin_compress=ON")
	defer s.exec(t, "SET GLOBAL log_bin_compress=OFF", "DROP DATABASE cmp")
	cp := s.start(t, Config{Start: s.pos(t)}, 4)
	long := strings.Repeat("compressible ", 200)
	// A new connection: the session takes log_bin_compress from the global.
	s.root.SetMaxIdleConns(0)
	defer s.root.SetMaxIdleConns(2)
	s.tx(t, "INSERT INTO cmp.t VALUES (1, '"+long+"')", "UPDATE cmp.t SET v = CONCAT(v, 'x') WHERE id = 1", "DELETE FROM cmp.t WHERE id = 1")
	ms := messages(cp.until(t, s.pos(t)))
	if len(ms) != 3 {
		t.Fatalf("%d messages, want 3", len(ms))
	}
	for i, op := range []string{"c", "u", "d"} {
		e := decode(t, ms[i])
		img := e.After
		if op == "d" {
			img = e.Before
		}
		var v string
		json.Unmarshal(img["v"], &v)
		if e.Op != op || !strings.HasPrefix(v, long) {
			t.Errorf("message %d: op %s value of %d bytes", i, e.Op, len(v))
		}
	}
	var compressed int
	rows, err := s.root.Query("SHOW BINLOG EVENTS IN '" + decode(t, ms[0]).Source.File + "'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		rows.Scan(ptrs...)
		if strings.Contains(string(vals[2]), "_compressed") {
			compressed++
		}
	}
	if compressed == 0 {
		t.Error("no compressed events in the binlog: the test did not test them")
	}
}

// testGrants: the binlog dump and @@gtid_binlog_pos need REPLICATION SLAVE
// only; canopy_cdc's other grants serve the snapshot (SELECT) and status
// (BINLOG MONITOR, SLAVE MONITOR).
func testGrants(t *testing.T, s *server) {
	s.exec(t, "CREATE USER cdc_min@'%' IDENTIFIED BY 'min-secret-1'", "GRANT REPLICATION SLAVE ON *.* TO cdc_min@'%'",
		"CREATE DATABASE gr", "CREATE TABLE gr.t (id INT PRIMARY KEY)")
	defer s.exec(t, "DROP USER cdc_min@'%'", "DROP DATABASE gr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan change.Batch, 4)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Config{Source: Source{Addr: s.src.Addr, User: "cdc_min", Password: "min-secret-1"}, ServerID: 0x7c000004, Prefix: "p"}, out)
	}()
	defer func() { cancel(); <-errc }()
	// Start "" reads @@gtid_binlog_pos with this account; then a write
	// must arrive. Writes repeat until one lands after the start.
	deadline := time.After(30 * time.Second)
	for id := 1; ; id++ {
		s.exec(t, fmt.Sprintf("INSERT INTO gr.t VALUES (%d)", id))
		select {
		case b := <-out:
			if len(b.Messages) > 0 {
				return
			}
		case err := <-errc:
			errc <- err
			t.Fatalf("Run with REPLICATION SLAVE only: %v", err)
		case <-deadline:
			t.Fatal("no message")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// testKeyChange: an update of the primary key is a delete of the old key
// (with its tombstone) and a create of the new one, as Debezium publishes
// it, each with its own row index.
func testKeyChange(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE kc", "CREATE TABLE kc.t (id INT PRIMARY KEY, v INT)", "INSERT INTO kc.t VALUES (1, 10), (2, 20)")
	defer s.exec(t, "DROP DATABASE kc")
	cp := s.start(t, Config{Start: s.pos(t), Tombstones: true}, 4)
	s.exec(t, "UPDATE kc.t SET id = id + 100 WHERE id = 1")
	s.exec(t, "UPDATE kc.t SET v = 21 WHERE id = 2")
	ms := messages(cp.until(t, s.pos(t)))
	type want struct {
		op, key string
		row     int
	}
	wants := []want{{"d", `{"id":1}`, 0}, {"", `{"id":1}`, 0}, {"c", `{"id":101}`, 1}, {"u", `{"id":2}`, 0}}
	if len(ms) != len(wants) {
		t.Fatalf("%d messages, want %d", len(ms), len(wants))
	}
	for i, w := range wants {
		m := ms[i]
		if string(m.Key) != w.key || m.Row != w.row {
			t.Errorf("message %d: key %s row %d, want %s row %d", i, m.Key, m.Row, w.key, w.row)
		}
		if w.op == "" {
			if m.Value != nil {
				t.Errorf("message %d: want a tombstone, got %s", i, m.Value)
			}
			continue
		}
		e := decode(t, m)
		if e.Op != w.op || e.Source.Row != w.row {
			t.Errorf("message %d: op %s source.row %d, want %s %d", i, e.Op, e.Source.Row, w.op, w.row)
		}
		switch w.op {
		case "d":
			if e.After != nil || string(e.Before["id"]) != "1" {
				t.Errorf("delete of the old key: before %v after %v", e.Before, e.After)
			}
		case "c":
			if e.Before != nil || string(e.After["id"]) != "101" || string(e.After["v"]) != "10" {
				t.Errorf("create under the new key: before %v after %v", e.Before, e.After)
			}
		}
	}
}

// testFromStart: an empty Start with FromStart reads the binlog from its
// beginning, so rows written before the capture started are all there.
func testFromStart(t *testing.T, s *server) {
	s.exec(t, "CREATE DATABASE fs", "CREATE TABLE fs.t (id INT PRIMARY KEY)", "INSERT INTO fs.t VALUES (1), (2)")
	defer s.exec(t, "DROP DATABASE fs")
	cp := s.start(t, Config{FromStart: true, Include: func(db, _ string) bool { return db == "fs" }}, 4)
	var ms []change.Message
	for _, m := range messages(cp.until(t, s.pos(t))) {
		if !strings.HasSuffix(m.Topic, ".schema-changes") {
			ms = append(ms, m)
		}
	}
	if len(ms) != 2 || string(ms[0].Key) != `{"id":1}` || string(ms[1].Key) != `{"id":2}` {
		var keys []string
		for _, m := range ms {
			keys = append(keys, string(m.Key))
		}
		t.Fatalf("from the start: keys %v, want the two rows written before the capture", keys)
	}
}
