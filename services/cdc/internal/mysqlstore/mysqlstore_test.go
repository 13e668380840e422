package mysqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/api/events/eventstest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

func newStore(t *testing.T) (*Store, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := New(storetest.NewDB(t, "cdc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s, ctx
}

var t0 = time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)

func newStream(id, tenant, instance string) stream.Stream {
	return stream.New(id, tenant, instance, stream.Spec{Tables: []string{"app.*"}, Exclude: []string{"app.audit"},
		Snapshot: stream.SnapshotInitial, Tombstones: true}, t0)
}

func TestCreateGetList(t *testing.T) {
	s, ctx := newStore(t)
	a := newStream("s1", "acme", "i1")
	for _, st := range []stream.Stream{a, newStream("s2", "acme", "i1"), newStream("s3", "acme", "i2"), newStream("s4", "globex", "i1")} {
		if err := s.Create(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(ctx, a); !errors.Is(err, stream.ErrConflict) {
		t.Fatalf("duplicate create: %v", err)
	}
	got, err := s.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Tenant != "acme" || got.Instance != "i1" || got.State != stream.StateSnapshotting || got.Status.State != stream.StateSnapshotting ||
		!got.Spec.Tombstones || got.Spec.Snapshot != stream.SnapshotInitial || len(got.Spec.Tables) != 1 || got.Spec.Exclude[0] != "app.audit" ||
		!got.CreatedAt.Equal(t0) || got.Checkpoint.Snapshot != nil || got.Status.CapturedTables != nil {
		t.Fatalf("get = %+v", got)
	}
	if _, err := s.GetForTenant(ctx, "acme", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetForTenant(ctx, "globex", "s1"); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("other tenant's stream: %v", err)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
	list, err := s.List(ctx, "acme", "i1", "", 10)
	if err != nil || len(list) != 2 || list[0].ID != "s1" || list[1].ID != "s2" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if list, err := s.List(ctx, "acme", "i1", "", 1); err != nil || len(list) != 2 {
		t.Fatalf("first page of 1 = %+v, %v (want the one more that says there are more)", list, err)
	}
	if list, err := s.List(ctx, "acme", "i1", "s1", 1); err != nil || len(list) != 1 || list[0].ID != "s2" {
		t.Fatalf("page after s1 = %+v, %v", list, err)
	}
	if list, err := s.List(ctx, "globex", "i2", "", 10); err != nil || len(list) != 0 {
		t.Fatalf("empty list = %+v, %v", list, err)
	}
	active, err := s.Active(ctx)
	if err != nil || len(active) != 4 {
		t.Fatalf("active = %d, %v", len(active), err)
	}
}

// TestCheckpointAndStatus: the pipeline's writes land, and never overwrite
// a state the user set meanwhile.
func TestCheckpointAndStatus(t *testing.T) {
	s, ctx := newStore(t)
	if err := s.Create(ctx, newStream("s1", "acme", "i1")); err != nil {
		t.Fatal(err)
	}
	progress := []byte(`{"gtid":"0-1-5","tables":[{"name":"app.orders","done":false,"last_key":[7]}]}`)
	if err := s.SaveCheckpoint(ctx, "s1", change.Checkpoint{GTID: "0-1-5", Snapshot: progress, Events: 7}, stream.StateSnapshotting, 0); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, "s1")
	if got.Checkpoint.GTID != "0-1-5" || string(got.Checkpoint.Snapshot) != string(progress) || got.Checkpoint.Events != 7 ||
		got.Status.EventsTotal != 7 || got.Status.SnapshotGTID != "0-1-5" || !got.SnapshotPending() {
		t.Fatalf("mid-snapshot = %+v", got)
	}
	// Snapshot done: streaming from its GTID, the snapshot GTID stays.
	if err := s.SaveCheckpoint(ctx, "s1", change.Checkpoint{GTID: "0-1-9", Events: 12}, stream.StateStreaming, 0); err != nil {
		t.Fatal(err)
	}
	st := stream.Status{State: stream.StateStreaming, SourceNode: "n1", CapturedTables: []string{"app.orders", "app.users"},
		LagMs: 1500, LagEvents: 3, RowsPerSecond: 2000.5}
	if err := s.SetStatus(ctx, "s1", st); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, "s1")
	if got.State != stream.StateStreaming || got.Checkpoint.Snapshot != nil || got.Checkpoint.GTID != "0-1-9" || got.Status.SnapshotGTID != "0-1-5" ||
		got.Status.SourceNode != "n1" || len(got.Status.CapturedTables) != 2 || got.Status.LagMs != 1500 || got.Status.LagEvents != 3 ||
		got.Status.RowsPerSecond != 2000.5 || got.Status.EventsTotal != 12 || got.SnapshotPending() {
		t.Fatalf("streaming = %+v", got)
	}
	// Same status again (no row changed) is still fine.
	if err := s.SetStatus(ctx, "s1", st); err != nil {
		t.Fatal(err)
	}
	// The user pauses; a runner's late writes keep the checkpoint moving but not the state.
	if _, err := s.Transition(ctx, "acme", "s1", stream.ActionPause); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(ctx, "s1", change.Checkpoint{GTID: "0-1-10", Events: 13}, stream.StateStreaming, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, "s1", stream.Status{State: stream.StateFailed, LastError: "late"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, "s1")
	if got.State != stream.StatePaused || got.Checkpoint.GTID != "0-1-10" || got.Status.LastError != "late" {
		t.Fatalf("paused = %+v", got)
	}
	// A running stream fails.
	if _, err := s.Transition(ctx, "acme", "s1", stream.ActionResume); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, "s1", stream.Status{State: stream.StateFailed, LastError: "binlog purged past position 0-1-10"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, "s1")
	if got.State != stream.StateFailed || got.Status.LastError == "" {
		t.Fatalf("failed = %+v", got)
	}
	for name, err := range map[string]error{
		"checkpoint": s.SaveCheckpoint(ctx, "nope", change.Checkpoint{GTID: "0-1-1"}, stream.StateStreaming, 0),
		"status":     s.SetStatus(ctx, "nope", stream.Status{}),
	} {
		if !errors.Is(err, stream.ErrNotFound) {
			t.Errorf("%s of an unknown stream: %v", name, err)
		}
	}
	if err := s.SaveCheckpoint(ctx, "s1", change.Checkpoint{}, "bogus", 0); err == nil {
		t.Error("invalid state accepted")
	}
}

func TestTransition(t *testing.T) {
	s, ctx := newStore(t)
	if err := s.Create(ctx, newStream("s1", "acme", "i1")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(ctx, "s1", change.Checkpoint{GTID: "0-1-9", Events: 12}, stream.StateStreaming, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, "globex", "s1", stream.ActionPause); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("other tenant's pause: %v", err)
	}
	if err := s.SetStatus(ctx, "s1", stream.Status{State: stream.StateFailed, LastError: "boom"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, "acme", "s1", stream.ActionPause); !errors.Is(err, stream.ErrConflict) {
		t.Fatalf("pause of a failed stream: %v", err)
	}
	got, err := s.Transition(ctx, "acme", "s1", stream.ActionResnapshot)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Get(ctx, "s1")
	for _, st := range []stream.Stream{got, stored} {
		if st.State != stream.StateSnapshotting || st.Checkpoint.GTID != "" || st.Checkpoint.Events != 0 || !st.SnapshotPending() {
			t.Fatalf("resnapshot = %+v", st)
		}
	}
	if got, err = s.Transition(ctx, "acme", "s1", stream.ActionDelete); err != nil || got.State != stream.StateDeleting {
		t.Fatalf("delete = %+v, %v", got, err)
	}
	if active, _ := s.Active(ctx); len(active) != 1 || active[0].State != stream.StateDeleting {
		t.Fatalf("a deleting stream is still active until removed: %+v", active)
	}
}

func TestSchemaHistoryAndDelete(t *testing.T) {
	s, ctx := newStore(t)
	for _, id := range []string{"s1", "s2"} {
		if err := s.Create(ctx, newStream(id, "acme", "i1")); err != nil {
			t.Fatal(err)
		}
	}
	ddls := []capture.DDL{
		{GTID: "0-1-3", DB: "app", Table: "orders", Statement: "CREATE TABLE orders (id INT PRIMARY KEY)", At: t0},
		{GTID: "0-1-8", DB: "app", Table: "orders", Statement: "ALTER TABLE orders ADD COLUMN note TEXT", At: t0.Add(time.Second)},
	}
	for _, d := range ddls {
		if err := s.RecordDDL(ctx, "s1", d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordDDL(ctx, "s2", ddls[0]); err != nil {
		t.Fatal(err)
	}
	hist, err := s.SchemaHistory(ctx, "s1")
	if err != nil || len(hist) != 2 || hist[1] != ddls[1] {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	if err := s.Delete(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "s1"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.Get(ctx, "s1"); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("deleted stream: %v", err)
	}
	if hist, _ := s.SchemaHistory(ctx, "s1"); len(hist) != 0 {
		t.Fatalf("history kept: %+v", hist)
	}
	if hist, _ := s.SchemaHistory(ctx, "s2"); len(hist) != 1 {
		t.Fatalf("another stream's history went: %+v", hist)
	}
}

func TestPublishThroughOutbox(t *testing.T) {
	s, ctx := newStore(t)
	payload := events.CDCStreamStatus{StreamID: "s1", InstanceID: "i1", TenantID: "acme", State: "streaming", LagMs: 45000, LagEvents: 10, ThresholdMs: 30000, GTID: "0-1-9"}
	data, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := eventstest.MustNew(t).Validate(events.TypeCDCStreamLagging, data); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, eventbus.Event{Type: events.TypeCDCStreamLagging, Subject: "s1", Tenant: "acme", Data: data}); err != nil {
		t.Fatal(err)
	}
	var topic, key string
	var headers, body []byte
	if err := s.db.SQL().QueryRowContext(ctx, "SELECT topic, msg_key, headers, payload FROM outbox").Scan(&topic, &key, &headers, &body); err != nil {
		t.Fatal(err)
	}
	var h struct{ Type, Source, Tenant, Subject string }
	if err := json.Unmarshal(headers, &h); err != nil {
		t.Fatal(err)
	}
	if topic != events.TopicCDC || key != "s1" || h.Type != events.TypeCDCStreamLagging || h.Source != events.SourceCDC ||
		h.Tenant != "acme" || string(body) != string(data) {
		t.Fatalf("outbox row: %s %s %s %s", topic, key, headers, body)
	}
}

// TestUsageCountedWithCheckpoints: rows are counted with the checkpoints
// that cover them and reported once through the outbox (cdc.stream.usage,
// keyed by the stream), whatever the number of checkpoints in between; a
// deleted stream reports what was left.
func TestUsageCountedWithCheckpoints(t *testing.T) {
	s, ctx := newStore(t)
	now := t0
	s.now = func() time.Time { return now }
	for _, id := range []string{"s1", "s2"} {
		if err := s.Create(ctx, newStream(id, "acme", "i1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := s.EmitUsage(ctx, "s1"); err != nil || ok {
		t.Fatalf("usage of a stream that published nothing: %v, %v", ok, err)
	}
	save := func(id, gtid string, rows int64) {
		t.Helper()
		if err := s.SaveCheckpoint(ctx, id, change.Checkpoint{GTID: gtid}, stream.StateStreaming, rows); err != nil {
			t.Fatal(err)
		}
	}
	save("s1", "0-1-1", 0) // a checkpoint of other tables' transactions: no rows
	now = t0.Add(time.Second)
	save("s1", "0-1-2", 5)
	now = t0.Add(20 * time.Second)
	save("s1", "0-1-3", 7)
	save("s2", "0-1-3", 100)
	now = t0.Add(time.Minute)
	u, ok, err := s.EmitUsage(ctx, "s1")
	if err != nil || !ok {
		t.Fatalf("emit: %v, %v", ok, err)
	}
	want := events.CDCStreamUsage{StreamID: "s1", TenantID: "acme", InstanceID: "i1", Rows: 12, From: t0.Add(time.Second), To: t0.Add(time.Minute)}
	if u != want {
		t.Fatalf("usage %+v, want %+v", u, want)
	}
	if _, ok, err := s.EmitUsage(ctx, "s1"); err != nil || ok {
		t.Fatalf("usage reported twice: %v, %v", ok, err)
	}
	now = t0.Add(90 * time.Second)
	save("s1", "0-1-4", 1)
	if err := s.Delete(ctx, "s2"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.EmitUsage(ctx, "s2"); err != nil || ok {
		t.Fatalf("usage of a deleted stream: %v, %v", ok, err)
	}
	if _, ok, _ := s.EmitUsage(ctx, "s1"); !ok {
		t.Fatal("usage after a report not reported")
	}

	got := map[string]int64{}
	for _, e := range outbox(t, s, ctx) {
		var p events.CDCStreamUsage
		if err := json.Unmarshal(e.Data, &p); err != nil {
			t.Fatal(err)
		}
		if e.Type != events.TypeCDCStreamUsage || e.Key != p.StreamID || e.Subject != p.StreamID || e.Tenant != "acme" {
			t.Errorf("outbox event %+v", e)
		}
		got[p.StreamID] += p.Rows
	}
	if got["s1"] != 13 || got["s2"] != 100 || len(got) != 2 {
		t.Fatalf("rows reported per stream %v, want s1 13 (12 + 1), s2 100 (at its deletion)", got)
	}
}
