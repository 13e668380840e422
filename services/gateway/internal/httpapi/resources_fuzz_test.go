package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/apikey"
	"github.com/canopy-platform/canopy/services/gateway/internal/audit"
	"github.com/canopy-platform/canopy/services/gateway/internal/tenant"
)

// acceptStore stands in for MySQL: tenant acme exists, every write succeeds,
// lists are empty. Validation is the handlers' own, so nothing is lost.
type acceptStore struct{}

func (acceptStore) CreateTenant(context.Context, tenant.Tenant) error { return nil }
func (acceptStore) Tenant(ctx context.Context) (tenant.Tenant, error) {
	id, _ := tenancy.FromContext(ctx)
	if id != "acme" {
		return tenant.Tenant{}, fmt.Errorf("tenant %s: %w", id, tenant.ErrNotFound)
	}
	return tenant.Tenant{ID: id, Name: "Acme"}, nil
}
func (acceptStore) ListTenants(context.Context, string, int) ([]tenant.Tenant, error) {
	return nil, nil
}
func (acceptStore) SetQuota(context.Context, tenancy.Quota, time.Time) error        { return nil }
func (acceptStore) SetRateLimit(context.Context, tenant.RateLimit, time.Time) error { return nil }
func (acceptStore) CreateKey(context.Context, apikey.Key) error                     { return nil }
func (acceptStore) Keys(context.Context, string, int) ([]apikey.Key, error)         { return nil, nil }
func (acceptStore) RevokeKey(context.Context, string, time.Time) (apikey.Key, error) {
	return apikey.Key{}, nil
}
func (acceptStore) ListAudit(context.Context, tenancy.ID, uint64, int) ([]audit.Entry, error) {
	return nil, nil
}

// fuzzRouter mounts the gateway's own resource handlers (no proxy, Redis or
// authentication: the principal is given) on their real paths.
func fuzzRouter(role tenancy.Role) http.Handler {
	a := &api{Deps: Deps{Store: acceptStore{}, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Unix(1_700_000_000, 0) }}, limits: map[tenancy.ID]*cachedLimit{}}
	p := tenancy.Principal{Role: role, Subject: "apikey:k1"}
	if role != tenancy.RolePlatformAdmin {
		p.Tenant = "acme"
	}
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(tenancy.WithPrincipal(r.Context(), p)))
		})
	})
	r.Post("/api/v1/tenants", a.createTenant)
	r.Get("/api/v1/tenants", a.listTenants)
	r.Route("/api/v1/tenants/{"+tenantParam+"}", func(r chi.Router) {
		r.Post("/api-keys", a.createKey)
		r.Get("/api-keys", a.listKeys)
		r.Put("/quota", a.putQuota)
		r.Put("/rate-limit", a.putRateLimit)
	})
	r.Get("/api/v1/audit", a.listAudit)
	return r
}

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

var fuzzBodyRoutes = []struct{ method, path string }{
	{http.MethodPost, "/api/v1/tenants"},
	{http.MethodPost, "/api/v1/tenants/acme/api-keys"},
	{http.MethodPut, "/api/v1/tenants/acme/quota"},
	{http.MethodPut, "/api/v1/tenants/acme/rate-limit"},
}

// FuzzRequestBodies feeds arbitrary bodies to the gateway's create and update
// routes as a platform admin or a tenant admin: never a panic or a 5xx,
// every rejection a 4xx problem+json.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, `{"id":"acme","name":"Acme","rate_limit":{"requests_per_second":10,"burst":20},"quota":{"max_instances":5,"max_vcpu":8,"max_memory_mb":16384,"max_storage_gb":100}}`},
		{0, `{"id":"Not A Tenant","name":"","rate_limit":{"requests_per_second":0,"burst":-1,"default":true},"quota":{"max_vcpu":-1}}`},
		{0, `{"id":"a","name":"b","quota":{"max_instances":9223372036854775807,"max_vcpu":1e308,"max_memory_mb":0,"max_storage_gb":0}}`},
		{1, `{"name":"ci","role":"tenant-member"}`},
		{1, `{"name":"ci","role":"platform-admin"}`},
		{1, `{"name":"` + strings.Repeat("x", 300) + `","role":"root"}`},
		{2, `{"max_instances":1,"max_vcpu":0.5,"max_memory_mb":1,"max_storage_gb":1}`},
		{2, `{"max_instances":"1"}`},
		{3, `{"requests_per_second":100,"burst":100}`},
		{3, `{"requests_per_second":1e9}`},
		{3, `null`},
		{0, ``},
	} {
		f.Add(s.route, false, []byte(s.body))
		f.Add(s.route, true, []byte(s.body))
	}
	admin, tenantAdmin := fuzzRouter(tenancy.RolePlatformAdmin), fuzzRouter(tenancy.RoleTenantAdmin)
	f.Fuzz(func(t *testing.T, route uint8, asTenant bool, body []byte) {
		rt := fuzzBodyRoutes[int(route)%len(fuzzBodyRoutes)]
		h := admin
		if asTenant {
			h = tenantAdmin
		}
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkProblem(t, rec, fmt.Sprintf("%s %s %q", rt.method, rt.path, body))
	})
}

// FuzzListCursor feeds arbitrary limit and cursor parameters to the list
// routes: a cursor the gateway did not issue is a 400 problem, never a 5xx.
func FuzzListCursor(f *testing.F) {
	f.Add(uint8(0), "50", encodeCursorString("acme"))
	f.Add(uint8(1), "", encodeCursorString("01hzzzzzzzzzzzzzzzzzzzzzzz"))
	f.Add(uint8(2), "10", "12345")
	f.Add(uint8(2), "0", "0")
	f.Add(uint8(2), "501", "18446744073709551616")
	f.Add(uint8(0), "-1", "not base64!")
	f.Add(uint8(1), "1", strings.Repeat("A", 400))
	h := fuzzRouter(tenancy.RolePlatformAdmin)
	paths := []string{"/api/v1/tenants", "/api/v1/tenants/acme/api-keys", "/api/v1/audit"}
	f.Fuzz(func(t *testing.T, route uint8, limit, cursor string) {
		q := url.Values{"limit": {limit}, "cursor": {cursor}}
		path := paths[int(route)%len(paths)] + "?" + q.Encode()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		checkProblem(t, rec, "GET "+path)
	})
}

func encodeCursorString(s string) string { return *encodeCursor(s) }
