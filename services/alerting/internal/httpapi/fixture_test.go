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
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/openapitest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
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

// memStore is the store in memory, with the store's tenant rules: a
// tenant's call sees only its own objects, all=true sees everything.
type memStore struct {
	mu        sync.Mutex
	seq       int
	receivers map[string]alertstore.Receiver
	silences  map[string]alert.Silence
	alerts    []alertstore.StoredAlert
	rules     map[string]rules.Rule // tenant + "/" + id
	remed     map[string]bool
	dead      []alertstore.Delivery
	actions   []alertstore.ActionRun
	retried   []int64
}

func newMemStore() *memStore {
	return &memStore{receivers: map[string]alertstore.Receiver{}, silences: map[string]alert.Silence{},
		rules: map[string]rules.Rule{}, remed: map[string]bool{}}
}

func visible(tenant string, all bool, owner string) bool { return all || tenant == owner }

func (m *memStore) CreateReceiver(_ context.Context, r alertstore.Receiver) (alertstore.Receiver, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.receivers {
		if o.Tenant == r.Tenant && o.Name == r.Name {
			return alertstore.Receiver{}, alertstore.ErrConflict
		}
	}
	m.seq++
	r.ID = fmt.Sprintf("rcv-%d", m.seq)
	r.CreatedAt, r.UpdatedAt = t0, t0
	r.HasSecret = r.Secret != ""
	m.receivers[r.ID] = r
	return r, nil
}

func (m *memStore) UpdateReceiver(_ context.Context, r alertstore.Receiver) (alertstore.Receiver, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.receivers[r.ID]; !ok {
		return alertstore.Receiver{}, alertstore.ErrNotFound
	}
	m.receivers[r.ID] = r
	return r, nil
}

func (m *memStore) DeleteReceiver(_ context.Context, tenant string, all bool, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.receivers[id]
	if !ok || !visible(tenant, all, r.Tenant) {
		return alertstore.ErrNotFound
	}
	delete(m.receivers, id)
	return nil
}

func (m *memStore) GetReceiver(_ context.Context, tenant string, all bool, id string) (alertstore.Receiver, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.receivers[id]
	if !ok || !visible(tenant, all, r.Tenant) {
		return alertstore.Receiver{}, alertstore.ErrNotFound
	}
	return r, nil
}

func (m *memStore) ListReceivers(_ context.Context, tenant string, all bool) ([]alertstore.Receiver, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []alertstore.Receiver
	for _, r := range m.receivers {
		if visible(tenant, all, r.Tenant) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memStore) CreateSilence(_ context.Context, s alert.Silence) (alert.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	s.ID = fmt.Sprintf("sil-%d", m.seq)
	m.silences[s.ID] = s
	return s, nil
}

func (m *memStore) ExpireSilence(_ context.Context, tenant string, all bool, id string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.silences[id]
	if !ok || !visible(tenant, all, s.Tenant) {
		return alertstore.ErrNotFound
	}
	if s.EndsAt.After(now) {
		s.EndsAt = now
	}
	m.silences[id] = s
	return nil
}

func (m *memStore) GetSilence(_ context.Context, tenant string, all bool, id string) (alert.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.silences[id]
	if !ok || !visible(tenant, all, s.Tenant) {
		return alert.Silence{}, alertstore.ErrNotFound
	}
	return s, nil
}

func (m *memStore) ListSilences(_ context.Context, tenant string, all bool) ([]alert.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []alert.Silence
	for _, s := range m.silences {
		if visible(tenant, all, s.Tenant) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memStore) ListAlerts(_ context.Context, f alertstore.AlertFilter) ([]alertstore.StoredAlert, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []alertstore.StoredAlert
	for _, a := range m.alerts {
		switch {
		case !visible(f.Tenant, f.All, a.Labels[alert.LabelTenant]),
			len(f.States) > 0 && !slices.Contains(f.States, a.State),
			!f.Matchers.Matches(a.Labels),
			f.After != "" && a.Fingerprint.String() <= f.After:
			continue
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	if f.Limit > 0 && len(out) > f.Limit {
		return out[:f.Limit], out[f.Limit-1].Fingerprint.String(), nil
	}
	return out, "", nil
}

func (m *memStore) GetAlert(_ context.Context, tenant string, all bool, fp alert.Fingerprint) (alertstore.StoredAlert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.alerts {
		if a.Fingerprint == fp && visible(tenant, all, a.Labels[alert.LabelTenant]) {
			return a, nil
		}
	}
	return alertstore.StoredAlert{}, alertstore.ErrNotFound
}

func (m *memStore) CreateRule(_ context.Context, r rules.Rule) (rules.Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := r.Tenant + "/" + r.ID
	if _, ok := m.rules[k]; ok {
		return rules.Rule{}, alertstore.ErrConflict
	}
	m.rules[k] = r
	return r, nil
}

func (m *memStore) UpdateRule(_ context.Context, r rules.Rule) (rules.Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := r.Tenant + "/" + r.ID
	if _, ok := m.rules[k]; !ok {
		return rules.Rule{}, alertstore.ErrNotFound
	}
	m.rules[k] = r
	return r, nil
}

func (m *memStore) DeleteRule(_ context.Context, tenant, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := tenant + "/" + id
	if _, ok := m.rules[k]; !ok {
		return alertstore.ErrNotFound
	}
	delete(m.rules, k)
	return nil
}

func (m *memStore) ListRules(_ context.Context, tenant string, all bool) ([]rules.Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []rules.Rule
	for _, r := range m.rules {
		if visible(tenant, all, r.Tenant) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memStore) Remediation(_ context.Context, tenant string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.remed[tenant], nil
}

func (m *memStore) SetRemediation(_ context.Context, tenant string, on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remed[tenant] = on
	return nil
}

func (m *memStore) DeadLetters(_ context.Context, tenant string, all bool, limit int) ([]alertstore.Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []alertstore.Delivery
	for _, d := range m.dead {
		if visible(tenant, all, d.Owner) && len(out) < limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (m *memStore) RetryDeadLetter(_ context.Context, tenant string, all bool, id int64, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.dead {
		if d.ID == id && visible(tenant, all, d.Owner) {
			m.retried = append(m.retried, id)
			return nil
		}
	}
	return alertstore.ErrNotFound
}

func (m *memStore) ListActions(_ context.Context, tenant string, all bool, limit int) ([]alertstore.ActionRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []alertstore.ActionRun
	for _, r := range m.actions {
		if visible(tenant, all, r.Tenant) && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

// fakeEngine records pushes and reloads and answers muting from a map.
type fakeEngine struct {
	mu      sync.Mutex
	pushed  []*alert.Alert
	reloads []engine.What
	muted   map[alert.Fingerprint][2][]string
	pushErr error
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

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	store  *memStore
	engine *fakeEngine
	signer *tenancy.Signer
	spec   *openapitest.Spec
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := newMemStore()
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
