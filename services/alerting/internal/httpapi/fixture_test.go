package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/openapitest"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
	"github.com/canopy-platform/canopy/services/alerting/migrations"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

var (
	acmeAdmin  = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:acme-admin"}
	acmeMember = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:acme-member"}
	acmeViewer = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantViewer, Subject: "apikey:acme-viewer"}
	globex     = tenancy.Principal{Tenant: "globex", Role: tenancy.RoleTenantAdmin, Subject: "apikey:globex"}
	platform   = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}
)

// t0 is the fake clock's time.
var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// fakeEngine records pushes and reloads and answers muting from a map.
type fakeEngine struct {
	mu      sync.Mutex
	pushed  []*alert.Alert
	reloads []engine.What
	muted   map[alert.Fingerprint][2][]string
	pushErr error
	groups  []dispatch.GroupInfo
}

func (e *fakeEngine) Groups(context.Context) ([]dispatch.GroupInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pushErr != nil {
		return nil, e.pushErr
	}
	return e.groups, nil
}

func (e *fakeEngine) Push(_ context.Context, alerts []*alert.Alert) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pushErr != nil {
		return e.pushErr
	}
	e.pushed = append(e.pushed, alerts...)
	return nil
}

func (e *fakeEngine) Reload(_ context.Context, what engine.What) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reloads = append(e.reloads, what)
	return nil
}

func (e *fakeEngine) Muting(fp alert.Fingerprint) ([]string, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.muted[fp]
	return m[0], m[1]
}

func (e *fakeEngine) reloaded() []engine.What {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.reloads)
}

func (e *fakeEngine) pushedAlerts() []*alert.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.pushed)
}

// fakeNodes holds target groups per tenant.
type fakeNodes map[string][]nodes.TargetGroup

func (n fakeNodes) Targets(tenant string, all bool) []nodes.TargetGroup {
	if !all {
		return n[tenant]
	}
	var out []nodes.TargetGroup
	for _, g := range n {
		out = append(out, g...)
	}
	return out
}

// urlPolicy refuses what webhook.URLPolicy refuses for the cases the tests
// use: not http(s), no host, link-local and metadata addresses.
type urlPolicy struct{}

var errRefused = errors.New("webhook url refused")

func (urlPolicy) Check(_ context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: must be an http or https URL with a host", errRefused)
	}
	if strings.HasPrefix(u.Hostname(), "169.254.") {
		return fmt.Errorf("%w: %s is a link-local or metadata address", errRefused, u.Hostname())
	}
	return nil
}

// testDefaults are two default rules in the shape of defaults.yaml.
func testDefaults() ([]rules.Rule, error) {
	return []rules.Rule{
		{ID: "node-down", Name: "NodeDown", Kind: rules.KindEvent, On: []string{"health.node.down"},
			ResolveOn: []string{"health.node.up"}, Labels: map[string]string{"severity": "critical"}},
		{ID: "replica-lag", Name: "ReplicaLag", Kind: rules.KindSample, Expr: "replication_lag_seconds > 10",
			Role: "replica", For: time.Minute, Labels: map[string]string{"severity": "warning"}, Action: "rebuild-replica"},
	}, nil
}

// validateRule stands in for rules.Rule.Validate: a name, a known kind, an
// expr for sample rules and events for event rules.
func validateRule(r rules.Rule) error {
	switch {
	case r.Name == "":
		return errors.New("name is required")
	case r.Kind == rules.KindSample && r.Expr == "":
		return errors.New("a sample rule needs expr")
	case r.Kind == rules.KindEvent && len(r.On) == 0:
		return errors.New("an event rule needs on")
	case r.Kind != rules.KindSample && r.Kind != rules.KindEvent:
		return fmt.Errorf("kind %q is not sample or event", r.Kind)
	}
	return nil
}

// newStore returns the real store over a fresh, migrated database of
// its own, dropped when the test ends.
func newStore(t *testing.T) *alertstore.Store {
	t.Helper()
	db := storetest.NewDB(t, "httpapi_"+t.Name())
	if err := db.Migrate(context.Background(), store.OutboxMigrations(), migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := alertstore.New(db)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	store  *alertstore.Store
	engine *fakeEngine
	signer *tenancy.Signer
	spec   *openapitest.Spec
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := newStore(t)
	eng := &fakeEngine{muted: map[alert.Fingerprint][2][]string{}}
	ns := fakeNodes{
		"acme":   {{Targets: []string{"10.0.0.1:3306"}, Labels: map[string]string{"tenant": "acme", "instance": "i-acme", "node": "n1"}}},
		"globex": {{Targets: []string{"10.0.0.2:6379"}, Labels: map[string]string{"tenant": "globex", "instance": "i-globex", "node": "n2"}}},
	}
	api, err := New(Deps{Store: st, Engine: eng, Nodes: ns, URLs: urlPolicy{}, DefaultRules: testDefaults,
		ValidateRule: validateRule, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter(slog.New(slog.DiscardHandler), httpx.WithoutTracing(), httpx.WithoutAccessLog(),
		httpx.WithMaxBodyBytes(DefaultMaxPushBody))
	r.Use(tenancy.Middleware(tenancy.AudienceAlerting, secret))
	api.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, store: st, engine: eng, signer: tenancy.NewSigner(secret), spec: openapitest.MustLoad(t)}
}

// answer is a response, read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// problem decodes a problem answer.
func (a answer) problem(t *testing.T) httpx.Problem {
	t.Helper()
	var p httpx.Problem
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", a.body, err)
	}
	return p
}

// hasField reports whether the problem names field.
func (a answer) hasField(t *testing.T, field string) bool {
	t.Helper()
	for _, f := range a.problem(t).Errors {
		if f.Field == field {
			return true
		}
	}
	return false
}

// do sends a signed request, checks /api/v1 answers against the OpenAPI
// document and decodes a 2xx body into out.
func (f *fixture) do(p tenancy.Principal, method, path, body string, out any) answer {
	f.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(b))
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	f.signer.SignRequest(req, b, tenancy.AudienceAlerting, p)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	if strings.HasPrefix(path, "/api/v1/") {
		check, _ := http.NewRequest(method, path, bytes.NewReader(b))
		if err := f.spec.Check(check, resp.StatusCode, resp.Header, raw); err != nil {
			f.t.Error(err)
		}
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			f.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}
