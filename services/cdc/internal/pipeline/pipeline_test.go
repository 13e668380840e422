package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

const topic = "cdc.acme.i1.app.orders"

// TestCheckpointOnlyAfterAck: a batch's checkpoint is stored only once the
// sink acknowledged it (and the batches before it); a failed write stores
// nothing and the capture restarts from the last stored checkpoint.
func TestCheckpointOnlyAfterAck(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps, sk := newCaptures(), newGate()
	start(t, Config{RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond}, rp, newNodes(primary, replica), sk,
		WithCapture(caps.Run))

	c := caps.next(t)
	if c.cfg.Start != "0-1-10" || c.cfg.Source.Addr != replica.Address || c.cfg.Source.User != "canopy_cdc" ||
		c.cfg.Prefix != "cdc.acme.i1" || c.cfg.ServerID != ServerID("s1") || !c.cfg.Include("app", "x") || c.cfg.Include("other", "x") {
		t.Fatalf("capture config %+v", c.cfg)
	}
	// A transaction split over two batches: only the second carries a checkpoint.
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 3)})
	w1 := sk.next(t)
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 2), Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	if len(w1.msgs) != 3 {
		t.Fatalf("first write has %d messages", len(w1.msgs))
	}
	w1.answer <- nil
	w2 := sk.next(t)
	time.Sleep(20 * time.Millisecond) // give a wrong implementation the chance to store early
	if got := rp.stream("s1").Checkpoint.GTID; got != "0-1-10" {
		t.Fatalf("checkpoint %s stored before Kafka acknowledged its batch", got)
	}
	w2.answer <- nil
	eventually(t, "checkpoint after ack", func() bool { return rp.stream("s1").Checkpoint.GTID == "0-1-11" })
	if ev := rp.stream("s1").Checkpoint.Events; ev != 5 {
		t.Fatalf("events count %d, want 5", ev)
	}

	// The next batch fails in Kafka: no checkpoint, and capture restarts
	// from 0-1-11.
	c.send(t, change.Batch{Messages: rows(topic, "0-1-12", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-12"}})
	sk.next(t).answer <- errors.New("broker gone")
	c.ended(t)
	c2 := caps.next(t)
	if c2.cfg.Start != "0-1-11" {
		t.Fatalf("restarted at %q, want the last checkpoint 0-1-11", c2.cfg.Start)
	}
	if got := rp.stream("s1").Checkpoint.GTID; got != "0-1-11" {
		t.Fatalf("checkpoint %s after a failed write", got)
	}
	c2.send(t, change.Batch{Messages: rows(topic, "0-1-12", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-12"}})
	sk.next(t).answer <- nil
	eventually(t, "checkpoint after retry", func() bool { return rp.stream("s1").Checkpoint.GTID == "0-1-12" })

	// A batch without messages (transactions of other tables) moves the
	// checkpoint without a write.
	c2.send(t, change.Batch{Checkpoint: &change.Checkpoint{GTID: "0-1-20"}})
	eventually(t, "empty batch checkpoint", func() bool { return rp.stream("s1").Checkpoint.GTID == "0-1-20" })
}

// TestUsageCountsEachPublishedRowOnce: cdc.stream.usage counts the data
// rows (not tombstones or schema changes) once their checkpoint is stored:
// rows a failed attempt published are counted when the retry's checkpoint
// covers them, not twice, and rows no checkpoint covers when the runner
// stops are left to the next runner (which re-publishes them). Reports
// come every UsageEvery without a stop, and at the stop.
func TestUsageCountsEachPublishedRowOnce(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps, sk := newCaptures(), newGate()
	h := start(t, Config{RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond, StatusInterval: 10 * time.Millisecond,
		UsageEvery: 30 * time.Millisecond}, rp, newNodes(primary), sk, WithCapture(caps.Run))
	reported := func() int64 { _, n := rp.reported(); return n }

	c := caps.next(t)
	// A transaction in two batches: 3 rows, a tombstone and a schema
	// change, then 2 rows and the checkpoint.
	first := append(rows(topic, "0-1-11", 3), change.Message{Topic: topic, Key: []byte(`{"id":0}`), GTID: "0-1-11", Row: 3},
		change.Message{Topic: "cdc.acme.i1.schema-changes", Key: []byte(`{"databaseName":"app"}`), Value: []byte(`{}`), GTID: "0-1-11"})
	c.send(t, change.Batch{Messages: first})
	sk.next(t).answer <- nil
	time.Sleep(50 * time.Millisecond) // more than UsageEvery: a wrong implementation would report the uncovered rows
	if n := reported(); n != 0 {
		t.Fatalf("%d rows reported before their checkpoint was stored", n)
	}
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 2), Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	sk.next(t).answer <- nil
	eventually(t, "the covered rows reported without a stop", func() bool { return reported() == 5 })

	// Kafka fails a batch: the retry re-publishes it and counts it once.
	c.send(t, change.Batch{Messages: rows(topic, "0-1-12", 4)})
	sk.next(t).answer <- nil
	c.send(t, change.Batch{Messages: rows(topic, "0-1-12", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-12"}})
	sk.next(t).answer <- errors.New("broker gone")
	c.ended(t)
	c2 := caps.next(t)
	c2.send(t, change.Batch{Messages: rows(topic, "0-1-12", 5), Checkpoint: &change.Checkpoint{GTID: "0-1-12"}})
	sk.next(t).answer <- nil
	// Published, but no checkpoint covers them when the runner stops.
	c2.send(t, change.Batch{Messages: rows(topic, "0-1-13", 2)})
	sk.next(t).answer <- nil
	eventually(t, "the retried rows reported", func() bool { return reported() == 10 })
	h.m.stop("s1")
	reports, n := rp.reported()
	if n != 10 {
		t.Fatalf("reports %+v add up to %d rows, want 10 (5 + 5, the retried batch once, the uncovered rows not)", reports, n)
	}
	for _, u := range reports {
		if u.StreamID != "s1" || u.Rows <= 0 {
			t.Fatalf("report %+v", u)
		}
	}
}

// TestUsageReportedAtStop: a stopping runner reports what its checkpoints
// counted at once, not after UsageEvery.
func TestUsageReportedAtStop(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps := newCaptures()
	h := start(t, Config{StatusInterval: 10 * time.Millisecond, UsageEvery: time.Hour}, rp, newNodes(primary), okSink{},
		WithCapture(caps.Run))
	c := caps.next(t)
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 7), Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	eventually(t, "checkpoint stored", func() bool { return rp.stream("s1").Checkpoint.GTID == "0-1-11" })
	if reports, _ := rp.reported(); len(reports) != 0 {
		t.Fatalf("reported before UsageEvery: %+v", reports)
	}
	h.m.stop("s1")
	if reports, n := rp.reported(); len(reports) != 1 || n != 7 {
		t.Fatalf("reports at stop %+v, want one of 7 rows", reports)
	}
}

// TestSaveFailureRestartsFromStoredCheckpoint: when the checkpoint cannot
// be stored the runner starts over from the one stored before.
func TestSaveFailureRestartsFromStoredCheckpoint(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps := newCaptures()
	start(t, Config{RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond}, rp, newNodes(primary), okSink{},
		WithCapture(caps.Run))
	c := caps.next(t)
	rp.mu.Lock()
	rp.failCP = errors.New("db down")
	rp.mu.Unlock()
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	c.ended(t)
	rp.mu.Lock()
	rp.failCP = nil
	rp.mu.Unlock()
	if c2 := caps.next(t); c2.cfg.Start != "0-1-10" {
		t.Fatalf("restarted at %q", c2.cfg.Start)
	}
}

// TestSnapshotThenStreaming: a snapshot resumes from its stored progress,
// stores chunk checkpoints with state snapshotting, then the stream
// switches to streaming exactly at the snapshot's GTID.
func TestSnapshotThenStreaming(t *testing.T) {
	resume := snapshot.Progress{GTID: "0-1-50", Tables: []snapshot.TableProgress{{Name: "app.a", Done: true, Rows: 10},
		{Name: "app.b", LastKey: []any{float64(7)}, Rows: 7}}}
	raw, _ := json.Marshal(resume)
	s := streamOf("s1", stream.StateSnapshotting, "0-1-50")
	s.Checkpoint.Snapshot = raw
	rp := newRepo(s)
	caps := newCaptures()
	var mu sync.Mutex
	var got *snapshot.Progress
	snap := func(ctx context.Context, cfg snapshot.Config, p *snapshot.Progress, out chan<- change.Batch) (snapshot.Progress, error) {
		mu.Lock()
		got = p
		mu.Unlock()
		if cfg.Prefix != "cdc.acme.i1" || cfg.Source.Addr != replica.Address {
			return snapshot.Progress{}, fmt.Errorf("config %+v", cfg)
		}
		final := snapshot.Progress{GTID: "0-1-50", Tables: []snapshot.TableProgress{{Name: "app.a", Done: true},
			{Name: "app.b", Done: true}}}
		fin, _ := json.Marshal(final)
		select {
		case out <- change.Batch{Messages: rows("cdc.acme.i1.app.b", "0-1-50", 3),
			Checkpoint: &change.Checkpoint{GTID: "0-1-50", Snapshot: fin}}:
		case <-ctx.Done():
			return snapshot.Progress{}, ctx.Err()
		}
		return final, nil
	}
	start(t, Config{}, rp, newNodes(primary, replica), okSink{}, WithCapture(caps.Run), WithSnapshot(snap))
	c := caps.next(t)
	if c.cfg.Start != "0-1-50" {
		t.Fatalf("streaming starts at %q, want the snapshot's 0-1-50", c.cfg.Start)
	}
	mu.Lock()
	defer mu.Unlock()
	if got == nil || len(got.Tables) != 2 || got.Tables[1].Rows != 7 {
		t.Fatalf("snapshot resumed from %+v", got)
	}
	st := rp.stream("s1")
	if st.State != stream.StateStreaming || st.Checkpoint.Snapshot != nil || st.Checkpoint.Events != 3 {
		t.Fatalf("after snapshot: %+v", st)
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.saves) != 2 || rp.saves[0].Snapshot == nil {
		t.Fatalf("checkpoints %+v: want the chunk's with progress, then the hand-over", rp.saves)
	}
}

// TestStreamWithoutPositionStartsAtSourceEnd: a stream without snapshot
// stores the source's current position before reading, so a restart
// resumes there.
func TestStreamWithoutPositionStartsAtSourceEnd(t *testing.T) {
	s := streamOf("s1", stream.StateStreaming, "")
	// Snapshot "never": after an initial snapshot, an empty position means
	// the binlog's start instead.
	s.Spec.Snapshot = stream.SnapshotNever
	rp := newRepo(s)
	caps := newCaptures()
	start(t, Config{}, rp, newNodes(primary), okSink{}, WithCapture(caps.Run),
		WithPosition(func(context.Context, capture.Source) (string, error) { return "0-1-99", nil }))
	if c := caps.next(t); c.cfg.Start != "0-1-99" {
		t.Fatalf("start %q", c.cfg.Start)
	}
	if got := rp.stream("s1").Checkpoint.GTID; got != "0-1-99" {
		t.Fatalf("stored start %q", got)
	}
}

// TestPermanentFailures: a purged binlog or an undecodable change fail the
// stream with a clear reason and an event; it is not retried.
func TestPermanentFailures(t *testing.T) {
	cases := map[string]struct {
		err  error
		want []string
	}{
		"binlog purged": {err: fmt.Errorf("start at 0-1-10: %w", capture.ErrPositionLost),
			want: []string{"binlog does not hold position 0-1-10", "purged", "failover", "start at 0-1-10: binlog position lost", "POST /api/v1/instances/i1/cdc-streams/s1:resnapshot"}},
		"poison": {err: fmt.Errorf("decode: %w", &capture.PoisonError{GTID: "0-1-12", Table: "app.t", Column: "g",
			Err: errors.New("unsupported type GEOMETRY")}),
			want: []string{"0-1-12", "app.t", "column g", "unsupported type GEOMETRY"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
			caps := newCaptures()
			start(t, Config{RetryInitial: time.Millisecond}, rp, newNodes(primary), okSink{}, WithCapture(caps.Run))
			caps.next(t).finish <- tc.err
			eventually(t, "failed", func() bool { return rp.stream("s1").State == stream.StateFailed })
			st := rp.stream("s1").Status
			for _, w := range tc.want {
				if !strings.Contains(st.LastError, w) {
					t.Fatalf("last_error %q lacks %q", st.LastError, w)
				}
			}
			eventually(t, "failed event", func() bool { return slices.Contains(rp.eventTypes(), events.TypeCDCStreamFailed) })
			rp.mu.Lock()
			var p events.CDCStreamStatus
			_ = json.Unmarshal(rp.events[0].Data, &p)
			ev := rp.events[0]
			rp.mu.Unlock()
			if p.StreamID != "s1" || p.InstanceID != inst || p.TenantID != "acme" || p.State != "failed" || p.GTID != "0-1-10" ||
				ev.Tenant != "acme" || ev.Key != "s1" {
				t.Fatalf("event %+v payload %+v", ev, p)
			}
			caps.none(t, 50*time.Millisecond)
		})
	}
}

// TestReconnectsToSurvivingNode: the node being read dies; the runner
// re-reads the nodes and continues from the checkpoint on another node,
// without anyone's help.
func TestReconnectsToSurvivingNode(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps := newCaptures()
	ns := newNodes(primary, replica)
	start(t, Config{RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond}, rp, ns, okSink{}, WithCapture(caps.Run))
	c := caps.next(t)
	if c.cfg.Source.Addr != replica.Address {
		t.Fatalf("reads %s, want the replica", c.cfg.Source.Addr)
	}
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	eventually(t, "checkpoint", func() bool { return rp.stream("s1").Checkpoint.GTID == "0-1-11" })
	// The replica dies; provisioning has not noticed yet.
	c.finish <- io.ErrUnexpectedEOF
	c2 := caps.next(t)
	if c2.cfg.Source.Addr != primary.Address || c2.cfg.Start != "0-1-11" {
		t.Fatalf("after the replica died: %s from %q, want the primary from 0-1-11", c2.cfg.Source.Addr, c2.cfg.Start)
	}
}

// TestQueuedBatchesCoalesce: batches that queued up while Kafka held a
// write go out as one write with the last checkpoint, stored once.
func TestQueuedBatchesCoalesce(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps, sk := newCaptures(), newGate()
	start(t, Config{}, rp, newNodes(primary), sk, WithCapture(caps.Run))
	c := caps.next(t)
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	w := sk.next(t) // held while three more transactions queue
	c.send(t, change.Batch{Messages: rows(topic, "0-1-12", 2), Checkpoint: &change.Checkpoint{GTID: "0-1-12"}})
	c.send(t, change.Batch{Messages: rows(topic, "0-1-13", 1)}) // a transaction split over two batches
	c.send(t, change.Batch{Messages: rows(topic, "0-1-13", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-13"}})
	w.answer <- nil
	w2 := sk.next(t)
	if len(w2.msgs) != 4 {
		t.Fatalf("second write has %d messages, want the 4 queued", len(w2.msgs))
	}
	w2.answer <- nil
	eventually(t, "last checkpoint", func() bool { return rp.stream("s1").Checkpoint.GTID == "0-1-13" })
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.saves) != 2 {
		t.Fatalf("%d checkpoints stored, want 2 (one per write)", len(rp.saves))
	}
}

// TestLaggingReplicaDoesNotFailStream: a replica without the checkpoint's
// GTID yet (back from a restart, lagging) answers like a purged binlog
// (1236); the stream falls back to the primary instead of failing, and
// fails only when the primary lacks the position too.
func TestLaggingReplicaDoesNotFailStream(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps := newCaptures()
	start(t, Config{RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond}, rp, newNodes(primary, replica), okSink{},
		WithCapture(caps.Run))
	c := caps.next(t)
	if c.cfg.Source.Addr != replica.Address {
		t.Fatalf("reads %s, want the replica", c.cfg.Source.Addr)
	}
	c.finish <- fmt.Errorf("start at 0-1-10: %w", capture.ErrPositionLost)
	c2 := caps.next(t)
	if c2.cfg.Source.Addr != primary.Address || c2.cfg.Start != "0-1-10" {
		t.Fatalf("after the replica lacked the position: %s from %q, want the primary from 0-1-10", c2.cfg.Source.Addr, c2.cfg.Start)
	}
	if st := rp.stream("s1").State; st == stream.StateFailed {
		t.Fatal("stream failed on a replica's 1236")
	}
	c2.finish <- fmt.Errorf("start at 0-1-10: %w", capture.ErrPositionLost)
	eventually(t, "failed when the primary lacks it too", func() bool { return rp.stream("s1").State == stream.StateFailed })
}

// TestInstanceChangedMovesToPreferredNode: reading the primary because no
// replica was healthy; once one is, InstanceChanged moves the stream to it
// from the last checkpoint. A change that keeps the preferred node keeps
// the connection.
func TestInstanceChangedMovesToPreferredNode(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps := newCaptures()
	ns := newNodes(primary)
	h := start(t, Config{}, rp, ns, okSink{}, WithCapture(caps.Run))
	c := caps.next(t)
	if c.cfg.Source.Addr != primary.Address {
		t.Fatalf("reads %s", c.cfg.Source.Addr)
	}
	h.m.InstanceChanged(inst) // nothing moved
	caps.none(t, 50*time.Millisecond)
	if c.ctx.Err() != nil {
		t.Fatal("capture cut although the preferred node did not change")
	}
	ns.set(primary, replica)
	h.m.InstanceChanged("other-instance")
	caps.none(t, 20*time.Millisecond)
	h.m.InstanceChanged(inst)
	c.ended(t)
	c2 := caps.next(t)
	if c2.cfg.Source.Addr != replica.Address || c2.cfg.Start != "0-1-10" {
		t.Fatalf("moved to %s from %q", c2.cfg.Source.Addr, c2.cfg.Start)
	}
	eventually(t, "source node in status", func() bool { return rp.stream("s1").Status.SourceNode == "n1" })
}

// TestKickFollowsStoredState: pause stops the runner and keeps the
// checkpoint, resume starts it from there, resnapshot restarts it in the
// snapshot, delete stops it and deletes the stream.
func TestKickFollowsStoredState(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps := newCaptures()
	h := start(t, Config{}, rp, newNodes(primary), okSink{}, WithCapture(caps.Run),
		WithSnapshot(func(ctx context.Context, _ snapshot.Config, _ *snapshot.Progress, _ chan<- change.Batch) (snapshot.Progress, error) {
			return snapshot.Progress{GTID: "0-1-30"}, nil
		}))
	c := caps.next(t)
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	eventually(t, "checkpoint", func() bool { return rp.stream("s1").Checkpoint.GTID == "0-1-11" })

	rp.set("s1", func(s *stream.Stream) { s.State = stream.StatePaused })
	h.m.Kick("s1")
	c.ended(t)
	caps.none(t, 30*time.Millisecond)
	if s := rp.stream("s1"); s.Checkpoint.GTID != "0-1-11" || s.State != stream.StatePaused {
		t.Fatalf("paused stream %+v", s)
	}

	rp.set("s1", func(s *stream.Stream) { s.State = stream.StateStreaming })
	h.m.Kick("s1")
	if c = caps.next(t); c.cfg.Start != "0-1-11" {
		t.Fatalf("resumed at %q", c.cfg.Start)
	}
	h.m.Kick("s1") // no change: keeps running
	caps.none(t, 30*time.Millisecond)

	rp.set("s1", func(s *stream.Stream) { s.State = stream.StateSnapshotting; s.Checkpoint = change.Checkpoint{} })
	h.m.Kick("s1")
	c.ended(t)
	if c = caps.next(t); c.cfg.Start != "0-1-30" {
		t.Fatalf("after resnapshot streams from %q", c.cfg.Start)
	}

	rp.set("s1", func(s *stream.Stream) { s.State = stream.StateDeleting })
	h.m.Kick("s1")
	c.ended(t)
	eventually(t, "deleted", func() bool {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		return slices.Equal(rp.deleted, []string{"s1"})
	})
}

// TestInstanceDeletedStopsAndDeletesItsStreams.
func TestInstanceDeletedStopsAndDeletesItsStreams(t *testing.T) {
	a := streamOf("s1", stream.StateStreaming, "0-1-1")
	b := streamOf("s2", stream.StateStreaming, "0-1-1")
	b.Instance = "i2"
	rp := newRepo(a, b)
	caps := newCaptures()
	ns := newNodes(primary)
	h := start(t, Config{}, rp, ns, okSink{}, WithCapture(caps.Run))
	c := caps.next(t)
	if err := h.m.InstanceDeleted(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	c.ended(t)
	if _, err := rp.Get(context.Background(), "s1"); err == nil {
		t.Fatal("stream of the deleted instance kept")
	}
	if _, err := rp.Get(context.Background(), "s2"); err != nil {
		t.Fatal("stream of another instance deleted")
	}
}

// TestLagMeasuredAgainstPrimary: reading a replica, the lag compares the
// checkpoint with the primary's binlog end, so a replica whose
// replication stopped does not look caught up.
func TestLagMeasuredAgainstPrimary(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps := newCaptures()
	pos := func(_ context.Context, src capture.Source) (string, error) {
		if src.Addr == primary.Address {
			return "0-1-40", nil
		}
		return "0-1-10", nil // the stalled replica
	}
	start(t, Config{StatusInterval: 10 * time.Millisecond}, rp, newNodes(primary, replica), okSink{},
		WithCapture(caps.Run), WithPosition(pos))
	if c := caps.next(t); c.cfg.Source.Addr != replica.Address {
		t.Fatalf("reads %s, want the replica", c.cfg.Source.Addr)
	}
	eventually(t, "lag against the primary", func() bool { return rp.stream("s1").Status.LagEvents == 30 })
}

// TestLagStatusAndEpisodes: the status carries lag and GTID distance; a
// lag past the threshold publishes lagging once, and caught_up once the
// source's end equals the checkpoint.
func TestLagStatusAndEpisodes(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps := newCaptures()
	var mu sync.Mutex
	sourcePos := "0-1-25"
	pos := func(context.Context, capture.Source) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return sourcePos, nil
	}
	h := start(t, Config{StatusInterval: 10 * time.Millisecond, LagThreshold: 50 * time.Millisecond, LagFor: 30 * time.Millisecond},
		rp, newNodes(primary), okSink{}, WithCapture(caps.Run), WithPosition(pos))
	c := caps.next(t)
	old := rows(topic, "0-1-11", 2)
	for i := range old {
		old[i].EventTime = time.Now().Add(-time.Minute)
	}
	c.send(t, change.Batch{Messages: old, Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	eventually(t, "lag in status", func() bool {
		st := rp.stream("s1").Status
		return st.LagMs >= 60_000 && st.LagEvents == 14 && st.EventsTotal == 2 && slices.Equal(st.CapturedTables, []string{"app.orders"})
	})
	eventually(t, "lagging event", func() bool { return slices.Contains(rp.eventTypes(), events.TypeCDCStreamLagging) })
	mu.Lock()
	sourcePos = "0-1-11"
	mu.Unlock()
	eventually(t, "caught up", func() bool {
		st := rp.stream("s1").Status
		return st.LagMs == 0 && st.LagEvents == 0 && slices.Contains(rp.eventTypes(), events.TypeCDCStreamCaughtUp)
	})
	n := 0
	for _, typ := range rp.eventTypes() {
		if typ == events.TypeCDCStreamLagging {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d lagging events, want 1 per episode", n)
	}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"canopy_cdc_lag_seconds", "canopy_cdc_events_total", "canopy_cdc_stream_state", "canopy_cdc_rows_per_second"} {
		if !names[want] {
			t.Errorf("metric %s missing (have %v)", want, names)
		}
	}
}

// TestBackPressure: while Kafka does not acknowledge, the capture can hand
// over only the batch being written and queueDepth more; then its sends
// block, so a stream's memory stays bounded.
func TestBackPressure(t *testing.T) {
	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-10"))
	caps, sk := newCaptures(), newGate()
	start(t, Config{}, rp, newNodes(primary), sk, WithCapture(caps.Run))
	c := caps.next(t)
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 1)})
	w := sk.next(t) // held
	for range queueDepth {
		c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 1)})
	}
	select {
	case c.out <- change.Batch{Messages: rows(topic, "0-1-11", 1)}:
		t.Fatalf("capture handed over more than %d batches while Kafka held one", queueDepth+1)
	case <-time.After(100 * time.Millisecond):
	}
	w.answer <- nil
	// The queued batches go out as one write (coalesced).
	if w2 := sk.next(t); len(w2.msgs) != queueDepth {
		t.Fatalf("write of %d messages after the release, want the %d queued", len(w2.msgs), queueDepth)
	} else {
		w2.answer <- nil
	}
	c.send(t, change.Batch{Messages: rows(topic, "0-1-11", 1), Checkpoint: &change.Checkpoint{GTID: "0-1-11"}})
	sk.next(t).answer <- nil
	eventually(t, "checkpoint", func() bool { return rp.stream("s1").Checkpoint.GTID == "0-1-11" })
}
