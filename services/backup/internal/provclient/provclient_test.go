package provclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

const secret = "provclient-test-secret-0123456789"

// standIn is a small provisioning: the internal backup view for
// service:backup only, and the public create/delete for a tenant identity,
// with the idempotency key honoured as provisioning does.
type standIn struct {
	mu        sync.Mutex
	byKey     map[string]string
	orders    []createRequest
	deleted   []string
	failFirst int // answers 503 to this many creates first
}

const wireInstance = `{"instance_id":"in-1","tenant_id":"t-1","name":"shop","engine":"mysql","plan_id":"mysql-small",
"state":"ready","nodes":[{"id":"n-1","role":"primary","address":"127.0.0.1:3307","data_dir":"/var/lib/n1","host":"h1",
"region":"r1","zone":"z1","healthy":true},{"id":"n-2","role":"replica","address":"127.0.0.1:3308","data_dir":"/var/lib/n2",
"host":"h1","region":"r1","zone":"z2","healthy":false}],"admin":{"username":"canopy_admin","password":"pw"}}`

func (s *standIn) handler() http.Handler {
	mux := http.NewServeMux()
	internal := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if p, _ := tenancy.PrincipalFrom(r.Context()); p.Subject != "service:backup" {
				http.NotFound(w, r)
				return
			}
			next(w, r)
		}
	}
	mux.HandleFunc("GET /internal/v1/backup/instances", internal(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"items":[` + wireInstance + `]}`))
	}))
	mux.HandleFunc("GET /internal/v1/backup/instances/{id}", internal(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "in-1" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Not Found","status":404}`))
			return
		}
		_, _ = w.Write([]byte(wireInstance))
	}))
	mux.HandleFunc("POST /api/v1/instances", func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		if p.Tenant == "" || !tenancy.Can(p.Role, tenancy.ActionWrite) || p.Subject != "service:backup" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		var req createRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.failFirst > 0 {
			s.failFirst--
			// The order is taken, the answer lost: a retry must not
			// make a second instance.
			s.remember(r.Header.Get(idempotency.Header), req)
			http.Error(w, "lost answer", http.StatusServiceUnavailable)
			return
		}
		if req.RestoreFrom.BackupID == "unknown" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"status":404,"errors":[{"field":"restore_from","reason":"no such backup"}]}`))
			return
		}
		id := s.remember(r.Header.Get(idempotency.Header), req)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"instance":{"id":"` + id + `","tenant":"` + string(p.Tenant) + `"},"operation_id":"op-1"}`))
	})
	mux.HandleFunc("DELETE /api/v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		if p.Tenant != "t-1" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		switch r.PathValue("id") {
		case "gone":
			w.WriteHeader(http.StatusNotFound)
		case "busy":
			w.WriteHeader(http.StatusConflict)
		default:
			s.mu.Lock()
			s.deleted = append(s.deleted, r.PathValue("id"))
			s.mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"instance":{"id":"` + r.PathValue("id") + `"},"operation_id":"op-2"}`))
		}
	})
	return tenancy.Middleware(tenancy.AudienceProvisioning, []byte(secret))(mux)
}

// remember returns the instance id of key, making one for a new key.
func (s *standIn) remember(key string, req createRequest) string {
	if key == "" {
		key = "none-" + time.Now().String()
	}
	if id, ok := s.byKey[key]; ok {
		return id
	}
	id := "scratch-" + string(rune('a'+len(s.byKey)))
	s.byKey[key] = id
	s.orders = append(s.orders, req)
	return id
}

func newClient(t *testing.T) (*Client, *standIn) {
	t.Helper()
	s := &standIn{byKey: map[string]string{}}
	srv := httptest.NewServer(s.handler())
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, Secret: []byte(secret), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestInternalView(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	all, err := c.List(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("List = %+v, %v", all, err)
	}
	in, err := c.Get(ctx, "in-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "in-1" || in.TenantID != "t-1" || in.Engine != backup.EngineMySQL || in.PlanID != "mysql-small" ||
		len(in.Nodes) != 2 || in.Nodes[0].Role != "primary" || in.Nodes[0].DataDir != "/var/lib/n1" || in.Nodes[1].Healthy ||
		in.Admin.Username != "canopy_admin" || in.Admin.Password != "pw" {
		t.Fatalf("Get = %+v", in)
	}
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("unknown instance: %v, want ErrNotFound", err)
	}
}

func TestCreateRestoredAndDelete(t *testing.T) {
	c, s := newClient(t)
	ctx := context.Background()
	id, err := c.CreateRestored(ctx, "t-1", "drill-shop-abc123", "mysql-small", "in-1", "b-1")
	if err != nil || id != "scratch-a" {
		t.Fatalf("CreateRestored = %q, %v", id, err)
	}
	want := createRequest{Name: "drill-shop-abc123", PlanID: "mysql-small", RestoreFrom: restoreFrom{InstanceID: "in-1", BackupID: "b-1"}}
	if len(s.orders) != 1 || s.orders[0] != want {
		t.Fatalf("orders %+v, want %+v", s.orders, want)
	}
	// The same order again (a retry by the caller) is the same instance.
	if again, err := c.CreateRestored(ctx, "t-1", "drill-shop-abc123", "mysql-small", "in-1", "b-1"); err != nil || again != id {
		t.Fatalf("repeated order = %q, %v; want %q", again, err, id)
	}
	if _, err := c.CreateRestored(ctx, "t-1", "drill-x", "mysql-small", "in-1", "unknown"); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("unknown backup: %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, "t-1", id); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "t-1", "gone"); err != nil {
		t.Fatalf("deleting a missing instance: %v, want success", err)
	}
	err = c.Delete(ctx, "t-1", "busy")
	if se, ok := svcclient.AsStatus(err); !ok || se.Status != http.StatusConflict {
		t.Fatalf("deleting a busy instance: %v, want the 409", err)
	}
	if len(s.deleted) != 1 || s.deleted[0] != id {
		t.Fatalf("deleted %v", s.deleted)
	}
}

// TestCreateRetriesOnceOrdered: a lost answer is retried with the same
// key, and provisioning holds one scratch instance.
func TestCreateRetriesOnceOrdered(t *testing.T) {
	c, s := newClient(t)
	s.failFirst = 1
	id, err := c.CreateRestored(context.Background(), "t-1", "drill-shop-r", "mysql-small", "in-1", "b-1")
	if err != nil || id != "scratch-a" || len(s.orders) != 1 {
		t.Fatalf("CreateRestored = %q, %v; orders %d", id, err, len(s.orders))
	}
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := New(Config{BaseURL: "127.0.0.1:8084", Secret: []byte(secret)}); !errors.Is(err, svcclient.ErrBadURL) {
		t.Fatalf("relative URL: %v", err)
	}
	if _, err := New(Config{BaseURL: "http://127.0.0.1:8084"}); !errors.Is(err, svcclient.ErrNoSecret) {
		t.Fatalf("no secret: %v", err)
	}
}
