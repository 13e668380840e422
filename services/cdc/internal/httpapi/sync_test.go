package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/cdc/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

const syncJobs = "/api/v1/sync-jobs"

// runner is the sync runner as the API sees it: it records what it was
// asked, resolves through the store like the real one, and fails on demand.
type runner struct {
	store *mysqlstore.Store

	mu         sync.Mutex
	kicks      []string
	resolved   []string // conflict id + " " + use
	verified   []string // verification ids
	resolveErr error
	verifyErr  error
}

func (f *runner) Kick(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kicks = append(f.kicks, id)
}

func (f *runner) Resolve(ctx context.Context, j syncjob.Job, c syncjob.Conflict, use syncjob.Resolution) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolveErr != nil {
		return f.resolveErr
	}
	if c.JobID != j.ID {
		return errors.New("conflict of another job")
	}
	f.resolved = append(f.resolved, c.ID+" "+string(use))
	return f.store.ResolveConflict(ctx, c.ID, use)
}

func (f *runner) Verify(_ context.Context, j syncjob.Job, v syncjob.Verification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.verifyErr != nil {
		return f.verifyErr
	}
	if v.JobID != j.ID || v.State != syncjob.VerifyRunning {
		return errors.New("verification of another job")
	}
	f.verified = append(f.verified, v.ID)
	return nil
}

func (f *runner) calls() (kicks, resolved, verified []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.kicks), slices.Clone(f.resolved), slices.Clone(f.verified)
}

func newSyncFixture(t *testing.T) (*fixture, *runner) {
	t.Helper()
	s, err := mysqlstore.New(storetest.NewDB(t, "cdc_sync_api"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	inst := &instances{m: map[string]InstanceInfo{
		"i1":   {ID: "i1", Tenant: "acme", Engine: "mysql", State: "ready"},
		"i3":   {ID: "i3", Tenant: "acme", Engine: "mysql", State: "ready"},
		"r1":   {ID: "r1", Tenant: "acme", Engine: "redis", State: "ready"},
		"gone": {ID: "gone", Tenant: "acme", Engine: "mysql", State: "deleting"},
		"i2":   {ID: "i2", Tenant: "globex", Engine: "mysql", State: "ready"},
		"i4":   {ID: "i4", Tenant: "globex", Engine: "mysql", State: "ready"},
	}}
	run := &runner{store: s}
	h, err := NewSync(s, inst, run)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter(slog.New(slog.DiscardHandler))
	r.Use(tenancy.Middleware(tenancy.AudienceCDC, secret))
	h.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, store: s, inst: inst, signer: tenancy.NewSigner(secret), spec: cdcSpec(t)}, run
}

// createJob creates a job as member and fails the test unless it is 201.
func (f *fixture) createJob(body string) SyncJob {
	f.t.Helper()
	var j SyncJob
	if status, h, raw := f.do(member, "POST", syncJobs, body, &j); status != http.StatusCreated || h.Get("Location") != syncJobs+"/"+j.ID {
		f.t.Fatalf("create %s = %d %s (location %q)", body, status, raw, h.Get("Location"))
	}
	return j
}

// TestSyncJobLifecycle: create, read, list, pause, resume and delete, each
// waking the runner; the runner's status shows.
func TestSyncJobLifecycle(t *testing.T) {
	f, run := newSyncFixture(t)
	j := f.createJob(`{"source_instance":"i1","tables":["app.orders","shop.*"],"target":{"instance":"i3"}}`)
	if j.State != "loading" || j.TenantID != "acme" || j.Conflict != "source-wins" || j.Direction != "one-way" || j.DDL != "replay" ||
		!j.InitialLoad || j.Target.Instance != "i3" || j.Target.Format != "" || j.VerifyEvery != "" ||
		j.ServerID&0xff000000 != syncjob.ServerIDBase || len(j.Status.Directions) != 0 || j.CreatedAt.IsZero() ||
		!slices.Equal(j.Tables, []string{"app.orders", "shop.*"}) {
		t.Fatalf("created %+v", j)
	}
	cache := f.createJob(`{"source_instance":"i1","tables":["app.users"],"target":{"redis_instance":"r1","ttl":"1h"},"initial_load":false}`)
	if cache.State != "running" || cache.Target.KeyPattern != "{table}:{pk}" || cache.Target.Format != "hash" || cache.Target.TTL != "1h0m0s" ||
		cache.InitialLoad {
		t.Fatalf("created cache %+v", cache)
	}
	two := f.createJob(`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"},"direction":"two-way",
		"conflict":"latest-wins","column":"updated_at","ddl":"stop","verify_every":"6h"}`)
	if two.Direction != "two-way" || two.Conflict != "latest-wins" || two.Column != "updated_at" || two.DDL != "stop" ||
		two.VerifyEvery != "6h0m0s" || two.ServerID == j.ServerID {
		t.Fatalf("created two-way %+v", two)
	}

	// The runner reports; the API shows it.
	ctx := t.Context()
	if err := f.store.SetJobState(ctx, j.ID, syncjob.StateRunning, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SaveJobStatus(ctx, j.ID, syncjob.Status{Directions: []syncjob.DirectionStatus{{From: "i1", To: "i3",
		Watermark: "0-1-9", SourceNode: "n2", Applied: 12, LagMs: 30}}, Tables: map[string]syncjob.TableStatus{"app.orders": {Applied: 12, LagMs: 30}},
		Applied: 12}); err != nil {
		t.Fatal(err)
	}
	var got SyncJob
	if status, _, raw := f.do(viewer, "GET", syncJobs+"/"+j.ID, "", &got); status != 200 || got.State != "running" ||
		len(got.Status.Directions) != 1 || got.Status.Directions[0] != (SyncDirection{From: "i1", To: "i3", Watermark: "0-1-9",
		SourceNode: "n2", AppliedRows: 12, LagMs: 30}) || got.Status.Tables["app.orders"] != (SyncTableStatus{AppliedRows: 12, LagMs: 30}) ||
		got.Status.AppliedRows != 12 {
		t.Fatalf("get = %d %s", status, raw)
	}
	var list SyncJobList
	if status, _, raw := f.do(viewer, "GET", syncJobs+"?limit=2", "", &list); status != 200 || len(list.Items) != 2 ||
		list.Items[0].ID != j.ID || list.NextCursor == "" {
		t.Fatalf("list = %d %s", status, raw)
	}
	var page SyncJobList
	if status, _, raw := f.do(viewer, "GET", syncJobs+"?limit=2&cursor="+list.NextCursor, "", &page); status != 200 ||
		len(page.Items) != 1 || page.Items[0].ID != two.ID || page.NextCursor != "" {
		t.Fatalf("second page = %d %s", status, raw)
	}

	for _, c := range []struct {
		who          tenancy.Principal
		method, path string
		status       int
		state        string
	}{
		{viewer, "POST", ":pause", 403, ""},
		{member, "POST", ":pause", 200, "paused"},
		{member, "POST", ":pause", 200, "paused"}, // pausing twice is harmless
		{member, "POST", ":resume", 200, "running"},
		{member, "POST", "/pause", 200, "paused"},
		{member, "POST", "/resume", 200, "running"},
		{viewer, "DELETE", "", 403, ""},
		{member, "DELETE", "", 202, "deleting"},
		{member, "DELETE", "", 202, "deleting"},
		{member, "POST", ":resume", 409, ""},
		{member, "POST", ":pause", 409, ""},
	} {
		var out SyncJob
		status, _, raw := f.do(c.who, c.method, syncJobs+"/"+j.ID+c.path, "", &out)
		if status != c.status || (c.state != "" && out.State != c.state) {
			t.Fatalf("%s %s = %d %s, want %d %s", c.method, c.path, status, raw, c.status, c.state)
		}
	}
	if stored, err := f.store.GetJob(ctx, "acme", j.ID); err != nil || stored.State != syncjob.StateDeleting {
		t.Fatalf("stored = %+v, %v", stored, err)
	}
	// Three creates and the seven accepted actions each woke the runner.
	if kicks, _, _ := run.calls(); len(kicks) != 10 || kicks[0] != j.ID || kicks[3] != j.ID {
		t.Fatalf("kicks = %v", kicks)
	}
}

// TestSyncTenantIsolation: another tenant's jobs, and instances, are 404s
// whatever the route; platform-admin sees every tenant's.
func TestSyncTenantIsolation(t *testing.T) {
	f, run := newSyncFixture(t)
	j := f.createJob(`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"},"conflict":"manual","initial_load":false}`)
	if err := f.store.Record(t.Context(), syncjob.Conflict{JobID: j.ID, From: "i1", To: "i3", DB: "app", Table: "t",
		Kind: syncjob.KindExists, Key: json.RawMessage(`{"id":1}`), GTID: "0-1-5", Strategy: syncjob.Manual}); err != nil {
		t.Fatal(err)
	}
	var conflicts SyncConflictList
	if status, _, raw := f.do(viewer, "GET", syncJobs+"/"+j.ID+"/conflicts", "", &conflicts); status != 200 || len(conflicts.Items) != 1 {
		t.Fatalf("conflicts = %d %s", status, raw)
	}
	cid := conflicts.Items[0].ID
	var v SyncVerification
	if status, _, raw := f.do(member, "POST", syncJobs+"/"+j.ID+"/verifications", "", &v); status != 202 {
		t.Fatalf("verify = %d %s", status, raw)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", syncJobs + "/" + j.ID, ""},
		{"POST", syncJobs + "/" + j.ID + ":pause", ""},
		{"POST", syncJobs + "/" + j.ID + ":resume", ""},
		{"DELETE", syncJobs + "/" + j.ID, ""},
		{"GET", syncJobs + "/" + j.ID + "/conflicts", ""},
		{"GET", syncJobs + "/" + j.ID + "/conflicts/" + cid, ""},
		{"POST", syncJobs + "/" + j.ID + "/conflicts/" + cid + ":resolve", `{"use":"source"}`},
		{"GET", syncJobs + "/" + j.ID + "/verifications", ""},
		{"GET", syncJobs + "/" + j.ID + "/verifications/" + v.ID, ""},
		{"POST", syncJobs + "/" + j.ID + "/verifications", ""},
		// acme's instances as source or target
		{"POST", syncJobs, `{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i2"}}`},
		{"POST", syncJobs, `{"source_instance":"i2","tables":["app.*"],"target":{"instance":"i3"}}`},
		{"POST", syncJobs, `{"source_instance":"i2","tables":["app.*"],"target":{"redis_instance":"r1"}}`},
	} {
		if status, _, raw := f.do(other, c.method, c.path, c.body, nil); status != 404 {
			t.Errorf("%s %s as globex = %d %s, want 404", c.method, c.path, status, raw)
		}
	}
	var list SyncJobList
	if status, _, _ := f.do(other, "GET", syncJobs, "", &list); status != 200 || len(list.Items) != 0 {
		t.Fatalf("globex list = %d %+v", status, list)
	}
	// acme cannot use globex's instances either.
	if status, _, raw := f.do(member, "POST", syncJobs, `{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i2"}}`, nil); status != 404 {
		t.Errorf("acme → globex's target = %d %s", status, raw)
	}
	for _, p := range []string{syncJobs + "/nope", syncJobs + "/nope/conflicts", syncJobs + "/" + j.ID + "/conflicts/nope",
		syncJobs + "/" + j.ID + "/verifications/nope"} {
		if status, _, _ := f.do(member, "GET", p, "", nil); status != 404 {
			t.Errorf("GET %s = %d, want 404", p, status)
		}
	}
	// platform-admin sees and acts on every tenant's, and creates within one tenant.
	if err := f.store.SaveJobStatus(t.Context(), j.ID, syncjob.Status{}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := f.do(admin, "GET", syncJobs, "", &list); status != 200 || len(list.Items) != 1 {
		t.Fatalf("platform-admin list = %d %+v", status, list)
	}
	if status, _, _ := f.do(admin, "POST", syncJobs+"/"+j.ID+":pause", "", nil); status != 200 {
		t.Fatalf("platform-admin pause = %d", status)
	}
	var mine SyncJob
	if status, _, raw := f.do(admin, "POST", syncJobs, `{"source_instance":"i2","tables":["app.*"],"target":{"instance":"i4"}}`, &mine); status != 201 ||
		mine.TenantID != "globex" {
		t.Fatalf("platform-admin create = %d %s", status, raw)
	}
	if status, _, raw := f.do(admin, "POST", syncJobs, `{"source_instance":"i2","tables":["app.*"],"target":{"instance":"i3"}}`, nil); status != 404 {
		t.Fatalf("platform-admin across tenants = %d %s, want 404", status, raw)
	}
	if _, resolved, _ := run.calls(); len(resolved) != 0 {
		t.Fatalf("refused requests resolved %v", resolved)
	}
}

// TestSyncValidation: invalid specs are 422 naming the fields (the
// instances' engines included), bad bodies 400, instances being deleted
// 409, provisioning down 503.
func TestSyncValidation(t *testing.T) {
	f, run := newSyncFixture(t)
	for _, c := range []struct {
		body   string
		status int
		fields []string
	}{
		{`{}`, 422, []string{"source_instance", "tables", "target"}},
		{`{"source_instance":"i1","tables":["orders"],"target":{"instance":"i3"}}`, 422, []string{"tables[0]"}},
		{`{"source_instance":"i1","tables":["_canopy_sync.watermarks"],"target":{"instance":"i3"}}`, 422, []string{"tables[0]"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i1"}}`, 422, []string{"target.instance"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3","redis_instance":"r1"}}`, 422, []string{"target"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"},"conflict":"latest-wins"}`, 422, []string{"column"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"},"conflict":"coin","direction":"both","ddl":"skip"}`, 422,
			[]string{"conflict", "direction", "ddl"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"redis_instance":"r1"},"direction":"two-way"}`, 422, []string{"direction"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"redis_instance":"r1","ttl":"soon","format":"xml"}}`, 422,
			[]string{"target.ttl", "target.format"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"},"verify_every":"daily"}`, 422, []string{"verify_every"}},
		// engines: the source reads a binlog, each target kind its engine
		{`{"source_instance":"r1","tables":["app.*"],"target":{"instance":"i3"}}`, 422, []string{"source_instance"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"r1"}}`, 422, []string{"target.instance"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"redis_instance":"i3"}}`, 422, []string{"target.redis_instance"}},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"},"bogus":1}`, 400, nil},
		{`{"source_instance":"i1","tables":"app.*","target":{"instance":"i3"}}`, 400, nil},
		{`{"source_instance":"nope","tables":["app.*"],"target":{"instance":"i3"}}`, 404, nil},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"nope"}}`, 404, nil},
		{`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"gone"}}`, 409, nil},
	} {
		status, _, raw := f.do(member, "POST", syncJobs, c.body, nil)
		if status != c.status {
			t.Errorf("POST %s = %d %s, want %d", c.body, status, raw, c.status)
			continue
		}
		if c.fields == nil {
			continue
		}
		var p struct {
			Errors []httpx.FieldError `json:"errors"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range p.Errors {
			got = append(got, e.Field)
		}
		if !slices.Equal(got, c.fields) {
			t.Errorf("POST %s: fields %v, want %v", c.body, got, c.fields)
		}
	}
	valid := `{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"}}`
	if status, _, _ := f.do(viewer, "POST", syncJobs, valid, nil); status != 403 {
		t.Errorf("viewer create = %d, want 403", status)
	}
	f.inst.down = true
	if status, _, _ := f.do(member, "POST", syncJobs, valid, nil); status != 503 {
		t.Errorf("provisioning down = %d, want 503", status)
	}
	if kicks, _, _ := run.calls(); len(kicks) != 0 {
		t.Errorf("refused requests woke the runner: %v", kicks)
	}
	if list, _ := f.store.ListJobs(t.Context(), "", "", 10); len(list) != 0 {
		t.Errorf("refused requests stored jobs: %+v", list)
	}
}

// TestSyncConflictsAPI: conflicts list (all or pending), read, and resolve
// through the runner, once.
func TestSyncConflictsAPI(t *testing.T) {
	f, run := newSyncFixture(t)
	j := f.createJob(`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"},"conflict":"manual","direction":"two-way"}`)
	ctx := t.Context()
	at := time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC)
	for i, c := range []syncjob.Conflict{
		{From: "i1", To: "i3", Kind: syncjob.KindDiffers, Key: json.RawMessage(`{"id":7}`), TargetRow: json.RawMessage(`{"id":7,"v":"x"}`),
			Change: json.RawMessage(`{"op":"u","after":{"id":7,"v":"b"}}`), GTID: "0-1-42", Strategy: syncjob.Manual},
		{From: "i3", To: "i1", Kind: syncjob.KindMissing, Key: json.RawMessage(`{"id":8}`), Change: json.RawMessage(`{"op":"d"}`),
			GTID: "0-3-7", Strategy: syncjob.Manual},
		{From: "i1", To: "i3", Kind: syncjob.KindExists, Key: json.RawMessage(`{"id":9}`), Change: json.RawMessage(`{"op":"c"}`),
			TargetRow: json.RawMessage(`{"id":9}`), GTID: "0-1-43", Strategy: syncjob.SourceWins, Resolution: syncjob.ResolvedSource},
	} {
		c.JobID, c.DB, c.Table, c.At = j.ID, "app", "orders", at.Add(time.Duration(i)*time.Second)
		if err := f.store.Record(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	base := syncJobs + "/" + j.ID + "/conflicts"
	var all, pending SyncConflictList
	if status, _, raw := f.do(viewer, "GET", base, "", &all); status != 200 || len(all.Items) != 3 {
		t.Fatalf("conflicts = %d %s", status, raw)
	}
	first := all.Items[0]
	if first.Kind != "differs" || string(first.Key) != `{"id":7}` || string(first.TargetRow) != `{"id":7,"v":"x"}` ||
		first.Resolution != "pending" || first.FromInstance != "i1" || first.GTID != "0-1-42" || first.Table != "orders" ||
		!first.At.Equal(at) || first.ResolvedAt != nil {
		t.Fatalf("first conflict %+v", first)
	}
	var raw map[string]json.RawMessage
	if _, _, body := f.do(viewer, "GET", base+"/"+all.Items[1].ID, "", &raw); string(raw["target_row"]) != "null" {
		t.Fatalf("a missing row's conflict shows target_row %s (%s)", raw["target_row"], body)
	}
	if status, _, raw := f.do(viewer, "GET", base+"?state=pending", "", &pending); status != 200 || len(pending.Items) != 2 {
		t.Fatalf("pending = %d %s", status, raw)
	}
	if status, _, raw := f.do(viewer, "GET", base+"?state=all&limit=1", "", &all); status != 200 || len(all.Items) != 1 || all.NextCursor == "" {
		t.Fatalf("first page = %d %s", status, raw)
	}
	if status, _, _ := f.do(viewer, "GET", base+"?state=bogus", "", nil); status != 400 {
		t.Fatalf("state=bogus = %d, want 400", status)
	}

	resolve := base + "/" + first.ID + ":resolve"
	if status, _, _ := f.do(viewer, "POST", resolve, `{"use":"source"}`, nil); status != 403 {
		t.Fatalf("viewer resolve = %d", status)
	}
	if status, _, raw := f.do(member, "POST", resolve, `{"use":"maybe"}`, nil); status != 422 {
		t.Fatalf("use maybe = %d %s", status, raw)
	}
	run.mu.Lock()
	run.resolveErr = errors.New("dial tcp 127.0.0.1:3307: connection refused")
	run.mu.Unlock()
	if status, _, raw := f.do(member, "POST", resolve, `{"use":"source"}`, nil); status != 503 {
		t.Fatalf("target down = %d %s, want 503", status, raw)
	}
	if c, _ := f.store.GetConflict(ctx, "acme", j.ID, first.ID); c.Resolution != syncjob.ResolvedPending {
		t.Fatalf("a failed resolution resolved: %+v", c)
	}
	run.mu.Lock()
	run.resolveErr = nil
	run.mu.Unlock()
	var out SyncConflict
	if status, _, raw := f.do(member, "POST", resolve, `{"use":"source"}`, &out); status != 200 || out.Resolution != "source" || out.ResolvedAt == nil {
		t.Fatalf("resolve = %d %s", status, raw)
	}
	if status, _, raw := f.do(member, "POST", resolve, `{"use":"source"}`, &out); status != 200 || out.Resolution != "source" {
		t.Fatalf("resolve again = %d %s", status, raw)
	}
	if status, _, raw := f.do(member, "POST", resolve, `{"use":"target"}`, nil); status != 409 {
		t.Fatalf("resolve the other way = %d %s, want 409", status, raw)
	}
	// The slash alias; target keeps the target's row.
	second := pending.Items[1].ID
	if status, _, raw := f.do(member, "POST", base+"/"+second+"/resolve", `{"use":"target"}`, &out); status != 200 || out.Resolution != "target" {
		t.Fatalf("resolve by alias = %d %s", status, raw)
	}
	if _, resolved, _ := run.calls(); !slices.Equal(resolved, []string{first.ID + " source", second + " target"}) {
		t.Fatalf("runner resolved %v", resolved)
	}
	if status, _, raw := f.do(viewer, "GET", base+"?state=pending", "", &pending); status != 200 || len(pending.Items) != 0 {
		t.Fatalf("pending after resolving = %d %s", status, raw)
	}
	if status, _, _ := f.do(member, "POST", base+"/nope:resolve", `{"use":"source"}`, nil); status != 404 {
		t.Fatalf("resolve unknown = %d", status)
	}
}

// TestSyncVerificationsAPI: a running MySQL job's verification starts
// through the runner, one at a time, and reads back with its report.
func TestSyncVerificationsAPI(t *testing.T) {
	f, run := newSyncFixture(t)
	ctx := t.Context()
	j := f.createJob(`{"source_instance":"i1","tables":["app.*"],"target":{"instance":"i3"}}`)
	base := syncJobs + "/" + j.ID + "/verifications"
	if status, _, raw := f.do(member, "POST", base, `{"repair":true}`, nil); status != 409 {
		t.Fatalf("verify a loading job = %d %s, want 409", status, raw)
	}
	if err := f.store.SetJobState(ctx, j.ID, syncjob.StateRunning, ""); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := f.do(viewer, "POST", base, `{"repair":true}`, nil); status != 403 {
		t.Fatalf("viewer verify = %d", status)
	}
	var v SyncVerification
	status, h, raw := f.do(member, "POST", base, `{"repair":true}`, &v)
	if status != 202 || v.State != "running" || !v.Repair || v.JobID != j.ID || h.Get("Location") != base+"/"+v.ID ||
		v.FinishedAt != nil || v.Report.Tables == nil {
		t.Fatalf("verify = %d %s", status, raw)
	}
	if status, _, raw := f.do(member, "POST", base, "", nil); status != 409 {
		t.Fatalf("second verification while one runs = %d %s", status, raw)
	}
	if _, _, verified := run.calls(); !slices.Equal(verified, []string{v.ID}) {
		t.Fatalf("runner verified %v", verified)
	}
	// The runner finishes it.
	if err := f.store.FinishVerification(ctx, syncjob.Verification{ID: v.ID, State: syncjob.VerifyDone, Report: syncjob.Report{
		Tables: []syncjob.TableReport{{Table: "app.orders", Chunks: 2, RowsChecked: 1200, Differences: []syncjob.RowDiff{
			{Key: json.RawMessage(`{"id":3}`), Kind: "different", Repaired: true}}}},
		Chunks: 2, RowsChecked: 1200, DifferingRows: 1, Repaired: 1, Rechecked: 1, DurationMs: 40, Consistent: true}}); err != nil {
		t.Fatal(err)
	}
	var got SyncVerification
	if status, _, raw := f.do(viewer, "GET", base+"/"+v.ID, "", &got); status != 200 || got.State != "done" || got.FinishedAt == nil ||
		!got.Report.Consistent || got.Report.RepairedRows != 1 || got.Report.RecheckedChunks != 1 || len(got.Report.Tables) != 1 ||
		len(got.Report.Tables[0].Differences) != 1 || string(got.Report.Tables[0].Differences[0].Key) != `{"id":3}` {
		t.Fatalf("finished = %d %s", status, raw)
	}
	// A verification the runner cannot start fails at once and does not block the next.
	run.mu.Lock()
	run.verifyErr = errors.New("source unreachable")
	run.mu.Unlock()
	if status, _, raw := f.do(member, "POST", base, "", nil); status != 503 {
		t.Fatalf("runner refuses = %d %s, want 503", status, raw)
	}
	run.mu.Lock()
	run.verifyErr = nil
	run.mu.Unlock()
	if status, _, raw := f.do(member, "POST", base, "", &v); status != 202 || v.Repair {
		t.Fatalf("verify without a body = %d %s", status, raw)
	}
	var list SyncVerificationList
	if status, _, raw := f.do(viewer, "GET", base, "", &list); status != 200 || len(list.Items) != 3 ||
		list.Items[0].State != "done" || list.Items[1].State != "failed" || list.Items[1].Error == "" || list.Items[2].State != "running" {
		t.Fatalf("list = %d %s", status, raw)
	}
	// A cache cannot be verified.
	cache := f.createJob(`{"source_instance":"i1","tables":["app.*"],"target":{"redis_instance":"r1"},"initial_load":false}`)
	if status, _, raw := f.do(member, "POST", syncJobs+"/"+cache.ID+"/verifications", "", nil); status != 409 {
		t.Fatalf("verify a cache = %d %s, want 409", status, raw)
	}
}
