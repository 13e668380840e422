package catalog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events/eventstest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/openapitest"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog"
)

const secret = "test-internal-secret-0123456789"

// fakePublisher records what the outbox relay publishes.
type fakePublisher struct {
	mu     sync.Mutex
	events []eventbus.Event
	topics []string
}

func (p *fakePublisher) Publish(_ context.Context, topic string, events ...eventbus.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range events {
		p.events = append(p.events, e)
		p.topics = append(p.topics, topic)
	}
	return nil
}

// snapshot returns the published events, deduplicated by id as consumers
// do (the relay delivers at least once).
func (p *fakePublisher) snapshot() ([]string, []eventbus.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	var topics []string
	var events []eventbus.Event
	for i, e := range p.events {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		topics = append(topics, p.topics[i])
		events = append(events, e)
	}
	return topics, events
}

// env is one running catalog.
type env struct {
	t      *testing.T
	base   string
	pub    *fakePublisher
	client *http.Client
}

// start runs a catalog on cfgStore until the test ends.
func start(t *testing.T, storeCfg store.Config) *env {
	t.Helper()
	return startWith(t, storeCfg, nil)
}

// startWith is start with a change to the config.
func startWith(t *testing.T, storeCfg store.Config, change func(*catalog.Config)) *env {
	t.Helper()
	cfg := catalog.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.MySQLDSN = storeCfg.DSN
	cfg.Database = storeCfg.Database
	cfg.InternalSecret = secret
	cfg.Relay.PollInterval = 20 * time.Millisecond
	// Broker credentials are checked against the gateway; the tests bind
	// them to "acme".
	cfg.GatewayURL = newGatewayStandIn(t, "acme").srv.URL
	// What the hosts run is asked of provisioning; by default the stand-in
	// says its driver does not report builds, so plans list their versions
	// as stored (versions_test.go covers the filter).
	cfg.ProvisioningURL = newProvisioningStandIn(t, unreported).srv.URL
	if change != nil {
		change(&cfg)
	}
	pub := &fakePublisher{}
	svc, err := catalog.New(cfg, catalog.Deps{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Publisher: pub,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("catalog did not stop")
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("catalog stopped early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("catalog not ready")
	}
	return &env{t: t, base: "http://" + svc.Addr(), pub: pub, client: &http.Client{Timeout: 10 * time.Second}}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), string(r.Body))
	return m
}

// do sends a request as role (empty = unsigned) and validates the response
// against the OpenAPI document.
func (e *env) do(role tenancy.Role, method, path string, body any, hdr map[string]string) response {
	e.t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		raw, err = json.Marshal(b)
		require.NoError(e.t, err)
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	require.NoError(e.t, err)
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if role != "" {
		p := tenancy.Principal{Role: role, Subject: "apikey:" + string(role)}
		if role != tenancy.RolePlatformAdmin {
			p.Tenant = "acme"
		}
		tenancy.NewSigner([]byte(secret)).SignRequest(req, raw, tenancy.AudienceCatalog, p)
	}
	res, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	out := response{Status: res.StatusCode, Header: res.Header, Body: got}
	if strings.HasPrefix(path, "/api/") {
		validate(e.t, method, path, raw, out)
	}
	return out
}

// spec is the OpenAPI document: base.yaml with the catalog fragment merged in.
// validate checks one real response against the OpenAPI document.
func validate(t *testing.T, method, path string, body []byte, res response) {
	t.Helper()
	req, err := http.NewRequest(method, "http://canopy.test"+path, bytes.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, openapitest.MustLoad(t).Check(req, res.Status, res.Header, res.Body))
}

// fieldsOf returns the field names of a problem's errors.
func fieldsOf(t *testing.T, r response) []string {
	t.Helper()
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), string(r.Body))
	var p struct {
		Errors []struct{ Field, Reason string }
	}
	require.NoError(t, json.Unmarshal(r.Body, &p))
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

func newPlanBody(name string) map[string]any {
	return map[string]any{
		"name":            name,
		"description":     "A test plan.",
		"engine":          "mysql",
		"versions":        []string{"8.0"},
		"deployment_mode": "multi-az",
		"nodes": map[string]any{"count": 2, "zones": 2, "groups": []any{
			map[string]any{"role": "primary", "region_role": "primary", "count": 1},
			map[string]any{"role": "replica", "region_role": "primary", "count": 1},
		}},
		"resources":         map[string]any{"vcpu": 2, "memory_mb": 4096, "storage_gb": 50},
		"replication_mode":  "semi-sync",
		"slo":               map[string]any{"availability": 99.9, "rto_seconds": 60, "rpo_seconds": 0},
		"prices":            map[string]any{"currency": "USD", "node_hour": "0.1", "storage_gb_hour": "0.0001"},
		"parameters_schema": map[string]any{"type": "object", "properties": map[string]any{"max_connections": map[string]any{"type": "integer", "minimum": 10, "maximum": 10000}}},
		"maintenance_info":  map[string]any{"version": "1.0.0"},
	}
}

func with(body map[string]any, key string, v any) map[string]any {
	out := map[string]any{}
	for k, val := range body {
		out[k] = val
	}
	if v == nil {
		delete(out, key)
	} else {
		out[key] = v
	}
	return out
}

func planCount(t *testing.T, e *env) int {
	t.Helper()
	r := e.do(tenancy.RolePlatformAdmin, "GET", "/api/v1/catalog/plans?limit=500", nil, nil)
	require.Equal(t, 200, r.Status)
	return len(r.json(t)["items"].([]any))
}

var allRoles = []tenancy.Role{tenancy.RolePlatformAdmin, tenancy.RoleTenantAdmin, tenancy.RoleTenantMember, tenancy.RoleTenantViewer}

func TestSeedIsIdempotentAcrossRestarts(t *testing.T) {
	cfg := storetest.NewConfig(t, "catalog_seed")
	list := func(e *env) []any {
		r := e.do(tenancy.RoleTenantViewer, "GET", "/api/v1/catalog/plans", nil, nil)
		require.Equal(t, 200, r.Status)
		return r.json(t)["items"].([]any)
	}
	first := start(t, cfg)
	a := list(first)
	require.Len(t, a, 6)
	second := start(t, cfg)
	b := list(second)
	require.Equal(t, a, b, "a second start changes nothing")
}

func TestReadsAndRoles(t *testing.T) {
	e := start(t, storetest.NewConfig(t, "catalog_roles"))

	r := e.do("", "GET", "/api/v1/catalog/services", nil, nil)
	require.Equal(t, 401, r.Status, "unsigned requests are refused")

	for _, role := range allRoles {
		t.Run(string(role), func(t *testing.T) {
			r := e.do(role, "GET", "/api/v1/catalog/services", nil, nil)
			require.Equal(t, 200, r.Status, string(r.Body))
			items := r.json(t)["items"].([]any)
			require.Len(t, items, 2)
			mysql := items[0].(map[string]any)
			require.Equal(t, "mysql", mysql["name"])
			require.Len(t, mysql["plans"], 3)

			r = e.do(role, "GET", "/api/v1/catalog/plans/955f03e0-ba27-48cf-acde-d2b92f385034", nil, nil)
			require.Equal(t, 200, r.Status)
			require.Equal(t, "mysql-dr-multi-region", r.json(t)["name"])

			admin := role == tenancy.RolePlatformAdmin
			writes := []struct{ method, path string }{
				{"POST", "/api/v1/catalog/plans"},
				{"PATCH", "/api/v1/catalog/plans/955f03e0-ba27-48cf-acde-d2b92f385034"},
				{"POST", "/api/v1/catalog/plans/955f03e0-ba27-48cf-acde-d2b92f385034/deprecate"},
				{"POST", "/api/v1/catalog/broker-credentials"},
				{"GET", "/api/v1/catalog/broker-credentials"},
				{"DELETE", "/api/v1/catalog/broker-credentials/00000000-0000-4000-8000-000000000000"},
			}
			for _, w := range writes {
				if admin {
					continue
				}
				r := e.do(role, w.method, w.path, "{}", nil)
				require.Equal(t, 403, r.Status, "%s %s as %s", w.method, w.path, role)
			}
		})
	}

	r = e.do(tenancy.RoleTenantViewer, "GET", "/api/v1/catalog/plans/00000000-0000-4000-8000-000000000000", nil, nil)
	require.Equal(t, 404, r.Status)
	r = e.do(tenancy.RoleTenantViewer, "GET", "/api/v1/catalog/plans/not-a-uuid", nil, nil)
	require.Equal(t, 404, r.Status)
}

func TestPagination(t *testing.T) {
	e := start(t, storetest.NewConfig(t, "catalog_paging"))
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		path := "/api/v1/catalog/plans?limit=4"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.do(tenancy.RoleTenantMember, "GET", path, nil, nil)
		require.Equal(t, 200, r.Status)
		m := r.json(t)
		for _, it := range m["items"].([]any) {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		next, _ := m["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []string{"mysql-dev-single-az", "mysql-dr-multi-region", "mysql-ha-multi-az",
		"redis-dev-single-az", "redis-dr-multi-region", "redis-ha-multi-az"}, names)

	r := e.do(tenancy.RoleTenantMember, "GET", "/api/v1/catalog/services?limit=1", nil, nil)
	require.Equal(t, 200, r.Status)
	m := r.json(t)
	require.Len(t, m["items"], 1)
	r = e.do(tenancy.RoleTenantMember, "GET", "/api/v1/catalog/services?limit=1&cursor="+m["next_cursor"].(string), nil, nil)
	require.Equal(t, 200, r.Status)
	require.Equal(t, "redis", r.json(t)["items"].([]any)[0].(map[string]any)["name"])

	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=%25%25", "engine=postgres", "state=gone"} {
		r := e.do(tenancy.RoleTenantMember, "GET", "/api/v1/catalog/plans?"+q, nil, nil)
		require.Equal(t, 400, r.Status, q)
		require.Len(t, fieldsOf(t, r), 1, q)
	}
}

func TestCreatePlanValidation(t *testing.T) {
	e := start(t, storetest.NewConfig(t, "catalog_create"))
	before := planCount(t, e)
	admin := tenancy.RolePlatformAdmin
	valid := newPlanBody("mysql-custom")

	tests := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"bad json", `{"name": `, 400, ""},
		{"not an object", `[1,2]`, 400, ""},
		{"unknown field", with(valid, "colour", "blue"), 400, "colour"},
		{"wrong type", with(valid, "resources", map[string]any{"vcpu": "two", "memory_mb": 4096, "storage_gb": 50}), 400, "resources.vcpu"},
		{"wrong top-level type", with(valid, "versions", "8.0"), 400, "versions"},
		{"missing required", with(valid, "engine", nil), 422, "engine"},
		{"oversize name", with(valid, "name", strings.Repeat("n", 64)), 422, "name"},
		{"invalid json schema", with(valid, "parameters_schema", map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "int"}}}), 422, "parameters_schema"},
		{"json schema not an object", with(valid, "parameters_schema", "yes"), 422, "parameters_schema"},
		{"unknown engine", with(valid, "engine", "postgres"), 422, "engine"},
		{"bad deployment mode", with(valid, "deployment_mode", "somewhere"), 422, "deployment_mode"},
		{"bad price", with(valid, "prices", map[string]any{"currency": "USD", "node_hour": "cheap", "storage_gb_hour": "0"}), 422, "prices.node_hour"},
		{"duplicate name", with(valid, "name", "mysql-ha-multi-az"), 409, "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(admin, "POST", "/api/v1/catalog/plans", tc.body, nil)
			require.Equal(t, tc.status, r.Status, string(r.Body))
			fields := fieldsOf(t, r)
			if tc.field != "" {
				require.Contains(t, fields, tc.field, string(r.Body))
			}
		})
	}
	require.Equal(t, before, planCount(t, e), "nothing half written")

	r := e.do(admin, "POST", "/api/v1/catalog/plans", valid, nil)
	require.Equal(t, 201, r.Status, string(r.Body))
	created := r.json(t)
	require.Equal(t, "mysql-custom", created["display_name"])
	require.Equal(t, "8.0", created["default_version"])
	require.Equal(t, true, created["orderable"])
	require.Equal(t, "http://json-schema.org/draft-04/schema#", created["parameters_schema"].(map[string]any)["$schema"])
	require.Equal(t, "/api/v1/catalog/plans/"+created["id"].(string), r.Header.Get("Location"))
}

func TestIdempotencyKey(t *testing.T) {
	e := start(t, storetest.NewConfig(t, "catalog_idem"))
	admin := tenancy.RolePlatformAdmin
	body := newPlanBody("mysql-idem")
	key := map[string]string{"Idempotency-Key": "create-mysql-idem-1"}

	first := e.do(admin, "POST", "/api/v1/catalog/plans", body, key)
	require.Equal(t, 201, first.Status, string(first.Body))
	replay := e.do(admin, "POST", "/api/v1/catalog/plans", body, key)
	require.Equal(t, 201, replay.Status)
	require.Equal(t, "true", replay.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first.json(t)["id"], replay.json(t)["id"])

	other := e.do(admin, "POST", "/api/v1/catalog/plans", with(body, "description", "another"), key)
	require.Equal(t, 422, other.Status)
	require.Equal(t, []string{"Idempotency-Key"}, fieldsOf(t, other))

	bad := e.do(admin, "POST", "/api/v1/catalog/plans", body, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)})
	require.Equal(t, 400, bad.Status)

	// Concurrent first uses of one key create one plan and all answer alike.
	conc := newPlanBody("mysql-idem-concurrent")
	raw, err := json.Marshal(conc)
	require.NoError(t, err)
	type result struct {
		status int
		id     string
		err    error
	}
	results := make(chan result, 8)
	for range 8 {
		go func() {
			req, err := http.NewRequest("POST", e.base+"/api/v1/catalog/plans", bytes.NewReader(raw))
			if err != nil {
				results <- result{err: err}
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "concurrent-key")
			tenancy.NewSigner([]byte(secret)).SignRequest(req, raw, tenancy.AudienceCatalog, tenancy.Principal{Role: admin, Subject: "apikey:" + string(admin)})
			res, err := e.client.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer res.Body.Close()
			var body struct {
				ID string `json:"id"`
			}
			err = json.NewDecoder(res.Body).Decode(&body)
			results <- result{status: res.StatusCode, id: body.ID, err: err}
		}()
	}
	ids := map[string]bool{}
	for range 8 {
		r := <-results
		require.NoError(t, r.err)
		require.Equal(t, 201, r.status)
		ids[r.id] = true
	}
	require.Len(t, ids, 1, "one plan for one key")

	// Without a key, the same body is a duplicate name.
	dup := e.do(admin, "POST", "/api/v1/catalog/plans", body, nil)
	require.Equal(t, 409, dup.Status)
	require.Equal(t, 8, planCount(t, e))
}

func TestPatchDeprecateAndEvents(t *testing.T) {
	e := start(t, storetest.NewConfig(t, "catalog_patch"))
	admin := tenancy.RolePlatformAdmin
	r := e.do(admin, "POST", "/api/v1/catalog/plans", newPlanBody("mysql-evt"), nil)
	require.Equal(t, 201, r.Status)
	id := r.json(t)["id"].(string)
	path := "/api/v1/catalog/plans/" + id

	r = e.do(admin, "PATCH", path, map[string]any{"description": "Better words.", "prices": map[string]any{"currency": "EUR", "node_hour": "0.2", "storage_gb_hour": "0.0002"}}, nil)
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, "Better words.", r.json(t)["description"])

	r = e.do(admin, "PATCH", path, map[string]any{"resources": map[string]any{"vcpu": 8, "memory_mb": 4096, "storage_gb": 50}}, nil)
	require.Equal(t, 422, r.Status)
	require.Equal(t, []string{"resources"}, fieldsOf(t, r))
	r = e.do(admin, "PATCH", path, map[string]any{"name": "mysql-ha-multi-az"}, nil)
	require.Equal(t, 409, r.Status)
	r = e.do(admin, "PATCH", path, map[string]any{"name": "x", "speed": 1}, nil)
	require.Equal(t, 400, r.Status)
	require.Equal(t, []string{"speed"}, fieldsOf(t, r))
	r = e.do(admin, "PATCH", "/api/v1/catalog/plans/00000000-0000-4000-8000-000000000000", map[string]any{"description": "x"}, nil)
	require.Equal(t, 404, r.Status)

	r = e.do(admin, "POST", path+"/deprecate", nil, nil)
	require.Equal(t, 200, r.Status)
	require.Equal(t, "deprecated", r.json(t)["state"])
	r = e.do(admin, "POST", path+"/deprecate", nil, nil)
	require.Equal(t, 200, r.Status, "deprecating twice is a no-op")

	r = e.do(tenancy.RoleTenantViewer, "GET", path, nil, nil)
	require.Equal(t, 200, r.Status, "deprecated plans stay readable")
	p := r.json(t)
	require.Equal(t, "deprecated", p["state"])
	require.Equal(t, false, p["orderable"])
	require.NotEmpty(t, p["deprecated_at"])

	r = e.do(tenancy.RoleTenantViewer, "GET", "/api/v1/catalog/services", nil, nil)
	require.NotContains(t, string(r.Body), id, "deprecated plans leave the services listing")
	r = e.do(tenancy.RoleTenantViewer, "GET", "/api/v1/catalog/plans?state=deprecated", nil, nil)
	require.Contains(t, string(r.Body), id)

	// The relay publishes the outbox: 6 seeded + created, updated, deprecated.
	var topics []string
	var events []eventbus.Event
	require.Eventually(t, func() bool {
		topics, events = e.pub.snapshot()
		return len(events) >= 9
	}, 10*time.Second, 20*time.Millisecond)
	require.Len(t, events, 9)
	var mine []string
	for i, ev := range events {
		require.Equal(t, "canopy.catalog.v1", topics[i])
		require.Equal(t, "/canopy/catalog", ev.Source)
		require.Equal(t, ev.Subject, ev.Key)
		if ev.Key == id {
			mine = append(mine, ev.Type)
		}
	}
	require.Equal(t, []string{"catalog.plan.created", "catalog.plan.updated", "catalog.plan.deprecated"}, mine)
	schemas := eventstest.MustNew(t)
	for _, ev := range events {
		require.NoError(t, schemas.Validate(ev.Type, ev.Data), "%s data does not match its schema", ev.Type)
	}
	var upd struct {
		ChangedFields []string `json:"changed_fields"`
	}
	for _, ev := range events {
		if ev.Key == id && ev.Type == "catalog.plan.updated" {
			require.NoError(t, json.Unmarshal(ev.Data, &upd))
		}
	}
	require.Equal(t, []string{"description", "prices"}, upd.ChangedFields)
}

func compileOSBSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	sch, err := jsonschema.NewCompiler().Compile("testdata/osb-catalog-2.17.schema.json")
	require.NoError(t, err)
	return sch
}

func TestOSBCatalog(t *testing.T) {
	e := start(t, storetest.NewConfig(t, "catalog_osb"))
	admin := tenancy.RolePlatformAdmin

	r := e.do(admin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "cf-prod"}, map[string]string{"Idempotency-Key": "cred-1"})
	require.Equal(t, 201, r.Status, string(r.Body))
	cred := r.json(t)
	user, pass := cred["username"].(string), cred["password"].(string)
	require.NotEmpty(t, pass)
	replay := e.do(admin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "cf-prod"}, map[string]string{"Idempotency-Key": "cred-1"})
	require.Equal(t, 201, replay.Status)
	require.Equal(t, cred["id"], replay.json(t)["id"])
	require.NotContains(t, replay.json(t), "password", "the password is shown once")

	r = e.do(admin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "Bad Name!"}, nil)
	require.Equal(t, 422, r.Status)
	require.Equal(t, []string{"name"}, fieldsOf(t, r))
	r = e.do(admin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "k8s", "tenant": "NOT VALID"}, nil)
	require.Equal(t, 422, r.Status)
	require.Equal(t, []string{"tenant"}, fieldsOf(t, r))
	r = e.do(admin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "k8s-acme", "tenant": "acme"}, nil)
	require.Equal(t, 201, r.Status)
	require.Equal(t, "acme", r.json(t)["tenant"])

	r = e.do(admin, "GET", "/api/v1/catalog/broker-credentials?limit=1", nil, nil)
	require.Equal(t, 200, r.Status)
	list := r.json(t)
	require.Len(t, list["items"], 1)
	require.NotContains(t, string(r.Body), "password")
	require.NotEmpty(t, list["next_cursor"])
	r = e.do(admin, "GET", "/api/v1/catalog/broker-credentials/"+cred["id"].(string), nil, nil)
	require.Equal(t, 200, r.Status)

	osb := func(user, pass string, hdr map[string]string) response {
		req, err := http.NewRequest("GET", e.base+"/v2/catalog", nil)
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := e.client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return response{Status: res.StatusCode, Header: res.Header, Body: b}
	}
	v217 := map[string]string{"X-Broker-API-Version": "2.17", "X-Broker-API-Request-Identity": "e26cb2a5-1a4e-4a5c-8a4c-1f2f3e4d5c6b"}

	r = osb(user, pass, v217)
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, v217["X-Broker-API-Request-Identity"], r.Header.Get("X-Broker-API-Request-Identity"))
	var doc any
	require.NoError(t, json.Unmarshal(r.Body, &doc))
	require.NoError(t, compileOSBSchema(t).Validate(doc))
	cat := r.json(t)
	services := cat["services"].([]any)
	require.Len(t, services, 2)
	mysql := services[0].(map[string]any)
	require.Equal(t, "a2dc262d-040c-459d-9e7c-53776f4dcf5b", mysql["id"])
	for _, svc := range services {
		sm := svc.(map[string]any)
		require.Equal(t, true, sm["instances_retrievable"], sm["name"])
		require.Equal(t, true, sm["bindings_retrievable"], sm["name"])
	}
	plans := mysql["plans"].([]any)
	require.Len(t, plans, 3)
	for _, p := range plans {
		pm := p.(map[string]any)
		require.Equal(t, false, pm["plan_updateable"])
		params := pm["schemas"].(map[string]any)["service_instance"].(map[string]any)["create"].(map[string]any)["parameters"].(map[string]any)
		require.NotEmpty(t, params["$schema"])
		require.NotEmpty(t, pm["maintenance_info"].(map[string]any)["version"])
	}
	etag := r.Header.Get("ETag")
	require.NotEmpty(t, etag)
	r = osb(user, pass, map[string]string{"X-Broker-API-Version": "2.14", "If-None-Match": etag})
	require.Equal(t, 304, r.Status)

	for _, v := range []string{"2.13", "2.15"} {
		require.Equal(t, 200, osb(user, pass, map[string]string{"X-Broker-API-Version": v}).Status, v)
	}
	r = osb(user, pass, nil)
	require.Equal(t, 400, r.Status, "a missing version header is a bad request")
	requireOSBError(t, r)
	for _, v := range []string{"2.12", "1.0", "3.0", "2.18", "latest", "2"} {
		r = osb(user, pass, map[string]string{"X-Broker-API-Version": v})
		require.Equal(t, 412, r.Status, v)
		requireOSBError(t, r)
	}
	for name, creds := range map[string][2]string{
		"no credentials": {"", ""}, "wrong password": {user, pass + "x"}, "unknown user": {"osb-nobody", pass},
	} {
		r = osb(creds[0], creds[1], v217)
		require.Equal(t, 401, r.Status, name)
		require.NotEmpty(t, r.Header.Get("WWW-Authenticate"))
		requireOSBError(t, r)
	}

	// Deprecated plans leave the OSB catalog.
	r = e.do(admin, "POST", "/api/v1/catalog/plans/6814408d-3c80-49ac-ba04-aaed9eddf844/deprecate", nil, nil)
	require.Equal(t, 200, r.Status)
	r = osb(user, pass, v217)
	require.Equal(t, 200, r.Status)
	require.NotContains(t, string(r.Body), "6814408d-3c80-49ac-ba04-aaed9eddf844")
	require.NotEqual(t, etag, r.Header.Get("ETag"))

	// A revoked credential stops working at once.
	r = e.do(admin, "DELETE", "/api/v1/catalog/broker-credentials/"+cred["id"].(string), nil, nil)
	require.Equal(t, 204, r.Status)
	r = e.do(admin, "DELETE", "/api/v1/catalog/broker-credentials/"+cred["id"].(string), nil, nil)
	require.Equal(t, 204, r.Status)
	require.Equal(t, 401, osb(user, pass, v217).Status)
	r = e.do(admin, "GET", "/api/v1/catalog/broker-credentials/"+cred["id"].(string), nil, nil)
	require.Equal(t, false, r.json(t)["active"])
	r = e.do(admin, "DELETE", "/api/v1/catalog/broker-credentials/00000000-0000-4000-8000-000000000000", nil, nil)
	require.Equal(t, 404, r.Status)
}

func requireOSBError(t *testing.T, r response) {
	t.Helper()
	var body struct {
		Error       string `json:"error"`
		Description string `json:"description"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &body), string(r.Body))
	require.NotEmpty(t, body.Error)
	require.NotEmpty(t, body.Description)
}

func TestConfigValidate(t *testing.T) {
	cfg := catalog.DefaultConfig()
	require.ErrorContains(t, cfg.Validate(), "CANOPY_INTERNAL_SECRET")
	cfg.InternalSecret = secret
	require.NoError(t, cfg.Validate())
	cfg.Addr = "nowhere"
	require.Error(t, cfg.Validate())

	cfg = catalog.DefaultConfig()
	cfg.InternalSecret = secret
	require.Equal(t, "http://127.0.0.1:8092", cfg.GatewayURL, "the gateway internal listener, like provisioning's")
	cfg.GatewayURL = "ftp://gateway"
	require.ErrorContains(t, cfg.Validate(), "gateway_url")
	cfg.GatewayURL = ""
	require.NoError(t, cfg.Validate(), "empty: credentials are bound unchecked")

	cfg = catalog.DefaultConfig()
	cfg.InternalSecret = secret
	_, err := catalog.New(cfg, catalog.Deps{})
	require.Error(t, err)
}

// TestOSBForwardsInstancesToProvisioning: instance and binding calls reach
// provisioning with the broker credential's tenant signed in, and nothing of
// the broker's own Basic credentials.
func TestOSBForwardsInstancesToProvisioning(t *testing.T) {
	type seen struct {
		principal tenancy.Principal
		path      string
		auth      string
	}
	got := make(chan seen, 4)
	prov := httptest.NewServer(tenancy.Middleware(tenancy.AudienceProvisioning, []byte(secret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		got <- seen{principal: p, path: r.URL.Path, auth: r.Header.Get("Authorization")}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"operation":"op-1"}`))
	})))
	defer prov.Close()
	e := startWith(t, storetest.NewConfig(t, "catalog_osbfwd"), func(c *catalog.Config) { c.ProvisioningURL = prov.URL })
	admin := tenancy.RolePlatformAdmin
	bound := e.do(admin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "cf-acme", "tenant": "acme"}, nil).json(t)
	wide := e.do(admin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "cf-wide"}, nil).json(t)

	put := func(cred map[string]any) (int, string) {
		req, err := http.NewRequest("PUT", e.base+"/v2/service_instances/i-1?accepts_incomplete=true", strings.NewReader(`{"service_id":"s","plan_id":"p"}`))
		require.NoError(t, err)
		req.SetBasicAuth(cred["username"].(string), cred["password"].(string))
		req.Header.Set("X-Broker-API-Version", "2.17")
		req.Header.Set("X-Canopy-Role", "platform-admin") // a forged identity is dropped
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := put(bound)
	require.Equal(t, http.StatusAccepted, code, body)
	s := <-got
	require.Equal(t, "/v2/service_instances/i-1", s.path)
	require.EqualValues(t, "acme", s.principal.Tenant)
	require.Equal(t, tenancy.RoleTenantMember, s.principal.Role)
	require.Empty(t, s.auth, "broker credentials must not reach provisioning")

	code, body = put(wide)
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "TenantRequired")
	require.Empty(t, got, "a platform-wide credential must not reach provisioning")
}

// TestOSBVersionOnForwardedRoutes: the API version check guards the
// instance and binding routes as it does the catalog, at the edges of the
// supported range (2.13-2.17); a refused request never reaches provisioning.
func TestOSBVersionOnForwardedRoutes(t *testing.T) {
	reached := make(chan string, 8)
	prov := httptest.NewServer(tenancy.Middleware(tenancy.AudienceProvisioning, []byte(secret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.Header.Get("X-Broker-API-Version")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"state":"succeeded"}`))
	})))
	defer prov.Close()
	e := startWith(t, storetest.NewConfig(t, "catalog_osbver"), func(c *catalog.Config) { c.ProvisioningURL = prov.URL })
	cred := e.do(tenancy.RolePlatformAdmin, "POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "cf-acme", "tenant": "acme"}, nil).json(t)

	tests := []struct {
		version string
		status  int
		code    string
	}{
		{"2.12", http.StatusPreconditionFailed, "UnsupportedBrokerAPIVersion"},
		{"2.13", http.StatusOK, ""},
		{"2.17", http.StatusOK, ""},
		{"2.18", http.StatusPreconditionFailed, "UnsupportedBrokerAPIVersion"},
		{"", http.StatusBadRequest, "MissingBrokerAPIVersion"},
	}
	for _, tc := range tests {
		t.Run("version "+tc.version, func(t *testing.T) {
			req, err := http.NewRequest("GET", e.base+"/v2/service_instances/i-1/last_operation", nil)
			require.NoError(t, err)
			req.SetBasicAuth(cred["username"].(string), cred["password"].(string))
			if tc.version != "" {
				req.Header.Set("X-Broker-API-Version", tc.version)
			}
			resp, err := e.client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			r := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
			require.Equal(t, tc.status, r.Status, string(b))
			if tc.code == "" {
				require.Equal(t, tc.version, <-reached)
				return
			}
			requireOSBError(t, r)
			require.Equal(t, tc.code, r.json(t)["error"])
			require.Empty(t, reached, "a refused version must not reach provisioning")
		})
	}
}
