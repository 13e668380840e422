package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/memrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

var cdcAccount = instance.Credentials{Username: "canopy_cdc", Password: "cdc-secret-pw"}

// cdcFixture: c1 (mysql with a cdc account: primary, stopped replica,
// fenced former primary, DR replica), c2 (redis, same nodes), c3 (mysql
// created before the cdc account), c4 (mysql, deleted).
func cdcFixture(t *testing.T) *Handler {
	t.Helper()
	return cdcFixtureWith(t, fuzzSaga{})
}

// cdcSaga answers EnsureCDCAccount with ensure.
type cdcSaga struct {
	fuzzSaga
	ensure func(id string) (*instance.Instance, error)
}

func (s cdcSaga) EnsureCDCAccount(_ context.Context, id string) (*instance.Instance, error) {
	return s.ensure(id)
}

func cdcFixtureWith(t *testing.T, sg Saga, edits ...func(*instance.Instance)) *Handler {
	t.Helper()
	ctx := context.Background()
	repo := memrepo.New()
	for _, c := range []struct {
		id, engine string
		cdc        bool
	}{{"c1", instance.EngineMySQL, true}, {"c2", instance.EngineRedis, false}, {"c3", instance.EngineMySQL, false}, {"c4", instance.EngineMySQL, true}} {
		in := routedInstance(c.id, c.engine)
		if c.cdc {
			in.Accounts.CDC, in.Accounts.CDCGrants = cdcAccount, driver.CDCGrants
		}
		for i := range in.Nodes {
			in.Nodes[i].Region, in.Nodes[i].RegionRole = "eu-1", instance.RegionPrimary
		}
		in.Nodes[1].State = instance.NodeStopped
		dr := instance.NodeName(3)
		in.Nodes = append(in.Nodes, instance.Node{ID: in.NodeID(dr), Name: dr, Role: instance.RoleReplica, Host: "h",
			Address: "127.0.0.1:20003", State: instance.NodeRunning, Region: "eu-2", RegionRole: instance.RegionDR})
		for _, edit := range edits {
			edit(in)
		}
		req := port.CreateRequest{Instance: in, Op: instance.Operation{ID: "op-" + c.id, InstanceID: c.id, Tenant: "acme"}}
		if err := repo.Create(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := repo.Update(ctx, "c4", func(c *port.Change) error { c.Instance.State = instance.StateDeleted; return nil }); err != nil {
		t.Fatal(err)
	}
	h, err := New(repo, sg, fuzzCatalog{}, func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The cdc view answers only the signed identity service:cdc.
func TestCDCViewWho(t *testing.T) {
	h := cdcFixture(t)
	tests := []struct {
		name   string
		who    *tenancy.Principal
		status int
	}{
		{"cdc", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: CDCReader}, http.StatusOK},
		{"no identity", nil, http.StatusUnauthorized},
		{"tenant admin", &tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: CDCReader}, http.StatusNotFound},
		{"router service", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: RouterReader}, http.StatusNotFound},
		{"health checker", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: MonitorReader}, http.StatusNotFound},
		{"another platform admin", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}, http.StatusNotFound},
	}
	for _, tt := range tests {
		for _, path := range []string{CDCPath, CDCPath + "/c1"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				rec := serveAs(h, tt.who, path)
				if rec.Code != tt.status {
					t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
				}
				if tt.status != http.StatusOK && strings.Contains(rec.Body.String(), "cdc-secret-pw") {
					t.Fatalf("refused caller sees the cdc password: %s", rec.Body)
				}
			})
		}
	}
}

// The cdc view shows nodes with role, region and health, and one account:
// canopy_cdc for MySQL, the admin account (what a sync job writes a cache
// with) for Redis; a MySQL instance that predates the account is a 409.
func TestCDCViewContents(t *testing.T) {
	h := cdcFixture(t)
	cdc := &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: CDCReader}
	want := `{"instance_id":"c1","tenant_id":"acme","name":"db-c1","engine":"mysql","state":"ready","nodes":[` +
		`{"id":"c1-n0","address":"127.0.0.1:20000","role":"primary","region":"eu-1","region_role":"primary","healthy":true},` +
		`{"id":"c1-n1","address":"127.0.0.1:20001","role":"replica","region":"eu-1","region_role":"primary","healthy":false},` +
		`{"id":"c1-n2","address":"127.0.0.1:20002","role":"fenced","region":"eu-1","region_role":"primary","healthy":true},` +
		`{"id":"c1-n3","address":"127.0.0.1:20003","role":"replica","region":"eu-2","region_role":"dr","healthy":true}],` +
		`"cdc":{"username":"canopy_cdc","password":"cdc-secret-pw"}}`
	rec := serveAs(h, cdc, CDCPath+"/c1")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("get c1: %d\n got %s\nwant %s", rec.Code, rec.Body, want)
	}
	assertNoAccountsButCDC(t, rec.Body.String())

	rec = serveAs(h, cdc, CDCPath+"/c2")
	var redis cdcInstance
	if err := json.Unmarshal(rec.Body.Bytes(), &redis); rec.Code != http.StatusOK || err != nil || redis.Engine != "redis" ||
		redis.CDC != redisAdmin || len(redis.Nodes) != 4 {
		t.Fatalf("get redis c2: %d %s", rec.Code, rec.Body)
	}
	assertNoAccountsBut(t, rec.Body.String(), "admin-secret-pw", "canopy_admin")
	rec = serveAs(h, cdc, CDCPath+"/c3")
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), ErrPredatesCDC) ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
		t.Fatalf("get pre-cdc c3: %d %s %s", rec.Code, rec.Header(), rec.Body)
	}
	for _, id := range []string{"c4", "nope"} {
		if rec := serveAs(h, cdc, CDCPath+"/"+id); rec.Code != http.StatusNotFound {
			t.Fatalf("get %s: %d, want 404: %s", id, rec.Code, rec.Body)
		}
	}

	// The list holds the capturable instances only, page by page.
	type page struct {
		Instances  []cdcInstance `json:"instances"`
		NextCursor string        `json:"next_cursor"`
	}
	var ids []string
	cursor := ""
	for i := 0; i < 5; i++ {
		rec := serveAs(h, cdc, CDCPath+"?limit=1&cursor="+cursor)
		if rec.Code != http.StatusOK {
			t.Fatalf("list: %d %s", rec.Code, rec.Body)
		}
		var p page
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		for _, in := range p.Instances {
			ids = append(ids, in.InstanceID)
			want := cdcAccount
			if in.Engine == "redis" {
				want = redisAdmin
				assertNoAccountsBut(t, rec.Body.String(), "admin-secret-pw", "canopy_admin")
			} else {
				assertNoAccountsButCDC(t, rec.Body.String())
			}
			if in.CDC != want || len(in.Nodes) != 4 {
				t.Fatalf("listed %+v", in)
			}
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(ids, ",") != "c1,c2" {
		t.Fatalf("listed %v, want c1 and c2 (c3 predates cdc, c4 is deleted)", ids)
	}
}

// redisAdmin is the fixture's admin account, what the view shows of Redis.
var redisAdmin = instance.Credentials{Username: "canopy_admin", Password: "admin-secret-pw"}

func assertNoAccountsButCDC(t *testing.T, body string) {
	t.Helper()
	assertNoAccountsBut(t, body)
}

// assertNoAccountsBut fails when body shows an account name or password
// of the fixture other than the canopy_cdc account and those allowed.
func assertNoAccountsBut(t *testing.T, body string, allowed ...string) {
	t.Helper()
	for _, secret := range []string{"admin-secret-pw", "monitor-secret-pw", "repl-secret-pw", "canopy_admin", "canopy_repl", "canopy_monitor"} {
		if strings.Contains(body, secret) && !slices.Contains(allowed, secret) {
			t.Fatalf("cdc view shows %q: %s", secret, body)
		}
	}
}

// A ready MySQL instance that predates the cdc account gets it through the
// saga on the first read; one that is not ready is a 409, a failure to
// create it a 503 (the caller retries).
func TestCDCViewPredatingInstance(t *testing.T) {
	cdc := &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: CDCReader}
	added := routedInstance("c3", instance.EngineMySQL)
	added.Accounts.CDC = instance.Credentials{Username: "canopy_cdc", Password: "added-cdc-pw"}
	for _, tc := range []struct {
		name   string
		ensure func(string) (*instance.Instance, error)
		status int
		body   string
	}{
		{"added", func(id string) (*instance.Instance, error) { return added, nil }, http.StatusOK, `"cdc":{"username":"canopy_cdc","password":"added-cdc-pw"}`},
		{"not ready", func(string) (*instance.Instance, error) { return nil, fmt.Errorf("%w: updating", saga.ErrNotReady) }, http.StatusConflict, ErrPredatesCDC},
		{"deleted meanwhile", func(string) (*instance.Instance, error) { return nil, saga.ErrGone }, http.StatusNotFound, "no such instance"},
		{"engine down", func(string) (*instance.Instance, error) { return nil, errors.New("dial: refused") }, http.StatusServiceUnavailable, "retry later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked []string
			h := cdcFixtureWith(t, cdcSaga{ensure: func(id string) (*instance.Instance, error) { asked = append(asked, id); return tc.ensure(id) }})
			rec := serveAs(h, cdc, CDCPath+"/c3")
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("get c3: %d %s, want %d with %q", rec.Code, rec.Body, tc.status, tc.body)
			}
			if strings.Join(asked, ",") != "c3" {
				t.Fatalf("saga asked for %v, want c3", asked)
			}
			// Instances with the account (and Redis) never go through the saga.
			asked = nil
			for _, id := range []string{"c1", "c2"} {
				if rec := serveAs(h, cdc, CDCPath+"/"+id); rec.Code != http.StatusOK {
					t.Fatalf("get %s: %d %s", id, rec.Code, rec.Body)
				}
			}
			if len(asked) != 0 {
				t.Fatalf("saga asked for %v", asked)
			}
		})
	}
}

// A ready instance whose account has older grants (from before sync jobs)
// is granted again through the saga on a read; the view is served with the
// account either way, since reading works with the older grants.
func TestCDCViewRegrantsOldAccount(t *testing.T) {
	cdc := &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: CDCReader}
	for _, fail := range []bool{false, true} {
		var asked []string
		h := cdcFixtureWith(t, cdcSaga{ensure: func(id string) (*instance.Instance, error) {
			asked = append(asked, id)
			if fail {
				return nil, errors.New("dial: refused")
			}
			return h2instance(id), nil
		}}, func(in *instance.Instance) {
			if in.ID == "c1" {
				in.Accounts.CDCGrants = "" // from before sync jobs
			}
		})
		rec := serveAs(h, cdc, CDCPath+"/c1")
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"cdc":{"username":"canopy_cdc"`) {
			t.Fatalf("engine failing %v: get c1: %d %s", fail, rec.Code, rec.Body)
		}
		if strings.Join(asked, ",") != "c1" {
			t.Fatalf("engine failing %v: saga asked for %v, want c1", fail, asked)
		}
	}
}

// h2instance is what a successful regrant returns.
func h2instance(id string) *instance.Instance {
	in := routedInstance(id, instance.EngineMySQL)
	in.Accounts.CDC, in.Accounts.CDCGrants = cdcAccount, driver.CDCGrants
	return in
}
