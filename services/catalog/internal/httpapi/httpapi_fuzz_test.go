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
	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
	"github.com/canopy-platform/canopy/services/catalog/internal/tenantclient"
)

var fuzzT0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// seedRepo stands in for MySQL so the real handlers can be fuzzed without a
// database: it knows the seed plans, applies updates with the domain's rules
// (the handler's fn) and accepts every create.
type seedRepo struct{ plans []plan.Plan }

func (s *seedRepo) GetPlan(_ context.Context, id string) (plan.Plan, error) {
	for _, p := range s.plans {
		if p.ID == id {
			return p, nil
		}
	}
	return plan.Plan{}, fmt.Errorf("plan %s: %w", id, mysqlrepo.ErrNotFound)
}
func (s *seedRepo) ListPlans(context.Context, mysqlrepo.PlanQuery) ([]plan.Plan, error) {
	return s.plans, nil
}
func (s *seedRepo) CreatePlan(context.Context, plan.Plan, *mysqlrepo.IdempotentResponse) error {
	return nil
}
func (s *seedRepo) UpdatePlan(ctx context.Context, id string, fn func(p plan.Plan) (plan.Plan, mysqlrepo.Change, error)) (plan.Plan, error) {
	cur, err := s.GetPlan(ctx, id)
	if err != nil {
		return plan.Plan{}, err
	}
	next, _, err := fn(cur)
	return next, err
}
func (s *seedRepo) LookupIdempotent(context.Context, string, string) (mysqlrepo.IdempotentResponse, bool, error) {
	return mysqlrepo.IdempotentResponse{}, false, nil
}
func (s *seedRepo) CreateCredential(context.Context, brokercred.Credential, *mysqlrepo.IdempotentResponse) error {
	return nil
}
func (s *seedRepo) GetCredential(context.Context, string) (brokercred.Credential, error) {
	return brokercred.Credential{}, mysqlrepo.ErrNotFound
}
func (s *seedRepo) ListCredentials(context.Context, *mysqlrepo.CredentialCursor, int) ([]brokercred.Credential, error) {
	return nil, nil
}
func (s *seedRepo) RevokeCredential(context.Context, string, time.Time) error { return nil }

// knownTenants knows only "acme", like a gateway with one tenant.
type knownTenants struct{}

func (knownTenants) Check(_ context.Context, t tenancy.ID) error {
	if t == "acme" {
		return nil
	}
	return tenantclient.ErrUnknownTenant
}

func fuzzHandler(f *testing.F) http.Handler {
	f.Helper()
	plans, err := plan.Seed(fuzzT0)
	if err != nil {
		f.Fatal(err)
	}
	h, err := New(&seedRepo{plans: plans}, knownTenants{}, slog.New(slog.DiscardHandler), func() time.Time { return fuzzT0 }, nil)
	if err != nil {
		f.Fatal(err)
	}
	routes := h.Routes()
	admin := tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		routes.ServeHTTP(w, r.WithContext(tenancy.WithPrincipal(r.Context(), admin)))
	})
}

// checkProblem asserts a response is a success or a 4xx problem+json.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, what string) {
	t.Helper()
	if rec.Code < 400 {
		return
	}
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != httpx.ProblemContentType {
		t.Fatalf("%s: status %d with content type %q", what, rec.Code, ct)
	}
}

const fuzzPlanBody = `{"name":"mysql-fuzz","display_name":"MySQL fuzz","description":"d","engine":"mysql","versions":["8.0","8.4"],
"default_version":"8.4","deployment_mode":"multi-az","nodes":{"count":2,"zones":2,"groups":[{"role":"primary","region_role":"primary","count":1},
{"role":"replica","region_role":"primary","count":1}]},"resources":{"vcpu":1,"memory_mb":1024,"storage_gb":10},"replication_mode":"async",
"slo":{"availability":99.9,"rpo_seconds":60,"rto_seconds":120},"prices":{"currency":"USD","node_hour":"0.10","storage_gb_hour":"0.000140"},
"parameters_schema":{"type":"object","properties":{"max_connections":{"type":"integer","minimum":10}}},
"maintenance_info":{"version":"1.0.0","description":"x"}}`

var fuzzBodyRoutes = []struct{ method, path string }{
	{http.MethodPost, "/plans"},
	{http.MethodPatch, "/plans/" + plan.MySQLHAID},
	{http.MethodPost, "/broker-credentials"},
}

// FuzzRequestBodies feeds arbitrary bodies to the catalog's create and patch
// routes through the real chi handler: never a panic or a 5xx, every
// rejection a 4xx problem+json.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, fuzzPlanBody},
		{0, strings.Replace(fuzzPlanBody, `"count":2`, `"count":-2`, 1)},
		{0, strings.Replace(fuzzPlanBody, `"vcpu":1`, `"vcpu":1e308`, 1)},
		{0, strings.Replace(fuzzPlanBody, `{"type":"object"`, `{"type":"nonsense","$ref":"http://x/"`, 1)},
		{0, strings.Replace(fuzzPlanBody, `"node_hour":"0.10"`, `"node_hour":"-1e999"`, 1)},
		{0, `{"name":"x"}`},
		{1, `{"description":"new words","versions":["8.0","8.4"],"default_version":"8.4"}`},
		{1, `{"resources":{"vcpu":0},"nodes":{"count":0,"groups":[]},"parameters_schema":null}`},
		{1, `{"parameters_schema":{"type":"object","properties":{"a":{"pattern":"("}}}}`},
		{1, `{"name":""}`},
		{2, `{"name":"cf-prod","tenant":"acme"}`},
		{2, `{"name":"","tenant":"Not A Tenant"}`},
		{2, `{"tenant":null}`},
		{0, `[]`},
		{1, ``},
	} {
		f.Add(s.route, []byte(s.body), "")
	}
	f.Add(uint8(0), []byte(fuzzPlanBody), "key-1")
	f.Add(uint8(2), []byte(`{"name":"a"}`), "\x00bad key")
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte, idemKey string) {
		rt := fuzzBodyRoutes[int(route)%len(fuzzBodyRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if idemKey != "" {
			req.Header[idempotency.Header] = []string{idemKey}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkProblem(t, rec, fmt.Sprintf("%s %s %q", rt.method, rt.path, body))
		if rec.Code < 300 && rec.Code != http.StatusNoContent && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("status %d with a body that is not JSON: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzListCursor feeds arbitrary limit and cursor parameters to the list
// routes: a cursor the catalog did not issue is a 400 problem, never a 5xx.
func FuzzListCursor(f *testing.F) {
	f.Add(uint8(0), "50", "eyJuIjoibXlzcWwtaGEifQ")
	f.Add(uint8(1), "", "eyJ0IjoiMjAyNS0wMS0wMlQwMzowNDowNVoiLCJpIjoiYyJ9")
	f.Add(uint8(2), "0", "not base64!")
	f.Add(uint8(0), "501", "e30")
	f.Add(uint8(1), "-1", strings.Repeat("A", 600))
	f.Add(uint8(2), "1", "bnVsbA")
	h := fuzzHandler(f)
	paths := []string{"/plans", "/broker-credentials", "/services"}
	f.Fuzz(func(t *testing.T, route uint8, limit, cursor string) {
		q := url.Values{}
		q.Set("limit", limit)
		q.Set("cursor", cursor)
		path := paths[int(route)%len(paths)] + "?" + q.Encode()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		checkProblem(t, rec, "GET "+path)
	})
}
