package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/memrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

var testRouter = instance.Router{Host: "router.canopy.internal", SentinelPort: 26380, Ports: instance.PortRange{Lo: 16000, Hi: 16999}}

// routedInstance is a ready instance of engine with a primary n0, a replica
// n1 and a fenced former primary n2, as a failover leaves them.
func routedInstance(id, engine string) *instance.Instance {
	in, _, err := instance.New(instance.Order{ID: id, OperationID: "op-" + id, Tenant: "acme", Name: "db-" + id, Version: "7",
		Plan: instance.Plan{ID: "p", Engine: engine, DeploymentMode: instance.ModeMultiAZ,
			Nodes: []instance.NodeTemplate{{Role: instance.RolePrimary}, {Role: instance.RoleReplica}, {Role: instance.RoleReplica}}},
		Accounts: instance.Accounts{
			Admin:       instance.Credentials{Username: "canopy_admin", Password: "admin-secret-pw"},
			Monitor:     instance.Credentials{Username: "canopy_monitor", Password: "monitor-secret-pw"},
			Replication: instance.Credentials{Username: "canopy_repl", Password: "repl-secret-pw"},
		},
	}, time.Now().UTC())
	if err != nil {
		panic(err)
	}
	in.State, in.Step = instance.StateReady, instance.StepDone
	in.Failover = instance.AppliedFailover{Token: 7, Recovery: "r-1"}
	for i, role := range []instance.Role{instance.RolePrimary, instance.RoleReplica, instance.RoleReplica} {
		name := instance.NodeName(i)
		in.Nodes = append(in.Nodes, instance.Node{ID: in.NodeID(name), Name: name, Role: role, Host: "h",
			Address: "127.0.0.1:2000" + name[1:], State: instance.NodeRunning, Fenced: i == 2})
	}
	return in
}

// routerFixture: i1 (mysql) and i2 (redis) with ports, i3 without ports,
// i4 deleted; i1 has an active and an unbound binding.
func routerFixture(t *testing.T) *Handler {
	t.Helper()
	ctx := context.Background()
	repo := memrepo.New()
	for _, c := range []struct {
		id, engine string
		ports      bool
	}{{"i1", instance.EngineMySQL, true}, {"i2", instance.EngineRedis, true}, {"i3", instance.EngineMySQL, false}, {"i4", instance.EngineMySQL, true}} {
		in := routedInstance(c.id, c.engine)
		req := port.CreateRequest{Instance: in, Op: instance.Operation{ID: "op-" + c.id, InstanceID: c.id, Tenant: "acme"}}
		if c.ports {
			req.RouterPorts = testRouter.Ports
		}
		if err := repo.Create(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := repo.Update(ctx, "i4", func(c *port.Change) error { c.Instance.State = instance.StateDeleted; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, b := range []instance.Binding{
		{ID: "b1", InstanceID: "i1", Tenant: "acme", Name: "app", Credentials: instance.Credentials{Username: "app_1", Password: "binding-pw-1"}},
		{ID: "b2", InstanceID: "i1", Tenant: "acme", Name: "old", Credentials: instance.Credentials{Username: "old_1", Password: "binding-pw-2"}},
	} {
		if _, err := repo.CreateBinding(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	b2, err := repo.Binding(ctx, "acme", "i1", "b2")
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.DeleteBinding(ctx, b2, nil); err != nil {
		t.Fatal(err)
	}
	h, err := New(repo, fuzzSaga{}, fuzzCatalog{}, func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h.WithRouter(testRouter)
	return h
}

func serveAs(h *Handler, who *tenancy.Principal, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if who != nil {
		req = req.WithContext(tenancy.WithPrincipal(req.Context(), *who))
	}
	rec := httptest.NewRecorder()
	h.Routes().ServeHTTP(rec, req)
	return rec
}

// The router view answers only the signed identity service:router.
func TestRouterViewWho(t *testing.T) {
	h := routerFixture(t)
	tests := []struct {
		name   string
		who    *tenancy.Principal
		status int
	}{
		{"router", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: RouterReader}, http.StatusOK},
		{"no identity", nil, http.StatusUnauthorized},
		{"tenant admin", &tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: RouterReader}, http.StatusNotFound},
		{"failover service", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: FailoverReader}, http.StatusNotFound},
		{"another platform admin", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}, http.StatusNotFound},
	}
	for _, tt := range tests {
		for _, path := range []string{RouterPath, RouterPath + "/i1"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				if rec := serveAs(h, tt.who, path); rec.Code != tt.status {
					t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
				}
			})
		}
	}
}

// The router view lists live instances with ports, page by page, with
// roles, ports and binding verifiers, and no secret.
func TestRouterViewContents(t *testing.T) {
	h := routerFixture(t)
	router := &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: RouterReader}
	type page struct {
		Instances  []routerInstance `json:"instances"`
		NextCursor string           `json:"next_cursor"`
	}
	var all []routerInstance
	cursor := ""
	for i := 0; i < 5; i++ {
		rec := serveAs(h, router, RouterPath+"?limit=1&cursor="+cursor)
		if rec.Code != http.StatusOK {
			t.Fatalf("list: %d %s", rec.Code, rec.Body)
		}
		assertNoSecrets(t, rec.Body.String())
		var p page
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Instances...)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(all) != 2 || all[0].InstanceID != "i1" || all[1].InstanceID != "i2" {
		t.Fatalf("listed %+v, want i1 and i2 (i3 has no ports, i4 is deleted)", all)
	}
	sum := sha256.Sum256([]byte("binding-pw-1"))
	i1 := all[0]
	want := routerInstance{InstanceID: "i1", TenantID: "acme", Name: "db-i1", Engine: "mysql", State: "ready", FailoverToken: 7,
		Endpoints: routerPorts{RWPort: 16000, ROPort: 16001},
		Nodes: []routerNode{
			{ID: "i1-n0", Role: "primary", Address: "127.0.0.1:20000", State: "running"},
			{ID: "i1-n1", Role: "replica", Address: "127.0.0.1:20001", State: "running"},
			{ID: "i1-n2", Role: "fenced", Address: "127.0.0.1:20002", State: "running"},
		},
		Bindings: []routerBinding{{Username: "app_1", PasswordSHA256: hex.EncodeToString(sum[:])}},
	}
	if got, _ := json.Marshal(i1); string(got) != string(must(json.Marshal(want))) {
		t.Fatalf("i1:\n got %s\nwant %s", got, must(json.Marshal(want)))
	}
	if all[1].Endpoints != (routerPorts{RWPort: 16002, ROPort: 16003}) || len(all[1].Bindings) != 0 {
		t.Fatalf("i2: %+v", all[1])
	}
	for _, c := range []struct {
		id     string
		status int
	}{{"i1", http.StatusOK}, {"i3", http.StatusNotFound}, {"i4", http.StatusNotFound}, {"nope", http.StatusNotFound}} {
		rec := serveAs(h, router, RouterPath+"/"+c.id)
		if rec.Code != c.status {
			t.Fatalf("get %s: %d, want %d: %s", c.id, rec.Code, c.status, rec.Body)
		}
		assertNoSecrets(t, rec.Body.String())
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func assertNoSecrets(t *testing.T, body string) {
	t.Helper()
	for _, secret := range []string{"admin-secret-pw", "monitor-secret-pw", "repl-secret-pw", "binding-pw-1", "binding-pw-2", "canopy_admin", "canopy_repl", "canopy_monitor", "password\""} {
		if strings.Contains(body, secret) {
			t.Fatalf("router view shows %q: %s", secret, body)
		}
	}
}

// Credentials name the router's read-write endpoint when the router is
// enabled and the instance has ports, the primary node otherwise.
func TestCredentialsEndpoints(t *testing.T) {
	b := instance.Binding{Credentials: instance.Credentials{Username: "app_1", Password: "pw"}}
	mysql := routedInstance("i1", instance.EngineMySQL)
	mysql.Router = instance.RouterPorts{RW: 16000, RO: 16001}
	redis := routedInstance("i2", instance.EngineRedis)
	redis.Router = instance.RouterPorts{RW: 16002, RO: 16003}
	unported := routedInstance("i3", instance.EngineMySQL)
	tests := []struct {
		name   string
		in     *instance.Instance
		router instance.Router
		want   credentialsJSON
	}{
		{"mysql through the router", mysql, testRouter, credentialsJSON{Host: "router.canopy.internal", Port: 16000, Username: "app_1", Password: "pw",
			Database: "db_i1", URI: "mysql://app_1:pw@router.canopy.internal:16000/db_i1",
			Endpoints: &routerEndpointsJSON{RW: "router.canopy.internal:16000", RO: "router.canopy.internal:16001"}}},
		{"redis through the router", redis, testRouter, credentialsJSON{Host: "router.canopy.internal", Port: 16002, Username: "app_1", Password: "pw",
			URI: "redis://app_1:pw@router.canopy.internal:16002",
			Endpoints: &routerEndpointsJSON{RW: "router.canopy.internal:16002", RO: "router.canopy.internal:16003",
				Sentinel: "router.canopy.internal:26380", MasterName: "db-i2"}}},
		{"router disabled", mysql, instance.Router{}, credentialsJSON{Host: "127.0.0.1", Port: 20000, Username: "app_1", Password: "pw",
			Database: "db_i1", URI: "mysql://app_1:pw@127.0.0.1:20000/db_i1"}},
		{"instance without ports", unported, testRouter, credentialsJSON{Host: "127.0.0.1", Port: 20000, Username: "app_1", Password: "pw",
			Database: "db_i3", URI: "mysql://app_1:pw@127.0.0.1:20000/db_i3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := credentialsOf(tt.in, b, tt.router)
			if g, w := must(json.Marshal(got)), must(json.Marshal(tt.want)); string(g) != string(w) {
				t.Fatalf("credentials\n got %s\nwant %s", g, w)
			}
			osb := osbBindingBody(tt.in, got)
			eps := osb["endpoints"].([]map[string]any)
			creds := osb["credentials"].(map[string]any)
			if tt.want.Endpoints == nil {
				if len(eps) != 1 || eps[0]["host"] != tt.want.Host || creds["endpoints"] != nil {
					t.Fatalf("osb body without router: %+v", osb)
				}
				return
			}
			if len(eps) != 2 || eps[0]["host"] != "router.canopy.internal" ||
				strings.Join(eps[0]["ports"].([]string), ",") != strings.Split(tt.want.Endpoints.RW, ":")[1] ||
				strings.Join(eps[1]["ports"].([]string), ",") != strings.Split(tt.want.Endpoints.RO, ":")[1] {
				t.Fatalf("osb endpoints %+v, want rw then ro", eps)
			}
			if e, ok := creds["endpoints"].(*routerEndpointsJSON); !ok || *e != *tt.want.Endpoints || creds["host"] != tt.want.Host || creds["port"] != tt.want.Port {
				t.Fatalf("osb credentials %+v", creds)
			}
		})
	}
	// The instance shows its router endpoints next to the nodes'.
	ij := toInstanceJSON(redis, testRouter)
	want := endpointsJSON{Primary: "127.0.0.1:20000", Replicas: []string{"127.0.0.1:20001"}, RW: "router.canopy.internal:16002",
		RO: "router.canopy.internal:16003", Sentinel: "router.canopy.internal:26380", MasterName: "db-i2"}
	if g, w := must(json.Marshal(ij.Endpoints)), must(json.Marshal(want)); string(g) != string(w) {
		t.Fatalf("instance endpoints\n got %s\nwant %s", g, w)
	}
	if ij := toInstanceJSON(redis, instance.Router{}); ij.Endpoints.RW != "" || ij.Endpoints.Primary == "" {
		t.Fatalf("router disabled: %+v", ij.Endpoints)
	}
}

// fullSaga refuses every order as the repository does when the router's
// port range is full.
type fullSaga struct{ fuzzSaga }

func (fullSaga) Order(context.Context, saga.OrderRequest) (*instance.Instance, instance.Operation, error) {
	return nil, instance.Operation{}, fmt.Errorf("create instance i9: %w 16000-16001", instance.ErrRouterPortsExhausted)
}

// A full router port range refuses the order with a 503 problem of its own
// type, in /api/v1 and through OSB alike.
func TestOrderRouterPortsExhausted(t *testing.T) {
	h, err := New(fuzzRepo{}, fullSaga{}, fuzzCatalog{}, func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/instances", strings.NewReader(`{"name":"db","plan_id":"p1"}`))
	req.Header.Set("Content-Type", "application/json")
	req = req.WithContext(tenancy.WithPrincipal(req.Context(), tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:k"}))
	rec := httptest.NewRecorder()
	h.Routes().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), ProblemRouterPortsExhausted) {
		t.Fatalf("order: %d %s, want 503 %s", rec.Code, rec.Body, ProblemRouterPortsExhausted)
	}
	w := httptest.NewRecorder()
	h.osbOrderError(w, routerPortsExhausted())
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("osb: %d %s, want 503", w.Code, w.Body)
	}
}
