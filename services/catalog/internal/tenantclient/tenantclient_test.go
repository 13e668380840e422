package tenantclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

const secret = "tenant-client-test-secret-0123456789"

// newGateway serves the gateway's internal quota route for "acme" to signed
// platform-admin requests; "broken" answers 500, "bare" a plain 404.
func newGateway(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /internal/v1/tenants/{id}/quota", func(w http.ResponseWriter, r *http.Request) {
		if p, _ := tenancy.PrincipalFrom(r.Context()); p != Identity {
			http.Error(w, "wrong identity", http.StatusForbidden)
			return
		}
		switch r.PathValue("id") {
		case "acme":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"max_instances":0,"max_vcpu":0,"max_memory_mb":0,"max_storage_gb":0}`))
		case "broken":
			w.WriteHeader(http.StatusInternalServerError)
		case "bare":
			http.NotFound(w, r)
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]any{"type": ProblemUnknownTenant, "status": 404})
		}
	})
	srv := httptest.NewServer(tenancy.Middleware(tenancy.AudienceGateway, []byte(secret))(mux))
	t.Cleanup(srv.Close)
	return srv
}

func TestCheck(t *testing.T) {
	gw := newGateway(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name   string
		base   string
		secret string
		tenant tenancy.ID
		want   error
	}{
		{"known tenant", gw.URL, secret, "acme", nil},
		{"unknown tenant", gw.URL, secret, "nobody", ErrUnknownTenant},
		{"404 without the unknown-tenant problem", gw.URL, secret, "bare", ErrUnavailable},
		{"gateway error", gw.URL, secret, "broken", ErrUnavailable},
		{"signed with another secret", gw.URL, "another-secret-0123456789abcdef", "acme", ErrUnavailable},
		{"gateway unreachable", closed.URL, secret, "acme", ErrUnavailable},
		{"no gateway URL", "", secret, "acme", ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.base
			c, err := New(Config{BaseURL: func() string { return base }, Secret: []byte(tt.secret)})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Check(context.Background(), tt.tenant)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Check(%s) = %v, want %v", tt.tenant, err, tt.want)
			}
		})
	}
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	if _, err := New(Config{Secret: []byte(secret)}); err == nil {
		t.Error("nil base URL accepted")
	}
	if _, err := New(Config{BaseURL: func() string { return "http://x" }}); err == nil {
		t.Error("empty secret accepted")
	}
}
