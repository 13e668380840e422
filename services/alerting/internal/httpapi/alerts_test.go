package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
)

// seeded names the seeded alerts' fingerprints (hex, as the API shows
// them): the store keys alerts by their labels' fingerprint.
type seeded struct{ a1, a2, a3, a4 string }

// seedAlerts stores two alerts of acme, one of globex and one platform
// alert through the real store, records a remediation run on the first and
// mutes it.
func seedAlerts(f *fixture) seeded {
	f.t.Helper()
	ctx := context.Background()
	mk := func(state alert.State, labels alert.LabelSet) *alert.Alert {
		return &alert.Alert{Labels: labels, Annotations: alert.LabelSet{"summary": "s"},
			StartsAt: t0.Add(-time.Hour), UpdatedAt: t0, State: state, Rule: "node-down"}
	}
	a1 := mk(alert.StateFiring, alert.LabelSet{"alertname": "NodeDown", "severity": "critical", "tenant": "acme", "instance": "i1"})
	a2 := mk(alert.StatePending, alert.LabelSet{"alertname": "ReplicaLag", "severity": "warning", "tenant": "acme", "instance": "i1"})
	a3 := mk(alert.StateFiring, alert.LabelSet{"alertname": "NodeDown", "severity": "critical", "tenant": "globex", "instance": "i9"})
	a4 := mk(alert.StateResolved, alert.LabelSet{"alertname": "FailoverFailed", "severity": "critical"})
	a4.EndsAt = t0.Add(-time.Minute)
	if err := f.store.UpsertAlerts(ctx, []*alert.Alert{a1, a2, a3, a4}, nil); err != nil {
		f.t.Fatalf("seed alerts: %v", err)
	}
	s := seeded{a1.Fingerprint().String(), a2.Fingerprint().String(), a3.Fingerprint().String(), a4.Fingerprint().String()}
	if _, err := f.store.RecordAction(ctx, alertstore.ActionRun{Fingerprint: s.a1, Tenant: "acme", InstanceID: "i1",
		Action: "switchover", Status: "skipped", Detail: "remediation is off", At: t0}); err != nil {
		f.t.Fatalf("seed action run: %v", err)
	}
	f.engine.mu.Lock()
	f.engine.muted[a1.Fingerprint()] = [2][]string{{"sil-9"}, {"00000000000000ff"}}
	f.engine.mu.Unlock()
	return s
}

// byFingerprint is fps in the API's order (fingerprint order).
func byFingerprint(fps ...string) []string {
	out := slices.Clone(fps)
	slices.Sort(out)
	return out
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
	s := seedAlerts(f)
	tests := []struct {
		name string
		who  string
		path string
		want []string
	}{
		{"acme", "acme", "/api/v1/alerts", byFingerprint(s.a1, s.a2)},
		{"globex", "globex", "/api/v1/alerts", []string{s.a3}},
		{"platform all", "platform", "/api/v1/alerts", byFingerprint(s.a1, s.a2, s.a3, s.a4)},
		{"platform one tenant", "platform", "/api/v1/alerts?tenant=globex", []string{s.a3}},
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
	for _, fp := range []string{s.a3, s.a4} {
		if ans := f.do(acmeViewer, "GET", "/api/v1/alerts/"+fp, "", nil); ans.status != http.StatusNotFound {
			t.Fatalf("acme GET %s (not acme's) = %d, want 404", fp, ans.status)
		}
	}
	if ans := f.do(globex, "GET", "/api/v1/alerts/"+s.a3, "", nil); ans.status != http.StatusOK {
		t.Fatalf("globex GET its alert = %d, want 200", ans.status)
	}
	if ans := f.do(acmeViewer, "GET", "/api/v1/alerts/nothex", "", nil); ans.status != http.StatusNotFound {
		t.Fatalf("bad fingerprint = %d, want 404", ans.status)
	}
}

// TestAlertShape: the alert carries its status with muting and actions.
func TestAlertShape(t *testing.T) {
	f := newFixture(t)
	s := seedAlerts(f)
	var a Alert
	if ans := f.do(acmeViewer, "GET", "/api/v1/alerts/"+s.a1, "", &a); ans.status != http.StatusOK {
		t.Fatalf("get = %d %s", ans.status, ans.body)
	}
	if a.Status.State != "firing" || !slices.Equal(a.Status.SilencedBy, []string{"sil-9"}) ||
		!slices.Equal(a.Status.InhibitedBy, []string{"00000000000000ff"}) || a.EndsAt != nil || a.Labels["alertname"] != "NodeDown" {
		t.Fatalf("alert = %+v", a)
	}
	if len(a.Actions) != 1 || a.Actions[0].Action != "switchover" || a.Actions[0].Status != "skipped" ||
		a.Actions[0].Fingerprint != s.a1 || !a.Actions[0].At.Equal(t0) {
		t.Fatalf("actions = %+v", a.Actions)
	}
	var r Alert
	f.do(platform, "GET", "/api/v1/alerts/"+s.a4, "", &r)
	if r.Status.State != "resolved" || r.EndsAt == nil || r.Status.SilencedBy == nil {
		t.Fatalf("resolved alert = %+v", r)
	}
}

// TestAlertsFilters: state and Alertmanager matchers filter; a cursor
// pages; bad filters are 400s naming the parameter.
func TestAlertsFilters(t *testing.T) {
	f := newFixture(t)
	s := seedAlerts(f)
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"firing", "state=firing", byFingerprint(s.a1, s.a3)},
		{"pending or resolved", "state=pending,resolved", byFingerprint(s.a2, s.a4)},
		{"matcher", "filter=" + url.QueryEscape(`{alertname="NodeDown"}`), byFingerprint(s.a1, s.a3)},
		{"regexp and not", "filter=" + url.QueryEscape(`severity=~"crit.*"`) + "&filter=" + url.QueryEscape(`tenant!=globex`), byFingerprint(s.a1, s.a4)},
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
	all := byFingerprint(s.a1, s.a2, s.a3, s.a4)
	var p1, p2 list[Alert]
	f.do(platform, "GET", "/api/v1/alerts?limit=3", "", &p1)
	if got := fingerprints(p1.Items); !slices.Equal(got, all[:3]) || p1.NextCursor == "" {
		t.Fatalf("page 1 = %v next %q, want %v", got, p1.NextCursor, all[:3])
	}
	f.do(platform, "GET", "/api/v1/alerts?limit=3&cursor="+p1.NextCursor, "", &p2)
	if got := fingerprints(p2.Items); !slices.Equal(got, all[3:]) || p2.NextCursor != "" {
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
