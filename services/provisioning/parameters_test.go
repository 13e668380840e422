package provisioning

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// catalogOutage fronts the catalog stand-in; while down is set it answers
// every request 503 like a catalog that is being restarted.
func catalogOutage(t testing.TB, upstream string) (string, *atomic.Bool) {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "catalog restarting", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &down
}

// fieldOf returns the first field a problem names.
func fieldOf(t testing.TB, r response) string {
	t.Helper()
	errs, _ := r.json(t)["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	f, _ := errs[0].(map[string]any)["field"].(string)
	return f
}

// TestParametersFailClosed: parameters are checked against the plan's
// schema and the engine's allowlist on create and PATCH; without the
// catalog's answer nothing is ordered or changed.
func TestParametersFailClosed(t *testing.T) {
	e := newEnv(t)
	catalogURL, down := catalogOutage(t, e.catalogURL)
	s := newStack(t, e, func(c *Config) { c.CatalogURL = catalogURL })
	s.start()
	c := s.as("params")

	// A plan whose schema accepts anything still cannot reach settings
	// outside the allowlist.
	for _, tt := range []struct {
		name   string
		params map[string]any
		field  string
	}{
		{"loadmodule", map[string]any{"loadmodule": "/tmp/evil.so"}, "parameters.loadmodule"},
		{"dir", map[string]any{"dir": "/etc", "timeout": 5}, "parameters.dir"},
		{"bad value", map[string]any{"hz": 100000}, "parameters.hz"},
	} {
		r := c.do("POST", "/api/v1/instances", map[string]any{"name": "lax-" + tt.name[:3], "plan_id": planRedisLax, "parameters": tt.params})
		if r.status != http.StatusUnprocessableEntity || fieldOf(t, r) != tt.field {
			t.Errorf("create with %s: %d %s, want 422 naming %s", tt.name, r.status, r.body, tt.field)
		}
	}

	r := c.do("POST", "/api/v1/instances", map[string]any{"name": "cache", "plan_id": planRedisLax, "parameters": map[string]any{"timeout": 30}})
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.body)
	}
	id := r.json(t)["instance"].(map[string]any)["id"].(string)
	c.waitState(id, readyWithin, "ready")

	if r := c.do("PATCH", "/api/v1/instances/"+id, map[string]any{"parameters": map[string]any{"timeout": 30, "dbfilename": "passwd"}}); r.status != http.StatusUnprocessableEntity || fieldOf(t, r) != "parameters.dbfilename" {
		t.Errorf("patch dbfilename: %d %s", r.status, r.body)
	}

	down.Store(true)
	r = c.do("PATCH", "/api/v1/instances/"+id, map[string]any{"parameters": map[string]any{"timeout": 60}})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("patch without the catalog: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if r := c.do("POST", "/api/v1/instances", map[string]any{"name": "other", "plan_id": planRedisDev}); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("create without the catalog: %d %s", r.status, r.body)
	}
	inst := c.do("GET", "/api/v1/instances/"+id, nil).json(t)
	if inst["state"] != "ready" || fmt.Sprint(inst["parameters"].(map[string]any)["timeout"]) != "30" {
		t.Errorf("instance changed while the catalog was down: %v", inst)
	}
	if list := c.do("GET", "/api/v1/instances", nil).json(t); len(list["items"].([]any)) != 1 {
		t.Errorf("instances after refused orders: %v", list["items"])
	}
	down.Store(false)

	// A well-formed change goes through once the catalog answers.
	r = c.do("PATCH", "/api/v1/instances/"+id, map[string]any{"parameters": map[string]any{"timeout": 60, "maxmemory-policy": "allkeys-lru"}})
	if r.status != http.StatusAccepted {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	opID := r.json(t)["operation_id"].(string)
	eventually(t, readyWithin, "update applied", func() error {
		op := c.do("GET", "/api/v1/operations/"+opID, nil).json(t)
		if op["state"] != "succeeded" {
			return fmt.Errorf("operation %v", op)
		}
		return nil
	})
}
