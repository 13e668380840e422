package backupclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

var secret = []byte("backupclient-test-internal-secret-012345")

// Job reads a restore job signed as service:provisioning for the tenant
// (the stand-in verifies it as the backup service would); 404 is
// ErrNotFound and any other failure ErrUnavailable.
func TestJob(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /internal/v1/restores/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		if p.Subject != Subject || p.Tenant != "acme" {
			http.Error(w, "wrong identity", http.StatusForbidden)
			return
		}
		switch r.PathValue("id") {
		case "r1":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"r1","status":"running","phase":"replaying","tenant_id":"acme"}`)
		case "r2":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"r2","status":"ready","seed":"/state/seeds/r2"}`)
		case "broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.Error(w, `{"status":404}`, http.StatusNotFound)
		}
	})
	srv := httptest.NewServer(tenancy.Middleware(tenancy.AudienceBackup, secret)(mux))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, Secret: secret, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id      string
		want    port.RestoreJob
		wantErr error
	}{
		{"r1", port.RestoreJob{ID: "r1", Status: port.RestoreRunning, Phase: "replaying"}, nil},
		{"r2", port.RestoreJob{ID: "r2", Status: port.RestoreReady, Seed: "/state/seeds/r2"}, nil},
		{"nope", port.RestoreJob{}, ErrNotFound},
		{"broken", port.RestoreJob{}, ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			got, err := c.Job(context.Background(), "acme", tc.id)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("job = %+v, want %+v", got, tc.want)
			}
		})
	}
	srv.Close()
	if _, err := c.Job(context.Background(), "acme", "r1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("backup service down: err = %v, want ErrUnavailable", err)
	}
	if err := c.Done(context.Background(), "acme", "r1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("done with the backup service down: err = %v, want ErrUnavailable", err)
	}
}
