package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/openapitest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// instances is provisioning's answer, in memory; down makes it unreachable.
type instances struct {
	m    map[string]InstanceInfo
	down bool
}

func (f *instances) Get(_ context.Context, tenant, id string) (InstanceInfo, error) {
	if f.down {
		return InstanceInfo{}, errors.New("provisioning: connection refused")
	}
	in, ok := f.m[id]
	if !ok || (tenant != "" && in.Tenant != tenant) {
		return in, fmt.Errorf("instance %s: %w", id, stream.ErrNotFound)
	}
	return in, nil
}

// kicks records the streams the pipeline was woken for.
type kicks struct {
	mu  sync.Mutex
	ids []string
}

func (k *kicks) Kick(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ids = append(k.ids, id)
}

func (k *kicks) list() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ids)
}

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	store  *mysqlstore.Store
	inst   *instances
	kicks  *kicks
	signer *tenancy.Signer
	// spec checks every answer against api/openapi (nil while the document
	// has no cdc paths).
	spec *openapitest.Spec
}

// cdcSpec loads the OpenAPI document, or nil when it does not describe the
// cdc routes yet (they land with the deployment work).
func cdcSpec(t *testing.T) *openapitest.Spec {
	spec := openapitest.MustLoad(t)
	probe, _ := http.NewRequest("GET", streams, nil)
	if err := spec.Check(probe, 401, http.Header{"Content-Type": {httpx.ProblemContentType}}, []byte(`{"title":"Unauthorized","status":401}`)); err != nil &&
		strings.Contains(err.Error(), "is not in the OpenAPI document") {
		t.Log("api/openapi has no cdc paths: answers are not checked against it")
		return nil
	}
	return spec
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := mysqlstore.New(storetest.NewDB(t, "cdc_api"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	inst := &instances{m: map[string]InstanceInfo{
		"i1": {ID: "i1", Tenant: "acme", Engine: "mysql", State: "ready"},
		"i2": {ID: "i2", Tenant: "globex", Engine: "mysql", State: "ready"},
		"r1": {ID: "r1", Tenant: "acme", Engine: "redis", State: "ready"},
		"i3": {ID: "i3", Tenant: "acme", Engine: "mysql", State: "ready"},
	}}
	k := &kicks{}
	h, err := New(s, inst, k)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter(slog.New(slog.DiscardHandler))
	r.Use(tenancy.Middleware(tenancy.AudienceCDC, secret))
	h.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, store: s, inst: inst, kicks: k, signer: tenancy.NewSigner(secret), spec: cdcSpec(t)}
}

var (
	member = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:m"}
	viewer = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantViewer, Subject: "apikey:v"}
	other  = tenancy.Principal{Tenant: "globex", Role: tenancy.RoleTenantAdmin, Subject: "apikey:g"}
	admin  = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}
)

// do sends a signed request, checks the answer against the OpenAPI
// document (but for the undocumented slash aliases of the colon actions)
// and decodes a 2xx answer into out; it returns the status, headers and
// raw body.
func (f *fixture) do(p tenancy.Principal, method, path, body string, out any) (int, http.Header, []byte) {
	f.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(b))
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	f.signer.SignRequest(req, b, tenancy.AudienceCDC, p)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	alias := strings.HasSuffix(path, "/pause") || strings.HasSuffix(path, "/resume") || strings.HasSuffix(path, "/resnapshot") ||
		strings.HasSuffix(path, "/resolve")
	if f.spec != nil && !alias {
		check, _ := http.NewRequest(method, path, bytes.NewReader(b))
		if err := f.spec.Check(check, resp.StatusCode, resp.Header, raw); err != nil {
			f.t.Error(err)
		}
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != httpx.ProblemContentType {
		f.t.Errorf("%s %s: error %d as %q, not problem+json", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			f.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header, raw
}

const streams = "/api/v1/instances/i1/cdc-streams"

// TestStreamLifecycle: create, list, read, pause, resume, resnapshot and
// delete, each waking the pipeline.
func TestStreamLifecycle(t *testing.T) {
	f := newFixture(t)
	var s Stream
	status, h, raw := f.do(member, "POST", streams, `{"tables":["app.orders","app.*"],"exclude_tables":["app.audit"],"tombstones":true}`, &s)
	if status != http.StatusCreated || h.Get("Location") != streams+"/"+s.ID {
		t.Fatalf("create = %d %s location %q", status, raw, h.Get("Location"))
	}
	if s.State != "snapshotting" || s.Snapshot != "initial" || !s.Tombstones || s.TenantID != "acme" || s.InstanceID != "i1" ||
		s.TopicPrefix != "cdc.acme.i1" || !slices.Equal(s.Tables, []string{"app.orders", "app.*"}) ||
		!slices.Equal(s.ExcludeTables, []string{"app.audit"}) || s.CapturedTables == nil || s.CreatedAt.IsZero() {
		t.Fatalf("created stream %s", raw)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "instance_id", "tenant_id", "tables", "exclude_tables", "snapshot", "tombstones", "state",
		"captured_tables", "topic_prefix", "position", "lag", "rows_per_second", "events_total", "created_at", "updated_at"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("stream JSON has no %s: %s", k, raw)
		}
	}

	// The pipeline reports progress; the API shows it.
	ctx := t.Context()
	if err := f.store.SaveCheckpoint(ctx, s.ID, change.Checkpoint{GTID: "0-1-9", Events: 12}, stream.StateStreaming, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetStatus(ctx, s.ID, stream.Status{State: stream.StateStreaming, SourceNode: "n1",
		CapturedTables: []string{"app.orders"}, LagMs: 120, LagEvents: 2, RowsPerSecond: 50}); err != nil {
		t.Fatal(err)
	}
	var got Stream
	if status, _, raw := f.do(viewer, "GET", streams+"/"+s.ID, "", &got); status != 200 || got.State != "streaming" ||
		got.Position.GTID != "0-1-9" || got.Lag != (Lag{MS: 120, Events: 2}) || got.EventsTotal != 12 || got.SourceNode != "n1" ||
		!slices.Equal(got.CapturedTables, []string{"app.orders"}) || got.RowsPerSecond != 50 {
		t.Fatalf("get = %d %s", status, raw)
	}
	var list StreamList
	if status, _, raw := f.do(viewer, "GET", streams, "", &list); status != 200 || len(list.Items) != 1 || list.Items[0].ID != s.ID {
		t.Fatalf("list = %d %s", status, raw)
	}

	for _, c := range []struct {
		who          tenancy.Principal
		method, path string
		status       int
		state        string
	}{
		{viewer, "POST", "/" + s.ID + ":pause", 403, ""},
		{member, "POST", "/" + s.ID + ":pause", 200, "paused"},
		{member, "POST", "/" + s.ID + ":pause", 200, "paused"}, // pausing twice is harmless
		{member, "POST", "/" + s.ID + ":resume", 200, "streaming"},
		{member, "POST", "/" + s.ID + "/pause", 200, "paused"},
		{member, "POST", "/" + s.ID + "/resume", 200, "streaming"},
		{member, "POST", "/" + s.ID + ":resnapshot", 200, "snapshotting"},
		{member, "DELETE", "/" + s.ID, 202, "deleting"},
		{member, "POST", "/" + s.ID + ":resume", 409, ""},
		{member, "POST", "/" + s.ID + ":pause", 409, ""},
	} {
		var out Stream
		status, _, raw := f.do(c.who, c.method, streams+c.path, "", &out)
		if status != c.status || (c.state != "" && out.State != c.state) {
			t.Fatalf("%s %s = %d %s, want %d %s", c.method, c.path, status, raw, c.status, c.state)
		}
	}
	stored, err := f.store.Get(ctx, s.ID)
	if err != nil || stored.State != stream.StateDeleting || stored.Checkpoint.GTID != "" {
		t.Fatalf("stored = %+v, %v", stored, err)
	}
	// Create + the seven accepted actions each woke the pipeline.
	if k := f.kicks.list(); len(k) != 8 || k[0] != s.ID {
		t.Fatalf("kicks = %v", k)
	}
}

// TestListPages: the list pages by cursor, oldest first.
func TestListPages(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for range 3 {
		var s Stream
		if status, _, raw := f.do(member, "POST", streams, `{"tables":["app.*"]}`, &s); status != 201 {
			t.Fatalf("create = %d %s", status, raw)
		}
		ids = append(ids, s.ID)
	}
	var got []string
	path := streams + "?limit=2"
	for pages := 0; path != ""; pages++ {
		if pages > 3 {
			t.Fatal("the cursor does not end")
		}
		var list StreamList
		if status, _, raw := f.do(viewer, "GET", path, "", &list); status != 200 {
			t.Fatalf("list = %d %s", status, raw)
		}
		for _, s := range list.Items {
			got = append(got, s.ID)
		}
		path = ""
		if list.NextCursor != "" {
			path = streams + "?limit=2&cursor=" + list.NextCursor
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("paged %v, created %v", got, ids)
	}
	if status, _, _ := f.do(viewer, "GET", streams+"?limit=0", "", nil); status != 400 {
		t.Fatalf("limit=0 = %d, want 400", status)
	}
}

// TestTenantIsolation: another tenant's instance and streams are 404s,
// whatever the route; platform-admin sees them.
func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	var s Stream
	if status, _, raw := f.do(member, "POST", streams, `{"tables":["app.*"],"snapshot":"never"}`, &s); status != 201 || s.State != "streaming" {
		t.Fatalf("create = %d %s", status, raw)
	}
	var mine Stream
	if status, _, _ := f.do(member, "POST", "/api/v1/instances/i3/cdc-streams", `{"tables":["app.*"]}`, &mine); status != 201 {
		t.Fatalf("create on i3 = %d", status)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", streams, ""},
		{"POST", streams, `{"tables":["app.*"]}`},
		{"GET", streams + "/" + s.ID, ""},
		{"POST", streams + "/" + s.ID + ":pause", ""},
		{"POST", streams + "/" + s.ID + ":resnapshot", ""},
		{"DELETE", streams + "/" + s.ID, ""},
	} {
		if status, _, raw := f.do(other, c.method, c.path, c.body, nil); status != 404 {
			t.Errorf("%s %s as globex = %d %s, want 404", c.method, c.path, status, raw)
		}
	}
	// globex's own instance does not reach acme's stream either.
	if status, _, _ := f.do(other, "GET", "/api/v1/instances/i2/cdc-streams/"+s.ID, "", nil); status != 404 {
		t.Errorf("acme's stream under globex's instance = %d", status)
	}
	// A stream is only found under its own instance.
	if status, _, _ := f.do(member, "GET", "/api/v1/instances/i3/cdc-streams/"+s.ID, "", nil); status != 404 {
		t.Errorf("i1's stream under i3 = %d", status)
	}
	for _, p := range []string{"/api/v1/instances/nope/cdc-streams", "/api/v1/instances/i1/cdc-streams/nope"} {
		if status, _, _ := f.do(member, "GET", p, "", nil); status != 404 {
			t.Errorf("GET %s = %d, want 404", p, status)
		}
	}
	var list StreamList
	if status, _, _ := f.do(admin, "GET", streams, "", &list); status != 200 || len(list.Items) != 1 {
		t.Fatalf("platform-admin list = %d %+v", status, list)
	}
	if status, _, _ := f.do(admin, "POST", streams+"/"+s.ID+":pause", "", nil); status != 200 {
		t.Fatalf("platform-admin pause = %d", status)
	}
	if stored, _ := f.store.Get(t.Context(), s.ID); stored.State != stream.StateStreaming && stored.State != stream.StatePaused {
		t.Fatalf("stored %+v", stored)
	}
}

// TestValidation: bad specs are 422 naming the fields, bad bodies 400, a
// Redis instance 409, provisioning down 503.
func TestValidation(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		body   string
		status int
		fields []string
	}{
		{`{"tables":[]}`, 422, []string{"tables"}},
		{`{}`, 422, []string{"tables"}},
		{`{"tables":["orders","mysql.user"],"exclude_tables":["x"]}`, 422, []string{"tables[0]", "tables[1]", "exclude_tables[0]"}},
		{`{"tables":["app.*"],"snapshot":"sometimes"}`, 422, []string{"snapshot"}},
		{`{"tables":["app.t-1"]}`, 422, []string{"tables[0]"}},
		{`{"tables":["app.*"],"bogus":1}`, 400, nil},
		{`{"tables":"app.*"}`, 400, nil},
	} {
		status, _, raw := f.do(member, "POST", streams, c.body, nil)
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
	if status, _, raw := f.do(member, "POST", "/api/v1/instances/r1/cdc-streams", `{"tables":["app.*"]}`, nil); status != 409 {
		t.Errorf("redis instance = %d %s, want 409", status, raw)
	}
	if status, _, _ := f.do(viewer, "POST", streams, `{"tables":["app.*"]}`, nil); status != 403 {
		t.Errorf("viewer create = %d, want 403", status)
	}
	f.inst.down = true
	if status, _, _ := f.do(member, "GET", streams, "", nil); status != 503 {
		t.Errorf("provisioning down = %d, want 503", status)
	}
	if k := f.kicks.list(); len(k) != 0 {
		t.Errorf("refused requests woke the pipeline: %v", k)
	}
	if list, _ := f.store.List(t.Context(), "acme", "i1", "", 10); len(list) != 0 {
		t.Errorf("refused requests stored streams: %+v", list)
	}
}
