package httpapi

import (
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

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/backupclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/memrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

var restoreSecret = []byte("restore-test-internal-secret-0123456789")

// storeSaga orders and deletes through the in-memory repository, as the
// saga would, so a test sees what an order stored.
type storeSaga struct {
	fuzzSaga
	repo *memrepo.Repo
}

func (s storeSaga) Order(ctx context.Context, r saga.OrderRequest) (*instance.Instance, instance.Operation, error) {
	id := r.ID
	if id == "" {
		id = saga.NewID()
	}
	in, op, err := instance.New(instance.Order{ID: id, OperationID: "op-" + id, Tenant: r.Tenant, Name: r.Name, Plan: r.Plan,
		Version: r.Version, Region: r.Region, Parameters: r.Parameters, Restore: r.Restore}, time.Now().UTC())
	if err != nil {
		return nil, instance.Operation{}, err
	}
	if err := s.repo.Create(ctx, port.CreateRequest{Instance: in, Op: op}); err != nil {
		return nil, instance.Operation{}, err
	}
	return in, op, nil
}

func (s storeSaga) Delete(ctx context.Context, tenant, id string) (*instance.Instance, instance.Operation, error) {
	if _, err := s.repo.Get(ctx, tenant, id); err != nil {
		return nil, instance.Operation{}, err
	}
	var op instance.Operation
	in, err := s.repo.Update(ctx, id, func(c *port.Change) error {
		var err error
		op, err = c.Instance.Delete("op-del-"+id, time.Now().UTC())
		*c.Op = op
		return err
	})
	return in, op, err
}

// backupStandIn is the backup service's restore route as the tests need
// it: it verifies the signature like the real service's middleware,
// records who asked what, and answers status with body.
type backupStandIn struct {
	mu     sync.Mutex
	status int
	body   string
	starts []backupclient.StartRequest
	who    []tenancy.Principal
	done   []string
	srv    *httptest.Server
}

func newBackupStandIn(t *testing.T) *backupStandIn {
	b := &backupStandIn{status: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /internal/v1/restores", func(w http.ResponseWriter, r *http.Request) {
		var req backupclient.StartRequest
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p, _ := tenancy.PrincipalFrom(r.Context())
		b.mu.Lock()
		b.starts, b.who = append(b.starts, req), append(b.who, p)
		status, body := b.status, b.body
		b.mu.Unlock()
		if status == http.StatusOK {
			body = `{"id":"r-1","tenant_id":"` + req.TenantID + `","status":"pending","target_instance_id":"` + req.TargetID + `"}`
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "application/problem+json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	mux.HandleFunc("POST /internal/v1/restores/{id}/done", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.done = append(b.done, r.PathValue("id"))
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	})
	b.srv = httptest.NewServer(tenancy.Middleware(tenancy.AudienceBackup, restoreSecret)(mux))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backupStandIn) answer(status int, body string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status, b.body = status, body
}

func (b *backupStandIn) calls() ([]backupclient.StartRequest, []tenancy.Principal, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]backupclient.StartRequest(nil), b.starts...), append([]tenancy.Principal(nil), b.who...), append([]string(nil), b.done...)
}

// restoreFixture: tenant acme has src-my (MySQL, "orders-db"), src-big
// (MySQL on a plan bigger than any order's) and src-redis; globex has src-other (MySQL). Orders go to a stored saga; the
// backup service is the stand-in.
func restoreFixture(t *testing.T) (*Handler, *memrepo.Repo, *backupStandIn) {
	t.Helper()
	ctx := context.Background()
	repo := memrepo.New()
	for _, c := range []struct{ id, tenant, engine, name string }{
		{"src-my", "acme", instance.EngineMySQL, "orders-db"},
		{"src-redis", "acme", instance.EngineRedis, "cache"},
		{"src-other", "globex", instance.EngineMySQL, "theirs"},
		{"src-big", "acme", instance.EngineMySQL, "warehouse"},
	} {
		in := routedInstance(c.id, c.engine)
		in.Tenant, in.Name = c.tenant, c.name
		if c.id == "src-big" {
			in.Plan.Resources = instance.Resources{VCPU: 64, MemoryMB: 1 << 20, StorageGB: 100000}
		}
		if err := repo.Create(ctx, port.CreateRequest{Instance: in, Op: instance.Operation{ID: "op-" + c.id, InstanceID: c.id, Tenant: c.tenant}}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := New(repo, storeSaga{repo: repo}, fuzzCatalog{}, func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b := newBackupStandIn(t)
	bc, err := backupclient.New(backupclient.Config{BaseURL: b.srv.URL, Secret: restoreSecret, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.WithBackups(bc)
	return h, repo, b
}

func send(h *Handler, who tenancy.Principal, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req = req.WithContext(tenancy.WithPrincipal(req.Context(), who))
	rec := httptest.NewRecorder()
	h.Routes().ServeHTTP(rec, req)
	return rec
}

var tenantMember = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:k1"}

type problemJSON struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) problemJSON {
	t.Helper()
	var p problemJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("answer is not a problem: %v: %s", err, rec.Body)
	}
	return p
}

// acmeInstances lists tenant acme's instance ids.
func acmeInstances(t *testing.T, repo *memrepo.Repo) []string {
	t.Helper()
	ins, err := repo.List(context.Background(), "acme", "", 100, true)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	return ids
}

// An order's restore_from is validated first (400/422 naming the field),
// then the source is checked and the backup service asked; its 404, 422
// and silence become the order's 404, 422 (with its detail) and 503, and
// a refused order stores nothing.
func TestRestoreFromRefused(t *testing.T) {
	tests := []struct {
		name        string
		restoreFrom string
		backup      func(b *backupStandIn)
		status      int
		field       string
		detail      string
		asked       bool
	}{
		{"no instance_id", `{"backup_id":"b1"}`, nil, 400, "restore_from.instance_id", "", false},
		{"no target", `{"instance_id":"src-my"}`, nil, 422, "restore_from", "", false},
		{"two targets", `{"instance_id":"src-my","backup_id":"b1","gtid":"0-1-5"}`, nil, 422, "restore_from", "", false},
		{"point in time not RFC 3339", `{"instance_id":"src-my","point_in_time":"yesterday"}`, nil, 422, "restore_from.point_in_time", "", false},
		{"point in time below the second", `{"instance_id":"src-my","point_in_time":"2026-03-01T12:00:00.5Z"}`, nil, 422, "restore_from.point_in_time", "", false},
		{"unknown source", `{"instance_id":"nope","backup_id":"b1"}`, nil, 404, "restore_from", ProblemNoSuchBackup, false},
		{"another tenant's source", `{"instance_id":"src-other","backup_id":"b1"}`, nil, 404, "restore_from", ProblemNoSuchBackup, false},
		{"source of another engine", `{"instance_id":"src-redis","backup_id":"b1"}`, nil, 422, "restore_from.instance_id", "", false},
		{"plan smaller than the source's", `{"instance_id":"src-big","backup_id":"b1"}`, nil, 422, "plan_id", "", false},
		{"backup service: no such backup", `{"instance_id":"src-my","backup_id":"b9"}`,
			func(b *backupStandIn) { b.answer(404, `{"status":404,"detail":"no such backup"}`) }, 404, "restore_from", ProblemNoSuchBackup, true},
		{"backup service: outside the window", `{"instance_id":"src-my","point_in_time":"2020-01-01T00:00:00Z"}`,
			func(b *backupStandIn) {
				b.answer(422, `{"status":422,"detail":"outside the restore window: earliest 2026-02-01T00:00:00Z, latest 2026-03-01T00:00:00Z"}`)
			}, 422, "restore_from.point_in_time", "outside the restore window: earliest 2026-02-01T00:00:00Z, latest 2026-03-01T00:00:00Z", true},
		{"backup service down", `{"instance_id":"src-my","gtid":"0-1-5"}`, func(b *backupStandIn) { b.srv.Close() }, 503, "", "", false},
		{"backup service fails", `{"instance_id":"src-my","gtid":"0-1-5"}`, func(b *backupStandIn) { b.answer(500, `oops`) }, 503, "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, repo, b := restoreFixture(t)
			if tc.backup != nil {
				tc.backup(b)
			}
			before := acmeInstances(t, repo)
			rec := send(h, tenantMember, http.MethodPost, "/api/v1/instances", `{"name":"restored","plan_id":"p1","restore_from":`+tc.restoreFrom+`}`)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			p := decodeProblem(t, rec)
			if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field) {
				t.Fatalf("problem errors %+v, want field %s", p.Errors, tc.field)
			}
			if tc.detail != "" && !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("problem detail %q, want %q", p.Detail, tc.detail)
			}
			if after := acmeInstances(t, repo); len(after) != len(before) {
				t.Fatalf("refused order stored an instance: %v → %v", before, after)
			}
			if starts, _, _ := b.calls(); (len(starts) > 0) != tc.asked {
				t.Fatalf("backup service asked %d times, want asked=%v", len(starts), tc.asked)
			}
		})
	}
}

// An accepted restore: the backup service is asked, signed as
// service:provisioning for the tenant, to restore the source into the new
// instance's id; the instance records the job, source, target and the
// source's database.
func TestRestoreFromAccepted(t *testing.T) {
	h, repo, b := restoreFixture(t)
	rec := send(h, tenantMember, http.MethodPost, "/api/v1/instances",
		`{"name":"restored","plan_id":"p1","restore_from":{"instance_id":"src-my","point_in_time":"2026-03-01T12:30:05+01:00"}}`)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var acc acceptedJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &acc); err != nil {
		t.Fatal(err)
	}
	starts, who, _ := b.calls()
	if len(starts) != 1 {
		t.Fatalf("backup service asked %d times, want once", len(starts))
	}
	pit := time.Date(2026, 3, 1, 11, 30, 5, 0, time.UTC)
	want := backupclient.StartRequest{TenantID: "acme", SourceID: "src-my", TargetID: acc.Instance.ID, Engine: instance.EngineMySQL,
		Target: backupclient.Target{PointInTime: pit}}
	if got := starts[0]; got.TenantID != want.TenantID || got.SourceID != want.SourceID || got.TargetID != want.TargetID ||
		got.Engine != want.Engine || !got.Target.PointInTime.Equal(pit) || got.Target.BackupID != "" || got.Target.GTID != "" {
		t.Fatalf("backup service asked %+v, want %+v", got, want)
	}
	if who[0].Subject != backupclient.Subject || who[0].Tenant != "acme" {
		t.Fatalf("backup service saw %+v, want service:provisioning for acme", who[0])
	}
	in, err := repo.Get(context.Background(), "acme", acc.Instance.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantRestore := instance.Restore{ID: "r-1", SourceInstanceID: "src-my", PointInTime: pit, Database: "orders_db"}
	if in.Restore == nil || *in.Restore != wantRestore {
		t.Fatalf("instance records restore %+v, want %+v", in.Restore, wantRestore)
	}
	if in.Database() != "orders_db" {
		t.Fatalf("restored instance's database %q, want the source's orders_db", in.Database())
	}
	// The saga shows the job's phase on the create operation.
	if _, err := repo.Update(context.Background(), in.ID, func(c *port.Change) error { c.Op.StepDetail = "replaying"; return nil }); err != nil {
		t.Fatal(err)
	}
	rec = send(h, tenantMember, http.MethodGet, "/api/v1/operations/"+acc.OperationID, "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"step_detail":"replaying"`) {
		t.Fatalf("operation: %d %s, want step_detail replaying", rec.Code, rec.Body)
	}
}

// An order refused after its restore job started (the name is taken)
// releases the job.
func TestRestoreFromReleasedWhenOrderRefused(t *testing.T) {
	h, _, b := restoreFixture(t)
	rec := send(h, tenantMember, http.MethodPost, "/api/v1/instances",
		`{"name":"orders-db","plan_id":"p1","restore_from":{"instance_id":"src-my","backup_id":"b1"}}`)
	if rec.Code != http.StatusConflict {
		t.Fatalf("status %d, want 409: %s", rec.Code, rec.Body)
	}
	if _, _, done := b.calls(); len(done) != 1 || done[0] != "r-1" {
		t.Fatalf("done calls %v, want [r-1]", done)
	}
}

// The backup service's drills order and delete scratch instances as
// service:backup for the tenant with the tenant-member role.
func TestDrillIdentityOrdersAndDeletes(t *testing.T) {
	h, repo, _ := restoreFixture(t)
	drill := tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: BackupReader}
	rec := send(h, drill, http.MethodPost, "/api/v1/instances",
		`{"name":"drill-1","plan_id":"p1","restore_from":{"instance_id":"src-my","backup_id":"b1"}}`)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("drill order: status %d: %s", rec.Code, rec.Body)
	}
	var acc acceptedJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &acc); err != nil {
		t.Fatal(err)
	}
	rec = send(h, drill, http.MethodDelete, "/api/v1/instances/"+acc.Instance.ID, "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("drill delete: status %d: %s", rec.Code, rec.Body)
	}
	if in, err := repo.Get(context.Background(), "acme", acc.Instance.ID); err != nil || in.State != instance.StateDeleting {
		t.Fatalf("scratch instance after delete: %+v, %v; want deleting", in, err)
	}
	// The same identity reaches neither another tenant's instances nor
	// the internal view.
	if rec := send(h, drill, http.MethodDelete, "/api/v1/instances/src-other", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("drill identity deletes another tenant's instance: status %d", rec.Code)
	}
	if rec := serveAs(h, &drill, BackupPath); rec.Code != http.StatusNotFound {
		t.Fatalf("drill identity with a tenant reads the backup view: status %d", rec.Code)
	}
}
