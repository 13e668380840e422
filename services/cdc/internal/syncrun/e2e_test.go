package syncrun

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// The Manager with the real parts (decoded capture and snapshot, apply,
// cache, verify) on real nodes.

type staticNodes map[string]provview.Instance

func (s staticNodes) Instance(_ context.Context, id string) (provview.Instance, error) {
	in, ok := s[id]
	if !ok {
		return provview.Instance{}, fmt.Errorf("instance %s: %w", id, provview.ErrNotFound)
	}
	return in, nil
}

func mysqlInstance(id, addr string) provview.Instance {
	return provview.Instance{ID: id, Engine: "mysql", Nodes: []provview.Node{{ID: id + "-1", Address: addr,
		Role: provview.RolePrimary, Healthy: true, RegionRole: provview.RegionPrimary}},
		CDC: provview.Credentials{Username: nodetest.CDCUser, Password: nodetest.CDCPassword}}
}

func testLogger() *slog.Logger {
	if os.Getenv("SYNCRUN_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// runReal runs a Manager with the real parts until stop or the test's end.
func runReal(t *testing.T, r *repo, nodes Nodes) (*Manager, func()) {
	t.Helper()
	m, err := New(Config{StatusInterval: 100 * time.Millisecond, RetryInitial: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond},
		r, nodes, testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return m, stop
}

// dump is the table's rows as text, in key order ("" when it is missing).
func dump(db *sql.DB) string {
	rows, err := db.Query("SELECT id, COALESCE(v, 'NULL'), COALESCE(n, -1) FROM app.t ORDER BY id")
	if err != nil {
		return ""
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, n int64
		var v string
		if err := rows.Scan(&id, &v, &n); err != nil {
			return ""
		}
		fmt.Fprintf(&b, "%d|%s|%d\n", id, v, n)
	}
	return b.String()
}

func waitEqual(t *testing.T, what string, a, b *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		da, db := dump(a), dump(b)
		if da != "" && da == db {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: tables differ:\nsource:\n%.400s\ntarget:\n%.400s", what, da, db)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRealTwoWaySync(t *testing.T) {
	t.Parallel()
	a := nodetest.StartMariaDB(t, 31)
	b := nodetest.StartMariaDB(t, 32)
	a.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32), n INT)")
	for i := 1; i <= 200; i++ {
		a.Exec(t, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'v%d', %d)", i, i, i))
	}
	nodes := staticNodes{"a": mysqlInstance("a", a.Addr), "b": mysqlInstance("b", b.Addr)}
	j := job("j", syncjob.Spec{SourceInstance: "a", Target: syncjob.Target{Instance: "b"}, Direction: syncjob.TwoWay,
		DDL: syncjob.DDLReplay})
	r := newRepo(j)
	m, stop := runReal(t, r, nodes)

	waitEqual(t, "initial load", a.Root, b.Root)
	a.Exec(t, "UPDATE app.t SET v = 'a-upd' WHERE id <= 50", "DELETE FROM app.t WHERE id > 190",
		"INSERT INTO app.t VALUES (300, NULL, 3)")
	b.Exec(t, "INSERT INTO app.t VALUES (1000, 'from b', 1)", "UPDATE app.t SET n = 0 WHERE id = 100")
	waitEqual(t, "both ways", a.Root, b.Root)

	// A restart resumes from the watermarks on both sides.
	stop()
	for i := 400; i < 420; i++ {
		a.Exec(t, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'after restart', %d)", i, i))
	}
	b.Exec(t, "DELETE FROM app.t WHERE id = 1000")
	m, _ = runReal(t, r, nodes)
	waitEqual(t, "after restart", a.Root, b.Root)

	eventually(t, "manager running", func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.ctx != nil })
	if err := m.Verify(context.Background(), j, syncjob.Verification{ID: "v1", JobID: "j", Tenant: "t1"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "verification", func() bool { return len(r.finishedVerifications()) == 1 })
	v := r.finishedVerifications()[0]
	if v.State != syncjob.VerifyDone || !v.Report.Consistent || v.Report.RowsChecked == 0 {
		t.Fatalf("verification %+v", v)
	}
	// Every change crossed once: 200 loaded rows, 50 updates, 10 deletes,
	// 1 + 20 inserts forward; 1 insert, 1 update, 1 delete back. An echo
	// would apply the job's own writes again. Each side skipped the
	// other direction's writes.
	var st syncjob.Status
	eventually(t, "status of both directions", func() bool {
		st = r.job("j").Status
		return len(st.Directions) == 2 && st.Directions[0].Applied == 281 && st.Directions[1].Applied == 3
	})
	if st.Directions[0].Skipped == 0 || st.Directions[1].Skipped == 0 || st.Conflicts != 0 {
		t.Fatalf("status %+v: want both directions skipping the job's own transactions, no conflicts", st)
	}
}

func TestRealCacheSync(t *testing.T) {
	t.Parallel()
	a := nodetest.StartMariaDB(t, 33)
	rd := nodetest.StartRedis(t)
	a.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32), n INT)",
		"INSERT INTO app.t VALUES (1, 'one', 1), (2, 'two', 2)")
	nodes := staticNodes{"a": mysqlInstance("a", a.Addr), "r": {ID: "r", Engine: "redis",
		Nodes: []provview.Node{{ID: "r-1", Address: rd.Addr, Role: provview.RolePrimary, Healthy: true}},
		CDC:   provview.Credentials{Username: nodetest.RedisUser, Password: nodetest.RedisPassword}}}
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "a", Target: syncjob.Target{RedisInstance: "r",
		KeyPattern: syncjob.DefaultKeyPattern, Format: syncjob.FormatHash}}))
	runReal(t, r, nodes)
	ctx := context.Background()
	field := func(key, f string) string { v, _ := rd.Client.HGet(ctx, key, f).Result(); return v }
	eventually(t, "loaded rows cached", func() bool { return field("t:1", "v") == "one" && field("t:2", "v") == "two" })
	a.Exec(t, "UPDATE app.t SET v = 'uno' WHERE id = 1", "DELETE FROM app.t WHERE id = 2", "INSERT INTO app.t VALUES (3, 'three', 3)")
	eventually(t, "changes cached", func() bool {
		n, _ := rd.Client.Exists(ctx, "t:2").Result()
		return field("t:1", "v") == "uno" && n == 0 && field("t:3", "v") == "three"
	})
}

// One-way under a write load, the Manager stopped and started again
// several times mid-stream: the target ends equal to the source.
func TestRealOneWayUnderLoadWithRestarts(t *testing.T) {
	t.Parallel()
	a := nodetest.StartMariaDB(t, 34)
	b := nodetest.StartMariaDB(t, 35)
	a.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32), n INT)")
	nodes := staticNodes{"a": mysqlInstance("a", a.Addr), "b": mysqlInstance("b", b.Addr)}
	j := job("j", syncjob.Spec{SourceInstance: "a", Target: syncjob.Target{Instance: "b"}})
	r := newRepo(j)

	stopWrites := make(chan struct{})
	written := make(chan int)
	go func() {
		i := 0
		defer func() { written <- i }()
		for {
			select {
			case <-stopWrites:
				return
			default:
			}
			i++
			stmts := []string{fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'w', %d)", i, i)}
			if i%3 == 0 {
				stmts = append(stmts, fmt.Sprintf("UPDATE app.t SET n = n + 1, v = 'u' WHERE id = %d", i/2))
			}
			if i%7 == 0 {
				stmts = append(stmts, fmt.Sprintf("DELETE FROM app.t WHERE id = %d", i/3))
			}
			for _, q := range stmts {
				if _, err := a.Root.Exec(q); err != nil {
					t.Errorf("%s: %v", q, err)
					return
				}
			}
		}
	}()
	for round := 0; round < 4; round++ {
		_, stop := runReal(t, r, nodes)
		eventually(t, "some changes applied", func() bool {
			st := r.job("j").Status
			return len(st.Directions) == 1 && st.Directions[0].Applied > int64(50*(round+1))
		})
		stop()
	}
	close(stopWrites)
	n := <-written
	runReal(t, r, nodes)
	waitEqual(t, fmt.Sprintf("after %d writes and 4 restarts", n), a.Root, b.Root)
}

// A big transaction whose rows fill whole capture batches and whole target
// applies (5000 rows: the capture's and the applier's limits divide it)
// ends with a checkpoint that arrives alone; it must commit the target
// transaction the rows were applied in, not just move the job's position
// in memory (the status would say caught up while the target holds
// nothing).
func TestRealBigTransactionCommits(t *testing.T) {
	t.Parallel()
	a := nodetest.StartMariaDB(t, 36)
	b := nodetest.StartMariaDB(t, 37)
	a.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32), n INT)")
	nodes := staticNodes{"a": mysqlInstance("a", a.Addr), "b": mysqlInstance("b", b.Addr)}
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "a", Target: syncjob.Target{Instance: "b"}}))
	runReal(t, r, nodes)
	eventually(t, "running", func() bool { return r.job("j").State == syncjob.StateRunning })
	var sb strings.Builder
	sb.WriteString("INSERT INTO app.t VALUES ")
	for i := range 5000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "(%d, 'big', %d)", i, i)
	}
	a.Exec(t, sb.String())
	end := a.Pos(t)
	eventually(t, "the big transaction committed on the target with the watermark", func() bool {
		var n int
		var pos string
		err := b.Root.QueryRow("SELECT (SELECT COUNT(*) FROM app.t), (SELECT position FROM _canopy_sync.watermarks WHERE job_id = 'j')").Scan(&n, &pos)
		return err == nil && n == 5000 && pos == end
	})
}
