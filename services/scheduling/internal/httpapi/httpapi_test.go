package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/scheduling/internal/httpapi"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/scheduling/internal/scheduler"
)

func server(t *testing.T) *httptest.Server {
	t.Helper()
	db := storetest.NewDB(t, "sched_http")
	repo, err := mysqlrepo.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := repo.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.LoadFile("../../../../deploy/inventory/dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Seed(ctx, inv, "test"); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	s, err := scheduler.New(scheduler.Config{}, repo, logger, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(repo, s, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter(logger, httpx.WithoutAccessLog(), httpx.WithoutTracing())
	admin := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(tenancy.WithPrincipal(r.Context(), tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "t"})))
		})
	}
	r.With(admin).Mount(httpapi.Prefix, api.Routes())
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s: error %d is not problem+json", method, path, resp.StatusCode)
	}
	return resp.StatusCode, out
}

const host = `{"id":"%s","zone":"%s","address":"127.0.0.1","ports":{"from":30000,"to":30009},"capacity":{"vcpu":%s,"memory_mb":%s,"storage_gb":100}}`

func TestBadInputNamesTheField(t *testing.T) {
	srv := server(t)
	node := `{"role":"primary","vcpu":1,"memory_mb":1024,"storage_gb":10}`
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string // in errors[].field; "" to skip
	}{
		{"host missing capacity", "POST", "/api/v1/inventory/hosts", `{"id":"h-x","zone":"eu-west-1","address":"a","ports":{"from":1,"to":2}}`, 400, "capacity"},
		{"host negative memory", "POST", "/api/v1/inventory/hosts", fmt.Sprintf(host, "h-x", "eu-west-1", "1", "-5"), 400, "capacity.memory_mb"},
		{"host zero vcpu", "POST", "/api/v1/inventory/hosts", fmt.Sprintf(host, "h-x", "eu-west-1", "0", "1024"), 400, "capacity.vcpu"},
		{"host unknown zone", "POST", "/api/v1/inventory/hosts", fmt.Sprintf(host, "h-x", "mars-1", "1", "1024"), 400, "zone"},
		{"host duplicate id", "POST", "/api/v1/inventory/hosts", fmt.Sprintf(host, "eu-west-1-h1", "eu-west-1", "1", "1024"), 409, ""},
		{"host bad id", "POST", "/api/v1/inventory/hosts", fmt.Sprintf(host, "Bad Id", "eu-west-1", "1", "1024"), 400, "id"},
		{"host unknown field", "POST", "/api/v1/inventory/hosts", `{"id":"h","colour":"red"}`, 400, "colour"},
		{"host wrong type", "POST", "/api/v1/inventory/hosts", `{"id":5}`, 400, "id"},
		{"host not json", "POST", "/api/v1/inventory/hosts", `{`, 400, ""},
		{"patch bad state", "PATCH", "/api/v1/inventory/hosts/eu-west-1-h1", `{"state":"gone"}`, 400, "state"},
		{"patch bad ports", "PATCH", "/api/v1/inventory/hosts/eu-west-1-h1", `{"ports":{"from":9,"to":1}}`, 400, "ports"},
		{"patch unknown host", "PATCH", "/api/v1/inventory/hosts/nope", `{"state":"ready"}`, 404, ""},
		{"cordon unknown host", "POST", "/api/v1/inventory/hosts/nope:cordon", ``, 404, ""},
		{"region bad id", "POST", "/api/v1/inventory/regions", `{"id":"US East"}`, 400, "id"},
		{"zone bad id", "POST", "/api/v1/inventory/zones", `{"id":"","region":"eu-west"}`, 400, "id"},
		{"region missing latency", "POST", "/api/v1/inventory/regions", `{"id":"us-east"}`, 400, "latencies"},
		{"region latency to a zone", "POST", "/api/v1/inventory/regions", `{"id":"us-east","latencies":[{"to":"eu-west-1","p95_ms":80}]}`, 400, ""},
		{"region duplicate", "POST", "/api/v1/inventory/regions", `{"id":"eu-west","latencies":[{"to":"eu-central","p95_ms":80}]}`, 409, ""},
		{"zone unknown region", "POST", "/api/v1/inventory/zones", `{"id":"x-1","region":"mars"}`, 400, "region"},
		{"zone missing pairs", "POST", "/api/v1/inventory/zones", `{"id":"eu-west-4","region":"eu-west","latencies":[{"to":"eu-west-1","p95_ms":2}]}`, 400, "latencies"},
		{"unknown region", "GET", "/api/v1/inventory/regions/nope", ``, 404, ""},
		{"unknown zone", "GET", "/api/v1/inventory/zones/nope", ``, 404, ""},
		{"bad limit", "GET", "/api/v1/inventory/hosts?limit=0", ``, 400, "limit"},
		{"bad state filter", "GET", "/api/v1/inventory/hosts?state=on", ``, 400, "state"},
		{"simulate without plan", "POST", "/api/v1/placements:simulate", `{}`, 400, "plan_id"},
		{"simulate plan and plan_id", "POST", "/api/v1/placements:simulate", `{"plan_id":"p","deployment_mode":"multi-az","nodes":[` + node + `]}`, 400, "plan_id"},
		{"simulate plan_id without catalog", "POST", "/api/v1/placements:simulate", `{"plan_id":"p"}`, 400, "plan_id"},
		{"simulate bad mode", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"everywhere","nodes":[` + node + `]}`, 400, "deployment_mode"},
		{"simulate no nodes", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"multi-az","nodes":[]}`, 400, "nodes"},
		{"simulate zero vcpu", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"multi-az","nodes":[{"role":"primary","vcpu":0,"memory_mb":1,"storage_gb":1}]}`, 400, "nodes[0].vcpu"},
		{"simulate missing role", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"multi-az","nodes":[{"vcpu":1,"memory_mb":1,"storage_gb":1}]}`, 400, "nodes[0].role"},
		{"simulate unknown region", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"multi-az","region":"mars","nodes":[` + node + `]}`, 400, "region"},
		{"simulate unknown allowed region", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"multi-az","allowed_regions":["mars"],"nodes":[` + node + `]}`, 400, "allowed_regions[0]"},
		{"simulate unknown label", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"multi-az","labels":{"gpu":"yes"},"nodes":[` + node + `]}`, 400, "labels.gpu"},
		{"simulate dr_region outside multi-region", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"multi-az","dr_region":"eu-west","nodes":[` + node + `]}`, 400, "dr_region"},
		{"simulate too big for any host", "POST", "/api/v1/placements:simulate", `{"deployment_mode":"single-az","nodes":[{"role":"primary","vcpu":1,"memory_mb":999999,"storage_gb":1}]}`, 422, ""},
		{"unknown placement", "GET", "/api/v1/placements/nope", ``, 404, ""},
		{"confirm unknown placement", "POST", "/api/v1/placements/nope:confirm", ``, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, srv, tt.method, tt.path, tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %v", code, tt.status, body)
			}
			if tt.field != "" && !strings.Contains(fmt.Sprint(body["errors"]), "field:"+tt.field+" ") {
				t.Fatalf("errors %v lack field %q", body["errors"], tt.field)
			}
		})
	}
	// Colon actions reach their handlers (not the router's 404).
	if _, body := call(t, srv, "POST", "/api/v1/placements/nope:confirm", ""); !strings.Contains(fmt.Sprint(body["detail"]), "not placed") {
		t.Fatalf("confirm route: %v", body)
	}
	if _, body := call(t, srv, "POST", "/api/v1/inventory/hosts/nope:uncordon", ""); !strings.Contains(fmt.Sprint(body["detail"]), "host nope") {
		t.Fatalf("uncordon route: %v", body)
	}
	// Nothing of the refused writes landed.
	code, body := call(t, srv, "GET", "/api/v1/inventory/hosts?limit=500", "")
	if code != 200 || len(body["items"].([]any)) != 24 {
		t.Fatalf("hosts after bad writes: %d %d", code, len(body["items"].([]any)))
	}
}

// TestRandomBodiesNeverPanic throws mutated bodies at every write route: the
// answer is always a 2xx or a 4xx problem, never a 5xx.
func TestRandomBodiesNeverPanic(t *testing.T) {
	srv := server(t)
	rng := rand.New(rand.NewPCG(1, 2))
	values := []string{`null`, `0`, `-1`, `1e308`, `""`, `"x"`, `[]`, `{}`, `true`, `0.0001`, `"eu-west-1"`, `"eu-west"`, `{"from":1,"to":0}`,
		`[{"role":"primary","vcpu":1,"memory_mb":1,"storage_gb":1}]`, `"multi-region"`, `{"a":"b"}`, `-9223372036854775808`, `9223372036854775807`}
	fields := map[string][]string{
		"/api/v1/inventory/hosts":              {"id", "zone", "region", "address", "ports", "capacity", "labels", "price", "state"},
		"/api/v1/inventory/regions":            {"id", "name", "labels", "latencies"},
		"/api/v1/inventory/zones":              {"id", "region", "name", "latencies"},
		"/api/v1/placements:simulate":          {"plan", "engine", "deployment_mode", "nodes", "region", "dr_region", "allowed_regions", "labels", "tenant_id"},
		"/api/v1/inventory/hosts/eu-west-1-h2": {"address", "ports", "capacity", "labels", "price", "state"},
	}
	for i := 0; i < 600; i++ {
		for path, fs := range fields {
			var parts []string
			for _, f := range fs {
				if rng.IntN(2) == 0 {
					parts = append(parts, fmt.Sprintf("%q:%s", f, values[rng.IntN(len(values))]))
				}
			}
			method := "POST"
			if strings.Count(path, "/") == 5 && strings.Contains(path, "hosts/") {
				method = "PATCH"
			}
			code, body := call(t, srv, method, path, "{"+strings.Join(parts, ",")+"}")
			if code >= 500 {
				t.Fatalf("%s %s {%s}: %d %v", method, path, strings.Join(parts, ","), code, body)
			}
		}
	}
}
