package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/openapitest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/failover/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// instances is provisioning's answer, in memory.
type instances map[string]topology.Instance

func (m instances) Get(_ context.Context, id string) (topology.Instance, error) {
	in, ok := m[id]
	if !ok {
		return in, fmt.Errorf("instance %s: %w", id, topology.ErrNotFound)
	}
	return in, nil
}

// actions records a switchover in the store the way the recoverer does, and
// drills as the drill runner does; err, when set, is what they fail with.
type actions struct {
	store   *mysqlstore.Store
	err     error
	rebuilt []string
}

func (a *actions) Switchover(ctx context.Context, instanceID, target string, force bool) (topology.Recovery, error) {
	if a.err != nil {
		return topology.Recovery{}, a.err
	}
	l, err := a.store.Acquire(ctx, instanceID, "test", time.Minute)
	if err != nil {
		return topology.Recovery{}, err
	}
	r := topology.Recovery{ID: ulid.Make().String(), InstanceID: instanceID, Tenant: "acme", Engine: topology.EngineMySQL,
		Kind: topology.KindSwitchover, Problem: "Switchover", State: topology.StateStarted, Step: topology.StepDetected,
		OldPrimary: "n0", Candidate: target, DetectedAt: time.Now().UTC()}
	return r, a.store.Begin(ctx, l, r)
}

func (a *actions) RebuildReplica(_ context.Context, in topology.Instance, node string) error {
	if a.err != nil {
		return a.err
	}
	a.rebuilt = append(a.rebuilt, in.ID+"/"+node)
	return nil
}

func (a *actions) Drill(ctx context.Context, in topology.Instance, kind, by string) (mysqlstore.Drill, error) {
	d := mysqlstore.Drill{ID: ulid.Make().String(), InstanceID: in.ID, Tenant: in.Tenant, Kind: kind, State: mysqlstore.DrillRunning,
		RequestedBy: by, RequestedAt: time.Now().UTC().Truncate(time.Microsecond)}
	return d, a.store.CreateDrill(ctx, d)
}

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	store  *mysqlstore.Store
	acts   *actions
	signer *tenancy.Signer
	spec   *openapitest.Spec
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := mysqlstore.New(storetest.NewDB(t, "failover_api"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	nodes := []topology.Node{{ID: "n0", Role: topology.RolePrimary}, {ID: "n1", Role: topology.RoleReplica}}
	acts := &actions{store: s}
	h, err := New(s, instances{"i1": {ID: "i1", Tenant: "acme", Nodes: nodes}, "i2": {ID: "i2", Tenant: "globex", Nodes: nodes}}, acts)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter(slog.New(slog.DiscardHandler))
	r.Use(tenancy.Middleware("failover", secret))
	h.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, store: s, acts: acts, signer: tenancy.NewSigner(secret), spec: openapitest.MustLoad(t)}
}

var (
	member = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:m"}
	viewer = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantViewer, Subject: "apikey:v"}
	admin  = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}
)

// do sends a signed request, checks the answer against the OpenAPI
// document and decodes it into out.
func (f *fixture) do(p tenancy.Principal, method, path, body string, out any) (int, http.Header) {
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
	f.signer.SignRequest(req, b, "failover", p)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	check, _ := http.NewRequest(method, path, bytes.NewReader(b))
	if err := f.spec.Check(check, resp.StatusCode, resp.Header, raw); err != nil {
		f.t.Error(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			f.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// TestSwitchoverHistoryAndAcknowledge: a switchover is accepted with the
// location of its failover, which the history lists and shows.
func TestSwitchoverHistoryAndAcknowledge(t *testing.T) {
	f := newFixture(t)
	var fo Failover
	status, h := f.do(member, "POST", "/api/v1/instances/i1/switchover", `{"target_node":"n1"}`, &fo)
	if status != http.StatusAccepted || fo.Kind != "switchover" || h.Get("Location") != "/api/v1/instances/i1/failovers/"+fo.ID {
		t.Fatalf("switchover = %d %+v location %q", status, fo, h.Get("Location"))
	}
	var list FailoverList
	if status, _ := f.do(viewer, "GET", "/api/v1/instances/i1/failovers", "", &list); status != 200 || len(list.Items) != 1 || list.Items[0].ID != fo.ID {
		t.Fatalf("history = %d %+v", status, list)
	}
	var got Failover
	if status, _ := f.do(viewer, "GET", "/api/v1/instances/i1/failovers/"+fo.ID, "", &got); status != 200 || got.OldPrimary != "n0" {
		t.Fatalf("get = %d %+v", status, got)
	}
	if status, _ := f.do(viewer, "POST", "/api/v1/instances/i1/failovers/"+fo.ID+"/acknowledge", "", nil); status != http.StatusForbidden {
		t.Fatalf("viewer acknowledging = %d, want 403", status)
	}
	if status, _ := f.do(member, "POST", "/api/v1/instances/i1/failovers/"+fo.ID+"/acknowledge", "", &got); status != 200 || !got.Acknowledged {
		t.Fatalf("acknowledge = %d %+v", status, got)
	}
	if status, _ := f.do(member, "GET", "/api/v1/instances/i1/failovers/nope", "", nil); status != 404 {
		t.Fatalf("unknown failover = %d", status)
	}
}

// TestTenantIsolation: another tenant's instance is a 404; platform-admin sees it.
func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/instances/i2/failovers", ""},
		{"POST", "/api/v1/instances/i2/switchover", `{}`},
		{"POST", "/api/v1/instances/i2/drills", `{"kind":"kill-primary"}`},
		{"GET", "/api/v1/instances/nope/failovers", ""},
	} {
		if status, _ := f.do(member, c.method, c.path, c.body, nil); status != 404 {
			t.Errorf("%s %s as acme = %d, want 404", c.method, c.path, status)
		}
	}
	var list FailoverList
	if status, _ := f.do(admin, "GET", "/api/v1/instances/i2/failovers", "", &list); status != 200 {
		t.Fatalf("platform-admin = %d", status)
	}
}

// TestRebuildReplica: a member rebuilds a replica of its instance (204);
// viewers may not, other tenants' instances and unknown nodes are 404s, the
// recovery's refusals (a primary, Redis, a recovery in progress) 409s.
func TestRebuildReplica(t *testing.T) {
	f := newFixture(t)
	if status, _ := f.do(member, "POST", "/api/v1/instances/i1/nodes/n1/rebuild", "", nil); status != http.StatusNoContent {
		t.Fatalf("rebuild as member = %d, want 204", status)
	}
	if len(f.acts.rebuilt) != 1 || f.acts.rebuilt[0] != "i1/n1" {
		t.Fatalf("rebuilt %v, want [i1/n1]", f.acts.rebuilt)
	}
	for _, c := range []struct {
		who    tenancy.Principal
		path   string
		status int
	}{
		{viewer, "/api/v1/instances/i1/nodes/n1/rebuild", http.StatusForbidden},
		{member, "/api/v1/instances/i2/nodes/n1/rebuild", http.StatusNotFound},
		{member, "/api/v1/instances/i1/nodes/nope/rebuild", http.StatusNotFound},
	} {
		if status, _ := f.do(c.who, "POST", c.path, "", nil); status != c.status {
			t.Errorf("POST %s as %s = %d, want %d", c.path, c.who.Subject, status, c.status)
		}
	}
	for _, err := range []error{recovery.ErrNotReplica, recovery.ErrNoRebuilder, topology.ErrLeaseHeld} {
		f.acts.err = fmt.Errorf("rebuild: %w", err)
		if status, _ := f.do(member, "POST", "/api/v1/instances/i1/nodes/n0/rebuild", "", nil); status != http.StatusConflict {
			t.Errorf("rebuild refused with %v = %d, want 409", err, status)
		}
	}
	if len(f.acts.rebuilt) != 1 {
		t.Fatalf("refused rebuilds reached the recovery: %v", f.acts.rebuilt)
	}
}

// TestConflictsAndValidation: the recovery's refusals are 409s; bad bodies 4xx.
func TestConflictsAndValidation(t *testing.T) {
	f := newFixture(t)
	for name, err := range map[string]error{"hold-off": topology.ErrHoldOff, "no candidate": topology.ErrNoCandidate, "in progress": topology.ErrLeaseHeld} {
		f.acts.err = fmt.Errorf("switchover: %w", err)
		if status, _ := f.do(member, "POST", "/api/v1/instances/i1/switchover", "", nil); status != http.StatusConflict {
			t.Errorf("%s: %d, want 409", name, status)
		}
	}
	f.acts.err = nil
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/instances/i1/switchover", `{"target_node":"n0"}`, 422}, // the primary itself
		{"/api/v1/instances/i1/switchover", `{"target_node":"zz"}`, 422},
		{"/api/v1/instances/i1/switchover", `{"bogus":1}`, 400},
		{"/api/v1/instances/i1/drills", `{"kind":"meteor"}`, 422},
	} {
		if status, _ := f.do(member, "POST", c.path, c.body, nil); status != c.want {
			t.Errorf("POST %s %s = %d, want %d", c.path, c.body, status, c.want)
		}
	}
}

// TestDrillsAndSchedule: a drill report is created and listed per tenant;
// a schedule is set.
func TestDrillsAndSchedule(t *testing.T) {
	f := newFixture(t)
	var d Drill
	status, h := f.do(member, "POST", "/api/v1/instances/i1/drills", `{"kind":"kill-primary"}`, &d)
	if status != 202 || d.State != "running" || !strings.HasSuffix(h.Get("Location"), "/api/v1/drills/"+d.ID) {
		t.Fatalf("drill = %d %+v", status, d)
	}
	if _, err := f.acts.Drill(t.Context(), topology.Instance{ID: "i2", Tenant: "globex"}, "stop-primary", "x"); err != nil {
		t.Fatal(err)
	}
	var list DrillList
	if status, _ := f.do(viewer, "GET", "/api/v1/drills", "", &list); status != 200 || len(list.Items) != 1 || list.Items[0].ID != d.ID {
		t.Fatalf("acme's drills = %d %+v", status, list)
	}
	if status, _ := f.do(admin, "GET", "/api/v1/drills", "", &list); status != 200 || len(list.Items) != 2 {
		t.Fatalf("every drill = %d %+v", status, list)
	}
	var got Drill
	if status, _ := f.do(viewer, "GET", "/api/v1/drills/"+d.ID, "", &got); status != 200 || got.Kind != "kill-primary" {
		t.Fatalf("get drill = %d %+v", status, got)
	}
	var sc Schedule
	if status, _ := f.do(member, "PUT", "/api/v1/instances/i1/drill-schedule", `{"cadence":"weekly"}`, &sc); status != 200 ||
		sc.Kind != "kill-primary" || time.Until(sc.NextAt) < 6*24*time.Hour {
		t.Fatalf("schedule = %d %+v", status, sc)
	}
	if status, _ := f.do(member, "PUT", "/api/v1/instances/i1/drill-schedule", `{"cadence":"hourly"}`, nil); status != 422 {
		t.Fatalf("hourly cadence = %d, want 422", status)
	}
}
