package cache

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	if code != 0 {
		panic("cache tests failed")
	}
}

var userCols = []string{"id", "name", "email"}

func ins(gtid string, row int, vals ...any) change.Message {
	return change.Message{GTID: gtid, Row: row, Change: &change.RowChange{DB: "app", Table: "users", Op: "c",
		Columns: userCols, Key: []int{0}, After: vals}}
}

func load(row int, vals ...any) change.Message {
	return change.Message{GTID: "0-1-5", Row: row, Change: &change.RowChange{DB: "app", Table: "users", Op: "r",
		Columns: userCols, Key: []int{0}, After: vals}}
}

func upd(gtid string, row int, before, after []any) change.Message {
	return change.Message{GTID: gtid, Row: row, Change: &change.RowChange{DB: "app", Table: "users", Op: "u",
		Columns: userCols, Key: []int{0}, Before: before, After: after}}
}

func del(gtid string, row int, vals ...any) change.Message {
	return change.Message{GTID: gtid, Row: row, Change: &change.RowChange{DB: "app", Table: "users", Op: "d",
		Columns: userCols, Key: []int{0}, Before: vals}}
}

func batch(gtid string, msgs ...change.Message) change.Batch {
	return change.Batch{Messages: msgs, Checkpoint: &change.Checkpoint{GTID: gtid}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, r *nodetest.Redis, mod func(*Config)) *Cache {
	t.Helper()
	cfg := Config{JobID: "job1", Tenant: "t1", From: "mysql-src", Addr: r.Addr,
		Username: nodetest.RedisUser, Password: nodetest.RedisPassword}
	if mod != nil {
		mod(&cfg)
	}
	c, err := Open(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func apply(t *testing.T, c *Cache, b change.Batch) syncjob.Stats {
	t.Helper()
	st, err := c.Apply(ctxT(t), b)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// dump is every row key in Redis (the watermark left out): a hash as its
// fields, a string as its value.
func dump(t *testing.T, rdb *redis.Client) map[string]any {
	t.Helper()
	ctx := ctxT(t)
	out := map[string]any{}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "canopy:sync:") {
			continue
		}
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "hash":
			out[k], err = rdb.HGetAll(ctx, k).Result()
		case "string":
			out[k], err = rdb.Get(ctx, k).Result()
		default:
			t.Fatalf("key %s has type %s", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func wantDump(t *testing.T, rdb *redis.Client, want map[string]any) {
	t.Helper()
	if got := dump(t, rdb); !reflect.DeepEqual(got, want) {
		t.Fatalf("redis holds\n%v\nwant\n%v", got, want)
	}
}

func wantWatermark(t *testing.T, c *Cache, want syncjob.Watermark) {
	t.Helper()
	got, err := c.Watermark(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("watermark = %+v, want %+v", got, want)
	}
}

type h = map[string]string

// Inserts, updates (a column set to NULL and back, a primary key change)
// and deletes leave exactly the rows as hashes; the watermark follows.
func TestRowsAsHashes(t *testing.T) {
	t.Parallel()
	r := nodetest.StartRedis(t)
	c := open(t, r, nil)
	wantWatermark(t, c, syncjob.Watermark{})

	st := apply(t, c, batch("0-1-1", ins("0-1-1", 0, int64(1), "ann", nil), ins("0-1-1", 1, int64(2), "bob", "b@x")))
	if st.Applied != 2 || st.Tables["app.users"] != 2 {
		t.Fatalf("stats = %+v, want 2 rows of app.users", st)
	}
	wantDump(t, r.Client, map[string]any{
		"users:1": h{"id": "1", "name": "ann"},
		"users:2": h{"id": "2", "name": "bob", "email": "b@x"},
	})
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-1", Applied: 2})

	apply(t, c, batch("0-1-4",
		upd("0-1-2", 0, []any{int64(1), "ann", nil}, []any{int64(1), "anna", "a@x"}),
		upd("0-1-3", 0, []any{int64(2), "bob", "b@x"}, []any{int64(3), "bob", "b@x"}),
		ins("0-1-4", 0, int64(4), "dan", nil),
		del("0-1-4", 1, int64(4), "dan", nil),
	))
	wantDump(t, r.Client, map[string]any{
		"users:1": h{"id": "1", "name": "anna", "email": "a@x"},
		"users:3": h{"id": "3", "name": "bob", "email": "b@x"},
	})
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-4", Applied: 6})

	apply(t, c, batch("0-1-5", upd("0-1-5", 0, []any{int64(1), "anna", "a@x"}, []any{int64(1), "anna", nil})))
	wantDump(t, r.Client, map[string]any{
		"users:1": h{"id": "1", "name": "anna"},
		"users:3": h{"id": "3", "name": "bob", "email": "b@x"},
	})
}

// An initial load's rows (text) give the same keys and values as streamed
// ones, the load's progress rides in the watermark until the last
// checkpoint clears it; in json format numbers stay numbers when the
// column types are known.
func TestLoadThenStreamJSON(t *testing.T) {
	t.Parallel()
	r := nodetest.StartRedis(t)
	var typeReads int
	c := open(t, r, func(cfg *Config) {
		cfg.Format = syncjob.FormatJSON
		cfg.KeyPattern = "{db}:{table}:{pk}"
		cfg.ColumnTypes = func(_ context.Context, db, table string) (map[string]string, error) {
			typeReads++
			if db != "app" || table != "users" {
				return nil, fmt.Errorf("no table %s.%s", db, table)
			}
			return map[string]string{"id": "int", "name": "varchar", "email": "varchar"}, nil
		}
	})
	progress := []byte(`{"gtid":"0-1-5","tables":[{"name":"app.users","rows":2}]}`)
	apply(t, c, change.Batch{
		Messages:   []change.Message{load(0, []byte("1"), []byte("ann"), nil), load(1, []byte("2"), []byte("bob"), []byte("b@x"))},
		Checkpoint: &change.Checkpoint{GTID: "0-1-5", Snapshot: progress},
	})
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-5", Load: progress, Applied: 2})
	apply(t, c, change.Batch{Checkpoint: &change.Checkpoint{GTID: "0-1-5"}})
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-5", Applied: 2})
	wantDump(t, r.Client, map[string]any{
		"app:users:1": `{"id":1,"name":"ann","email":null}`,
		"app:users:2": `{"id":2,"name":"bob","email":"b@x"}`,
	})

	apply(t, c, batch("0-1-6", upd("0-1-6", 0, []any{int64(2), "bob", "b@x"}, []any{int64(2), "bob", "bob@x"})))
	wantDump(t, r.Client, map[string]any{
		"app:users:1": `{"id":1,"name":"ann","email":null}`,
		"app:users:2": `{"id":2,"name":"bob","email":"bob@x"}`,
	})
	if typeReads != 1 {
		t.Fatalf("column types read %d times, want once per table", typeReads)
	}
}

// Every written key carries the TTL, in both formats.
func TestTTL(t *testing.T) {
	t.Parallel()
	for _, f := range []syncjob.Format{syncjob.FormatHash, syncjob.FormatJSON} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			r := nodetest.StartRedis(t)
			c := open(t, r, func(cfg *Config) { cfg.Format = f; cfg.TTL = time.Hour })
			apply(t, c, batch("0-1-1", ins("0-1-1", 0, int64(1), "ann", nil)))
			apply(t, c, batch("0-1-2", upd("0-1-2", 0, []any{int64(1), "ann", nil}, []any{int64(2), "ann", nil})))
			wantDump(t, r.Client, map[string]any{"users:2": map[syncjob.Format]any{
				syncjob.FormatHash: h{"id": "2", "name": "ann"},
				syncjob.FormatJSON: `{"id":2,"name":"ann","email":null}`,
			}[f]})
			ttl, err := r.Client.PTTL(ctxT(t), "users:2").Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl <= 59*time.Minute || ttl > time.Hour {
				t.Fatalf("PTTL users:2 = %s, want about 1h", ttl)
			}
			if ttl, _ := r.Client.PTTL(ctxT(t), WatermarkKey("job1", "mysql-src")).Result(); ttl != -1 {
				t.Fatalf("watermark PTTL = %s, want none (it must never expire)", ttl)
			}
		})
	}
}

// A batch that ends inside a transaction writes nothing until the batch
// with the checkpoint; the stats then count both.
func TestBufferedUntilCheckpoint(t *testing.T) {
	t.Parallel()
	r := nodetest.StartRedis(t)
	c := open(t, r, nil)
	st := apply(t, c, change.Batch{Messages: []change.Message{ins("0-1-1", 0, int64(1), "ann", nil)}})
	if st.Applied != 0 {
		t.Fatalf("stats of a batch without checkpoint = %+v, want nothing committed", st)
	}
	wantDump(t, r.Client, map[string]any{})
	wantWatermark(t, c, syncjob.Watermark{})
	st = apply(t, c, batch("0-1-1", ins("0-1-1", 1, int64(2), "bob", nil)))
	if st.Applied != 2 {
		t.Fatalf("stats = %+v, want the 2 rows of the transaction", st)
	}
	wantDump(t, r.Client, map[string]any{"users:1": h{"id": "1", "name": "ann"}, "users:2": h{"id": "2", "name": "bob"}})
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-1", Applied: 2})
}

// A crash after part of a transaction was handed over loses that part
// (the watermark still says where to resume); redelivering from the
// watermark, even a batch already applied, leaves the same keys as
// applying everything once.
func TestCrashAndRedelivery(t *testing.T) {
	t.Parallel()
	b1 := batch("0-1-1", ins("0-1-1", 0, int64(1), "ann", nil), ins("0-1-1", 1, int64(2), "bob", nil))
	b2 := change.Batch{Messages: []change.Message{
		upd("0-1-2", 0, []any{int64(1), "ann", nil}, []any{int64(10), "ann", "a@x"}),
		del("0-1-2", 1, int64(2), "bob", nil),
	}}
	b3 := batch("0-1-2", ins("0-1-2", 2, int64(3), "cy", nil))

	ref := nodetest.StartRedis(t)
	rc := open(t, ref, nil)
	for _, b := range []change.Batch{b1, b2, b3} {
		apply(t, rc, b)
	}
	want := dump(t, ref.Client)

	r := nodetest.StartRedis(t)
	c := open(t, r, nil)
	apply(t, c, b1)
	apply(t, c, b2)
	c.Close() // crash inside transaction 0-1-2
	wantDump(t, r.Client, map[string]any{"users:1": h{"id": "1", "name": "ann"}, "users:2": h{"id": "2", "name": "bob"}})

	c = open(t, r, nil)
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-1", Applied: 2})
	// A commit that fails (here: canceled) writes neither rows nor watermark.
	apply(t, c, b2)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Apply(canceled, b3); err == nil {
		t.Fatal("Apply with a canceled context succeeded")
	}
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-1", Applied: 2})
	// The runner resumes from the watermark; the capture redelivers b1 too.
	for _, b := range []change.Batch{b1, b2, b3} {
		apply(t, c, b)
	}
	wantDump(t, r.Client, want)
	// applied counts applications: b1's two rows twice.
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-2", Applied: 7})
}

// A reader that reads the watermark and a row in one MULTI never sees
// one without the other: rows and watermark move together.
func TestWatermarkMovesWithRows(t *testing.T) {
	t.Parallel()
	r := nodetest.StartRedis(t)
	c := open(t, r, nil)
	ctx := ctxT(t)
	const n = 200
	var (
		wg       sync.WaitGroup
		mismatch error
		done     = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			var pos *redis.StringCmd
			var name *redis.StringCmd
			_, err := r.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
				pos = p.HGet(ctx, WatermarkKey("job1", "mysql-src"), "position")
				name = p.HGet(ctx, "users:1", "name")
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				mismatch = err
				return
			}
			if pos.Val() == "" {
				continue
			}
			if seq := strings.TrimPrefix(pos.Val(), "0-1-"); name.Val() != "v"+seq {
				mismatch = fmt.Errorf("watermark %s with row name %q", pos.Val(), name.Val())
				return
			}
		}
	}()
	for i := 1; i <= n; i++ {
		g := "0-1-" + strconv.Itoa(i)
		if i == 1 {
			apply(t, c, batch(g, ins(g, 0, int64(1), "v1", nil)))
			continue
		}
		apply(t, c, batch(g, upd(g, 0, []any{int64(1), "v" + strconv.Itoa(i-1), nil}, []any{int64(1), "v" + strconv.Itoa(i), nil})))
	}
	close(done)
	wg.Wait()
	if mismatch != nil {
		t.Fatal(mismatch)
	}
}

// A table without a primary key fails the batch and writes nothing.
func TestNoPrimaryKey(t *testing.T) {
	t.Parallel()
	r := nodetest.StartRedis(t)
	c := open(t, r, nil)
	nokey := change.Message{GTID: "0-1-1", Row: 1, Change: &change.RowChange{DB: "app", Table: "log", Op: "c",
		Columns: []string{"msg"}, After: []any{"hi"}}}
	_, err := c.Apply(ctxT(t), batch("0-1-1", ins("0-1-1", 0, int64(1), "ann", nil), nokey))
	if !errors.Is(err, ErrNoPrimaryKey) {
		t.Fatalf("Apply err = %v, want ErrNoPrimaryKey", err)
	}
	wantDump(t, r.Client, map[string]any{})
	wantWatermark(t, c, syncjob.Watermark{})
}

// Drop removes the watermark and leaves the cached rows.
func TestDrop(t *testing.T) {
	t.Parallel()
	r := nodetest.StartRedis(t)
	c := open(t, r, nil)
	apply(t, c, batch("0-1-1", ins("0-1-1", 0, int64(1), "ann", nil)))
	if err := c.Drop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	wantWatermark(t, c, syncjob.Watermark{})
	wantDump(t, r.Client, map[string]any{"users:1": h{"id": "1", "name": "ann"}})
}

func TestOpenRejectsBadConfig(t *testing.T) {
	t.Parallel()
	base := Config{JobID: "j", From: "f", Addr: "127.0.0.1:1"}
	cases := map[string]func(*Config){
		"pattern without pk":  func(c *Config) { c.KeyPattern = "{table}" },
		"unknown format":      func(c *Config) { c.Format = "xml" },
		"negative ttl":        func(c *Config) { c.TTL = -time.Second },
		"no job":              func(c *Config) { c.JobID = "" },
		"watermark namespace": func(c *Config) { c.KeyPattern = "canopy:sync:{pk}" },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := base
			mod(&cfg)
			if c, err := Open(ctxT(t), cfg); err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// A transaction larger than MaxBuffered is written ahead of its checkpoint
// without the watermark; after a crash in it, redelivery from the
// watermark still ends with the right keys and applied count.
func TestLargeTransactionWrittenAhead(t *testing.T) {
	t.Parallel()
	r := nodetest.StartRedis(t)
	small := func(cfg *Config) { cfg.MaxBuffered = 2 }
	b1 := change.Batch{Messages: []change.Message{
		ins("0-1-1", 0, int64(1), "a", nil), ins("0-1-1", 1, int64(2), "b", nil), ins("0-1-1", 2, int64(3), "c", nil)}}
	b2 := change.Batch{Messages: []change.Message{del("0-1-1", 3, int64(1), "a", nil)}}
	b3 := batch("0-1-1", ins("0-1-1", 4, int64(4), "d", nil))

	c := open(t, r, small)
	if st := apply(t, c, b1); st.Applied != 0 {
		t.Fatalf("stats before the checkpoint = %+v, want nothing counted", st)
	}
	apply(t, c, b2)
	wantDump(t, r.Client, map[string]any{"users:1": h{"id": "1", "name": "a"}, "users:2": h{"id": "2", "name": "b"},
		"users:3": h{"id": "3", "name": "c"}})
	wantWatermark(t, c, syncjob.Watermark{})
	c.Close() // crash inside the transaction

	c = open(t, r, small)
	wantWatermark(t, c, syncjob.Watermark{})
	var st syncjob.Stats
	for _, b := range []change.Batch{b1, b2, b3} {
		st = apply(t, c, b)
	}
	if st.Applied != 5 || st.Tables["app.users"] != 5 {
		t.Fatalf("stats at the checkpoint = %+v, want the transaction's 5 rows", st)
	}
	wantDump(t, r.Client, map[string]any{"users:2": h{"id": "2", "name": "b"}, "users:3": h{"id": "3", "name": "c"},
		"users:4": h{"id": "4", "name": "d"}})
	wantWatermark(t, c, syncjob.Watermark{Position: "0-1-1", Applied: 5})
}
