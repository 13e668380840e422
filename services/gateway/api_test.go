package gateway_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

func TestIdempotentCreate(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"id": "idem", "name": "Idem"}
	first := e.do("POST", "/api/v1/tenants", e.adminKey, body, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusCreated, first.StatusCode, "%s", first.Body)
	again := e.do("POST", "/api/v1/tenants", e.adminKey, body, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusCreated, again.StatusCode)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(first.Body), string(again.Body))
	validate(t, again)
	other := e.do("POST", "/api/v1/tenants", e.adminKey, map[string]any{"id": "idem", "name": "Other"}, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusUnprocessableEntity, other.StatusCode)
	validate(t, other)
	// Without the key, a second create is a conflict.
	dup := e.do("POST", "/api/v1/tenants", e.adminKey, body)
	require.Equal(t, http.StatusConflict, dup.StatusCode)
	validate(t, dup)

	// A replayed key creation returns the same secret, which still works.
	kb := map[string]any{"name": "ci", "role": "tenant-member"}
	k1 := e.do("POST", "/api/v1/tenants/idem/api-keys", e.adminKey, kb, "Idempotency-Key", "key-1")
	k2 := e.do("POST", "/api/v1/tenants/idem/api-keys", e.adminKey, kb, "Idempotency-Key", "key-1")
	require.Equal(t, k1.json(t)["key"], k2.json(t)["key"])
	list := e.do("GET", "/api/v1/tenants/idem/api-keys", e.adminKey, nil).json(t)["items"].([]any)
	require.Len(t, list, 1, "replay must not create a second key")
}

func TestInputValidation(t *testing.T) {
	e := newEnv(t)
	keys := e.tenantWithKeys("acme")
	cases := []struct {
		name, method, path, body string
		want                     int
		field                    string
	}{
		{"unknown field", "POST", "/api/v1/tenants", `{"id":"x1","name":"X","colour":"red"}`, 400, "colour"},
		{"wrong type", "POST", "/api/v1/tenants", `{"id":"x1","name":7}`, 400, "name"},
		{"missing name", "POST", "/api/v1/tenants", `{"id":"x1"}`, 400, "name"},
		{"bad slug", "POST", "/api/v1/tenants", `{"id":"Not A Slug","name":"X"}`, 400, "id"},
		{"oversize name", "POST", "/api/v1/tenants", `{"id":"x1","name":"` + strings.Repeat("n", 201) + `"}`, 400, "name"},
		{"bad rate limit", "POST", "/api/v1/tenants", `{"id":"x1","name":"X","rate_limit":{"requests_per_second":0,"burst":1}}`, 400, "rate_limit.requests_per_second"},
		{"negative quota", "PUT", "/api/v1/tenants/acme/quota", `{"max_instances":-1,"max_vcpu":1,"max_memory_mb":1,"max_storage_gb":1}`, 400, "max_instances"},
		{"platform role key", "POST", "/api/v1/tenants/acme/api-keys", `{"name":"x","role":"platform-admin"}`, 400, "role"},
		{"unknown role", "POST", "/api/v1/tenants/acme/api-keys", `{"name":"x","role":"root"}`, 400, "role"},
		{"oversize key name", "POST", "/api/v1/tenants/acme/api-keys", `{"name":"` + strings.Repeat("k", 101) + `","role":"tenant-viewer"}`, 400, "name"},
		{"bad limit", "GET", "/api/v1/tenants?limit=0", ``, 400, "limit"},
		{"bad cursor", "GET", "/api/v1/tenants?cursor=!!!", ``, 400, "cursor"},
		{"not json", "POST", "/api/v1/tenants", `{"id":`, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := e.do(tc.method, tc.path, e.adminKey, body)
			require.Equal(t, tc.want, r.StatusCode, "%s", r.Body)
			if tc.field != "" {
				errs := r.json(t)["errors"].([]any)
				var fields []string
				for _, fe := range errs {
					fields = append(fields, fe.(map[string]any)["field"].(string))
				}
				require.Contains(t, fields, tc.field)
			}
			{
				validate(t, r)
			}
		})
	}
	// Nothing was half-written.
	r := e.do("GET", "/api/v1/tenants", e.adminKey, nil)
	require.Len(t, r.json(t)["items"].([]any), 1)
	require.Equal(t, http.StatusNotFound, e.do("GET", "/api/v1/tenants/x1", e.adminKey, nil).StatusCode)
	// A tenant-admin cannot grant itself platform-admin either.
	r = e.do("POST", "/api/v1/tenants/acme/api-keys", keys[tenancy.RoleTenantAdmin], `{"name":"x","role":"platform-admin"}`)
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
}

func TestPaginationAndAudit(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"p1", "p2", "p3"} {
		e.tenantWithKeys(id)
	}
	var seen []string
	cursor := ""
	for {
		r := e.do("GET", "/api/v1/tenants?limit=2"+cursor, e.adminKey, nil)
		require.Equal(t, http.StatusOK, r.StatusCode)
		validate(t, r)
		m := r.json(t)
		for _, it := range m["items"].([]any) {
			seen = append(seen, it.(map[string]any)["id"].(string))
		}
		if m["next_cursor"] == nil {
			break
		}
		cursor = "&cursor=" + m["next_cursor"].(string)
	}
	require.Equal(t, []string{"p1", "p2", "p3"}, seen)

	r := e.do("GET", "/api/v1/audit?tenant=p2&limit=500", e.adminKey, nil)
	require.Equal(t, http.StatusOK, r.StatusCode)
	validate(t, r)
	items := r.json(t)["items"].([]any)
	require.Len(t, items, 3, "three key creations on p2") // the tenant POST itself has no tenant in its path
	for _, it := range items {
		m := it.(map[string]any)
		require.Equal(t, "p2", m["tenant_id"])
		require.Equal(t, "POST", m["method"])
		require.Equal(t, float64(201), m["status"])
		require.Equal(t, "platform-admin", m["role"])
		require.Equal(t, "bootstrap", m["key_id"])
	}
}

func TestGeneratedAdminKeyAndPublicRoutes(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, func(c *gateway.Config) { c.AdminKey = ""; c.InternalSecret = testSecret; c.StateDir = dir })
	b, err := os.ReadFile(filepath.Join(dir, "admin-key"))
	require.NoError(t, err)
	st, err := os.Stat(filepath.Join(dir, "admin-key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	key := strings.TrimSpace(string(b))
	require.True(t, strings.HasPrefix(key, "cnp_"))
	require.Equal(t, http.StatusOK, e.do("GET", "/api/v1/tenants", key, nil).StatusCode)
	require.Equal(t, http.StatusUnauthorized, e.do("GET", "/api/v1/tenants", testAdminKey, nil).StatusCode)

	r := e.do("GET", "/", "", nil)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, string(r.Body), "/api/v1/openapi.yaml")
	r = e.do("GET", "/api/v1/openapi.yaml", "", nil)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, string(r.Body), "openapi: 3.0.3")
	// OSB goes through untouched: Basic auth reaches the catalog, forged identity does not.
	r = e.do("GET", "/v2/catalog", "", nil, "Authorization", "Basic YnJva2VyOnNlY3JldA==", tenancy.RoleHeader, "platform-admin")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "Basic YnJva2VyOnNlY3JldA==", r.Header.Get("X-Seen-Authorization"))
	require.Empty(t, r.Header.Get("X-Seen-Role"))
	for _, p := range []string{"/livez", "/readyz"} {
		require.Equal(t, http.StatusOK, e.do("GET", p, "", nil).StatusCode, p)
	}
	for _, p := range []string{"/livez", "/readyz", "/metrics"} {
		require.Equal(t, http.StatusOK, e.doAt(e.internal, "GET", p, "", nil).StatusCode, "internal %s", p)
	}
}
