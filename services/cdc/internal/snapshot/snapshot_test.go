package snapshot

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/envelope"
)

const prefix = "cdc.tenant-1.inst-1"

// event is the part of a snapshot event's value the tests look at.
type event struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source struct {
		Name     string `json:"name"`
		Snapshot string `json:"snapshot"`
		DB       string `json:"db"`
		Table    string `json:"table"`
		GTID     string `json:"gtid"`
		Row      int    `json:"row"`
	} `json:"source"`
	Op string `json:"op"`
}

func decode(t testing.TB, b []byte) event {
	t.Helper()
	var e event
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	require.NoError(t, d.Decode(&e), "%s", b)
	return e
}

func progressOf(t testing.TB, cp *change.Checkpoint) Progress {
	t.Helper()
	var p Progress
	require.NoError(t, json.Unmarshal(cp.Snapshot, &p))
	return p
}

func inDB(db string) func(string, string) bool {
	return func(d, _ string) bool { return d == db }
}

// drive runs Run and hands each batch to each, which may stop reading by
// returning false (Run then blocks on out until its context ends).
func drive(ctx context.Context, cfg Config, resume *Progress, each func(change.Batch) bool) (Progress, error, []change.Batch) {
	out := make(chan change.Batch)
	type result struct {
		p   Progress
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := Run(ctx, cfg, resume, out)
		done <- result{p, err}
	}()
	var got []change.Batch
	reading := true
	for {
		in := out
		if !reading {
			in = nil
		}
		select {
		case b := <-in:
			got = append(got, b)
			reading = each(b)
		case r := <-done:
			return r.p, r.err, got
		}
	}
}

func all(change.Batch) bool { return true }

func TestSnapshot(t *testing.T) {
	n := startNode(t)
	t.Run("ChunksOfTwoTables", func(t *testing.T) { testChunks(t, n) })
	t.Run("KeylessAndEmptyTables", func(t *testing.T) { testKeylessAndEmpty(t, n) })
	t.Run("ConcurrentWritesSeeTheSnapshotPosition", func(t *testing.T) { testConcurrentWrites(t, n) })
	t.Run("ResumeAfterCancel", func(t *testing.T) { testResume(t, n) })
	t.Run("ResumeOnBinaryKey", func(t *testing.T) { testBinaryKey(t, n) })
}

func testChunks(t *testing.T, n *node) {
	n.exec(t,
		"CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(32) NOT NULL, amount DECIMAL(10,2), created DATETIME)",
		"INSERT INTO shop.orders SELECT seq, CONCAT('c-', seq), seq + 0.5, '2026-01-02 03:04:05' FROM shop.seq_1_to_2500",
		// The key's order (order_id, line) differs from the columns' order.
		"CREATE TABLE shop.lines (sku VARCHAR(16) NOT NULL, line SMALLINT NOT NULL, order_id INT NOT NULL, qty INT, PRIMARY KEY (order_id, line))",
		"INSERT INTO shop.lines SELECT CONCAT('sku-', o.seq, '-', l.seq), l.seq, o.seq, o.seq * l.seq FROM shop.seq_1_to_1000 o, shop.seq_1_to_3 l",
		"CREATE DATABASE other",
		"CREATE TABLE other.ignored (id INT PRIMARY KEY)",
		"INSERT INTO other.ignored VALUES (1)")
	t.Cleanup(func() { n.exec(t, "DROP DATABASE shop", "DROP DATABASE other") })
	gtid := n.gtidBinlogPos(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Source: n.source(), Prefix: prefix, Include: inDB("shop"), ChunkSize: 100}
	final, err, batches := drive(ctx, cfg, nil, all)
	require.NoError(t, err)

	require.Equal(t, gtid, final.GTID, "the snapshot position is the binlog position when nothing writes")
	require.Equal(t, []TableProgress{{Name: "shop.lines", Done: true, Rows: 3000}, {Name: "shop.orders", Done: true, Rows: 2500}}, final.Tables)
	// 30 chunks of lines, 25 of orders: reading one row ahead, a table
	// whose size is a multiple of the chunk needs no empty chunk.
	require.Len(t, batches, 55)

	seenKeys := map[string]bool{}
	seenRows := map[int]bool{}
	var events int64
	total := 0
	for bi, b := range batches {
		require.NotNil(t, b.Checkpoint, "batch %d", bi)
		require.LessOrEqual(t, len(b.Messages), 100)
		require.NotEmpty(t, b.Messages)
		events += int64(len(b.Messages))
		require.Equal(t, gtid, b.Checkpoint.GTID)
		require.Equal(t, events, b.Checkpoint.Events, "running count")
		p := progressOf(t, b.Checkpoint)
		require.Equal(t, gtid, p.GTID)
		for _, m := range b.Messages {
			total++
			e := decode(t, m.Value)
			require.Equal(t, "r", e.Op)
			require.Nil(t, e.Before)
			require.Equal(t, prefix, e.Source.Name)
			require.Equal(t, gtid, e.Source.GTID)
			require.Equal(t, gtid, m.GTID)
			require.Equal(t, m.Row, e.Source.Row)
			require.False(t, seenRows[m.Row], "row index %d twice", m.Row)
			seenRows[m.Row] = true
			wantSnap := "true"
			if total == 5500 {
				wantSnap = "last"
			}
			require.Equal(t, wantSnap, e.Source.Snapshot, "message %d", total)
			require.Equal(t, prefix+".shop."+e.Source.Table, m.Topic)
			require.False(t, seenKeys[m.Topic+string(m.Key)], "key %s twice", m.Key)
			seenKeys[m.Topic+string(m.Key)] = true
			switch e.Source.Table {
			case "orders":
				id := e.After["id"].(json.Number).String()
				require.JSONEq(t, `{"id":`+id+`}`, string(m.Key))
				require.Equal(t, "c-"+id, e.After["customer"])
				require.Equal(t, id+".50", e.After["amount"])
				// Progress after this chunk: lines done, orders at this key.
				require.Equal(t, TableProgress{Name: "shop.lines", Done: true, Rows: 3000}, p.Tables[0])
			case "lines":
				o, l := e.After["order_id"].(json.Number).String(), e.After["line"].(json.Number).String()
				require.JSONEq(t, `{"order_id":`+o+`,"line":`+l+`}`, string(m.Key))
				require.Equal(t, "sku-"+o+"-"+l, e.After["sku"])
			default:
				t.Fatalf("event of table %s", e.Source.Table)
			}
		}
		// The checkpoint's last key is the chunk's last row.
		last := decode(t, b.Messages[len(b.Messages)-1].Value)
		tp := p.Tables[0]
		if last.Source.Table == "orders" {
			tp = p.Tables[1]
		}
		if !tp.Done {
			if last.Source.Table == "orders" {
				require.Equal(t, []any{last.After["id"].(json.Number).String()}, tp.LastKey)
			} else {
				require.Equal(t, []any{last.After["order_id"].(json.Number).String(), last.After["line"].(json.Number).String()}, tp.LastKey)
			}
		}
	}
	require.Equal(t, 5500, total)

	// A chunk after a composite key is an index range scan, not a sort.
	tbl := &envelope.Table{DB: "shop", Name: "lines", Columns: []envelope.Column{{Name: "sku"}, {Name: "line", Key: true}, {Name: "order_id", Key: true}}}
	q, args := chunkQuery(tbl, []int{2, 1}, []any{int64(500), int64(2)}, 101)
	rows, err := n.root.Query("EXPLAIN "+q, args...)
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	require.True(t, rows.Next())
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	require.NoError(t, rows.Scan(ptrs...))
	plan := map[string]string{}
	for i, c := range cols {
		plan[c] = vals[i].String
	}
	require.Equal(t, "range", plan["type"], "%v", plan)
	require.Equal(t, "PRIMARY", plan["key"], "%v", plan)
	require.NotContains(t, plan["Extra"], "filesort", "%v", plan)
	for i := range 5500 {
		require.True(t, seenRows[i], "row index %d missing", i)
	}
}

func testKeylessAndEmpty(t *testing.T, n *node) {
	n.exec(t,
		"CREATE DATABASE misc",
		"CREATE TABLE misc.a_empty (id INT PRIMARY KEY)",
		"CREATE TABLE misc.b_log (msg VARCHAR(20), n INT)",
		"INSERT INTO misc.b_log SELECT CONCAT('m', seq), seq FROM misc.seq_1_to_250",
		"CREATE TABLE misc.c_empty (id INT PRIMARY KEY)")
	t.Cleanup(func() { n.exec(t, "DROP DATABASE misc") })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	final, err, batches := drive(ctx, Config{Source: n.source(), Prefix: prefix, Include: inDB("misc"), ChunkSize: 100}, nil, all)
	require.NoError(t, err)
	require.Equal(t, []TableProgress{{Name: "misc.a_empty", Done: true}, {Name: "misc.b_log", Done: true, Rows: 250}, {Name: "misc.c_empty", Done: true}}, final.Tables)

	// The keyless table comes in ChunkSize batches, only the last with a
	// checkpoint (no resume point inside), and that checkpoint already
	// says the empty table after it is done.
	require.Len(t, batches, 3)
	require.Nil(t, batches[0].Checkpoint)
	require.Nil(t, batches[1].Checkpoint)
	require.NotNil(t, batches[2].Checkpoint)
	require.Equal(t, final, progressOf(t, batches[2].Checkpoint))
	got := map[string]bool{}
	for i, b := range batches {
		for j, m := range b.Messages {
			require.Nil(t, m.Key, "no primary key: no key")
			e := decode(t, m.Value)
			got[e.After["msg"].(string)] = true
			want := "true"
			if i == 2 && j == len(b.Messages)-1 {
				want = "last"
			}
			require.Equal(t, want, e.Source.Snapshot)
		}
	}
	require.Len(t, got, 250)

	// Nothing included: nothing sent, an empty finished progress.
	final, err, batches = drive(ctx, Config{Source: n.source(), Prefix: prefix, Include: inDB("nothing-here")}, nil, all)
	require.NoError(t, err)
	require.Empty(t, batches)
	require.Empty(t, final.Tables)
	require.NotEmpty(t, final.GTID)
}

// writer changes bank.acct from one session while the snapshot reads it,
// and records each committed transaction with its GTID sequence number:
// the table's state at a GTID position is then the initial rows plus the
// transactions up to it (one domain, one server, strict mode: sequence
// numbers are commit order). That model is independent of the snapshot, so
// comparing the snapshot with it at the snapshot's GTID is a sound check
// whatever the interleaving.
type writer struct {
	mu        sync.Mutex
	committed int
	changed   chan struct{} // closed and replaced at each commit
	txns      []txn
	err       error
}

type txn struct {
	seq int64
	ops []op
}

type op struct {
	kind    string // insert, update, delete
	id      int
	balance int
}

func (w *writer) run(ctx context.Context, n *node, nextID int, rng *rand.Rand) {
	conn, err := n.root.Conn(ctx)
	if err != nil {
		w.fail(err)
		return
	}
	defer conn.Close()
	exists := map[int]bool{}
	var ids []int // existing ids, for random picks
	for i := 1; i < nextID; i++ {
		exists[i] = true
		ids = append(ids, i)
	}
	for ctx.Err() == nil {
		var ops []op
		for range 1 + rng.IntN(3) {
			switch k := rng.IntN(10); {
			case k < 5 && len(ids) > 0:
				id := ids[rng.IntN(len(ids))]
				ops = append(ops, op{"update", id, rng.IntN(1_000_000)})
			case k < 7 && len(ids) > 0:
				i := rng.IntN(len(ids))
				id := ids[i]
				ids[i] = ids[len(ids)-1]
				ids = ids[:len(ids)-1]
				delete(exists, id)
				ops = append(ops, op{"delete", id, 0})
			default:
				id := nextID
				nextID++
				exists[id] = true
				ids = append(ids, id)
				ops = append(ops, op{"insert", id, rng.IntN(1_000_000)})
			}
		}
		stmts := []string{"BEGIN"}
		for _, o := range ops {
			switch o.kind {
			case "update":
				stmts = append(stmts, fmt.Sprintf("UPDATE bank.acct SET balance = %d, note = 'upd' WHERE id = %d", o.balance, o.id))
			case "delete":
				stmts = append(stmts, fmt.Sprintf("DELETE FROM bank.acct WHERE id = %d", o.id))
			case "insert":
				stmts = append(stmts, fmt.Sprintf("INSERT INTO bank.acct VALUES (%d, %d, 'ins')", o.id, o.balance))
			}
		}
		stmts = append(stmts, "COMMIT")
		for _, s := range stmts {
			if _, err := conn.ExecContext(context.Background(), s); err != nil {
				w.fail(fmt.Errorf("%s: %w", s, err))
				return
			}
		}
		var gtid string
		if err := conn.QueryRowContext(context.Background(), "SELECT @@last_gtid").Scan(&gtid); err != nil {
			w.fail(err)
			return
		}
		seq, err := gtidSeq(gtid)
		if err != nil {
			w.fail(err)
			return
		}
		w.mu.Lock()
		w.txns = append(w.txns, txn{seq, ops})
		w.committed++
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
	close(w.changed)
	w.changed = make(chan struct{})
}

// waitCommitted waits until at least k transactions committed in all.
func (w *writer) waitCommitted(t testing.TB, k int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		c, ch, err := w.committed, w.changed, w.err
		w.mu.Unlock()
		if err != nil {
			t.Errorf("writer: %v", err)
			return
		}
		if c >= k {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Errorf("writer committed %d of %d transactions in 30s", c, k)
			return
		}
	}
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed
}

// gtidSeq is the sequence number of a single-domain GTID (position).
func gtidSeq(g string) (int64, error) {
	parts := strings.Split(g, "-")
	if len(parts) != 3 || strings.Contains(g, ",") {
		return 0, fmt.Errorf("not a single GTID: %q", g)
	}
	return strconv.ParseInt(parts[2], 10, 64)
}

func testConcurrentWrites(t *testing.T, n *node) {
	const initial = 3000
	n.exec(t,
		"CREATE DATABASE bank",
		"CREATE TABLE bank.acct (id INT PRIMARY KEY, balance INT NOT NULL, note VARCHAR(32))",
		fmt.Sprintf("INSERT INTO bank.acct SELECT seq, seq, 'init' FROM bank.seq_1_to_%d", initial))
	t.Cleanup(func() { n.exec(t, "DROP DATABASE bank") })

	w := &writer{changed: make(chan struct{})}
	wctx, stopWriter := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(wctx, n, initial+1, rand.New(rand.NewPCG(1, 2))) }()
	t.Cleanup(func() { stopWriter(); wg.Wait() })
	// Some writes before the snapshot, so its state is not the initial one.
	w.waitCommitted(t, 10)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The reader lets the writer commit a few transactions after each chunk
	// before taking the next: Run is blocked on out meanwhile, so the later
	// chunks are read after those commits.
	final, err, batches := drive(ctx, Config{Source: n.source(), Prefix: prefix, Include: inDB("bank"), ChunkSize: 100}, nil,
		func(change.Batch) bool { w.waitCommitted(t, w.count()+3); return true })
	require.NoError(t, err)
	stopWriter()
	wg.Wait()
	require.NoError(t, w.err)

	gseq, err := gtidSeq(final.GTID)
	require.NoError(t, err)
	type row struct {
		balance int
		note    string
	}
	want := map[int]row{}
	for i := 1; i <= initial; i++ {
		want[i] = row{i, "init"}
	}
	before, after := 0, 0
	for _, tx := range w.txns {
		if tx.seq > gseq {
			after++
			continue
		}
		before++
		for _, o := range tx.ops {
			switch o.kind {
			case "update":
				want[o.id] = row{o.balance, "upd"}
			case "insert":
				want[o.id] = row{o.balance, "ins"}
			case "delete":
				delete(want, o.id)
			}
		}
	}
	t.Logf("snapshot at %s: %d writer transactions before it, %d during the snapshot, %d chunks", final.GTID, before, after, len(batches))
	require.GreaterOrEqual(t, before, 10)
	require.Greater(t, after, 3*(len(batches)-1)-1, "writes went on while the chunks were read")

	got := map[int]row{}
	for _, b := range batches {
		for _, m := range b.Messages {
			e := decode(t, m.Value)
			id, err := strconv.Atoi(e.After["id"].(json.Number).String())
			require.NoError(t, err)
			bal, err := strconv.Atoi(e.After["balance"].(json.Number).String())
			require.NoError(t, err)
			_, dup := got[id]
			require.False(t, dup, "id %d twice", id)
			got[id] = row{bal, e.After["note"].(string)}
		}
	}
	require.Equal(t, len(want), len(got))
	require.Equal(t, want, got, "the snapshot is the table at its GTID position")
}

func testResume(t *testing.T, n *node) {
	// Unsigned BIGINT keys past 2^63: a resumed chunk must compare them as
	// integers (as doubles, neighbours 1 apart would be equal).
	const base = "18446744073709549000"
	n.exec(t,
		"CREATE DATABASE res",
		"CREATE TABLE res.a_small (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO res.a_small SELECT seq, 'a' FROM res.seq_1_to_150",
		"CREATE TABLE res.b_big (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO res.b_big SELECT "+base+" + seq, 'orig' FROM res.seq_1_to_2000")
	t.Cleanup(func() { n.exec(t, "DROP DATABASE res") })
	cfg := Config{Source: n.source(), Prefix: prefix, Include: inDB("res"), ChunkSize: 100}

	// First attempt: stop after 6 batches (a_small's 2 chunks, 4 of b_big),
	// as if the process died with the 6th checkpoint stored.
	ctx1, cancel1 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel1()
	var cancelled time.Time
	_, err, first := drive(ctx1, cfg, nil, func(b change.Batch) bool {
		if len(b.Messages) > 0 && decode(t, b.Messages[0].Value).Source.Table == "b_big" && b.Checkpoint.Events == 550 {
			cancelled = time.Now()
			cancel1()
			return false
		}
		return true
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(cancelled), 2*time.Second, "cancel returns promptly")
	require.Len(t, first, 6)
	stored := progressOf(t, first[5].Checkpoint)
	require.Equal(t, TableProgress{Name: "res.a_small", Done: true, Rows: 150}, stored.Tables[0])
	require.Equal(t, TableProgress{Name: "res.b_big", Rows: 400, LastKey: []any{"18446744073709549400"}}, stored.Tables[1])
	firstGTID := stored.GTID

	// Changes between the attempts, on both sides of the last key.
	n.exec(t,
		"UPDATE res.a_small SET v = 'changed' WHERE id = 5",
		"UPDATE res.b_big SET v = 'changed' WHERE id = "+base+" + 10",
		"UPDATE res.b_big SET v = 'changed' WHERE id BETWEEN "+base+" + 700 AND "+base+" + 709",
		"DELETE FROM res.b_big WHERE id BETWEEN "+base+" + 800 AND "+base+" + 804",
		"INSERT INTO res.b_big SELECT "+base+" + 2000 + seq, 'new' FROM res.seq_1_to_5")
	require.NotEqual(t, firstGTID, n.gtidBinlogPos(t))

	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	final, err, second := drive(ctx2, cfg, &stored, all)
	require.NoError(t, err)
	require.Equal(t, firstGTID, final.GTID, "streaming starts from the first snapshot's position")
	require.Equal(t, 1, final.Attempt)
	require.Equal(t, []TableProgress{{Name: "res.a_small", Done: true, Rows: 150}, {Name: "res.b_big", Done: true, Rows: 400 + 1600 - 5 + 5}}, final.Tables)

	// The second attempt emits exactly the rows after the last key, at
	// their current state; with the first attempt's stored chunks that is
	// every row.
	got := map[string]string{}
	events := int64(550)
	for _, b := range second {
		events += int64(len(b.Messages))
		require.Equal(t, events, b.Checkpoint.Events)
		require.Equal(t, firstGTID, b.Checkpoint.GTID)
		for _, m := range b.Messages {
			e := decode(t, m.Value)
			require.Equal(t, "b_big", e.Source.Table, "done tables are skipped")
			require.Equal(t, firstGTID, e.Source.GTID)
			require.GreaterOrEqual(t, e.Source.Row, attemptStride, "a resume numbers its rows apart")
			got[e.After["id"].(json.Number).String()] = e.After["v"].(string)
		}
	}
	for _, b := range first {
		for _, m := range b.Messages {
			e := decode(t, m.Value)
			if e.Source.Table == "b_big" {
				id := e.After["id"].(json.Number).String()
				_, dup := got[id]
				require.False(t, dup, "id %s in both attempts", id)
				got[id] = e.After["v"].(string)
			}
		}
	}
	rows, err := n.root.Query("SELECT id, v FROM res.b_big")
	require.NoError(t, err)
	defer rows.Close()
	want := map[string]string{}
	for rows.Next() {
		var id, v string
		require.NoError(t, rows.Scan(&id, &v))
		want[id] = v
	}
	require.NoError(t, rows.Err())
	// Only the update before the last key (id base+10) differs: the first
	// attempt read it at the first position, and streaming from there
	// replays the update.
	require.Equal(t, "orig", got["18446744073709549010"])
	got["18446744073709549010"] = "changed"
	require.Equal(t, want, got)
}

// A binary primary key (not UTF-8) goes through the stored progress and
// back into a resumed chunk.
func testBinaryKey(t *testing.T, n *node) {
	n.exec(t,
		"CREATE DATABASE bin",
		"CREATE TABLE bin.blobs (k VARBINARY(16) PRIMARY KEY, n INT)",
		"INSERT INTO bin.blobs SELECT UNHEX(MD5(seq)), seq FROM bin.seq_1_to_350")
	t.Cleanup(func() { n.exec(t, "DROP DATABASE bin") })
	cfg := Config{Source: n.source(), Prefix: prefix, Include: inDB("bin"), ChunkSize: 100}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err, full := drive(ctx, cfg, nil, all)
	require.NoError(t, err)
	require.Len(t, full, 4)

	stored := progressOf(t, full[1].Checkpoint)
	require.IsType(t, map[string]any{}, stored.Tables[0].LastKey[0])
	_, err, rest := drive(ctx, cfg, &stored, all)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, bs := range [][]change.Batch{full[:2], rest} {
		for _, b := range bs {
			for _, m := range b.Messages {
				require.False(t, seen[string(m.Key)], "key %s twice", m.Key)
				seen[string(m.Key)] = true
			}
		}
	}
	require.Len(t, seen, 350)
}
