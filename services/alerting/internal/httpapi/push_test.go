package httpapi

import (
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// TestPushPrometheusBody: the body Prometheus 2.x's notifier posts to an
// Alertmanager's /api/v2/alerts (testdata, written from its notifier: the
// v2 postableAlert with millisecond times, endsAt always set) is accepted
// as it is, each alert keeping its labels, times and generatorURL, with
// the caller's tenant label added.
func TestPushPrometheusBody(t *testing.T) {
	body, err := os.ReadFile("testdata/prometheus-2-alerts.json")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	if ans := f.do(acmeMember, "POST", "/api/v2/alerts", string(body), nil); ans.status != http.StatusOK || len(ans.body) != 0 {
		t.Fatalf("push = %d %s, want 200 and no body", ans.status, ans.body)
	}
	got := f.engine.pushedAlerts()
	if len(got) != 3 {
		t.Fatalf("pushed %d alerts, want 3", len(got))
	}
	lag := got[0]
	if lag.Labels["alertname"] != "MySQLReplicationLag" || lag.Labels["job"] != "mysqld" || lag.Labels["instance"] != "10.0.3.12:9104" ||
		lag.Labels["severity"] != "warning" || lag.Labels[alert.LabelTenant] != "acme" || len(lag.Labels) != 5 {
		t.Fatalf("labels = %v", lag.Labels)
	}
	if !lag.StartsAt.Equal(time.Date(2026, 12, 3, 9, 55, 0, 123e6, time.UTC)) || !lag.EndsAt.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("times = %v %v", lag.StartsAt, lag.EndsAt)
	}
	if lag.GeneratorURL != "http://prometheus-0:9090/graph?g0.expr=mysql_slave_status_seconds_behind_master+%3E+10&g0.tab=1" ||
		lag.Annotations["summary"] != "Replica lag above 10s" || lag.State != alert.StateFiring || !lag.UpdatedAt.Equal(t0) {
		t.Fatalf("alert = %+v", lag)
	}
	if got[2].State != alert.StateResolved {
		t.Fatalf("an alert whose endsAt passed is %s, want resolved", got[2].State)
	}
}

// TestPushDefaultsAndTenantLabel: Alertmanager's defaults for missing
// times; a tenant cannot push into another tenant; a platform push keeps
// its labels.
func TestPushDefaultsAndTenantLabel(t *testing.T) {
	f := newFixture(t)
	body := `[{"labels":{"alertname":"A","tenant":"globex","empty":""}},{"labels":{"alertname":"B"},"endsAt":"2026-12-03T10:30:00Z"}]`
	if ans := f.do(acmeMember, "POST", "/api/v2/alerts", body, nil); ans.status != http.StatusOK {
		t.Fatalf("push = %d %s", ans.status, ans.body)
	}
	got := f.engine.pushedAlerts()
	a, b := got[0], got[1]
	if a.Labels[alert.LabelTenant] != "acme" || len(a.Labels) != 2 {
		t.Fatalf("tenant push labels = %v, want alertname and tenant=acme", a.Labels)
	}
	if !a.StartsAt.Equal(t0) || !a.EndsAt.Equal(t0.Add(DefaultResolveTimeout)) || a.State != alert.StateFiring {
		t.Fatalf("defaults = %v %v %s", a.StartsAt, a.EndsAt, a.State)
	}
	if !b.StartsAt.Equal(b.EndsAt) || !b.EndsAt.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("startsAt without endsAt: %v %v", b.StartsAt, b.EndsAt)
	}
	if ans := f.do(platform, "POST", "/api/v2/alerts", `[{"labels":{"alertname":"C","tenant":"globex"}},{"labels":{"alertname":"D"}}]`, nil); ans.status != http.StatusOK {
		t.Fatalf("platform push = %d %s", ans.status, ans.body)
	}
	got = f.engine.pushedAlerts()
	if got[2].Labels[alert.LabelTenant] != "globex" || got[3].Labels[alert.LabelTenant] != "" {
		t.Fatalf("platform labels = %v %v", got[2].Labels, got[3].Labels)
	}
}

// TestPushValidation: Alertmanager's checks, each invalid alert named by
// its index; the valid ones of the batch are accepted all the same.
func TestPushValidation(t *testing.T) {
	tests := []struct {
		name  string
		alert string
		field string
	}{
		{"no labels", `{"labels":{}}`, "[0].labels"},
		{"only empty labels", `{"labels":{"a":""}}`, "[0].labels"},
		{"only a tenant label", `{"labels":{"tenant":"acme"}}`, "[0].labels"},
		{"bad label name", `{"labels":{"alert-name":"x"}}`, "[0].labels.alert-name"},
		{"bad annotation name", `{"labels":{"a":"b"},"annotations":{"1x":"y"}}`, "[0].annotations.1x"},
		{"ends before start", `{"labels":{"a":"b"},"startsAt":"2026-12-03T10:00:00Z","endsAt":"2026-12-03T09:00:00Z"}`, "[0].endsAt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ans := f.do(acmeMember, "POST", "/api/v2/alerts", "["+tc.alert+`,{"labels":{"alertname":"ok"}}]`, nil)
			if ans.status != http.StatusBadRequest || !ans.hasField(t, tc.field) {
				t.Fatalf("= %d %s, want 400 naming %s", ans.status, ans.body, tc.field)
			}
			if got := f.engine.pushedAlerts(); len(got) != 1 || got[0].Labels["alertname"] != "ok" {
				t.Fatalf("pushed = %v, want only the valid alert", got)
			}
		})
	}
}

// TestPushRefusals: not an array, a viewer, a wrong media type, an engine
// failure.
func TestPushRefusals(t *testing.T) {
	f := newFixture(t)
	if ans := f.do(acmeMember, "POST", "/api/v2/alerts", `{"labels":{"a":"b"}}`, nil); ans.status != http.StatusBadRequest {
		t.Fatalf("object = %d, want 400", ans.status)
	}
	if ans := f.do(acmeMember, "POST", "/api/v2/alerts", `[] []`, nil); ans.status != http.StatusBadRequest {
		t.Fatalf("two arrays = %d, want 400", ans.status)
	}
	if ans := f.do(acmeViewer, "POST", "/api/v2/alerts", `[{"labels":{"a":"b"}}]`, nil); ans.status != http.StatusForbidden {
		t.Fatalf("viewer = %d, want 403", ans.status)
	}
	if ans := f.do(acmeMember, "POST", "/api/v2/alerts", `[]`, nil); ans.status != http.StatusOK {
		t.Fatalf("empty batch = %d, want 200", ans.status)
	}
	f.engine.pushErr = errors.New("store down")
	if ans := f.do(acmeMember, "POST", "/api/v2/alerts", `[{"labels":{"a":"b"}}]`, nil); ans.status != http.StatusInternalServerError {
		t.Fatalf("engine failure = %d, want 500", ans.status)
	}
}

// TestPushPlatformForTenant: a platform-admin naming a tenant pushes that
// tenant's alerts.
func TestPushPlatformForTenant(t *testing.T) {
	f := newFixture(t)
	if ans := f.do(platform, "POST", "/api/v2/alerts?tenant=globex", `[{"labels":{"alertname":"X","tenant":"acme"}}]`, nil); ans.status != http.StatusOK {
		t.Fatalf("push = %d %s", ans.status, ans.body)
	}
	if got := f.engine.pushedAlerts(); got[0].Labels[alert.LabelTenant] != "globex" {
		t.Fatalf("labels = %v, want tenant=globex", got[0].Labels)
	}
}
