package catalog_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog"
)

// gatewayStandIn serves GET /internal/v1/tenants/{id}/quota like the gateway
// (services never import each other): signed platform-admin requests only,
// 404 with the unknown-tenant problem for tenants it does not store, 503
// while down.
type gatewayStandIn struct {
	srv     *httptest.Server
	calls   atomic.Int64
	down    atomic.Bool
	mu      sync.Mutex
	tenants map[string]bool
}

func newGatewayStandIn(t *testing.T, tenants ...string) *gatewayStandIn {
	g := &gatewayStandIn{tenants: map[string]bool{}}
	for _, id := range tenants {
		g.tenants[id] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /internal/v1/tenants/{id}/quota", func(w http.ResponseWriter, r *http.Request) {
		if p, ok := tenancy.PrincipalFrom(r.Context()); !ok || p.Role != tenancy.RolePlatformAdmin {
			http.Error(w, "services only", http.StatusForbidden)
			return
		}
		g.mu.Lock()
		known := g.tenants[r.PathValue("id")]
		g.mu.Unlock()
		switch {
		case g.down.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
		case !known:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]any{"type": "https://canopy.dev/problems/unknown-tenant", "title": "Not Found", "status": 404})
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"max_instances":0,"max_vcpu":0,"max_memory_mb":0,"max_storage_gb":0}`))
		}
	})
	verified := tenancy.Middleware(tenancy.AudienceGateway, []byte(secret))(mux)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.calls.Add(1)
		verified.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// TestBrokerCredentialTenantMustExist: a broker credential is bound only to
// a tenant the gateway knows; an unknown one is a 422 on "tenant", and a
// gateway that cannot answer is a 503; neither writes anything.
func TestBrokerCredentialTenantMustExist(t *testing.T) {
	gw := newGatewayStandIn(t, "acme")
	e := startWith(t, storetest.NewConfig(t, "catalog_credtenant"), func(c *catalog.Config) { c.GatewayURL = gw.srv.URL })
	admin := tenancy.RolePlatformAdmin
	create := func(name, tenant string) response {
		t.Helper()
		body := map[string]any{"name": name}
		if tenant != "" {
			body["tenant"] = tenant
		}
		return e.do(admin, "POST", "/api/v1/catalog/broker-credentials", body, nil)
	}
	count := func() int {
		t.Helper()
		r := e.do(admin, "GET", "/api/v1/catalog/broker-credentials", nil, nil)
		require.Equal(t, 200, r.Status, string(r.Body))
		return len(r.json(t)["items"].([]any))
	}

	r := create("cf-acme", "acme")
	require.Equal(t, 201, r.Status, string(r.Body))
	require.Equal(t, "acme", r.json(t)["tenant"])
	require.Equal(t, int64(1), gw.calls.Load(), "the gateway was asked")

	r = create("cf-ghost", "ghost")
	require.Equal(t, 422, r.Status, string(r.Body))
	require.Equal(t, []string{"tenant"}, fieldsOf(t, r))
	require.Equal(t, 1, count(), "nothing written for an unknown tenant")

	gw.down.Store(true)
	r = create("cf-acme-2", "acme")
	require.Equal(t, 503, r.Status, string(r.Body))
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	gw.srv.Close()
	r = create("cf-acme-3", "acme")
	require.Equal(t, 503, r.Status, string(r.Body))
	require.Equal(t, 1, count(), "nothing written while the gateway cannot answer")

	// A platform-wide credential names no tenant: nothing to check.
	calls := gw.calls.Load()
	r = create("cf-wide", "")
	require.Equal(t, 201, r.Status, string(r.Body))
	require.Equal(t, calls, gw.calls.Load())
}
