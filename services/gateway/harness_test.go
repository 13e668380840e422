package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

const (
	testAdminKey = "test-admin-key-0123456789"
	testSecret   = "test-internal-secret-0123456789"
)

// upstream is a stand-in service: it verifies the gateway's signed identity
// like a real service does and echoes it.
type upstream struct {
	srv   *httptest.Server
	calls atomic.Int64
	body  []byte
	// signed is the last set of identity headers received, as an attacker
	// on the internal network could capture it.
	signed atomic.Pointer[http.Header]
}

func newUpstream(t testing.TB, body []byte) *upstream {
	u := &upstream{body: body}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Seen-Tenant", string(p.Tenant))
		w.Header().Set("X-Seen-Role", string(p.Role))
		w.Header().Set("X-Seen-Authorization", r.Header.Get("Authorization"))
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		if u.body != nil {
			_, _ = w.Write(u.body)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "tenant": p.Tenant, "role": p.Role})
	})
	// The stand-in serves both catalog and scheduling routes; each is signed
	// for its own audience.
	asCatalog := tenancy.Middleware(tenancy.AudienceCatalog, []byte(testSecret))(echo)
	asScheduling := tenancy.Middleware(tenancy.AudienceScheduling, []byte(testSecret))(echo)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		captured := http.Header{}
		for k, v := range r.Header {
			if strings.HasPrefix(k, tenancy.HeaderPrefix) {
				captured[k] = v
			}
		}
		u.signed.Store(&captured)
		if strings.HasPrefix(r.URL.Path, "/v2/") {
			// OSB: no gateway identity; the service checks Basic auth itself
			// (here: every password but "wrong" is right).
			if _, pass, _ := r.BasicAuth(); pass == "wrong" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("X-Seen-Authorization", r.Header.Get("Authorization"))
			w.Header().Set("X-Seen-Role", r.Header.Get(tenancy.RoleHeader))
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"services":[]}`))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/v1/catalog/") {
			asCatalog.ServeHTTP(w, r)
			return
		}
		asScheduling.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

type env struct {
	t        testing.TB
	base     string
	internal string // base URL of the internal listener
	catalog  *upstream
	client   *http.Client
	adminKey string
	svc      *gateway.Service
	db       *store.DB // the gateway's database, for tests that age rows
}

type envOption func(*gateway.Config)

func randomPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "test:gw:" + hex.EncodeToString(b[:]) + ":"
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	return newEnvOn(t, storetest.NewDB(t, t.Name()), opts...)
}

// newEnvOn is newEnv on db: two envs on one database (each with its own
// handle, as two processes have) are two replicas of the gateway.
func newEnvOn(t testing.TB, db *store.DB, opts ...envOption) *env {
	t.Helper()
	cat := newUpstream(t, nil)
	cfg := gateway.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.InternalAddr = "127.0.0.1:0"
	cfg.StateDir = t.TempDir()
	cfg.AdminKey = testAdminKey
	cfg.InternalSecret = testSecret
	cfg.CatalogURL = cat.srv.URL
	cfg.SchedulingURL = cat.srv.URL
	cfg.RateLimitPrefix = randomPrefix()
	cfg.RateLimitRPS, cfg.RateLimitBurst = 1000, 1000
	cfg.AccessLog = false
	cfg.OpenAPIPath = filepath.Join("..", "..", "api", "openapi", "base.yaml")
	for _, o := range opts {
		o(&cfg)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() {
		ctx := context.Background()
		for _, pattern := range []string{"rate:" + cfg.RateLimitPrefix + "*", cfg.RateLimitPrefix + "*"} {
			if keys, err := rdb.Keys(ctx, pattern).Result(); err == nil && len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
		}
		_ = rdb.Close()
	})
	svc, err := gateway.New(cfg, gateway.Deps{Logger: obs.NopLogger(), Registry: obs.NewRegistry(), DB: db, Redis: rdb})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("gateway did not stop")
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("gateway stopped before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not start")
	}
	return &env{t: t, base: "http://" + svc.Addr(), internal: "http://" + svc.InternalAddr(), catalog: cat, client: &http.Client{Timeout: 10 * time.Second}, adminKey: testAdminKey, svc: svc, db: db}
}

type response struct {
	*http.Response
	Body []byte
	req  *http.Request
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

func (e *env) do(method, path, key string, body any, headers ...string) response {
	e.t.Helper()
	return e.doAt(e.base, method, path, key, body, headers...)
}

// doAt is do against base (e.base or e.internal).
func (e *env) doAt(base, method, path, key string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	var raw []byte
	if body != nil {
		switch b := body.(type) {
		case string:
			raw = []byte(b)
		default:
			var err error
			raw, err = json.Marshal(b)
			require.NoError(e.t, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	req.Body = io.NopCloser(bytes.NewReader(raw))
	if raw != nil {
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
	}
	return response{Response: resp, Body: b, req: req}
}

// tenantWithKeys creates tenant id and one key per tenant role.
func (e *env) tenantWithKeys(id string) map[tenancy.Role]string {
	e.t.Helper()
	r := e.do("POST", "/api/v1/tenants", e.adminKey, map[string]any{"id": id, "name": "Tenant " + id})
	require.Equal(e.t, http.StatusCreated, r.StatusCode, "%s", r.Body)
	keys := map[tenancy.Role]string{tenancy.RolePlatformAdmin: e.adminKey}
	for _, role := range []tenancy.Role{tenancy.RoleTenantAdmin, tenancy.RoleTenantMember, tenancy.RoleTenantViewer} {
		r := e.do("POST", "/api/v1/tenants/"+id+"/api-keys", e.adminKey, map[string]any{"name": string(role), "role": string(role)})
		require.Equal(e.t, http.StatusCreated, r.StatusCode, "%s", r.Body)
		keys[role] = r.json(e.t)["key"].(string)
	}
	return keys
}

func TestMain(m *testing.M) {
	if benchHelper() { // a helper process of BenchmarkCatalogThroughGateway
		return
	}
	os.Exit(m.Run())
}
