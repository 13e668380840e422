package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
)

// TestOSBName: every OSB id maps to a valid Canopy name, and ids that
// differ (even only in case) map to different names, since OSB ids compare
// exactly and a shared name would make the second provision a conflict.
func TestOSBName(t *testing.T) {
	long := strings.Repeat("a", 80)
	tests := []struct {
		name string
		ids  []string
	}{
		{"case", []string{"ABC", "abc", "Abc"}},
		{"punctuation", []string{"a.b", "a_b", "a-b"}},
		{"long ids sharing a prefix", []string{long + "1", long + "2"}},
		{"no letters or digits", []string{"...", "___"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]string{}
			for _, id := range tt.ids {
				n := osbName(id)
				if err := instance.ValidateName(n); err != nil {
					t.Errorf("osbName(%q) = %q: %v", id, n, err)
				}
				if other, dup := seen[n]; dup {
					t.Errorf("osbName(%q) = osbName(%q) = %q", id, other, n)
				}
				seen[n] = id
			}
		})
	}
	if got := osbName("5a0e5f0c-8a4e-4a45"); got != "osb-5a0e5f0c-8a4e-4a45" {
		t.Errorf("a lower-case GUID keeps its readable name, got %q", got)
	}
}

// TestOSBOrderError: every refusal an order or a parameter check can end in
// gets the OSB status for it, an error code that does not mislabel it (OSB
// defines only AsyncRequired, ConcurrencyError, RequiresApp and
// MaintenanceInfoConflict; none of them applies here) and a description.
func TestOSBOrderError(t *testing.T) {
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		desc       string
		retryAfter bool
	}{
		{"unknown tenant", unknownTenant("ghost"), 403, "UnknownTenant", "ghost is not registered", false},
		{"catalog unreachable", catalogUnavailable("the catalog could not be reached; try again"), 503, "ServiceUnavailable", "catalog", true},
		{"schema refuses", httpx.Unprocessable("parameters do not match the plan's schema", httpx.FieldError{Field: "parameters.timeout", Reason: "must be >= 0"}), 400, "BadRequest", "parameters.timeout: must be >= 0", false},
		{"malformed", httpx.BadRequest("plan_id does not belong to service_id"), 400, "BadRequest", "service_id", false},
		{"broken plan schema", httpx.NewProblem(http.StatusBadGateway, "the plan's parameter schema is not valid JSON"), 502, "InternalError", "schema", false},
		{"quota unreadable", fmt.Errorf("%w: %w", errQuotaUnavailable, errors.New("timeout")), 503, "ServiceUnavailable", "quota", true},
		{"quota exceeded", &tenancy.QuotaExceededError{}, 422, "QuotaExceeded", "", false},
		{"name taken", mysqlrepo.ErrNameTaken, 409, "Conflict", "exists", false},
		{"invalid instance", &instance.ValidationError{}, 400, "BadRequest", "", false},
		{"anything else", errors.New("disk full"), 500, "InternalError", "failed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.osbOrderError(w, tt.err)
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			if w.Code != tt.status || body["error"] != tt.code {
				t.Errorf("%d %q, want %d %q", w.Code, body["error"], tt.status, tt.code)
			}
			if body["description"] == "" || !strings.Contains(body["description"], tt.desc) {
				t.Errorf("description %q, want one mentioning %q", body["description"], tt.desc)
			}
			if got := w.Header().Get("Retry-After") != ""; got != tt.retryAfter {
				t.Errorf("Retry-After set: %v, want %v", got, tt.retryAfter)
			}
		})
	}
}
