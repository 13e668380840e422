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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/openapitest"
	libstore "github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/migrations"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// The callers of the tests.
var (
	acmeAdmin    = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:acme-admin"}
	acmeMember   = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:acme-member"}
	acmeViewer   = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantViewer, Subject: "apikey:acme-viewer"}
	globex       = tenancy.Principal{Tenant: "globex", Role: tenancy.RoleTenantAdmin, Subject: "apikey:globex"}
	platform     = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}
	provisioning = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: Restorer}
	// provisioningAcme is provisioning acting for a tenant, as it signs a
	// restore of an order.
	provisioningAcme = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: Restorer}
	otherService     = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:failover"}
)

// t0 is when the fixture's backups started.
var t0 = time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)

var errBoom = errors.New("boom")

// failingStore is the store failing where a test says.
type failingStore struct {
	store
	err error
}

func (s failingStore) ListBackups(context.Context, string, string, string, int) ([]backup.Backup, error) {
	return nil, s.err
}

// fakeEngine starts backups unless told an error, and reports a lag.
type fakeEngine struct {
	mu      sync.Mutex
	started []string
	err     error
	lag     map[string]time.Duration
}

func (e *fakeEngine) BackupNow(_ context.Context, tenant, instanceID string) (backup.Backup, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return backup.Backup{}, e.err
	}
	e.started = append(e.started, tenant+"/"+instanceID)
	return backup.Backup{ID: "b-new", TenantID: tenant, InstanceID: instanceID, Engine: backup.EngineMySQL, Kind: backup.KindFull,
		Trigger: backup.TriggerOnDemand, Status: backup.StatusRunning, NodeID: "n-1", FromReplica: true, StartedAt: t0.Add(time.Hour)}, nil
}

// Policy is the default with a week of drills: what a resolved policy
// looks like, not how it is resolved (the domain's tests do that).
func (e *fakeEngine) Policy(context.Context, string) (backup.Policy, error) {
	p := backup.DefaultPolicy()
	p.WindowStart = 90 * time.Minute
	p.DrillEvery = 7 * 24 * time.Hour
	return p, nil
}

func (e *fakeEngine) ArchiveLag(instanceID string) (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.lag[instanceID]
	return d, ok
}

// fakeRestores records what it is asked and answers err when set.
type fakeRestores struct {
	mu     sync.Mutex
	jobs   map[string]backup.Restore
	done   []string
	err    error
	getErr error
}

func (f *fakeRestores) Start(_ context.Context, tenant, sourceID, targetID string, t backup.Target) (backup.Restore, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return backup.Restore{}, f.err
	}
	r := backup.Restore{ID: "r-" + targetID, TenantID: tenant, SourceInstanceID: sourceID, TargetInstanceID: targetID,
		Engine: backup.EngineMySQL, Target: t, Status: backup.RestorePending, CreatedAt: t0, UpdatedAt: t0}
	f.jobs[r.ID] = r
	return r, nil
}

func (f *fakeRestores) Get(_ context.Context, id string) (backup.Restore, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return backup.Restore{}, f.getErr
	}
	r, ok := f.jobs[id]
	if !ok {
		return backup.Restore{}, backup.ErrNotFound
	}
	return r, nil
}

func (f *fakeRestores) Done(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.jobs[id]; !ok {
		return backup.ErrNotFound
	}
	f.done = append(f.done, id)
	return nil
}

// fakeDrills starts drills unless told an error.
type fakeDrills struct{ err error }

func (f *fakeDrills) Start(_ context.Context, tenant, instanceID string) (backup.Drill, error) {
	if f.err != nil {
		return backup.Drill{}, f.err
	}
	return backup.Drill{ID: "d-new", TenantID: tenant, InstanceID: instanceID, BackupID: "b-2", Status: backup.DrillRunning,
		StartedAt: t0.Add(time.Hour)}, nil
}

type fixture struct {
	t        *testing.T
	srv      *httptest.Server
	store    *backupstore.Store
	backups  []backup.Backup
	engine   *fakeEngine
	restores *fakeRestores
	drills   *fakeDrills
	signer   *tenancy.Signer
	spec     *openapitest.Spec
	logs     *bytes.Buffer
	logMu    *sync.Mutex
}

// newFixture serves the API over a real store (a fresh database) holding:
// acme's MySQL instance i-acme (plan small, completed backups b-1..b-3
// a day apart, one drill), acme's i-empty (no backup), acme's deleted
// Redis instance i-gone (one snapshot) and globex's i-globex (a failed
// backup).
// wrap, when given, wraps the store the API sees.
func newFixture(t *testing.T, wrap ...func(store) store) *fixture {
	t.Helper()
	ctx := context.Background()
	db := storetest.NewDB(t, "backup_api")
	if err := db.Migrate(ctx, libstore.OutboxMigrations(), migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := backupstore.New(db)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.UpsertInstances(ctx, []backup.Instance{
		{ID: "i-acme", TenantID: "acme", Name: "orders", Engine: backup.EngineMySQL, PlanID: "small", State: "ready"},
		{ID: "i-empty", TenantID: "acme", Name: "new", Engine: backup.EngineMySQL, PlanID: "small", State: "ready"},
		{ID: "i-gone", TenantID: "acme", Name: "cache", Engine: backup.EngineRedis, PlanID: "cache", State: "ready"},
		{ID: "i-globex", TenantID: "globex", Name: "app", Engine: backup.EngineMySQL, PlanID: "small", State: "ready"},
	}))
	must(st.MarkDeleted(ctx, []string{"i-gone"}, t0.Add(48*time.Hour)))
	stats := &backup.DataStats{Tables: 2, Sample: []backup.TableStat{{Schema: "shop", Table: "orders", Rows: 10, Checksum: 1 << 40, CheckOK: true}}}
	var backups []backup.Backup
	for i, id := range []string{"b-1", "b-2", "b-3"} {
		start := t0.Add(time.Duration(i) * 24 * time.Hour)
		backups = append(backups, backup.Backup{ID: id, TenantID: "acme", InstanceID: "i-acme", Engine: backup.EngineMySQL,
			Kind: backup.KindFull, Trigger: backup.TriggerScheduled, Status: backup.StatusCompleted, NodeID: "n-2", FromReplica: true,
			StartedAt: start, FinishedAt: start.Add(5 * time.Minute), DataBytes: 1 << 30, StoredBytes: 300 << 20,
			GTID: fmt.Sprintf("0-1-%d", 100*(i+1)), ConsistentAt: start.Add(5 * time.Minute), Verified: true,
			VerifiedAt: start.Add(10 * time.Minute), Stats: stats, Copies: []string{"primary"}, Monthly: i == 0,
			Objects:    []backup.Object{{Key: "acme/i-acme/backups/" + id + "/data", SHA256: "ab", Size: 1, PlainSize: 2}},
			WrappedKey: []byte("sealed")})
	}
	backups = append(backups,
		backup.Backup{ID: "b-redis", TenantID: "acme", InstanceID: "i-gone", Engine: backup.EngineRedis, Kind: backup.KindSnapshot,
			Trigger: backup.TriggerScheduled, Status: backup.StatusCompleted, StartedAt: t0, FinishedAt: t0.Add(time.Second),
			ConsistentAt: t0, Offset: 4242, WrappedKey: []byte("sealed")},
		backup.Backup{ID: "b-globex", TenantID: "globex", InstanceID: "i-globex", Engine: backup.EngineMySQL, Kind: backup.KindFull,
			Trigger: backup.TriggerScheduled, Status: backup.StatusFailed, StartedAt: t0, FinishedAt: t0.Add(time.Minute), Error: "interrupted"})
	for _, b := range backups {
		must(st.CreateBackup(ctx, b))
	}
	must(st.CreateDrill(ctx, backup.Drill{ID: "d-1", TenantID: "acme", InstanceID: "i-acme", BackupID: "b-1", Status: backup.DrillSucceeded,
		ScratchInstanceID: "i-scratch", StartedAt: t0.Add(time.Hour), FinishedAt: t0.Add(2 * time.Hour), Expected: stats, Measured: stats,
		RestoreSeconds: 42}))
	var api store = st
	for _, w := range wrap {
		api = w(api)
	}
	return newFixtureOver(t, st, api, backups)
}

// newFixtureOver serves the API over api (the store st, or a wrapper).
func newFixtureOver(t *testing.T, st *backupstore.Store, api store, backups []backup.Backup) *fixture {
	t.Helper()
	eng := &fakeEngine{lag: map[string]time.Duration{"i-acme": 1500 * time.Millisecond}}
	rs := &fakeRestores{jobs: map[string]backup.Restore{}}
	dr := &fakeDrills{}
	logs, logMu := &bytes.Buffer{}, &sync.Mutex{}
	log := slog.New(slog.NewJSONHandler(lockedWriter{w: logs, mu: logMu}, nil))
	a, err := newAPI(Deps{Engine: eng, Restores: rs, Drills: dr, Log: log}, api)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter(slog.New(slog.DiscardHandler), httpx.WithoutTracing(), httpx.WithoutAccessLog())
	r.Use(tenancy.Middleware(tenancy.AudienceBackup, secret))
	a.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, store: st, backups: backups, engine: eng, restores: rs, drills: dr, signer: tenancy.NewSigner(secret),
		spec: openapitest.MustLoad(t), logs: logs, logMu: logMu}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) logged() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.logs.String()
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
	if ct := a.header.Get("Content-Type"); ct != httpx.ProblemContentType {
		t.Fatalf("content type %q, want a problem: %s", ct, a.body)
	}
	var p httpx.Problem
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", a.body, err)
	}
	return p
}

// fields lists the fields a problem names.
func (a answer) fields(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, fe := range a.problem(t).Errors {
		out = append(out, fe.Field)
	}
	return out
}

// do sends a request signed as p (unsigned for the zero principal),
// checks /api/v1 answers against the OpenAPI document and decodes a 2xx
// body into out.
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
	if p.Role != "" {
		f.signer.SignRequest(req, b, tenancy.AudienceBackup, p)
	}
	resp, err := f.srv.Client().Do(req)
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

// override reads a stored override.
func (f *fixture) override(scope, id string) (backup.PolicyOverride, bool) {
	f.t.Helper()
	o, ok, err := f.store.PolicyOverride(context.Background(), scope, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return o, ok
}
