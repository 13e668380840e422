package quotaclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

const secret = "quota-client-test-secret-0123456789"

// gatewayStandIn serves GET /internal/v1/tenants/{id}/quota like the
// gateway: signed platform-admin requests only.
type gatewayStandIn struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	quotas map[string]string // tenant → JSON body
	status int               // answered instead, when set
	delay  time.Duration
}

func newGateway(t *testing.T) *gatewayStandIn {
	g := &gatewayStandIn{quotas: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /internal/v1/tenants/{id}/quota", func(w http.ResponseWriter, r *http.Request) {
		if p, _ := tenancy.PrincipalFrom(r.Context()); p != Identity {
			http.Error(w, "wrong identity", http.StatusForbidden)
			return
		}
		g.mu.Lock()
		body, ok := g.quotas[r.PathValue("id")]
		status, delay := g.status, g.delay
		g.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case status != 0:
			w.WriteHeader(status)
		case !ok:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]any{"type": ProblemUnknownTenant, "status": 404})
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}
	})
	verified := tenancy.Middleware(tenancy.AudienceGateway, []byte(secret))(mux)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.calls.Add(1)
		verified.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gatewayStandIn) set(f func(g *gatewayStandIn)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newClient(t *testing.T, base func() string, clk *clock) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: base, Secret: []byte(secret), Timeout: 300 * time.Millisecond, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestQuotaFromGatewayIsCached(t *testing.T) {
	g := newGateway(t)
	g.quotas["acme"] = `{"max_instances":2,"max_vcpu":1.5,"max_memory_mb":4096,"max_storage_gb":0}`
	clk := &clock{now: time.Now()}
	c := newClient(t, func() string { return g.srv.URL }, clk)
	ctx := context.Background()

	want := tenancy.Quota{MaxInstances: 2, MaxVCPU: 1.5, MaxMemoryMB: 4096}
	for range 3 {
		q, err := c.Quota(ctx, "acme")
		if err != nil || q != want {
			t.Fatalf("quota %+v, %v; want %+v", q, err, want)
		}
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("%d gateway calls within the TTL, want 1", n)
	}
	// A change in the gateway shows once the entry expires.
	g.set(func(g *gatewayStandIn) {
		g.quotas["acme"] = `{"max_instances":1,"max_vcpu":0,"max_memory_mb":0,"max_storage_gb":0}`
	})
	clk.add(DefaultTTL - time.Second)
	if q, _ := c.Quota(ctx, "acme"); q != want {
		t.Fatalf("quota %+v before the TTL passed, want the cached %+v", q, want)
	}
	clk.add(2 * time.Second)
	if q, err := c.Quota(ctx, "acme"); err != nil || q != (tenancy.Quota{MaxInstances: 1}) {
		t.Fatalf("quota after the TTL: %+v, %v", q, err)
	}
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d gateway calls, want 2", n)
	}
}

func TestQuotaErrors(t *testing.T) {
	clk := &clock{now: time.Now()}
	ctx := context.Background()
	const full = `{"max_instances":1,"max_vcpu":0,"max_memory_mb":0,"max_storage_gb":0}`
	tests := []struct {
		name   string
		setup  func(g *gatewayStandIn)
		base   func(g *gatewayStandIn) string
		secret string
		want   error
	}{
		{name: "unknown tenant", want: ErrUnknownTenant},
		{name: "gateway error", setup: func(g *gatewayStandIn) { g.status = http.StatusServiceUnavailable }, want: ErrUnavailable},
		{name: "404 without the unknown-tenant problem", setup: func(g *gatewayStandIn) { g.status = http.StatusNotFound }, want: ErrUnavailable},
		{name: "incomplete answer", setup: func(g *gatewayStandIn) { g.quotas["t1"] = `{"max_instances":1}` }, want: ErrUnavailable},
		{name: "negative limit", setup: func(g *gatewayStandIn) {
			g.quotas["t1"] = `{"max_instances":-1,"max_vcpu":0,"max_memory_mb":0,"max_storage_gb":0}`
		}, want: ErrUnavailable},
		{name: "not JSON", setup: func(g *gatewayStandIn) { g.quotas["t1"] = `<html>` }, want: ErrUnavailable},
		{name: "slow gateway", setup: func(g *gatewayStandIn) { g.quotas["t1"] = full; g.delay = 5 * time.Second }, want: ErrUnavailable},
		{name: "unreachable", base: func(*gatewayStandIn) string { return "http://127.0.0.1:1" }, want: ErrUnavailable},
		{name: "address not known yet", base: func(*gatewayStandIn) string { return "" }, want: ErrUnavailable},
		{name: "wrong secret", setup: func(g *gatewayStandIn) { g.quotas["t1"] = full }, secret: "another-secret-0123456789", want: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			if tt.setup != nil {
				g.set(tt.setup)
			}
			base := func() string { return g.srv.URL }
			if tt.base != nil {
				base = func() string { return tt.base(g) }
			}
			c := newClient(t, base, clk)
			if tt.secret != "" {
				var err error
				if c, err = New(Config{BaseURL: base, Secret: []byte(tt.secret), Timeout: 300 * time.Millisecond, Now: clk.Now}); err != nil {
					t.Fatal(err)
				}
			}
			want := tt.want
			start := time.Now()
			_, err := c.Quota(ctx, "t1")
			if !errors.Is(err, want) {
				t.Fatalf("err %v, want %v", err, want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s; the timeout is 300ms", d)
			}
			if want == ErrUnavailable {
				// Failures are not cached: the next call asks again.
				before := g.calls.Load()
				_, _ = c.Quota(ctx, "t1")
				if tt.base == nil && g.calls.Load() == before {
					t.Error("a failure was cached")
				}
			}
		})
	}
}

func TestNewRejectsMissingParts(t *testing.T) {
	if _, err := New(Config{Secret: []byte(secret)}); err == nil {
		t.Error("nil base URL accepted")
	}
	if _, err := New(Config{BaseURL: func() string { return "http://x" }}); err == nil {
		t.Error("empty secret accepted")
	}
}
