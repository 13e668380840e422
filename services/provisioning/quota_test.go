package provisioning

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// gatewayStandIn serves GET /internal/v1/tenants/{id}/quota like the gateway
// (services never import each other): only requests signed with the internal
// secret by a platform-admin identity, 404 with the unknown-tenant problem
// for tenants it does not store, 503 for tenants in down.
type gatewayStandIn struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	quotas map[string]tenancy.Quota
	down   map[string]bool
}

func newGatewayStandIn(t testing.TB) *gatewayStandIn {
	g := &gatewayStandIn{quotas: map[string]tenancy.Quota{}, down: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /internal/v1/tenants/{id}/quota", func(w http.ResponseWriter, r *http.Request) {
		if p, ok := tenancy.PrincipalFrom(r.Context()); !ok || p.Role != tenancy.RolePlatformAdmin {
			http.Error(w, "services only", http.StatusForbidden)
			return
		}
		g.mu.Lock()
		q, ok := g.quotas[r.PathValue("id")]
		down := g.down[r.PathValue("id")]
		g.mu.Unlock()
		switch {
		case down:
			w.WriteHeader(http.StatusServiceUnavailable)
		case !ok:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]any{"type": "https://canopy.dev/problems/unknown-tenant", "title": "Not Found", "status": 404})
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(q)
		}
	})
	verified := tenancy.Middleware(tenancy.AudienceGateway, []byte(testSecret))(mux)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.calls.Add(1)
		verified.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// TestQuotaFromGateway: the quota set through the gateway's API is the one
// enforced; a tenant the gateway does not know is refused (403), not given
// the configured quota; an unreachable gateway refuses orders (503) instead
// of admitting them unchecked.
func TestQuotaFromGateway(t *testing.T) {
	e := newEnv(t)
	gw := newGatewayStandIn(t)
	gw.quotas["gw-small"] = tenancy.Quota{MaxInstances: 1, MaxVCPU: 2}
	gw.down["gw-down"] = true
	s := newStack(t, e, func(c *Config) {
		c.GatewayURL = gw.srv.URL
		// Ignored for tenants the gateway stores...
		c.Quotas = map[string]Quota{"gw-small": {}}
		// ...and so is the default: it does not cover unknown tenants.
		c.DefaultQuota = Quota{MaxVCPU: 1}
	})
	s.start()

	order := func(tenant, name, plan string) response {
		t.Helper()
		c := s.as(tenant)
		c.t = t
		return c.do("POST", "/api/v1/instances", map[string]any{"name": name, "plan_id": plan})
	}
	refusedFor := func(r response, quota string) {
		t.Helper()
		if r.status != http.StatusUnprocessableEntity || r.json(t)["quota"] != quota {
			t.Fatalf("want 422 naming quota %s, got %d %s", quota, r.status, r.body)
		}
	}

	// The gateway's max_vcpu 2 refuses 3 × 2 vCPU, though the config allows it.
	refusedFor(order("gw-small", "big", planMySQLHA), tenancy.QuotaVCPU)
	// Its max_instances 1 admits one instance and refuses the next.
	r := order("gw-small", "one", planRedisDev)
	if r.status != http.StatusAccepted {
		t.Fatalf("order within the gateway's quota: %d %s", r.status, r.body)
	}
	id := r.json(t)["instance"].(map[string]any)["id"].(string)
	refusedFor(order("gw-small", "two", planRedisDev), tenancy.QuotaInstances)

	// A tenant the gateway does not know gets no instances: not the
	// configured default, not unlimited, and not a 503 to be retried.
	for _, plan := range []string{planMySQLHA, planRedisDev} {
		r := order("elsewhere", "any", plan)
		if r.status != http.StatusForbidden || r.header.Get("Content-Type") != "application/problem+json" ||
			r.json(t)["type"] != "https://canopy.dev/problems/unknown-tenant" || r.json(t)["title"] != "Tenant unknown" {
			t.Fatalf("order by an unknown tenant: want 403 unknown-tenant problem, got %d %v %s", r.status, r.header, r.body)
		}
	}
	// Over OSB (the catalog forwards with the broker credential's tenant)
	// too, in the broker's error format.
	osb := s.as("elsewhere")
	osb.t = t
	if r := osb.do("PUT", "/v2/service_instances/osb-unknown?accepts_incomplete=true", map[string]any{
		"service_id": serviceRedis, "plan_id": planRedisDev, "organization_guid": "org", "space_guid": "space"}, "X-Broker-API-Version", "2.17"); r.status != http.StatusForbidden {
		t.Fatalf("OSB provision by an unknown tenant: want 403, got %d %s", r.status, r.body)
	}
	if l := osb.do("GET", "/api/v1/instances", nil); l.status != http.StatusOK || len(l.json(t)["items"].([]any)) != 0 {
		t.Fatalf("refused orders left instances: %d %s", l.status, l.body)
	}

	// The gateway failing, then unreachable: refused with 503, nothing created.
	unavailable := func(tenant string) {
		t.Helper()
		r := order(tenant, "any", planRedisDev)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Content-Type") != "application/problem+json" || r.header.Get("Retry-After") == "" {
			t.Fatalf("order without a readable quota: %d %v %s", r.status, r.header, r.body)
		}
		if d := r.json(t)["detail"]; d != "quota service unavailable, retry" {
			t.Errorf("detail %q", d)
		}
		c := s.as(tenant)
		c.t = t
		if l := c.do("GET", "/api/v1/instances", nil); l.status != http.StatusOK || len(l.json(t)["items"].([]any)) != 0 {
			t.Errorf("refused order left instances: %d %s", l.status, l.body)
		}
	}
	unavailable("gw-down")
	calls := gw.calls.Load()
	gw.srv.Close()
	unavailable("gw-closed")
	if calls == 0 {
		t.Error("the gateway stand-in was never asked")
	}

	c := s.as("gw-small")
	c.t = t
	c.waitState(id, readyWithin, "ready")
}
