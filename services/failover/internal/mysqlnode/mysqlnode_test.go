package mysqlnode_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/failover/internal/mysqlnode"
	"github.com/canopy-platform/canopy/services/failover/internal/nodetest"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nodetest.CleanupTemplate()
	os.Exit(code)
}

func newNodes(t *testing.T) *mysqlnode.Nodes {
	t.Helper()
	n, err := mysqlnode.New(mysqlnode.Config{}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not within %v: %s", what, within, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func insert(ctx context.Context, db *sql.DB, k, v string) error {
	_, err := db.ExecContext(ctx, "INSERT INTO kv (k, v) VALUES (?, ?)", k, v)
	return err
}

func read(t *testing.T, db *sql.DB, k string) string {
	t.Helper()
	var v string
	if err := db.QueryRowContext(ctxT(t, 5*time.Second), "SELECT v FROM kv WHERE k = ?", k).Scan(&v); err != nil {
		t.Fatalf("read %s: %v", k, err)
	}
	return v
}

// TestNodesSuite runs the shared topology.Nodes suite on a semi-sync
// topology: kill -9 failover timed, rejoin of the restarted old primary,
// fencing.
func TestNodesSuite(t *testing.T) {
	nodetest.RunNodesSuite(t, newNodes(t), nodetest.MySQLEngine(nodetest.MySQLOptions{SemiSync: true}))
}

// TestFenceRefusesWrites: a fenced live primary refuses new writes and an
// open transaction cannot commit.
func TestFenceRefusesWrites(t *testing.T) {
	tp := nodetest.MySQL(t, nodetest.MySQLOptions{SemiSync: true})
	in := tp.Instance
	nodes := newNodes(t)
	app := nodetest.AppDB(t, tp.Procs[0])
	ctx := ctxT(t, 20*time.Second)
	if err := insert(ctx, app, "a", "1"); err != nil {
		t.Fatal(err)
	}
	tx, err := app.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO kv (k, v) VALUES ('open', 'x')"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := nodes.Fence(ctx, in, in.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("fence took %v", time.Since(began))
	if err := tx.Commit(); err == nil {
		t.Fatal("an open transaction committed after the fence")
	}
	err = insert(ctx, app, "b", "2")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 { // ER_OPTION_PREVENTS_STATEMENT
		t.Fatalf("write after fence: %v, want read-only refusal", err)
	}
	if v := nodes.Observe(ctx, in, in.Nodes[0]); v.Writable || !v.Reachable {
		t.Fatalf("fenced view %+v", v)
	}
	if err := nodes.Fence(ctx, in, in.Nodes[0]); err != nil {
		t.Fatalf("fence again: %v", err)
	}
}

// TestErrant: an async replica that missed the primary's last write and is
// promoted leaves that write errant on the old primary.
func TestErrant(t *testing.T) {
	tp := nodetest.MySQL(t, nodetest.MySQLOptions{})
	in := tp.Instance
	nodes := newNodes(t)
	ctx := ctxT(t, 20*time.Second)
	nodetest.Exec(t, tp.Procs[1], "STOP SLAVE")
	app := nodetest.AppDB(t, tp.Procs[0])
	if err := insert(ctx, app, "lost", "1"); err != nil {
		t.Fatal(err)
	}
	lost := nodes.Observe(ctx, in, in.Nodes[0]).Position.GTID
	if err := nodes.Promote(ctx, in, in.Nodes[1]); err != nil {
		t.Fatal(err)
	}
	if err := insert(ctx, nodetest.AppDB(t, tp.Procs[1]), "new", "1"); err != nil {
		t.Fatal(err)
	}
	if err := nodes.Fence(ctx, in, in.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	errant, err := nodes.Errant(ctx, in, in.Nodes[0], in.Nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(errant) != 1 || errant[0] != lost {
		t.Fatalf("errant %v, want [%s]", errant, lost)
	}
	// Nothing errant the other way round: the new primary's own write is
	// newer data, not divergence of the old primary.
	if errant, err := nodes.Errant(ctx, in, in.Nodes[2], in.Nodes[1]); err != nil || len(errant) != 1 {
		t.Fatalf("node-2 (which replicated the lost write) errant %v, %v", errant, err)
	}
}

// TestFenceFailsCommitWaitingForAck: a commit waiting for a semi-sync
// acknowledgement when the primary is fenced is never acknowledged to its
// client, and the fence does not wait behind it.
func TestFenceFailsCommitWaitingForAck(t *testing.T) {
	tp := nodetest.MySQL(t, nodetest.MySQLOptions{SemiSync: true})
	in := tp.Instance
	nodes := newNodes(t)
	// No replica acknowledges any more: commits wait the semi-sync timeout
	// (10 s, the server default the test primary runs with).
	nodetest.Exec(t, tp.Procs[1], "STOP SLAVE")
	nodetest.Exec(t, tp.Procs[2], "STOP SLAVE")
	app := nodetest.AppDB(t, tp.Procs[0])
	res := make(chan error, 1)
	go func() { res <- insert(context.Background(), app, "pending", "1") }()
	root := nodetest.Root(tp.Procs[0])
	defer root.Close()
	eventually(t, 10*time.Second, "a commit waiting for its acknowledgement", func() (bool, string) {
		var n int
		err := root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE '%semi-sync ACK%'").Scan(&n)
		return err == nil && n > 0, fmt.Sprint(n, err)
	})
	began := time.Now()
	if err := nodes.Fence(ctxT(t, 5*time.Second), in, in.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	t.Logf("fence with a commit waiting for its acknowledgement took %v", took)
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("the waiting commit was acknowledged to its client after the fence")
		}
		t.Logf("waiting client got: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting commit still waits after the fence")
	}
	if took > 2*time.Second {
		t.Fatalf("fence waited %v behind the pending commit", took)
	}
}

// TestNoAcknowledgedWriteLost: under a steady semi-sync writer, kill -9 the
// primary, promote the most advanced replica (its relay log applied first)
// and repoint the other: every write acknowledged before the kill is on
// both.
func TestNoAcknowledgedWriteLost(t *testing.T) {
	tp := nodetest.MySQL(t, nodetest.MySQLOptions{SemiSync: true})
	in := tp.Instance
	nodes := newNodes(t)
	app := nodetest.AppDB(t, tp.Procs[0])
	acked := make(chan []string, 1)
	go func() {
		var keys []string
		for i := 0; ; i++ {
			k := fmt.Sprintf("w%06d", i)
			if err := insert(context.Background(), app, k, "x"); err != nil {
				acked <- keys
				return
			}
			keys = append(keys, k)
		}
	}()
	eventually(t, 10*time.Second, "the writer under way", func() (bool, string) {
		v := nodes.Observe(ctxT(t, time.Second), in, in.Nodes[1])
		g, err := mysqlnode.ParseGTID(v.Position.GTID)
		return err == nil && g.Seq > 200, v.Position.GTID
	})
	tp.Procs[0].Kill()
	keys := <-acked
	cand, other := in.Nodes[1], in.Nodes[2]
	seq := func(n topology.Node) uint64 {
		var v topology.NodeView
		eventually(t, 5*time.Second, n.ID+" link down", func() (bool, string) {
			v = nodes.Observe(ctxT(t, time.Second), in, n)
			return v.Reachable && !v.LinkUp, fmt.Sprintf("%+v", v)
		})
		g, err := mysqlnode.ParseGTID(v.Position.GTID)
		if err != nil {
			t.Fatal(err)
		}
		return g.Seq
	}
	if seq(other) > seq(cand) {
		cand, other = other, cand
	}
	began := time.Now()
	if err := nodes.Promote(ctxT(t, 5*time.Second), in, cand); err != nil {
		t.Fatal(err)
	}
	if err := nodes.Repoint(ctxT(t, 5*time.Second), in, other, cand); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged before the kill; promote+repoint %v", len(keys), time.Since(began))
	np := nodes.Observe(ctxT(t, time.Second), in, cand)
	if err := nodes.WaitCaughtUp(ctxT(t, 10*time.Second), in, other, np.Position); err != nil {
		t.Fatal(err)
	}
	for _, n := range []topology.Node{cand, other} {
		db := nodetest.AppDB(t, tp.Proc(n.ID))
		var count int
		if err := db.QueryRowContext(ctxT(t, 5*time.Second), "SELECT COUNT(*) FROM kv WHERE k LIKE 'w%' AND k <= ?", keys[len(keys)-1]).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count < len(keys) {
			t.Fatalf("%s has %d of the %d acknowledged writes", n.ID, count, len(keys))
		}
	}
}

// TestPromoteRefusesBrokenApplier: a replica whose applier stopped on an
// error cannot apply what it received; Promote says so at once instead of
// promoting it or waiting out its deadline.
func TestPromoteRefusesBrokenApplier(t *testing.T) {
	tp := nodetest.MySQL(t, nodetest.MySQLOptions{})
	in := tp.Instance
	nodes := newNodes(t)
	// A row only the replica has makes the primary's insert of the same key
	// fail there with a duplicate key.
	nodetest.Exec(t, tp.Procs[1], "SET SESSION sql_log_bin=0", "INSERT INTO app.kv (k, v) VALUES ('dup', 'replica')")
	if err := insert(ctxT(t, 5*time.Second), nodetest.AppDB(t, tp.Procs[0]), "dup", "primary"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the replica's applier stopped", func() (bool, string) {
		v := nodes.Observe(ctxT(t, time.Second), in, in.Nodes[1])
		return !v.SQLRunning, fmt.Sprintf("%+v", v)
	})
	began := time.Now()
	err := nodes.Promote(ctxT(t, 10*time.Second), in, in.Nodes[1])
	if err == nil {
		t.Fatal("promoted a replica whose applier is broken")
	}
	if time.Since(began) > 2*time.Second {
		t.Fatalf("Promote took %v to refuse", time.Since(began))
	}
	t.Logf("refused: %v", err)
	if v := nodes.Observe(ctxT(t, time.Second), in, in.Nodes[1]); v.Writable || !v.Replicating || !v.LinkUp {
		t.Fatalf("refused candidate is not left a streaming replica: %+v", v)
	}
}
