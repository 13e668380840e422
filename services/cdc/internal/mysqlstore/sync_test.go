package mysqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/api/events/eventstest"

	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

func newJob(id, tenant, source, target string) syncjob.Job {
	return syncjob.Job{ID: id, Tenant: tenant, State: syncjob.StateLoading, Spec: syncjob.Spec{SourceInstance: source,
		Tables: []string{"app.*"}, Target: syncjob.Target{Instance: target}, Conflict: syncjob.Manual,
		Direction: syncjob.TwoWay, DDL: syncjob.DDLReplay}.WithDefaults(), CreatedAt: t0, UpdatedAt: t0}
}

// outboxEvent is one row of the outbox.
type outboxEvent struct {
	Type, Key, Tenant, Subject string
	Data                       []byte
}

// outbox returns the events written so far, each checked against its
// schema.
func outbox(t *testing.T, s *Store, ctx context.Context) []outboxEvent {
	t.Helper()
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT msg_key, headers, payload FROM outbox WHERE topic = ? ORDER BY id", events.TopicCDC)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	v := eventstest.MustNew(t)
	var out []outboxEvent
	for rows.Next() {
		var e outboxEvent
		var headers []byte
		if err := rows.Scan(&e.Key, &headers, &e.Data); err != nil {
			t.Fatal(err)
		}
		var h struct{ Type, Source, Tenant, Subject string }
		if err := json.Unmarshal(headers, &h); err != nil {
			t.Fatal(err)
		}
		if h.Source != events.SourceCDC {
			t.Errorf("event %s from %q", h.Type, h.Source)
		}
		if err := v.Validate(h.Type, e.Data); err != nil {
			t.Errorf("event %s: %v", h.Type, err)
		}
		e.Type, e.Tenant, e.Subject = h.Type, h.Tenant, h.Subject
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSyncJobCreateGetList(t *testing.T) {
	s, ctx := newStore(t)
	no := false
	redis := syncjob.Job{ID: "j3", Tenant: "acme", State: syncjob.StateRunning, Spec: syncjob.Spec{SourceInstance: "i1",
		Tables: []string{"app.users"}, Target: syncjob.Target{RedisInstance: "r1", Format: syncjob.FormatJSON,
			TTL: syncjob.Duration(90 * time.Second)}, InitialLoad: &no}.WithDefaults()}
	var created []syncjob.Job
	for _, j := range []syncjob.Job{newJob("j1", "acme", "i1", "i2"), newJob("j2", "acme", "i2", "i3"), redis, newJob("j4", "globex", "g1", "g2")} {
		got, err := s.CreateJob(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		if got.ServerID&0xff000000 != syncjob.ServerIDBase || got.CreatedAt.IsZero() {
			t.Fatalf("created %+v", got)
		}
		created = append(created, got)
	}
	if _, err := s.CreateJob(ctx, newJob("j1", "acme", "i1", "i2")); !errors.Is(err, syncjob.ErrConflict) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := s.CreateJob(ctx, syncjob.Job{ID: "x", Tenant: "acme", State: "bogus"}); err == nil {
		t.Fatal("invalid job stored")
	}
	got, err := s.GetJob(ctx, "acme", "j3")
	if err != nil {
		t.Fatal(err)
	}
	if got.ServerID != created[2].ServerID || got.State != syncjob.StateRunning || got.Spec.Target.RedisInstance != "r1" ||
		got.Spec.Target.Format != syncjob.FormatJSON || got.Spec.Target.TTL != syncjob.Duration(90*time.Second) ||
		got.Spec.Target.KeyPattern != syncjob.DefaultKeyPattern || got.Spec.InitialLoad == nil || *got.Spec.InitialLoad ||
		!slices.Equal(got.Spec.Tables, []string{"app.users"}) || got.Status.Directions != nil {
		t.Fatalf("get = %+v", got)
	}
	if got, err := s.GetJob(ctx, "", "j1"); err != nil || got.Spec.Direction != syncjob.TwoWay || got.Spec.Conflict != syncjob.Manual ||
		!got.CreatedAt.Equal(t0) {
		t.Fatalf("get as any tenant = %+v, %v", got, err)
	}
	if _, err := s.GetJob(ctx, "globex", "j1"); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("other tenant's job: %v", err)
	}
	if _, err := s.GetJob(ctx, "", "nope"); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	ids := func(js []syncjob.Job) (out []string) {
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	if list, err := s.ListJobs(ctx, "acme", "", 10); err != nil || !slices.Equal(ids(list), []string{"j1", "j2", "j3"}) {
		t.Fatalf("list = %v, %v", ids(list), err)
	}
	if list, err := s.ListJobs(ctx, "acme", "j1", 1); err != nil || !slices.Equal(ids(list), []string{"j2", "j3"}) {
		t.Fatalf("page after j1 = %v, %v (want one more that says there are more)", ids(list), err)
	}
	if list, err := s.ListJobs(ctx, "", "", 10); err != nil || len(list) != 4 {
		t.Fatalf("list of every tenant = %v, %v", ids(list), err)
	}
	if active, err := s.ActiveJobs(ctx); err != nil || len(active) != 4 {
		t.Fatalf("active = %v, %v", ids(active), err)
	}
}

// TestSyncJobServerIDTaken: a job whose first server id candidate another
// job holds gets the next one.
func TestSyncJobServerIDTaken(t *testing.T) {
	s, ctx := newStore(t)
	if _, err := s.CreateJob(ctx, newJob("a", "acme", "i1", "i2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.SQL().ExecContext(ctx, "UPDATE sync_jobs SET server_id = ? WHERE id = 'a'", syncjob.ServerIDFor("b", 0)); err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateJob(ctx, newJob("b", "acme", "i1", "i3"))
	if err != nil {
		t.Fatal(err)
	}
	if b.ServerID != syncjob.ServerIDFor("b", 1) {
		t.Fatalf("server id %#x, want the second candidate %#x", b.ServerID, syncjob.ServerIDFor("b", 1))
	}
	if stored, _ := s.GetJob(ctx, "", "b"); stored.ServerID != b.ServerID {
		t.Fatalf("stored server id %#x", stored.ServerID)
	}
}

// TestSyncJobStateAndStatus: the runner's writes land, never overwrite a
// state the user set meanwhile, and a failure goes out as cdc.sync.failed
// once.
func TestSyncJobStateAndStatus(t *testing.T) {
	s, ctx := newStore(t)
	if _, err := s.CreateJob(ctx, newJob("j1", "acme", "i1", "i2")); err != nil {
		t.Fatal(err)
	}
	st := syncjob.Status{
		Directions: []syncjob.DirectionStatus{
			{From: "i1", To: "i2", Watermark: "0-1-9", SourceNode: "n1", Applied: 12, Conflicts: 1, LagMs: 40},
			{From: "i2", To: "i1", Watermark: "0-2-3", SourceNode: "n4", Applied: 3, Skipped: 12},
		},
		Tables:  map[string]syncjob.TableStatus{"app.orders": {Applied: 15, LagMs: 40}},
		Applied: 15, Conflicts: 1, LastError: "not stored here",
		NextVerification: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC),
	}
	if err := s.SaveJobStatus(ctx, "j1", st); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJobStatus(ctx, "j1", st); err != nil {
		t.Fatalf("same status again: %v", err)
	}
	if err := s.SetJobState(ctx, "j1", syncjob.StateRunning, ""); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetJob(ctx, "acme", "j1")
	want := st
	want.LastError = ""
	if got.State != syncjob.StateRunning || !equalJSON(t, got.Status, want) {
		t.Fatalf("status = %+v, want %+v", got.Status, want)
	}

	// The user pauses; the runner's late writes keep the last error but not the state.
	if _, err := s.TransitionJob(ctx, "globex", "j1", syncjob.ActionPause); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("other tenant's pause: %v", err)
	}
	if j, err := s.TransitionJob(ctx, "acme", "j1", syncjob.ActionPause); err != nil || j.State != syncjob.StatePaused {
		t.Fatalf("pause = %+v, %v", j, err)
	}
	if err := s.SetJobState(ctx, "j1", syncjob.StateFailed, "late"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetJob(ctx, "acme", "j1")
	if got.State != syncjob.StatePaused || got.Status.LastError != "late" {
		t.Fatalf("paused = %+v", got)
	}
	if _, err := s.TransitionJob(ctx, "", "j1", syncjob.ActionResume); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetJob(ctx, "acme", "j1")
	if got.State != syncjob.StateRunning || got.Status.LastError != "" {
		t.Fatalf("resumed = %+v", got)
	}
	if evs := outbox(t, s, ctx); len(evs) != 0 {
		t.Fatalf("events before any failure: %+v", evs)
	}

	// A running job fails: one cdc.sync.failed, not repeated.
	for range 2 {
		if err := s.SetJobState(ctx, "j1", syncjob.StateFailed, "binlog purged past 0-1-9: resume after a new initial load"); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = s.GetJob(ctx, "acme", "j1")
	if got.State != syncjob.StateFailed || got.Status.LastError == "" {
		t.Fatalf("failed = %+v", got)
	}
	evs := outbox(t, s, ctx)
	if len(evs) != 1 || evs[0].Type != events.TypeCDCSyncFailed || evs[0].Key != "j1" || evs[0].Tenant != "acme" || evs[0].Subject != "j1" {
		t.Fatalf("events = %+v", evs)
	}
	var failed events.CDCSyncFailed
	if err := json.Unmarshal(evs[0].Data, &failed); err != nil {
		t.Fatal(err)
	}
	if failed != (events.CDCSyncFailed{JobID: "j1", TenantID: "acme", SourceInstance: "i1", TargetInstance: "i2", State: "failed",
		Reason: got.Status.LastError}) {
		t.Fatalf("payload = %+v", failed)
	}
	if _, err := s.TransitionJob(ctx, "acme", "j1", syncjob.ActionPause); !errors.Is(err, syncjob.ErrConflict) {
		t.Fatalf("pause of a failed job: %v", err)
	}
	if j, err := s.TransitionJob(ctx, "acme", "j1", syncjob.ActionDelete); err != nil || j.State != syncjob.StateDeleting {
		t.Fatalf("delete = %+v, %v", j, err)
	}
	for name, err := range map[string]error{
		"status": s.SaveJobStatus(ctx, "nope", st),
		"state":  s.SetJobState(ctx, "nope", syncjob.StateRunning, ""),
	} {
		if !errors.Is(err, syncjob.ErrNotFound) {
			t.Errorf("%s of an unknown job: %v", name, err)
		}
	}
	if err := s.SetJobState(ctx, "j1", "bogus", ""); err == nil {
		t.Error("invalid state accepted")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

// TestConflicts: a conflict is stored and published once, however often
// its change is redelivered; lists filter, resolving settles it once.
func TestConflicts(t *testing.T) {
	s, ctx := newStore(t)
	for _, j := range []syncjob.Job{newJob("j1", "acme", "i1", "i2"), newJob("j2", "globex", "g1", "g2")} {
		if _, err := s.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	manual := syncjob.Conflict{JobID: "j1", From: "i1", To: "i2", DB: "app", Table: "orders", Kind: syncjob.KindDiffers,
		Key: json.RawMessage(`{"id":7}`), Change: json.RawMessage(`{"op":"u","before":{"id":7,"v":"a"},"after":{"id":7,"v":"b"}}`),
		TargetRow: json.RawMessage(`{"id":7,"v":"x"}`), GTID: "0-1-42", Row: 0, Strategy: syncjob.Manual, At: t0}
	decided := syncjob.Conflict{JobID: "j1", From: "i2", To: "i1", DB: "app", Table: "orders", Kind: syncjob.KindMissing,
		Key: json.RawMessage(`{"id":8}`), Change: json.RawMessage(`{"op":"d"}`), GTID: "0-2-5", Row: 3,
		Strategy: syncjob.SourceWins, Resolution: syncjob.ResolvedSource, At: t0.Add(time.Second)}
	for _, c := range []syncjob.Conflict{manual, decided, manual, decided} {
		if err := s.Record(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// The same GTID from the other direction, or another row of it, is another conflict.
	other := manual
	other.Row = 1
	if err := s.Record(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, syncjob.Conflict{JobID: "nope", From: "i1", GTID: "0-1-1"}); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("conflict of an unknown job: %v", err)
	}
	all, err := s.ListConflicts(ctx, "acme", "j1", false, "", 10)
	if err != nil || len(all) != 3 {
		t.Fatalf("conflicts = %+v, %v", all, err)
	}
	first := all[0]
	if first.ID == "" || first.Tenant != "acme" || first.Resolution != syncjob.ResolvedPending || string(first.Key) != `{"id":7}` ||
		string(first.TargetRow) != `{"id":7,"v":"x"}` || string(first.Change) != string(manual.Change) || !first.At.Equal(t0) ||
		first.ResolvedAt != nil || first.GTID != "0-1-42" || first.Kind != syncjob.KindDiffers || first.Strategy != syncjob.Manual {
		t.Fatalf("first conflict = %+v", first)
	}
	if all[1].TargetRow != nil || all[1].Resolution != syncjob.ResolvedSource || all[1].Row != 3 {
		t.Fatalf("second conflict = %+v", all[1])
	}
	if pending, err := s.ListConflicts(ctx, "acme", "j1", true, "", 10); err != nil || len(pending) != 2 {
		t.Fatalf("pending = %+v, %v", pending, err)
	}
	if page, err := s.ListConflicts(ctx, "acme", "j1", false, all[0].ID, 1); err != nil || len(page) != 2 || page[0].ID != all[1].ID {
		t.Fatalf("page = %+v, %v", page, err)
	}
	if list, err := s.ListConflicts(ctx, "globex", "j1", false, "", 10); err != nil || len(list) != 0 {
		t.Fatalf("other tenant's list = %+v, %v", list, err)
	}
	if _, err := s.GetConflict(ctx, "globex", "j1", first.ID); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("other tenant's conflict: %v", err)
	}
	if _, err := s.GetConflict(ctx, "globex", "j2", first.ID); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("conflict under another job: %v", err)
	}

	evs := outbox(t, s, ctx)
	if len(evs) != 3 {
		t.Fatalf("%d events for 3 conflicts: %+v", len(evs), evs)
	}
	var ev events.CDCSyncConflict
	if err := json.Unmarshal(evs[0].Data, &ev); err != nil {
		t.Fatal(err)
	}
	if evs[0].Type != events.TypeCDCSyncConflict || evs[0].Key != "j1" || evs[0].Tenant != "acme" || ev.ConflictID != first.ID ||
		ev.Resolution != "pending" || ev.Kind != "differs" || string(ev.Key) != `{"id":7}` || ev.FromInstance != "i1" || ev.GTID != "0-1-42" {
		t.Fatalf("conflict event %+v %s", evs[0], evs[0].Data)
	}

	if err := s.ResolveConflict(ctx, first.ID, syncjob.ResolvedSource); err != nil {
		t.Fatal(err)
	}
	if err := s.ResolveConflict(ctx, first.ID, syncjob.ResolvedSource); err != nil {
		t.Fatalf("resolving again the same way: %v", err)
	}
	if err := s.ResolveConflict(ctx, first.ID, syncjob.ResolvedTarget); !errors.Is(err, syncjob.ErrConflict) {
		t.Fatalf("resolving the other way: %v", err)
	}
	if err := s.ResolveConflict(ctx, "nope", syncjob.ResolvedTarget); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("resolving an unknown conflict: %v", err)
	}
	if err := s.ResolveConflict(ctx, first.ID, syncjob.ResolvedPending); err == nil {
		t.Fatal("resolved back to pending")
	}
	got, err := s.GetConflict(ctx, "", "j1", first.ID)
	if err != nil || got.Resolution != syncjob.ResolvedSource || got.ResolvedAt == nil {
		t.Fatalf("resolved = %+v, %v", got, err)
	}
	if pending, _ := s.ListConflicts(ctx, "acme", "j1", true, "", 10); len(pending) != 1 {
		t.Fatalf("pending after resolving = %+v", pending)
	}
}

// TestVerifications: one verification runs at a time; an inconsistent
// report goes out as cdc.sync.inconsistent, once.
func TestVerifications(t *testing.T) {
	s, ctx := newStore(t)
	if _, err := s.CreateJob(ctx, newJob("j1", "acme", "i1", "i2")); err != nil {
		t.Fatal(err)
	}
	v1 := syncjob.Verification{ID: "v1", JobID: "j1", StartedAt: t0}
	if err := s.CreateVerification(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateVerification(ctx, syncjob.Verification{ID: "v2", JobID: "j1"}); !errors.Is(err, syncjob.ErrConflict) {
		t.Fatalf("second verification while one runs: %v", err)
	}
	if err := s.CreateVerification(ctx, syncjob.Verification{ID: "v9", JobID: "nope"}); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("verification of an unknown job: %v", err)
	}
	got, err := s.GetVerification(ctx, "acme", "j1", "v1")
	if err != nil || got.State != syncjob.VerifyRunning || got.Tenant != "acme" || got.FinishedAt != nil || !got.StartedAt.Equal(t0) {
		t.Fatalf("running = %+v, %v", got, err)
	}
	consistent := syncjob.Report{Tables: []syncjob.TableReport{{Table: "app.orders", Chunks: 2, RowsChecked: 1500}}, Chunks: 2,
		RowsChecked: 1500, Consistent: true}
	v1.State, v1.Report = syncjob.VerifyDone, consistent
	if err := s.FinishVerification(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if evs := outbox(t, s, ctx); len(evs) != 0 {
		t.Fatalf("a consistent report published %+v", evs)
	}

	v2 := syncjob.Verification{ID: "v2", JobID: "j1", Repair: true}
	if err := s.CreateVerification(ctx, v2); err != nil {
		t.Fatal(err)
	}
	report := syncjob.Report{Tables: []syncjob.TableReport{
		{Table: "app.orders", Chunks: 2, RowsChecked: 1500, Differences: []syncjob.RowDiff{
			{Key: json.RawMessage(`{"id":7}`), Kind: "different", Repaired: true},
			{Key: json.RawMessage(`{"id":9}`), Kind: "missing_on_target", Repaired: true}}},
		{Table: "app.users", Chunks: 1, RowsChecked: 10}},
		Chunks: 3, RowsChecked: 1510, DifferingRows: 2, Repaired: 2, Rechecked: 1, DurationMs: 80}
	v2.State, v2.Report = syncjob.VerifyDone, report
	for range 2 {
		if err := s.FinishVerification(ctx, v2); err != nil {
			t.Fatal(err)
		}
	}
	evs := outbox(t, s, ctx)
	if len(evs) != 1 || evs[0].Type != events.TypeCDCSyncInconsistent || evs[0].Key != "j1" || evs[0].Tenant != "acme" {
		t.Fatalf("events = %+v", evs)
	}
	var ev events.CDCSyncInconsistent
	if err := json.Unmarshal(evs[0].Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.VerificationID != "v2" || ev.SourceInstance != "i1" || ev.TargetInstance != "i2" || !ev.Repair || ev.RepairedRows != 2 ||
		ev.DifferingRows != 2 || ev.RowsChecked != 1510 || len(ev.Tables) != 1 || ev.Tables[0] != (events.CDCSyncTableDiff{Table: "app.orders", DifferingRows: 2}) {
		t.Fatalf("inconsistent = %+v", ev)
	}
	got, err = s.GetVerification(ctx, "", "j1", "v2")
	if err != nil || got.State != syncjob.VerifyDone || got.FinishedAt == nil || !got.Repair || !equalJSON(t, got.Report, report) {
		t.Fatalf("finished = %+v, %v", got, err)
	}
	if _, err := s.GetVerification(ctx, "globex", "j1", "v2"); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("other tenant's verification: %v", err)
	}
	if list, err := s.ListVerifications(ctx, "acme", "j1", "", 1); err != nil || len(list) != 2 || list[0].ID != "v1" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if got, _ := s.GetVerification(ctx, "acme", "j1", "v1"); got.Report.Tables[0].Differences == nil {
		t.Fatalf("a report without differences lists none as null: %+v", got.Report)
	}
	failed := syncjob.Verification{ID: "v3", JobID: "j1"}
	if err := s.CreateVerification(ctx, failed); err != nil {
		t.Fatal(err)
	}
	failed.State, failed.Error = syncjob.VerifyFailed, "target unreachable"
	if err := s.FinishVerification(ctx, failed); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetVerification(ctx, "acme", "j1", "v3"); got.State != syncjob.VerifyFailed || got.Error != "target unreachable" {
		t.Fatalf("failed = %+v", got)
	}
	if err := s.FinishVerification(ctx, syncjob.Verification{ID: "nope", State: syncjob.VerifyDone}); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("finishing an unknown verification: %v", err)
	}
	if err := s.FinishVerification(ctx, syncjob.Verification{ID: "v3", State: syncjob.VerifyRunning}); err == nil {
		t.Fatal("finished as running")
	}
}

func TestDeleteJob(t *testing.T) {
	s, ctx := newStore(t)
	for _, id := range []string{"j1", "j2"} {
		if _, err := s.CreateJob(ctx, newJob(id, "acme", "i1", "i2")); err != nil {
			t.Fatal(err)
		}
		if err := s.Record(ctx, syncjob.Conflict{JobID: id, From: "i1", To: "i2", DB: "app", Table: "t", Kind: syncjob.KindExists,
			Key: json.RawMessage(`{"id":1}`), GTID: "0-1-1", Strategy: syncjob.Manual}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateVerification(ctx, syncjob.Verification{ID: "v-" + id, JobID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := s.DeleteJob(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GetJob(ctx, "", "j1"); !errors.Is(err, syncjob.ErrNotFound) {
		t.Fatalf("deleted job: %v", err)
	}
	for _, table := range []string{"sync_conflicts", "sync_verifications"} {
		var n int
		if err := s.db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" WHERE job_id = 'j1'").Scan(&n); err != nil || n != 0 {
			t.Errorf("%s of the deleted job: %d, %v", table, n, err)
		}
	}
	if c, _ := s.ListConflicts(ctx, "acme", "j2", false, "", 10); len(c) != 1 {
		t.Fatalf("another job's conflicts went: %+v", c)
	}
	if v, _ := s.ListVerifications(ctx, "acme", "j2", "", 10); len(v) != 1 {
		t.Fatalf("another job's verifications went: %+v", v)
	}
}
