package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
)

// seedAlerts stores two alerts of acme, one of globex and one platform
// alert, and mutes the first.
func seedAlerts(f *fixture) {
	mk := func(fp alert.Fingerprint, state alert.State, labels alert.LabelSet) alertstore.StoredAlert {
		return alertstore.StoredAlert{Fingerprint: fp, Alert: alert.Alert{Labels: labels, Annotations: alert.LabelSet{"summary": "s"},
			StartsAt: t0.Add(-time.Hour), UpdatedAt: t0, State: state, Rule: "node-down"}}
	}
	a1 := mk(0x1, alert.StateFiring, alert.LabelSet{"alertname": "NodeDown", "severity": "critical", "tenant": "acme", "instance": "i1"})
	a1.ActionRuns = []alertstore.ActionRun{{ID: 7, Fingerprint: "0000000000000001", Tenant: "acme", InstanceID: "i1",
		Action: "switchover", Status: "skipped", Detail: "remediation is off", At: t0}}
	a2 := mk(0x2, alert.StatePending, alert.LabelSet{"alertname": "ReplicaLag", "severity": "warning", "tenant": "acme", "instance": "i1"})
	a3 := mk(0x3, alert.StateFiring, alert.LabelSet{"alertname": "NodeDown", "severity": "critical", "tenant": "globex", "instance": "i9"})
	a4 := mk(0x4, alert.StateResolved, alert.LabelSet{"alertname": "FailoverFailed", "severity": "critical"})
	a4.EndsAt = t0.Add(-time.Minute)
	f.store.alerts = []alertstore.StoredAlert{a1, a2, a3, a4}
	f.engine.muted[0x1] = [2][]string{{"sil-9"}, {"00000000000000ff"}}
}

func fingerprints(as []Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Fingerprint)
	}
	return out
}

// TestAlertsTenantIsolation: a tenant lists and gets only its own alerts;
// the platform sees all, or one tenant's with ?tenant=.
func TestAlertsTenantIsolation(t *testing.T) {
	f := newFixture(t)
	seedAlerts(f)
	tests := []struct {
		name string
		who  string
		path string
		want []string
	}{
		{"acme", "acme", "/api/v1/alerts", []string{"0000000000000001", "0000000000000002"}},
		{"globex", "globex", "/api/v1/alerts", []string{"0000000000000003"}},
		{"platform all", "platform", "/api/v1/alerts", []string{"0000000000000001", "0000000000000002", "0000000000000003", "0000000000000004"}},
		{"platform one tenant", "platform", "/api/v1/alerts?tenant=globex", []string{"0000000000000003"}},
	}
	who := map[string]tenancy.Principal{"acme": acmeViewer, "globex": globex, "platform": platform}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l list[Alert]
			f.do(who[tc.who], "GET", tc.path, "", &l)
			if got := fingerprints(l.Items); !slices.Equal(got, tc.want) {
				t.Fatalf("fingerprints = %v, want %v", got, tc.want)
			}
		})
	}
	if ans := f.do(acmeViewer, "GET", "/api/v1/alerts/0000000000000003", "", nil); ans.status != http.StatusNotFound {
		t.Fatalf("acme GET globex's alert = %d, want 404", ans.status)
	}
	if ans := f.do(acmeViewer, "GET", "/api/v1/alerts/nothex", "", nil); ans.status != http.StatusNotFound {
		t.Fatalf("bad fingerprint = %d, want 404", ans.status)
	}
}

// TestAlertShape: the alert carries its status with muting and actions.
func TestAlertShape(t *testing.T) {
	f := newFixture(t)
	seedAlerts(f)
	var a Alert
	if ans := f.do(acmeViewer, "GET", "/api/v1/alerts/0000000000000001", "", &a); ans.status != http.StatusOK {
		t.Fatalf("get = %d %s", ans.status, ans.body)
	}
	if a.Status.State != "firing" || !slices.Equal(a.Status.SilencedBy, []string{"sil-9"}) ||
		!slices.Equal(a.Status.InhibitedBy, []string{"00000000000000ff"}) || a.EndsAt != nil || a.Labels["alertname"] != "NodeDown" {
		t.Fatalf("alert = %+v", a)
	}
	if len(a.Actions) != 1 || a.Actions[0].Action != "switchover" || a.Actions[0].Status != "skipped" {
		t.Fatalf("actions = %+v", a.Actions)
	}
	var r Alert
	f.do(platform, "GET", "/api/v1/alerts/0000000000000004", "", &r)
	if r.Status.State != "resolved" || r.EndsAt == nil || r.Status.SilencedBy == nil {
		t.Fatalf("resolved alert = %+v", r)
	}
}

// TestAlertsFilters: state and Alertmanager matchers filter; a cursor
// pages; bad filters are 400s naming the parameter.
func TestAlertsFilters(t *testing.T) {
	f := newFixture(t)
	seedAlerts(f)
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"firing", "state=firing", []string{"0000000000000001", "0000000000000003"}},
		{"pending or resolved", "state=pending,resolved", []string{"0000000000000002", "0000000000000004"}},
		{"matcher", "filter=" + url.QueryEscape(`{alertname="NodeDown"}`), []string{"0000000000000001", "0000000000000003"}},
		{"regexp and not", "filter=" + url.QueryEscape(`severity=~"crit.*"`) + "&filter=" + url.QueryEscape(`tenant!=globex`), []string{"0000000000000001", "0000000000000004"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l list[Alert]
			f.do(platform, "GET", "/api/v1/alerts?"+tc.query, "", &l)
			if got := fingerprints(l.Items); !slices.Equal(got, tc.want) {
				t.Fatalf("fingerprints = %v, want %v", got, tc.want)
			}
		})
	}
	var p1, p2 list[Alert]
	f.do(platform, "GET", "/api/v1/alerts?limit=3", "", &p1)
	if len(p1.Items) != 3 || p1.NextCursor == "" {
		t.Fatalf("page 1 = %v next %q", fingerprints(p1.Items), p1.NextCursor)
	}
	f.do(platform, "GET", "/api/v1/alerts?limit=3&cursor="+p1.NextCursor, "", &p2)
	if got := fingerprints(p2.Items); !slices.Equal(got, []string{"0000000000000004"}) || p2.NextCursor != "" {
		t.Fatalf("page 2 = %v next %q", got, p2.NextCursor)
	}
	for _, q := range []struct{ query, field string }{
		{"state=burning", "state"},
		{"filter=" + url.QueryEscape(`{alertname=~"("}`), "filter"},
		{"filter=" + url.QueryEscape(`alertname`), "filter"},
		{"limit=0", "limit"},
		{"cursor=!!!", "cursor"},
	} {
		if ans := f.do(platform, "GET", "/api/v1/alerts?"+q.query, "", nil); ans.status != http.StatusBadRequest || !ans.hasField(t, q.field) {
			t.Errorf("%s = %d %s, want 400 naming %s", q.query, ans.status, ans.body, q.field)
		}
	}
}
