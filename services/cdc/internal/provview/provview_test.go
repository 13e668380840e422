package provview_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

const wire = `{"instance_id":"i-1","tenant_id":"acme","name":"orders","engine":"mysql","state":"ready",
 "nodes":[{"id":"n-0","address":"127.0.0.1:3307","role":"primary","region":"eu","region_role":"primary","healthy":true},
          {"id":"n-1","address":"127.0.0.1:3308","role":"replica","region":"us","region_role":"dr","healthy":false}],
 "cdc":{"username":"canopy_cdc","password":"pw"}}`

// redisWire is a Redis instance as the view shows it: its admin account,
// what a sync job's cache writes with.
const redisWire = `{"instance_id":"r-1","tenant_id":"acme","name":"cache","engine":"redis","state":"ready",
 "nodes":[{"id":"r-1-n0","address":"127.0.0.1:6380","role":"primary","region":"eu","region_role":"primary","healthy":true}],
 "cdc":{"username":"canopy_admin","password":"redis-pw"}}`

// provisioning serves the CDC view behind provisioning's signature check
// and records who called.
func provisioning(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var callers []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /internal/v1/cdc/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		mu.Lock()
		callers = append(callers, p.Subject+"/"+string(p.Role))
		mu.Unlock()
		switch r.PathValue("id") {
		case "i-1":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(wire))
		case "r-1":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(redisWire))
		case "boom":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.Error(w, "no such instance", http.StatusNotFound)
		}
	})
	srv := httptest.NewServer(tenancy.Middleware(tenancy.AudienceProvisioning, secret)(mux))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), callers...)
	}
}

func TestInstanceMapsTheViewSigned(t *testing.T) {
	srv, callers := provisioning(t)
	c, err := provview.New(srv.URL, secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.Instance(context.Background(), "i-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "i-1" || in.Tenant != "acme" || in.Name != "orders" || in.Engine != "mysql" || in.State != "ready" ||
		in.CDC != (provview.Credentials{Username: "canopy_cdc", Password: "pw"}) || len(in.Nodes) != 2 {
		t.Fatalf("mapped %+v", in)
	}
	want := provview.Node{ID: "n-1", Address: "127.0.0.1:3308", Role: provview.RoleReplica, Region: "us", RegionRole: provview.RegionDR}
	if in.Nodes[1] != want || !in.Nodes[0].Healthy {
		t.Fatalf("nodes %+v", in.Nodes)
	}
	if got := callers(); len(got) != 1 || got[0] != "service:cdc/platform-admin" {
		t.Fatalf("callers %v", got)
	}
}

func TestErrors(t *testing.T) {
	srv, _ := provisioning(t)
	c, err := provview.New(srv.URL, secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := map[string]struct {
		call     func() error
		notFound bool
	}{
		"unknown instance":        {call: func() error { _, err := c.Instance(ctx, "i-2"); return err }, notFound: true},
		"other tenant":            {call: func() error { _, err := c.Get(ctx, "globex", "i-1"); return err }, notFound: true},
		"unknown instance by Get": {call: func() error { _, err := c.Get(ctx, "acme", "i-2"); return err }, notFound: true},
		"server error":            {call: func() error { _, err := c.Instance(ctx, "boom"); return err }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.call()
			if err == nil || errors.Is(err, provview.ErrNotFound) != tc.notFound {
				t.Fatalf("err %v, want not found %v", err, tc.notFound)
			}
		})
	}
	wrong, err := provview.New(srv.URL, []byte("another-secret-another-secret-xx"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Instance(ctx, "i-1"); err == nil || errors.Is(err, provview.ErrNotFound) {
		t.Fatalf("badly signed call: %v", err)
	}
}

func TestGetOwnTenant(t *testing.T) {
	srv, _ := provisioning(t)
	c, err := provview.New(srv.URL, secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Get(context.Background(), "acme", "i-1")
	if err != nil {
		t.Fatal(err)
	}
	if info != (provview.Info{ID: "i-1", Tenant: "acme", Engine: "mysql", State: "ready"}) {
		t.Fatalf("info %+v", info)
	}
	if _, err := provview.New("not a url", secret, 0); err == nil {
		t.Fatal("bad URL accepted")
	}
}

// A Redis instance comes with its engine and admin account (the stream API
// refuses it by its engine; a sync job writes its cache with the account).
func TestRedisInstance(t *testing.T) {
	srv, _ := provisioning(t)
	c, err := provview.New(srv.URL, secret, 0)
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.Instance(context.Background(), "r-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.Engine != "redis" || in.CDC != (provview.Credentials{Username: "canopy_admin", Password: "redis-pw"}) ||
		len(in.Nodes) != 1 || in.Nodes[0].Address != "127.0.0.1:6380" || in.Nodes[0].Role != provview.RolePrimary {
		t.Fatalf("mapped %+v", in)
	}
	info, err := c.Get(context.Background(), "acme", "r-1")
	if err != nil || info.Engine != "redis" {
		t.Fatalf("info %+v, %v", info, err)
	}
}
