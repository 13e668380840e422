package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	if code != 0 {
		panic("verify tests failed")
	}
}

func cdc(m *nodetest.MariaDB) capture.Source {
	return capture.Source{Addr: m.Addr, User: nodetest.CDCUser, Password: nodetest.CDCPassword}
}

// pair starts a source and a target node holding the same statements'
// result (the statements run on both).
func pair(t *testing.T, stmts ...string) (src, tgt *nodetest.MariaDB) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Go(func() { src = nodetest.StartMariaDB(t, 1) })
	tgt = nodetest.StartMariaDB(t, 2)
	wg.Wait()
	src.Exec(t, stmts...)
	tgt.Exec(t, stmts...)
	return src, tgt
}

func run(t *testing.T, cfg Config) syncjob.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

// diffs is a table report's differences as "kind key" lines, sorted.
func diffs(tr syncjob.TableReport) []string {
	var out []string
	for _, d := range tr.Differences {
		out = append(out, d.Kind+" "+string(d.Key))
	}
	slices.Sort(out)
	return out
}

const wideTable = `CREATE TABLE app.wide (
	id INT PRIMARY KEY, name VARCHAR(64) NULL, price DECIMAL(10,2) NOT NULL, ratio FLOAT NULL, score DOUBLE NULL,
	born DATETIME(3) NULL, seen TIMESTAMP NULL, data BLOB NULL, doc JSON NULL, flags SET('a','b','c') NULL,
	color ENUM('red','green') NULL, bits BIT(10) NULL)`

// fill inserts rows 1..n into app.wide with values of every column type,
// NULLs included.
func fill(n int) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO app.wide VALUES ")
	for i := 1; i <= n; i++ {
		if i > 1 {
			sb.WriteByte(',')
		}
		name := fmt.Sprintf("'name-%d'", i)
		if i%7 == 0 {
			name = "NULL"
		}
		fmt.Fprintf(&sb, "(%d, %s, %d.%02d, %f, %g, '2024-01-%02d 10:00:00.%03d', FROM_UNIXTIME(%d), X'%02x00ff', '{\"n\": %d}', 'a,c', 'green', b'%b')",
			i, name, i, i%100, float64(i)/3, float64(i)/7, i%28+1, i%1000, 1700000000+i, i%256, i, i%1024)
	}
	return sb.String()
}

func TestIdenticalTablesAreConsistent(t *testing.T) {
	t.Parallel()
	src, tgt := pair(t, "CREATE DATABASE app", wideTable, fill(2500),
		"CREATE TABLE app.empty (id INT PRIMARY KEY)")
	rep := run(t, Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.*"}, ChunkSize: 100})
	if !rep.Consistent || rep.DifferingRows != 0 {
		t.Fatalf("identical tables reported inconsistent: %+v", rep)
	}
	if rep.RowsChecked != 2500 {
		t.Errorf("rows checked = %d, want 2500", rep.RowsChecked)
	}
	// "app.*" is both tables; the empty one is one chunk, the other 25
	// full chunks and the open-ended last one.
	if len(rep.Tables) != 2 || rep.Tables[0].Table != "app.empty" || rep.Tables[1].Table != "app.wide" {
		t.Fatalf("tables = %+v, want app.empty and app.wide", rep.Tables)
	}
	if rep.Chunks != 27 || rep.Tables[0].Chunks != 1 || rep.Tables[1].Chunks != 26 {
		t.Errorf("chunks = %d (%d + %d), want 1 + 26", rep.Chunks, rep.Tables[0].Chunks, rep.Tables[1].Chunks)
	}
}

func TestFindsAndRepairsDifferences(t *testing.T) {
	t.Parallel()
	src, tgt := pair(t, "CREATE DATABASE app", wideTable, fill(1000))
	// Behind the job's back: a changed value, a NULL that became '' (the
	// checksum must tell them apart), a changed TIMESTAMP, a missing row,
	// an extra row in the middle and one past the source's last key.
	tgt.Exec(t, "UPDATE app.wide SET price = price + 1 WHERE id = 5",
		"UPDATE app.wide SET name = '' WHERE id = 14",
		"UPDATE app.wide SET seen = seen + INTERVAL 1 SECOND WHERE id = 600",
		"DELETE FROM app.wide WHERE id = 333",
		"DELETE FROM app.wide WHERE id = 1000")
	src.Exec(t, "DELETE FROM app.wide WHERE id = 444", "UPDATE app.wide SET bits = b'1' WHERE id = 777")
	tgt.Exec(t, "INSERT INTO app.wide (id, price) VALUES (5000, 1)")
	cfg := Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.wide"}, ChunkSize: 64, Parallel: 3}
	rep := run(t, cfg)
	want := []string{
		`different {"id":14}`, `different {"id":5}`, `different {"id":600}`, `different {"id":777}`,
		`extra_on_target {"id":444}`, `extra_on_target {"id":5000}`,
		`missing_on_target {"id":1000}`, `missing_on_target {"id":333}`,
	}
	if got := diffs(rep.Tables[0]); !slices.Equal(got, want) {
		t.Fatalf("differences:\n got %q\nwant %q", got, want)
	}
	if rep.Consistent || rep.DifferingRows != 8 || rep.Repaired != 0 {
		t.Fatalf("report = %+v, want 8 differing rows, none repaired", rep)
	}

	const repairID = 0x7d000001
	cfg.Repair, cfg.RepairServerID = true, repairID
	rep = run(t, cfg)
	if rep.DifferingRows != 8 || rep.Repaired != 8 || !rep.Consistent {
		t.Fatalf("repair report = %+v, want 8 differing rows all repaired", rep)
	}
	for _, d := range rep.Tables[0].Differences {
		if !d.Repaired {
			t.Errorf("difference %s not marked repaired", d.Key)
		}
	}
	// The repairs carry the job's server id, so its captures skip them.
	if pos := tgt.Pos(t); !strings.Contains(pos, "-"+strconv.Itoa(repairID)+"-") {
		t.Errorf("target binlog position %q has no transaction of server id %d", pos, repairID)
	}
	cfg.Repair = false
	if rep = run(t, cfg); !rep.Consistent || rep.DifferingRows != 0 {
		t.Fatalf("after repair: %+v", rep)
	}
	// Checked by the user's own eyes too: the repaired rows read alike.
	for _, q := range []string{
		"SELECT COUNT(*), SUM(price), SUM(CRC32(CONCAT_WS('#', id, name, ratio, seen, HEX(data), HEX(bits), ISNULL(name)))) FROM app.wide",
	} {
		var a, b [3]string
		if err := src.Root.QueryRow(q).Scan(&a[0], &a[1], &a[2]); err != nil {
			t.Fatal(err)
		}
		if err := tgt.Root.QueryRow(q).Scan(&b[0], &b[1], &b[2]); err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("%s: source %v, target %v", q, a, b)
		}
	}
}

func TestCompositeKey(t *testing.T) {
	t.Parallel()
	var rows []string
	for _, tenant := range []string{"a", "b", "c"} {
		for i := range 300 {
			id := uint64(i)
			if i >= 290 {
				id = 1<<64 - 1 - uint64(300-i) // past 2^53: must not be compared as DOUBLE
			}
			rows = append(rows, fmt.Sprintf("('%s', %d, 'v%d')", tenant, id, i))
		}
	}
	src, tgt := pair(t, "CREATE DATABASE app",
		"CREATE TABLE app.kv (tenant VARCHAR(16) NOT NULL, id BIGINT UNSIGNED NOT NULL, v VARCHAR(32) NOT NULL, PRIMARY KEY (tenant, id))",
		"INSERT INTO app.kv VALUES "+strings.Join(rows, ","))
	cfg := Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.kv"}, ChunkSize: 37}
	if rep := run(t, cfg); !rep.Consistent || rep.RowsChecked != 900 || rep.Chunks != 25 {
		t.Fatalf("identical composite-key tables: %+v, want consistent, 900 rows in 25 chunks", rep)
	}
	big := uint64(1<<64 - 1 - 5)
	tgt.Exec(t, "UPDATE app.kv SET v = 'x' WHERE tenant = 'b' AND id = 7",
		fmt.Sprintf("UPDATE app.kv SET v = 'y' WHERE tenant = 'c' AND id = %d", big),
		"DELETE FROM app.kv WHERE tenant = 'a' AND id = 299",
		"INSERT INTO app.kv VALUES ('d', 1, 'extra')")
	rep := run(t, cfg)
	want := []string{
		`different {"tenant":"b","id":7}`,
		fmt.Sprintf(`different {"tenant":"c","id":%d}`, big),
		`extra_on_target {"tenant":"d","id":1}`,
	}
	if got := diffs(rep.Tables[0]); !slices.Equal(got, want) {
		t.Fatalf("differences:\n got %q\nwant %q", got, want)
	}
	for _, d := range rep.Tables[0].Differences {
		var k map[string]any
		if err := json.Unmarshal(d.Key, &k); err != nil || len(k) != 2 {
			t.Errorf("key %s is not a JSON object of both key columns: %v", d.Key, err)
		}
	}
	cfg.Repair, cfg.RepairServerID = true, 0x7d000002
	if rep = run(t, cfg); rep.Repaired != 3 {
		t.Fatalf("repair: %+v", rep)
	}
	cfg.Repair = false
	if rep = run(t, cfg); !rep.Consistent {
		t.Fatalf("after repair: %+v", rep)
	}
}

func TestRefusesTableWithoutPrimaryKey(t *testing.T) {
	t.Parallel()
	src, tgt := pair(t, "CREATE DATABASE app", "CREATE TABLE app.log (line TEXT)")
	_, err := Run(context.Background(), Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.log"}})
	if !errors.Is(err, ErrNoPrimaryKey) {
		t.Fatalf("err = %v, want ErrNoPrimaryKey", err)
	}
}

// replicator stands in for a sync job: every write it makes on the source
// reaches the target a little later, and Settle waits until the target has
// every source write up to a position.
type replicator struct {
	src, tgt *nodetest.MariaDB
	applied  atomic.Int64 // source GTID sequence applied to the target
	changed  chan struct{}
	mu       sync.Mutex
}

func (r *replicator) notify() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *replicator) wait() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// settle waits until the target applied the source up to pos (one domain:
// sequence numbers of the source's server id 1).
func (r *replicator) settle(ctx context.Context, pos string) error {
	var seq int64
	for _, g := range strings.Split(pos, ",") {
		parts := strings.Split(strings.TrimSpace(g), "-")
		if len(parts) == 3 {
			n, err := strconv.ParseInt(parts[2], 10, 64)
			if err != nil {
				return err
			}
			seq = max(seq, n)
		}
	}
	for {
		ch := r.wait()
		if r.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// write runs until ctx ends: updates, inserts and deletes on the source,
// each repeated on the target lag later.
func (r *replicator) write(ctx context.Context, t *testing.T, lag time.Duration) error {
	conn, err := r.src.Root.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	next := 100000
	for ctx.Err() == nil {
		var q string
		switch n := rand.IntN(10); {
		case n < 7:
			q = fmt.Sprintf("UPDATE app.t SET v = '%d' WHERE id = %d", rand.Int64(), 1+rand.IntN(3000))
		case n < 9:
			next++
			q = fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'new')", next)
		default:
			q = fmt.Sprintf("DELETE FROM app.t WHERE id = %d", 1+rand.IntN(3000))
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return ctxErr(ctx, err)
		}
		var gtid string
		if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid); err != nil {
			return ctxErr(ctx, err)
		}
		seq, _ := strconv.ParseInt(gtid[strings.LastIndex(gtid, "-")+1:], 10, 64)
		select {
		case <-time.After(lag):
		case <-ctx.Done():
			return nil
		}
		if _, err := r.tgt.Root.ExecContext(ctx, q); err != nil {
			return ctxErr(ctx, err)
		}
		r.applied.Store(seq)
		r.notify()
	}
	return nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func TestConcurrentWritesAreNotReported(t *testing.T) {
	t.Parallel()
	var rows []string
	for i := 1; i <= 3010; i++ { // the writer leaves 3001.. alone
		rows = append(rows, fmt.Sprintf("(%d, 'v')", i))
	}
	src, tgt := pair(t, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL)",
		"INSERT INTO app.t VALUES "+strings.Join(rows, ","))
	r := &replicator{src: src, tgt: tgt, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() { werr = r.write(ctx, t, 5*time.Millisecond) })
	defer func() {
		cancel()
		wg.Wait()
		if werr != nil {
			t.Errorf("writer: %v", werr)
		}
	}()
	// The writer must be running before the check starts.
	deadline := time.Now().Add(30 * time.Second)
	for r.applied.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatal("writer made no progress")
		}
		select {
		case <-r.wait():
		case <-time.After(time.Second):
		}
	}
	cfg := Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.t"}, ChunkSize: 50, Parallel: 2,
		Settle: r.settle, Rechecks: 5}
	var rechecked int64
	for i := 0; i < 5; i++ {
		rep := run(t, cfg)
		if !rep.Consistent || rep.DifferingRows != 0 {
			t.Fatalf("run %d under concurrent writes reported differences: %+v", i, rep)
		}
		rechecked += rep.Rechecked
	}
	// Writes were in flight during the checks: chunks differed and were
	// settled, not reported (else this test proves nothing).
	if rechecked == 0 {
		t.Errorf("no chunk was ever rechecked: the writes were never seen in flight")
	}
	// A real difference made behind the job's back is still found.
	tgt.Exec(t, "UPDATE app.t SET v = 'behind' WHERE id = 3005")
	rep := run(t, cfg)
	if got := diffs(rep.Tables[0]); len(got) != 1 || got[0] != `different {"id":3005}` {
		t.Fatalf("differences = %q, want the row changed behind the job's back", got)
	}
}

// A chunk of a composite-key table is read as an index range, not a scan
// of the table from its start.
func TestChunkQueriesUseRanges(t *testing.T) {
	t.Parallel()
	m := nodetest.StartMariaDB(t, 1)
	m.Exec(t, "CREATE DATABASE app",
		"CREATE TABLE app.kv (a INT NOT NULL, b VARCHAR(8) NOT NULL, c BIGINT NOT NULL, v INT, PRIMARY KEY (a, b, c))",
		"INSERT INTO app.kv SELECT seq % 20, CONCAT('k', seq % 7), seq, seq FROM app.seq_1_to_20000",
		"ANALYZE TABLE app.kv")
	ctx := context.Background()
	tb, err := loadTable(ctx, m.Root, "app.kv")
	if err != nil {
		t.Fatal(err)
	}
	where, args := tb.where([]any{int64(9), "k3", int64(1000)}, []any{int64(10), "k1", int64(5000)})
	var id, selType, table, keys, key, keyLen, ref, extra any
	var typ string
	var rows int64
	if err := m.Root.QueryRowContext(ctx, "EXPLAIN "+tb.chunkSQL+where, args...).Scan(&id, &selType, &table, &typ, &keys,
		&key, &keyLen, &ref, &rows, &extra); err != nil {
		t.Fatal(err)
	}
	if typ != "range" || rows > 5000 {
		t.Errorf("chunk query plan: type %s, %d rows estimated; want a range of about 2000 rows", typ, rows)
	}
	var n int64
	if err := m.Root.QueryRowContext(ctx, "SELECT COUNT(*) FROM app.kv"+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	var want int64
	if err := m.Root.QueryRowContext(ctx, `SELECT COUNT(*) FROM app.kv WHERE (a, b, c) > (9, 'k3', 1000) AND (a, b, c) <= (10, 'k1', 5000)`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if n != want || n == 0 {
		t.Errorf("chunk predicate selects %d rows, the row comparison %d", n, want)
	}
}

// Text in any character set (one per table, or mixed) is compared and
// repaired without loss.
func TestCharacterSets(t *testing.T) {
	t.Parallel()
	src, tgt := pair(t, "CREATE DATABASE app",
		"CREATE TABLE app.u (id INT PRIMARY KEY, s VARCHAR(32) CHARACTER SET utf8mb4 NOT NULL)",
		"CREATE TABLE app.mixed (id INT PRIMARY KEY, s VARCHAR(32) CHARACTER SET utf8mb4, l VARCHAR(32) CHARACTER SET latin1, b VARBINARY(8))",
		"INSERT INTO app.u VALUES (1, 'grüße 🌲'), (2, '木'), (3, 'plain')",
		"INSERT INTO app.mixed VALUES (1, '🌲', 'café', X'00ff'), (2, NULL, 'x', NULL)")
	cfg := Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.u", "app.mixed"}}
	if rep := run(t, cfg); !rep.Consistent {
		t.Fatalf("identical tables: %+v", rep)
	}
	// Characters latin1 cannot hold: a lossy conversion would hide these.
	tgt.Exec(t, "UPDATE app.u SET s = '林' WHERE id = 2", "UPDATE app.mixed SET s = '🌳' WHERE id = 1")
	rep := run(t, cfg)
	if got := append(diffs(rep.Tables[0]), diffs(rep.Tables[1])...); !slices.Equal(got, []string{`different {"id":2}`, `different {"id":1}`}) {
		t.Fatalf("differences = %q", got)
	}
	cfg.Repair = true
	if rep = run(t, cfg); rep.Repaired != 2 {
		t.Fatalf("repair: %+v", rep)
	}
	var s string
	if err := tgt.Root.QueryRow("SELECT s FROM app.u WHERE id = 2").Scan(&s); err != nil || s != "木" {
		t.Fatalf("repaired row holds %q (%v), want 木", s, err)
	}
	cfg.Repair = false
	if rep = run(t, cfg); !rep.Consistent {
		t.Fatalf("after repair: %+v", rep)
	}
}

// Single integer keys, at both ends of their type's range, dense with a
// gap (cut by key arithmetic) or far sparser (cut by keyset): every row
// is checked once and each difference is found at its exact key, also in
// a chunk that caught a dense run after the gap.
func TestIntegerKeys(t *testing.T) {
	t.Parallel()
	const lowest = "-9223372036854775808"
	src, tgt := pair(t, "CREATE DATABASE app",
		"CREATE TABLE app.s (id BIGINT PRIMARY KEY, v VARCHAR(16) NOT NULL)",
		"CREATE TABLE app.u (id BIGINT UNSIGNED PRIMARY KEY, v INT NULL)",
		"CREATE TABLE app.sparse (id BIGINT PRIMARY KEY, v VARCHAR(16) NOT NULL)",
		"INSERT INTO app.s SELECT "+lowest+" + CAST(seq AS SIGNED), 'a' FROM app.seq_0_to_999",
		"INSERT INTO app.s SELECT "+lowest+" + 3000 + CAST(seq AS SIGNED), 'b' FROM app.seq_0_to_999",
		"INSERT INTO app.u SELECT 18446744073709551615 - seq, IF(seq % 3 = 0, NULL, seq) FROM app.seq_0_to_799",
		"INSERT INTO app.sparse SELECT CAST(seq AS SIGNED) - 100, 'a' FROM app.seq_1_to_200",
		"INSERT INTO app.sparse SELECT 1000000000000000 + seq, 'b' FROM app.seq_1_to_2000",
		"INSERT INTO app.sparse VALUES ("+lowest+", 'min'), (9223372036854775807, 'max')",
		"ANALYZE TABLE app.s, app.u, app.sparse")
	cfg := Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.s", "app.sparse", "app.u"}, ChunkSize: 50, Parallel: 3}
	rep := run(t, cfg)
	if !rep.Consistent || rep.Tables[0].RowsChecked != 2000 || rep.Tables[1].RowsChecked != 2202 || rep.Tables[2].RowsChecked != 800 {
		t.Fatalf("identical tables: %+v, want consistent, 2000 + 2202 + 800 rows", rep)
	}
	tgt.Exec(t, "UPDATE app.s SET v = 'x' WHERE id = "+lowest,
		"UPDATE app.s SET v = 'x' WHERE id = "+lowest+" + 3500",
		"INSERT INTO app.s VALUES ("+lowest+" + 2000, 'gap')",
		"DELETE FROM app.s WHERE id = "+lowest+" + 3999",
		"UPDATE app.sparse SET v = 'y' WHERE id = 1000000000001500",
		"INSERT INTO app.sparse VALUES (500000000000, 'gap')",
		"DELETE FROM app.sparse WHERE id = 9223372036854775807",
		"UPDATE app.u SET v = 1000 WHERE id = 18446744073709551614",
		"INSERT INTO app.u VALUES (9223372036854775808, 7)",
		"DELETE FROM app.u WHERE id = 18446744073709551615")
	rep = run(t, cfg)
	var got []string
	for _, tr := range rep.Tables {
		got = append(got, diffs(tr)...)
	}
	want := []string{
		`different {"id":-9223372036854772308}`, `different {"id":-9223372036854775808}`,
		`extra_on_target {"id":-9223372036854773808}`, `missing_on_target {"id":-9223372036854771809}`,
		`different {"id":1000000000001500}`, `extra_on_target {"id":500000000000}`, `missing_on_target {"id":9223372036854775807}`,
		`different {"id":18446744073709551614}`, `extra_on_target {"id":9223372036854775808}`, `missing_on_target {"id":18446744073709551615}`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("differences:\n got %q\nwant %q", got, want)
	}
	cfg.Repair, cfg.RepairServerID = true, 0x7d000003
	if rep = run(t, cfg); rep.Repaired != 10 {
		t.Fatalf("repair: %+v", rep)
	}
	cfg.Repair = false
	if rep = run(t, cfg); !rep.Consistent {
		t.Fatalf("after repair: %+v", rep)
	}
}

// Two rows that swap values of the same length differ: an XOR of plain
// row CRCs would not change.
func TestSwappedValuesAreFound(t *testing.T) {
	t.Parallel()
	src, tgt := pair(t, "CREATE DATABASE app",
		"CREATE TABLE app.o (id INT PRIMARY KEY, status VARCHAR(8) NOT NULL, n INT NOT NULL)",
		"INSERT INTO app.o VALUES (1, 'paid', 10), (2, 'done', 20), (3, 'new', 30), (4, 'new', 40)",
		"CREATE TABLE app.n (k VARCHAR(8) PRIMARY KEY, a VARCHAR(8) NULL, b VARCHAR(8) NULL)",
		"INSERT INTO app.n VALUES ('k1', NULL, 'x'), ('k2', 'y', NULL)")
	tgt.Exec(t, "UPDATE app.o SET status = IF(id = 1, 'done', 'paid') WHERE id IN (1, 2)",
		"UPDATE app.o SET n = IF(id = 3, 40, 30) WHERE id IN (3, 4)",
		// A value moving to the other nullable column: the row's text
		// skips the NULL either way.
		"UPDATE app.n SET a = 'x', b = NULL WHERE k = 'k1'")
	rep := run(t, Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.o", "app.n"}})
	want := []string{`different {"id":1}`, `different {"id":2}`, `different {"id":3}`, `different {"id":4}`, `different {"k":"k1"}`}
	if got := append(diffs(rep.Tables[0]), diffs(rep.Tables[1])...); !slices.Equal(got, want) {
		t.Fatalf("differences = %q, want %q", got, want)
	}
}
