package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/provisioning/internal/catalogclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

// The fakes below stand in for MySQL and the catalog so the real handlers can
// be fuzzed without a database: they apply the domain's own rules (instance
// package) where the repository and saga would, and know one ready instance.

var fuzzT0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

const fuzzSchema = `{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "additionalProperties": false,
  "properties": {
    "max_connections": {"type": "integer", "minimum": 10, "maximum": 10000},
    "character_set_server": {"type": "string", "enum": ["utf8mb4", "latin1"]},
    "long_query_time": {"type": "number", "minimum": 0, "maximum": 3600},
    "notify": {"type": "string", "pattern": "^[KEg$lshzxetmdnA]*$", "maxLength": 32}}}`

func fuzzPlan() catalogclient.Plan {
	return catalogclient.Plan{ID: "p1", Name: "mysql-ha", Engine: instance.EngineMySQL, ServiceID: "svc-mysql",
		Versions: []string{"10.11"}, DefaultVersion: "10.11", DeploymentMode: instance.ModeMultiAZ,
		Nodes: catalogclient.Nodes{Count: 2, Groups: []catalogclient.NodeGroup{
			{Role: "primary", RegionRole: "primary", Count: 1}, {Role: "replica", RegionRole: "primary", Count: 1}}},
		Resources:       catalogclient.Resources{VCPU: 1, MemoryMB: 1024, StorageGB: 10},
		ReplicationMode: instance.ReplicationAsync, ParametersSchema: json.RawMessage(fuzzSchema),
		State: "active", Orderable: true}
}

type fuzzCatalog struct{}

func (fuzzCatalog) Plan(_ context.Context, _ tenancy.Principal, id string) (catalogclient.Plan, error) {
	if id != "p1" {
		return catalogclient.Plan{}, catalogclient.ErrNotFound
	}
	return fuzzPlan(), nil
}

type fuzzSaga struct{}

func (fuzzSaga) Order(_ context.Context, r saga.OrderRequest) (*instance.Instance, instance.Operation, error) {
	sysctls, err := saga.SysctlsFor(r.Plan.DeploymentMode)
	if err != nil {
		return nil, instance.Operation{}, &instance.ValidationError{Field: "plan_id", Reason: err.Error()}
	}
	return instance.New(instance.Order{ID: "i2", OperationID: "op2", Tenant: r.Tenant, Name: r.Name, Plan: r.Plan,
		Version: r.Version, Region: r.Region, Parameters: r.Parameters, Sysctls: sysctls, OSBID: r.OSBID}, fuzzT0)
}
func (fuzzSaga) Delete(context.Context, string, string) (*instance.Instance, instance.Operation, error) {
	return nil, instance.Operation{}, mysqlrepo.ErrNotFound
}
func (fuzzSaga) UpdateParameters(_ context.Context, tenant, id string, params map[string]any) (*instance.Instance, instance.Operation, error) {
	in, err := readyInstance(tenant, id)
	if err != nil {
		return nil, instance.Operation{}, err
	}
	op, err := in.Update(params, "op3", fuzzT0)
	return in, op, err
}
func (fuzzSaga) Bind(_ context.Context, tenant, instanceID, name, osbID string) (instance.Binding, *instance.Instance, error) {
	in, err := readyInstance(tenant, instanceID)
	if err != nil {
		return instance.Binding{}, nil, err
	}
	return instance.Binding{ID: "b1", InstanceID: in.ID, Tenant: tenant, Name: name, OSBID: osbID,
		Credentials: instance.Credentials{Username: "u", Password: "p"}, CreatedAt: fuzzT0}, in, nil
}
func (s fuzzSaga) BindOSB(ctx context.Context, tenant, instanceID, name, osbID, _ string) (instance.Binding, *instance.Instance, error) {
	return s.Bind(ctx, tenant, instanceID, name, osbID)
}
func (fuzzSaga) Unbind(context.Context, string, instance.Binding) error { return nil }
func (fuzzSaga) EnsureCDCAccount(context.Context, string) (*instance.Instance, error) {
	return nil, saga.ErrNotReady
}

type fuzzRepo struct{}

func (fuzzRepo) Get(_ context.Context, tenant, id string) (*instance.Instance, error) {
	return readyInstance(tenant, id)
}
func (fuzzRepo) GetAnyTenant(_ context.Context, id string) (*instance.Instance, error) {
	return readyInstance("acme", id)
}
func (fuzzRepo) ListAllInstances(context.Context, string, int, bool) ([]*instance.Instance, error) {
	return nil, nil
}
func (fuzzRepo) OperationAnyTenant(context.Context, string) (instance.Operation, error) {
	return instance.Operation{}, mysqlrepo.ErrNotFound
}
func (fuzzRepo) GetByOSBID(_ context.Context, tenant, osbID string) (*instance.Instance, error) {
	if osbID != "osb-ready" {
		return nil, mysqlrepo.ErrNotFound
	}
	return readyInstance(tenant, "i1")
}
func (fuzzRepo) List(context.Context, string, string, int, bool) ([]*instance.Instance, error) {
	return nil, nil
}
func (fuzzRepo) Operation(context.Context, string, string) (instance.Operation, error) {
	return instance.Operation{}, mysqlrepo.ErrNotFound
}
func (fuzzRepo) Binding(context.Context, string, string, string) (instance.Binding, error) {
	return instance.Binding{}, mysqlrepo.ErrNotFound
}
func (fuzzRepo) BindingByOSBID(context.Context, string, string, string) (instance.Binding, error) {
	return instance.Binding{}, mysqlrepo.ErrNotFound
}
func (fuzzRepo) Bindings(context.Context, string, string) ([]instance.Binding, error) {
	return nil, nil
}
func (fuzzRepo) ListMonitored(context.Context, string, int) ([]*instance.Instance, error) {
	return nil, nil
}

// readyInstance is instance i1 of tenant acme, ready, on plan p1.
func readyInstance(tenant, id string) (*instance.Instance, error) {
	if tenant != "acme" || id != "i1" {
		return nil, fmt.Errorf("instance %s: %w", id, mysqlrepo.ErrNotFound)
	}
	dp, v, prob := orderFromPlan(fuzzPlan(), "", nil, nil)
	if prob != nil {
		return nil, prob
	}
	in, _, err := instance.New(instance.Order{ID: "i1", OperationID: "op1", Tenant: tenant, Name: "orders",
		Plan: dp, Version: v, OSBID: "osb-ready"}, fuzzT0)
	if err != nil {
		return nil, err
	}
	ps := make([]instance.Placement, len(dp.Nodes))
	for i := range ps {
		ps[i] = instance.Placement{Name: instance.NodeName(i), Region: "eu", AZ: "eu-1", Host: "h", Port: 20000 + i}
	}
	if _, err := in.Place(ps, fuzzT0); err != nil {
		return nil, err
	}
	for _, n := range in.Nodes {
		if err := in.RecordNode(n.ID, instance.NodeUpdate{State: instance.NodeRunning, Address: "127.0.0.1:1", PID: 1}, fuzzT0); err != nil {
			return nil, err
		}
	}
	for _, s := range []instance.Step{instance.StepReplicating, instance.StepVerifying} {
		if err := in.Advance(s, fuzzT0); err != nil {
			return nil, err
		}
	}
	return in, in.MarkReady(fuzzT0)
}

// fuzzRoutes are the routes that take a body: method, path, OSB or not.
var fuzzRoutes = []struct {
	method, path string
	osb          bool
}{
	{http.MethodPost, "/api/v1/instances", false},
	{http.MethodPatch, "/api/v1/instances/i1", false},
	{http.MethodPost, "/api/v1/instances/i1/bindings", false},
	{http.MethodPut, "/v2/service_instances/osb-new?accepts_incomplete=true", true},
	{http.MethodPut, "/v2/service_instances/osb-ready?accepts_incomplete=true", true},
	{http.MethodPatch, "/v2/service_instances/osb-ready?accepts_incomplete=true", true},
	{http.MethodPut, "/v2/service_instances/osb-ready/service_bindings/b-1", true},
}

// FuzzRequestBodies feeds arbitrary bodies to every create/update route of
// provisioning (API and OSB) through the real chi handler: never a panic or
// a 5xx; a rejection is a 4xx problem+json (OSB routes: the OSB error object).
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, `{"name":"orders","plan_id":"p1"}`},
		{0, `{"name":"orders","plan_id":"p1","version":"10.11","region":"eu","parameters":{"max_connections":200,"character_set_server":"latin1"}}`},
		{0, `{"name":"orders","plan_id":"p1","parameters":{"max_connections":1e400}}`},
		{0, `{"name":"orders","plan_id":"p1","parameters":{"max_connections":"many","nope":1}}`},
		{0, `{"name":"Not A Name!","plan_id":"nope","version":"1"}`},
		{0, `{"name":"","plan_id":""}`},
		{1, `{"parameters":{"long_query_time":2.5}}`},
		{1, `{"parameters":{"notify":"\u0000"},"plan_id":"p2","version":"10.11"}`},
		{1, `{}`},
		{2, `{"name":"app"}`},
		{2, `{"name":null}`},
		{3, `{"service_id":"svc-mysql","plan_id":"p1","parameters":{"max_connections":100},"context":{"platform":"kubernetes"}}`},
		{3, `{"service_id":"other","plan_id":"p1"}`},
		{4, `{"service_id":"svc-mysql","plan_id":"p1"}`},
		{5, `{"service_id":"svc-mysql","plan_id":"p1","parameters":{"character_set_server":"utf8mb4"}}`},
		{5, `{"plan_id":"p9"}`},
		{6, `{"service_id":"svc-mysql","plan_id":"p1","bind_resource":{"app_guid":"x"}}`},
		{6, `[]`},
		{0, `{"name":"orders","plan_id":"p1"} trailing`},
		{3, `not json`},
		{0, ``},
	} {
		f.Add(s.route, []byte(s.body))
	}
	h, err := New(fuzzRepo{}, fuzzSaga{}, fuzzCatalog{},
		func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
		slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	routes := h.Routes()
	principal := tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:k1"}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req = req.WithContext(tenancy.WithPrincipal(req.Context(), principal))
		rec := httptest.NewRecorder()
		routes.ServeHTTP(rec, req)
		checkRejection(t, rec, rt.osb, rt.method+" "+rt.path, body)
	})
}

// checkRejection asserts a response is a success, or a 4xx in the route's
// error format; never a 5xx.
func checkRejection(t *testing.T, rec *httptest.ResponseRecorder, osb bool, route string, body []byte) {
	t.Helper()
	if rec.Code < 400 {
		return
	}
	if rec.Code >= 500 {
		t.Fatalf("%s with body %q: status %d: %s", route, body, rec.Code, rec.Body)
	}
	if osb {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"description"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Description == "" {
			t.Fatalf("%s: status %d without an OSB error body: %s", route, rec.Code, rec.Body)
		}
		return
	}
	if ct := rec.Header().Get("Content-Type"); ct != httpx.ProblemContentType {
		t.Fatalf("%s: status %d with content type %q: %s", route, rec.Code, ct, rec.Body)
	}
}

// FuzzListCursor feeds arbitrary limit and cursor query parameters to the
// instance list: a cursor it did not issue is a 400 problem, never a 5xx.
func FuzzListCursor(f *testing.F) {
	f.Add("50", "eyJhZnRlciI6ImkxIn0")
	f.Add("", "eyJhZnRlciI6MX0")
	f.Add("0", "not base64!")
	f.Add("501", "")
	f.Add("-1", "e30")
	f.Add("9999999999999999999999", strings.Repeat("A", 700))
	h, err := New(fuzzRepo{}, fuzzSaga{}, fuzzCatalog{},
		func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
		slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	routes := h.Routes()
	principal := tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantViewer, Subject: "apikey:k1"}
	f.Fuzz(func(t *testing.T, limit, cursor string) {
		q := url.Values{}
		q.Set("limit", limit)
		q.Set("cursor", cursor)
		req := httptest.NewRequest(http.MethodGet, "/api/v1/instances?"+q.Encode(), nil)
		req = req.WithContext(tenancy.WithPrincipal(req.Context(), principal))
		rec := httptest.NewRecorder()
		routes.ServeHTTP(rec, req)
		checkRejection(t, rec, false, "GET /api/v1/instances", []byte(q.Encode()))
	})
}

func (fuzzRepo) ListRouted(context.Context, string, int) ([]*instance.Instance, error) {
	return nil, nil
}
