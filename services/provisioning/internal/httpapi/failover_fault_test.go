package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// signals records which fault the driver was asked for.
type signals struct {
	mu   sync.Mutex
	sent []string
}

func (s *signals) Kill(_ context.Context, node string) error      { return s.add("kill " + node) }
func (s *signals) Terminate(_ context.Context, node string) error { return s.add("stop " + node) }
func (s *signals) add(v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, v)
	return nil
}

// The fault route: the failover service may kill or stop a node; the
// alerting service only stop it (its restart-node remediation); anyone
// else sees no such route.
func TestFaultRoute(t *testing.T) {
	failover := tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: FailoverReader}
	alerting := tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: Restarter}
	path := FailoverPath + "/i1/nodes/i1-n1/fault"
	tests := []struct {
		name   string
		who    tenancy.Principal
		kind   string
		status int
		sent   string
	}{
		{"failover kills", failover, "kill", http.StatusNoContent, "kill i1-n1"},
		{"failover stops", failover, "stop", http.StatusNoContent, "stop i1-n1"},
		{"alerting restarts", alerting, "stop", http.StatusNoContent, "stop i1-n1"},
		{"alerting may not kill", alerting, "kill", http.StatusForbidden, ""},
		{"another platform admin", tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}, "stop", http.StatusNotFound, ""},
		{"alerting's subject as a tenant", tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: Restarter}, "stop", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(rebuildRepo{}, fuzzSaga{}, fuzzCatalog{}, func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
				slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			sig := &signals{}
			h.WithFaults(sig)
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"kind": "`+tt.kind+`"}`))
			req = req.WithContext(tenancy.WithPrincipal(req.Context(), tt.who))
			rec := httptest.NewRecorder()
			h.Routes().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			got := strings.Join(sig.sent, ",")
			if got != tt.sent {
				t.Fatalf("driver asked for %q, want %q", got, tt.sent)
			}
		})
	}
}
