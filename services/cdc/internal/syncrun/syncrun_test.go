package syncrun

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// writeLoad commits n source transactions of inserts, updates and deletes
// (several changes per transaction) on instance id, from row id first on.
func writeLoad(w *world, id string, server uint32, first, n int64) {
	for i := first; i < first+n; i++ {
		ops := []op{{"c", i, fmt.Sprintf("v%d", i)}}
		if i%3 == 0 {
			ops = append(ops, op{"u", i, fmt.Sprintf("u%d", i)})
		}
		if i%5 == 0 {
			ops = append(ops, op{"d", i, ""})
		}
		w.write(id, server, ops...)
	}
}

func TestOneWayExactlyOnceThroughFailuresAndRestart(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	w.write("src", 1, op{"c", 1, "a"}, op{"c", 2, "b"}, op{"c", 3, "c"})
	r := newRepo(job("j1", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}}))
	var mu sync.Mutex
	applies := 0
	w.failApply = func(string, change.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		applies++
		if applies%7 == 0 {
			return errors.New("connection reset by peer")
		}
		return nil
	}
	w.failCapture = func(_ CaptureSpec, n int) error {
		if n > 0 && n%5 == 0 {
			return errors.New("binlog connection lost")
		}
		return nil
	}
	_, stop := start(t, w, r)
	writeLoad(w, "src", 1, 4, 40)

	synced := func() bool {
		wm, _ := w.watermark("dst", "src")
		w.mu.Lock()
		end := w.byID["src"].pos()
		w.mu.Unlock()
		return maps.Equal(w.rows("src"), w.rows("dst")) && wm.Position == end && wm.Load == nil
	}
	eventually(t, "target equal to source", synced)
	if d := w.byID["dst"].dups; d != 0 {
		t.Fatalf("%d changes applied twice", d)
	}
	eventually(t, "state running", func() bool { return r.job("j1").State == syncjob.StateRunning })
	stop()

	// A new process resumes from the target's watermark: no reload, no
	// change applied twice, none skipped.
	wm, _ := w.watermark("dst", "src")
	loads, caps := len(w.loads), len(w.capturesSnapshot())
	w.failApply, w.failCapture = nil, nil
	start(t, w, r)
	writeLoad(w, "src", 1, 100, 10)
	eventually(t, "target equal to source after restart", synced)
	if len(w.loads) != loads {
		t.Fatalf("restart loaded again (%d loads, had %d)", len(w.loads), loads)
	}
	if got := w.capturesSnapshot()[caps].Start; got != wm.Position {
		t.Fatalf("restart captured from %q, want the target's watermark %q", got, wm.Position)
	}
	if d := w.byID["dst"].dups; d != 0 {
		t.Fatalf("%d changes applied twice", d)
	}
}

func TestTwoWayReverseWatermarkFirstAndNoEcho(t *testing.T) {
	w := newWorld(t)
	w.add("a", 1)
	w.add("b", 2)
	w.write("a", 1, op{"c", 1, "a1"}, op{"c", 2, "a2"})
	w.write("b", 2, op{"c", 100, "b100"}) // the target's own row, before the job: stays there
	j := job("j2", syncjob.Spec{SourceInstance: "a", Target: syncjob.Target{Instance: "b"}, Direction: syncjob.TwoWay})
	r := newRepo(j)
	var atLoad syncjob.Watermark
	var hadAtLoad bool
	w.onLoad = func(LoadSpec) { atLoad, hadAtLoad = w.watermark("a", "b") }
	start(t, w, r)

	eventually(t, "load done", func() bool { wm, _ := w.watermark("b", "a"); return wm.Position != "" && wm.Load == nil })
	if !hadAtLoad || atLoad.Position != "0-2-1" {
		t.Fatalf("reverse watermark at load time = %+v (present %v), want the target's position 0-2-1", atLoad, hadAtLoad)
	}
	w.write("b", 2, op{"c", 101, "b101"})
	w.write("a", 1, op{"u", 1, "a1-new"})
	want := map[int64]string{1: "a1-new", 2: "a2", 101: "b101"}
	eventually(t, "both sides converged", func() bool {
		a, b := w.rows("a"), w.rows("b")
		delete(b, 100)
		w.mu.Lock()
		aEnd, bEnd := w.byID["a"].pos(), w.byID["b"].pos()
		w.mu.Unlock()
		// The reported positions: a stretch of skipped echoes moves them
		// without a write to the target (that write would echo itself).
		ds := r.job("j2").Status.Directions
		return maps.Equal(a, want) && maps.Equal(b, want) && len(ds) == 2 && ds[0].Watermark == aEnd && ds[1].Watermark == bEnd
	})
	// Every change crossed once: an echo would apply the job's own writes
	// back and count them again.
	fwd, _ := w.watermark("b", "a")
	rev, _ := w.watermark("a", "b")
	if fwd.Applied != 3 || rev.Applied != 1 {
		t.Fatalf("applied forward %d (want 2 loaded + 1 update), reverse %d (want 1 insert)", fwd.Applied, rev.Applied)
	}
	caps := w.capturesSnapshot()
	ids := map[uint32]bool{}
	for _, c := range caps {
		if c.SkipServerID != j.ServerID {
			t.Fatalf("capture of %s skips server id %d, want the job's %d", c.Source.Addr, c.SkipServerID, j.ServerID)
		}
		ids[c.ServerID] = true
	}
	if len(ids) != 2 {
		t.Fatalf("replica server ids %v: want one per direction", ids)
	}
}

func TestFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		name    string
		capture error
		apply   error
		reason  string
	}{
		{name: "position lost", capture: fmt.Errorf("%w at %q: ERROR 1236", capture.ErrPositionLost, "0-1-5"), reason: "does not hold the watermark's position"},
		{name: "poison", capture: &capture.PoisonError{GTID: "0-1-5", Table: "app.t", Column: "v", Err: errors.New("bad enum")}, reason: "cannot decode"},
		{name: "ddl stop", apply: newDDLError("ALTER TABLE t ADD c INT", errors.New("ddl: stop")), reason: "ALTER TABLE t ADD c INT"},
		{name: "no primary key", apply: fmt.Errorf("table app.t: %w", errNoPrimaryKey), reason: "no primary key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.add("a", 1)
			w.add("b", 2)
			w.write("a", 1, op{"c", 1, "x"})
			r := newRepo(job("j", syncjob.Spec{SourceInstance: "a", Target: syncjob.Target{Instance: "b"}, Direction: syncjob.TwoWay}))
			w.failCapture = func(s CaptureSpec, _ int) error {
				if s.Source.Addr == w.byID["a"].addr {
					return tc.capture
				}
				return nil
			}
			w.failApply = func(to string, b change.Batch) error {
				if to == "b" && len(b.Messages) > 0 && b.Messages[0].Change.Op != "r" {
					return tc.apply
				}
				return nil
			}
			m, _ := start(t, w, r)
			eventually(t, "load done", func() bool { wm, _ := w.watermark("b", "a"); return wm.Position != "" && wm.Load == nil })
			w.write("a", 1, op{"u", 1, "y"})
			eventually(t, "job failed", func() bool { return r.job("j").State == syncjob.StateFailed })
			if got := r.job("j").Status.LastError; !strings.Contains(got, tc.reason) {
				t.Fatalf("last error %q, want it to say %q", got, tc.reason)
			}
			eventually(t, "runner ended", func() bool { return m.runner("j") == nil })
			// The watermark stays where the last good batch left it: a
			// resume retries the failing change, never skips it.
			if wm, _ := w.watermark("b", "a"); wm.Position != "0-1-1" {
				t.Fatalf("watermark %q after the failure, want 0-1-1", wm.Position)
			}
		})
	}
}

func TestPositionLostOnReplicaRetriesElsewhere(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	w.add("src-replica", 3) // a separate binlog that never had the position
	w.mu.Lock()
	rep := w.byID["src-replica"]
	w.nodes["src"] = append(w.nodes["src"], provview.Node{ID: "src-n2", Address: rep.addr, Role: provview.RoleReplica,
		Healthy: true, RegionRole: provview.RegionPrimary})
	w.mu.Unlock()
	w.write("src", 1, op{"c", 1, "x"})
	w.failCapture = func(s CaptureSpec, _ int) error {
		if s.Source.Addr == rep.addr {
			return fmt.Errorf("%w at %q", capture.ErrPositionLost, s.Start)
		}
		return nil
	}
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}}))
	start(t, w, r)
	// The load read the replica (empty); the stream falls over to the
	// primary, whose change arrives.
	eventually(t, "change from the primary applied", func() bool { return w.rows("dst")[1] == "x" })
	if st := r.job("j").State; st != syncjob.StateRunning {
		t.Fatalf("state %s, want running", st)
	}
}

func TestFollowsTargetFailover(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	dst := w.add("dst", 2)
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}}))
	start(t, w, r)
	w.write("src", 1, op{"c", 1, "x"})
	eventually(t, "first change", func() bool { return w.rows("dst")[1] == "x" })

	// Failover: the old primary is gone, a new node (same data) leads.
	w.mu.Lock()
	old := dst.addr
	delete(w.byAddr, old)
	dst.addr = "127.0.0.1:34002"
	w.byAddr[dst.addr] = dst
	w.nodes["dst"] = []provview.Node{{ID: "dst-n2", Address: dst.addr, Role: provview.RolePrimary, Healthy: true}}
	w.mu.Unlock()
	w.failApply = func(string, change.Batch) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.failApply = nil
		return errors.New("write to " + old + ": broken pipe")
	}
	w.write("src", 1, op{"c", 2, "y"})
	eventually(t, "change after failover", func() bool { return w.rows("dst")[2] == "y" })
	w.mu.Lock()
	defer w.mu.Unlock()
	if last := w.opens[len(w.opens)-1]; last != "dst@127.0.0.1:34002 from src" {
		t.Fatalf("last target opened %q, want the new primary", last)
	}
}

func TestPauseResumeDelete(t *testing.T) {
	w := newWorld(t)
	w.add("a", 1)
	w.add("b", 2)
	w.write("a", 1, op{"c", 1, "x"})
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "a", Target: syncjob.Target{Instance: "b"}, Direction: syncjob.TwoWay}))
	m, _ := start(t, w, r)
	eventually(t, "synced", func() bool { return w.rows("b")[1] == "x" })

	r.set("j", syncjob.StatePaused)
	m.Kick("j")
	eventually(t, "runner stopped", func() bool { return m.runner("j") == nil })
	wm, ok := w.watermark("b", "a")
	if !ok || wm.Position == "" {
		t.Fatal("pause dropped the watermark")
	}
	w.write("a", 1, op{"c", 2, "while paused"})
	caps := len(w.capturesSnapshot())

	r.set("j", syncjob.StateRunning)
	m.Kick("j")
	eventually(t, "change written while paused applied", func() bool { return w.rows("b")[2] == "while paused" })
	resumed := false
	for _, c := range w.capturesSnapshot()[caps:] {
		if c.Source.Addr == w.byID["a"].addr {
			resumed = c.Start == wm.Position
			break
		}
	}
	if !resumed {
		t.Fatalf("resume did not capture from the watermark %q", wm.Position)
	}

	r.set("j", syncjob.StateDeleting)
	m.Kick("j")
	eventually(t, "job deleted", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.deleted) == 1
	})
	if _, ok := w.watermark("b", "a"); ok {
		t.Fatal("forward watermark left on the target")
	}
	if _, ok := w.watermark("a", "b"); ok {
		t.Fatal("reverse watermark left on the source")
	}
	if m.runner("j") != nil {
		t.Fatal("runner of a deleted job still runs")
	}
}

func TestStatusReportsWatermarkAppliedAndLag(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	w.write("src", 1, op{"c", 1, "x"}, op{"c", 2, "y"})
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}}))
	start(t, w, r)
	eventually(t, "load done", func() bool { wm, _ := w.watermark("dst", "src"); return wm.Position == "0-1-1" && wm.Load == nil })
	w.write("src", 1, op{"u", 1, "z"})
	eventually(t, "status caught up", func() bool {
		st := r.job("j").Status
		return len(st.Directions) == 1 && st.Directions[0].Watermark == "0-1-2" && st.Directions[0].LagMs == 0 &&
			st.Applied == 3 && st.Tables[testTable].Applied == 3
	})
	st := r.job("j").Status.Directions[0]
	if st.From != "src" || st.To != "dst" || st.SourceNode != "src-n1" {
		t.Fatalf("direction status %+v", st)
	}

	// The target refuses writes: the source moves on, the lag grows and
	// the error shows; once it accepts again the lag is back to 0.
	var mu sync.Mutex
	blocked := true
	w.failApply = func(string, change.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		if blocked {
			return errors.New("target read only")
		}
		return nil
	}
	w.write("src", 1, op{"c", 3, "w"})
	eventually(t, "lag and error reported", func() bool {
		st := r.job("j").Status
		return st.Directions[0].LagMs > 0 && st.Tables[testTable].LagMs > 0 && strings.Contains(st.LastError, "read only")
	})
	mu.Lock()
	blocked = false
	mu.Unlock()
	eventually(t, "caught up again", func() bool {
		st := r.job("j").Status
		return st.Directions[0].LagMs == 0 && st.LastError == "" && st.Directions[0].Watermark == "0-1-3"
	})
}

func TestRedisTarget(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("cache", 2)
	w.write("src", 1, op{"c", 1, "x"})
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{RedisInstance: "cache"}}))
	start(t, w, r)
	w.write("src", 1, op{"c", 2, "y"}, op{"d", 1, ""})
	eventually(t, "cache equal to source", func() bool { return maps.Equal(w.rows("src"), w.rows("cache")) })
	w.mu.Lock()
	defer w.mu.Unlock()
	if !strings.HasPrefix(w.opens[0], "redis@") {
		t.Fatalf("opened %q, want the redis cache", w.opens[0])
	}
}

func TestSplitNeverCommitsALaterTransactionsStart(t *testing.T) {
	cp := func(g string) *change.Checkpoint { return &change.Checkpoint{GTID: g} }
	msg := func(g string) change.Message { return change.Message{GTID: g} }
	for _, tc := range []struct {
		name    string
		pending []change.Batch
		limit   int
		ok      bool
		gtid    string // merged checkpoint
		msgs    int
		rest    int
	}{
		{name: "complete transactions merge", pending: []change.Batch{{Messages: []change.Message{msg("1")}, Checkpoint: cp("1")},
			{Messages: []change.Message{msg("2")}, Checkpoint: cp("2")}}, limit: 10, ok: true, gtid: "2", msgs: 2},
		{name: "open transaction waits", pending: []change.Batch{{Messages: []change.Message{msg("1")}, Checkpoint: cp("1")},
			{Messages: []change.Message{msg("2")}}}, limit: 10, ok: true, gtid: "1", msgs: 1, rest: 1},
		{name: "nothing complete under the limit", pending: []change.Batch{{Messages: []change.Message{msg("2")}}}, limit: 10},
		{name: "big transaction goes without checkpoint", pending: []change.Batch{{Messages: []change.Message{msg("2"), msg("2")}}},
			limit: 2, ok: true, msgs: 2},
		{name: "checkpoint only", pending: []change.Batch{{Checkpoint: cp("3")}}, limit: 10, ok: true, gtid: "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			merged, rest, ok := split(tc.pending, tc.limit)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			gtid := ""
			if merged.Checkpoint != nil {
				gtid = merged.Checkpoint.GTID
			}
			if gtid != tc.gtid || len(merged.Messages) != tc.msgs || len(rest) != tc.rest {
				t.Fatalf("merged %q with %d messages, %d left; want %q, %d, %d", gtid, len(merged.Messages), len(rest),
					tc.gtid, tc.msgs, tc.rest)
			}
			for _, m := range merged.Messages {
				if merged.Checkpoint != nil && m.GTID > merged.Checkpoint.GTID {
					t.Fatalf("message of %s committed under checkpoint %s", m.GTID, merged.Checkpoint.GTID)
				}
			}
		})
	}
}

func TestResolve(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	j := job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}, Conflict: syncjob.Manual})
	r := newRepo(j)
	m, _ := start(t, w, r)
	ctx := context.Background()
	c := syncjob.Conflict{ID: "c1", JobID: "j", From: "src", To: "dst", Resolution: syncjob.ResolvedPending}
	if err := m.Resolve(ctx, j, c, syncjob.ResolvedSource); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	forced := len(w.resolved) == 1 && w.resolved[0].ID == "c1"
	w.mu.Unlock()
	if !forced || r.resolved["c1"] != syncjob.ResolvedSource {
		t.Fatalf("source resolution: forced on target %v, stored %q", forced, r.resolved["c1"])
	}
	c.ID = "c2"
	if err := m.Resolve(ctx, j, c, syncjob.ResolvedTarget); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	n := len(w.resolved)
	w.mu.Unlock()
	if n != 1 || r.resolved["c2"] != syncjob.ResolvedTarget {
		t.Fatalf("target resolution touched the target (%d forced) or was not stored (%q)", n, r.resolved["c2"])
	}
	c.Resolution = syncjob.ResolvedSource
	if err := m.Resolve(ctx, j, c, syncjob.ResolvedTarget); !errors.Is(err, syncjob.ErrConflict) {
		t.Fatalf("resolving a resolved conflict: %v, want ErrConflict", err)
	}
}

func TestInstanceChangedReconnects(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	dst := w.add("dst", 2)
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}}))
	m, _ := start(t, w, r)
	w.write("src", 1, op{"c", 1, "x"})
	eventually(t, "first change", func() bool { return w.rows("dst")[1] == "x" })

	// A switchover: the old primary still takes writes, but the job moves
	// to the new one as soon as it is told.
	w.mu.Lock()
	dst.addr = "127.0.0.1:34002"
	w.byAddr[dst.addr] = dst
	w.nodes["dst"] = []provview.Node{{ID: "dst-n2", Address: dst.addr, Role: provview.RolePrimary, Healthy: true}}
	w.mu.Unlock()
	m.InstanceChanged("dst")
	eventually(t, "new primary opened", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.opens[len(w.opens)-1] == "dst@127.0.0.1:34002 from src"
	})
	w.write("src", 1, op{"c", 2, "y"})
	eventually(t, "change after the switchover", func() bool { return w.rows("dst")[2] == "y" })
	if d := dst.dups; d != 0 {
		t.Fatalf("%d changes applied twice", d)
	}
}
