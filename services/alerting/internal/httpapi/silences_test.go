package httpapi

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// TestSilenceCreateTenantMatcher: a tenant's silence gets tenant="<id>",
// a past startsAt becomes now, the answer is Alertmanager's shape, and the
// engine reloads its silences.
func TestSilenceCreateTenantMatcher(t *testing.T) {
	f := newFixture(t)
	var s Silence
	ans := f.do(acmeMember, "POST", "/api/v1/silences", `{"matchers":[{"name":"alertname","value":"ReplicaLag","isRegex":false}],
		"startsAt":"2026-12-03T09:00:00Z","endsAt":"2026-12-03T12:00:00Z","comment":"rebuild"}`, &s)
	if ans.status != http.StatusCreated {
		t.Fatalf("create = %d %s", ans.status, ans.body)
	}
	if s.Status.State != "active" || !s.StartsAt.Equal(t0) || s.CreatedBy != acmeMember.Subject || s.Tenant != "acme" {
		t.Fatalf("silence = %+v", s)
	}
	want := []SilenceMatcher{{Name: "alertname", Value: "ReplicaLag"}, {Name: "tenant", Value: "acme"}}
	if len(s.Matchers) != 2 {
		t.Fatalf("matchers = %+v", s.Matchers)
	}
	for i, m := range s.Matchers {
		if m.Name != want[i].Name || m.Value != want[i].Value || m.IsRegex || m.IsEqual == nil || !*m.IsEqual {
			t.Fatalf("matcher %d = %+v, want %+v", i, m, want[i])
		}
	}
	if got := f.engine.reloaded(); !slices.Equal(got, []engine.What{engine.ReloadSilences}) {
		t.Fatalf("reloads = %v", got)
	}
}

// TestSilencePlatformMatchesAnyTenant: a platform silence carries only
// its own matchers.
func TestSilencePlatformMatchesAnyTenant(t *testing.T) {
	f := newFixture(t)
	var s Silence
	f.do(platform, "POST", "/api/v1/silences", `{"matchers":[{"name":"job","value":"mysql.*","isRegex":true,"isEqual":true}],"endsAt":"2026-12-03T11:00:00Z"}`, &s)
	if s.Tenant != "" || len(s.Matchers) != 1 || !s.Matchers[0].IsRegex || !*s.Matchers[0].IsEqual {
		t.Fatalf("platform silence = %+v", s)
	}
}

// TestSilenceExpireAndTenantIsolation: DELETE expires (kept, listed with
// ?state=expired); another tenant gets 404 and never sees it.
func TestSilenceExpireAndTenantIsolation(t *testing.T) {
	f := newFixture(t)
	var s Silence
	f.do(acmeMember, "POST", "/api/v1/silences", `{"matchers":[{"name":"severity","value":"warning","isRegex":false}],"endsAt":"2026-12-03T12:00:00Z"}`, &s)
	for _, m := range []string{"GET", "DELETE"} {
		if ans := f.do(globex, m, "/api/v1/silences/"+s.ID, "", nil); ans.status != http.StatusNotFound {
			t.Fatalf("globex %s acme's silence = %d, want 404", m, ans.status)
		}
	}
	if stored, err := f.store.GetSilence(context.Background(), "acme", false, s.ID); err != nil || !stored.EndsAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("acme's silence after globex's DELETE = %+v, %v", stored, err)
	}
	var gl list[Silence]
	f.do(globex, "GET", "/api/v1/silences", "", &gl)
	if len(gl.Items) != 0 {
		t.Fatalf("globex lists %+v", gl.Items)
	}
	var exp Silence
	if ans := f.do(acmeMember, "DELETE", "/api/v1/silences/"+s.ID, "", &exp); ans.status != http.StatusOK || exp.Status.State != "expired" {
		t.Fatalf("expire = %d %s", ans.status, ans.body)
	}
	var l list[Silence]
	f.do(acmeViewer, "GET", "/api/v1/silences?state=expired", "", &l)
	if len(l.Items) != 1 || l.Items[0].ID != s.ID {
		t.Fatalf("expired list = %+v", l.Items)
	}
	f.do(acmeViewer, "GET", "/api/v1/silences?state=active,pending", "", &l)
	if len(l.Items) != 0 {
		t.Fatalf("active list = %+v", l.Items)
	}
	var all list[Silence]
	f.do(platform, "GET", "/api/v1/silences", "", &all)
	if len(all.Items) != 1 {
		t.Fatalf("platform lists %d silences, want 1", len(all.Items))
	}
	if ans := f.do(acmeViewer, "GET", "/api/v1/silences?state=done", "", nil); ans.status != http.StatusBadRequest || !ans.hasField(t, "state") {
		t.Fatalf("bad state = %d %s", ans.status, ans.body)
	}
}

// TestSilenceValidation: Alertmanager's rules, and no tenant matcher
// naming another tenant.
func TestSilenceValidation(t *testing.T) {
	end := `"endsAt":"2026-12-03T12:00:00Z"`
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"no matchers", `{"matchers":[],` + end + `}`, "matchers"},
		{"another tenant", `{"matchers":[{"name":"tenant","value":"globex","isRegex":false}],` + end + `}`, "matchers[0]"},
		{"tenant regexp", `{"matchers":[{"name":"tenant","value":"acme|globex","isRegex":true}],` + end + `}`, "matchers[0]"},
		{"all match empty", `{"matchers":[{"name":"job","value":".*","isRegex":true}],` + end + `}`, "matchers"},
		{"bad regexp", `{"matchers":[{"name":"job","value":"(","isRegex":true}],` + end + `}`, "matchers[0]"},
		{"bad label name", `{"matchers":[{"name":"1job","value":"x","isRegex":false}],` + end + `}`, "matchers[0]"},
		{"ends in the past", `{"matchers":[{"name":"job","value":"x","isRegex":false}],"endsAt":"2026-12-03T09:00:00Z"}`, "endsAt"},
		{"ends before start", `{"matchers":[{"name":"job","value":"x","isRegex":false}],"startsAt":"2026-12-03T13:00:00Z",` + end + `}`, "endsAt"},
		{"no end", `{"matchers":[{"name":"job","value":"x","isRegex":false}]}`, "endsAt"},
	}
	f := newFixture(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans := f.do(acmeMember, "POST", "/api/v1/silences", tc.body, nil)
			if ans.status != http.StatusBadRequest || !ans.hasField(t, tc.field) {
				t.Fatalf("= %d %s, want 400 naming %s", ans.status, ans.body, tc.field)
			}
		})
	}
	if stored, err := f.store.ListSilences(context.Background(), "", true); err != nil || len(stored) != 0 {
		t.Fatalf("invalid silences stored: %+v, %v", stored, err)
	}
}

// TestSilencePending: a silence starting later is pending until then.
func TestSilencePending(t *testing.T) {
	f := newFixture(t)
	var s Silence
	f.do(acmeMember, "POST", "/api/v1/silences", `{"matchers":[{"name":"job","value":"x","isRegex":false}],
		"startsAt":"2026-12-03T11:00:00Z","endsAt":"2026-12-03T12:00:00Z"}`, &s)
	if s.Status.State != "pending" || !s.StartsAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("silence = %+v", s)
	}
}
