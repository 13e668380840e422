package provclient

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// fakeProvisioning serves the internal failover view behind the same
// signature check provisioning uses, and records injected faults.
type fakeProvisioning struct {
	mu        sync.Mutex
	instances []Instance
	faults    []string
	rebuilds  []string
	callers   []string
}

func (f *fakeProvisioning) server(t *testing.T) *httptest.Server {
	r := chi.NewRouter()
	r.Use(tenancy.Middleware(tenancy.AudienceProvisioning, secret))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := tenancy.PrincipalFrom(r.Context())
			f.mu.Lock()
			f.callers = append(f.callers, p.Subject)
			f.mu.Unlock()
			next.ServeHTTP(w, r)
		})
	})
	r.Get(ListPath, func(w http.ResponseWriter, r *http.Request) {
		// Pages of one instance: the cursor is the index of the next.
		i := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			i = int(c[0] - '0')
		}
		resp := struct {
			Instances  []Instance `json:"instances"`
			NextCursor string     `json:"next_cursor"`
		}{Instances: f.instances[i : i+1]}
		if i+1 < len(f.instances) {
			resp.NextCursor = string(rune('0' + i + 1))
		}
		_ = json.NewEncoder(w).Encode(resp)
	})
	r.Get(ListPath+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, in := range f.instances {
			if in.InstanceID == chi.URLParam(r, "id") {
				_ = json.NewEncoder(w).Encode(in)
				return
			}
		}
		http.Error(w, "no such instance", http.StatusNotFound)
	})
	r.Post(ListPath+"/{id}/nodes/{node}/fault", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Kind string }
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &body) != nil || (body.Kind != "kill" && body.Kind != "stop") {
			http.Error(w, "bad fault", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.faults = append(f.faults, chi.URLParam(r, "id")+"/"+chi.URLParam(r, "node")+":"+body.Kind)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	r.Post(ListPath+"/{id}/nodes/{node}/rebuild", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Source string }
		b, _ := io.ReadAll(r.Body)
		switch {
		case json.Unmarshal(b, &body) != nil || body.Source == "":
			http.Error(w, "bad source", http.StatusBadRequest)
			return
		case chi.URLParam(r, "id") != "i1":
			http.Error(w, "no such instance", http.StatusNotFound)
			return
		case body.Source == "127.0.0.1:1":
			http.Error(w, "rebuild failed, the node keeps its data", http.StatusBadGateway)
			return
		}
		f.mu.Lock()
		f.rebuilds = append(f.rebuilds, chi.URLParam(r, "id")+"/"+chi.URLParam(r, "node")+"<"+body.Source)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func wire(id string) Instance {
	return Instance{InstanceID: id, TenantID: "acme", Engine: "mysql", DeploymentMode: "multi-az", State: "ready", SemiSync: true,
		Region: "eu", Admin: topology.Credentials{Username: "canopy_admin", Password: "a"},
		Replication: topology.Credentials{Username: "canopy_repl", Password: "r"},
		Nodes: []Node{
			{ID: id + "-0", Role: "primary", Address: "127.0.0.1:3307", Region: "eu", Zone: "a", State: "running", PromotionRule: "prefer"},
			{ID: id + "-1", Role: "replica", Address: "127.0.0.1:3308", Region: "eu", Zone: "b", State: "running"},
		}}
}

// TestListGetAndInject: the client pages through the view, maps it to the
// topology, and injects faults, every request signed as service:failover.
func TestListGetAndInject(t *testing.T) {
	f := &fakeProvisioning{instances: []Instance{wire("i1"), wire("i2"), wire("i3")}}
	srv := f.server(t)
	c, err := New(srv.URL, secret, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	all, err := c.List(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("list = %d instances, %v", len(all), err)
	}
	in, err := c.Get(ctx, "i2")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := in.Primary()
	if in.Tenant != "acme" || in.Engine != topology.EngineMySQL || !in.SemiSync || in.Mode != "multi-az" || !ok ||
		p.ID != "i2-0" || p.Promotion != topology.PromotePrefer || in.Nodes[1].Promotion != topology.PromoteNeutral ||
		in.Nodes[1].Zone != "b" || in.Replication.Username != "canopy_repl" {
		t.Fatalf("mapped instance = %+v", in)
	}
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, topology.ErrNotFound) {
		t.Fatalf("unknown instance: %v, want ErrNotFound", err)
	}
	if err := c.Inject(ctx, "i1", "i1-0", topology.FaultKill); err != nil {
		t.Fatal(err)
	}
	if err := c.Inject(ctx, "i1", "i1-0", "explode"); err == nil {
		t.Fatal("an unknown fault was accepted")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.faults) != 1 || f.faults[0] != "i1/i1-0:kill" {
		t.Fatalf("faults = %v", f.faults)
	}
	for _, s := range f.callers {
		if s != "service:failover" {
			t.Fatalf("caller %q, want service:failover", s)
		}
	}
}

// TestBadSecretRefused: provisioning refuses a client with another secret.
func TestBadSecretRefused(t *testing.T) {
	f := &fakeProvisioning{instances: []Instance{wire("i1")}}
	srv := f.server(t)
	c, _ := New(srv.URL, []byte("another-secret-of-32-bytes-long!"), 5*time.Second)
	if _, err := c.List(t.Context()); err == nil {
		t.Fatal("list with a wrong secret succeeded")
	}
	if err := c.Inject(t.Context(), "i1", "i1-0", topology.FaultStop); err == nil {
		t.Fatal("fault with a wrong secret succeeded")
	}
}

// TestRebuild: a rebuild is posted with the primary's address and
// answers once done; an unknown instance is ErrNotFound, a failed rebuild
// an error with provisioning's status.
func TestRebuild(t *testing.T) {
	f := &fakeProvisioning{instances: []Instance{wire("i1")}}
	c, err := New(f.server(t).URL, secret, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := c.Rebuild(ctx, "i1", "i1-0", "127.0.0.1:3308"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rebuild(ctx, "nope", "nope-0", "127.0.0.1:3308"); !errors.Is(err, topology.ErrNotFound) {
		t.Fatalf("unknown instance: %v, want ErrNotFound", err)
	}
	err = c.Rebuild(ctx, "i1", "i1-0", "127.0.0.1:1")
	if se, ok := svcclient.AsStatus(err); !ok || se.Status != http.StatusBadGateway {
		t.Fatalf("failed rebuild: %v, want a 502 status error", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rebuilds) != 1 || f.rebuilds[0] != "i1/i1-0<127.0.0.1:3308" {
		t.Fatalf("rebuilds = %v", f.rebuilds)
	}
	for _, s := range f.callers {
		if s != "service:failover" {
			t.Fatalf("caller %q, want service:failover", s)
		}
	}
}
