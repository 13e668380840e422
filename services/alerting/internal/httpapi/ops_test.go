package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
)

// TestSettings: remediation is off until a tenant-admin turns it on, for
// that tenant only; a member may not.
func TestSettings(t *testing.T) {
	f := newFixture(t)
	var s Settings
	if f.do(acmeViewer, "GET", "/api/v1/alert-settings", "", &s); s.Remediation {
		t.Fatal("remediation on by default")
	}
	if ans := f.do(acmeMember, "PUT", "/api/v1/alert-settings", `{"remediation":true}`, nil); ans.status != http.StatusForbidden {
		t.Fatalf("member PUT = %d, want 403", ans.status)
	}
	if ans := f.do(acmeAdmin, "PUT", "/api/v1/alert-settings", `{}`, nil); ans.status != http.StatusBadRequest || !ans.hasField(t, "remediation") {
		t.Fatalf("empty PUT = %d %s", ans.status, ans.body)
	}
	if ans := f.do(acmeAdmin, "PUT", "/api/v1/alert-settings", `{"remediation":true}`, &s); ans.status != http.StatusOK || !s.Remediation {
		t.Fatalf("admin PUT = %d %s", ans.status, ans.body)
	}
	if f.do(acmeViewer, "GET", "/api/v1/alert-settings", "", &s); !s.Remediation {
		t.Fatal("acme's remediation is off after PUT")
	}
	if f.do(globex, "GET", "/api/v1/alert-settings", "", &s); s.Remediation {
		t.Fatal("globex sees acme's setting")
	}
	if f.do(platform, "GET", "/api/v1/alert-settings?tenant=acme", "", &s); !s.Remediation {
		t.Fatal("platform does not see acme's setting")
	}
}

// deadLetter queues d through the real store and fails it for good after
// attempts (as the dispatcher does), returning its id.
func deadLetter(t *testing.T, st *alertstore.Store, d alertstore.Delivery, attempts int, reason string) int64 {
	t.Helper()
	ctx := context.Background()
	if err := st.StoreNotifications(ctx, []alertstore.Delivery{d}, nil); err != nil {
		t.Fatalf("queue delivery: %v", err)
	}
	due, err := st.DueDeliveries(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due deliveries = %+v, %v; want the one queued", due, err)
	}
	if err := st.Failed(ctx, due[0].ID, attempts, time.Now(), reason, true); err != nil {
		t.Fatalf("dead-letter delivery %d: %v", due[0].ID, err)
	}
	return due[0].ID
}

// receiverOf stores a receiver of tenant for dead letters to belong to.
func receiverOf(t *testing.T, st *alertstore.Store, tenant string) alertstore.Receiver {
	t.Helper()
	r, err := st.CreateReceiver(context.Background(), alertstore.Receiver{Tenant: tenant, Name: "oncall",
		URL: "https://hooks." + tenant + ".example/", GroupWait: time.Second, GroupInterval: time.Minute, RepeatInterval: time.Hour})
	if err != nil {
		t.Fatalf("create receiver of %s: %v", tenant, err)
	}
	return r
}

// TestDeadLettersAndActions: each tenant lists and retries only its own.
func TestDeadLettersAndActions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	acmeRcv, globexRcv := receiverOf(t, f.store, "acme"), receiverOf(t, f.store, "globex")
	acmeDL := deadLetter(t, f.store, alertstore.Delivery{Receiver: acmeRcv.ID, Owner: "acme",
		GroupKey: `{}/{tenant="acme"}:{alertname="NodeDown"}`, Payload: []byte(`{"version":"4","status":"firing"}`)},
		12, "503 Service Unavailable")
	globexDL := deadLetter(t, f.store, alertstore.Delivery{Receiver: globexRcv.ID, Owner: "globex", GroupKey: "g"}, 1, "410 Gone")
	for _, r := range []alertstore.ActionRun{
		{Fingerprint: "0000000000000001", Tenant: "acme", InstanceID: "i1", Action: "switchover", Status: "succeeded", At: t0},
		{Fingerprint: "0000000000000003", Tenant: "globex", InstanceID: "i9", Action: "rebuild-replica", Status: "failed", Detail: "409", At: t0},
	} {
		if _, err := f.store.RecordAction(ctx, r); err != nil {
			t.Fatalf("record action: %v", err)
		}
	}
	var dl list[DeadLetter]
	f.do(acmeViewer, "GET", "/api/v1/alert-dead-letters", "", &dl)
	if len(dl.Items) != 1 || dl.Items[0].ID != acmeDL || string(dl.Items[0].Payload) != `{"version":"4","status":"firing"}` ||
		dl.Items[0].Receiver != acmeRcv.ID || dl.Items[0].Attempts != 12 || dl.Items[0].LastError != "503 Service Unavailable" ||
		dl.Items[0].DeadAt.IsZero() {
		t.Fatalf("acme dead letters = %+v", dl.Items)
	}
	if ans := f.do(acmeMember, "POST", fmt.Sprintf("/api/v1/alert-dead-letters/%d/retry", globexDL), "", nil); ans.status != http.StatusNotFound {
		t.Fatalf("acme retrying globex's = %d, want 404", ans.status)
	}
	if ans := f.do(acmeViewer, "POST", fmt.Sprintf("/api/v1/alert-dead-letters/%d/retry", acmeDL), "", nil); ans.status != http.StatusForbidden {
		t.Fatalf("viewer retry = %d, want 403", ans.status)
	}
	if ans := f.do(acmeMember, "POST", fmt.Sprintf("/api/v1/alert-dead-letters/%d/retry", acmeDL), "", nil); ans.status != http.StatusAccepted {
		t.Fatalf("retry = %d %s", ans.status, ans.body)
	}
	// The retried letter is queued again and no longer dead; globex's,
	// which acme tried to retry, is still dead.
	if f.do(acmeViewer, "GET", "/api/v1/alert-dead-letters", "", &dl); len(dl.Items) != 0 {
		t.Fatalf("acme dead letters after retry = %+v", dl.Items)
	}
	due, err := f.store.DueDeliveries(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].ID != acmeDL || due[0].Attempts != 0 {
		t.Fatalf("due after retry = %+v, %v; want only %d, attempts reset", due, err, acmeDL)
	}
	if f.do(globex, "GET", "/api/v1/alert-dead-letters", "", &dl); len(dl.Items) != 1 || dl.Items[0].ID != globexDL {
		t.Fatalf("globex dead letters = %+v", dl.Items)
	}
	var al list[Action]
	f.do(globex, "GET", "/api/v1/alert-actions", "", &al)
	if len(al.Items) != 1 || al.Items[0].Action != "rebuild-replica" {
		t.Fatalf("globex actions = %+v", al.Items)
	}
	f.do(platform, "GET", "/api/v1/alert-actions?limit=500", "", &al)
	if len(al.Items) != 2 {
		t.Fatalf("platform actions = %+v", al.Items)
	}
}

// TestRetryDeadLetterOfDeletedReceiver: deleting a receiver dead-letters
// its queued notifications; retrying one is a 409 saying why, and the
// letter stays listed as dead.
func TestRetryDeadLetterOfDeletedReceiver(t *testing.T) {
	f := newFixture(t)
	rcv := receiverOf(t, f.store, "acme")
	if err := f.store.StoreNotifications(context.Background(),
		[]alertstore.Delivery{{Receiver: rcv.ID, Owner: "acme", GroupKey: "g", Payload: []byte(`{}`)}}, nil); err != nil {
		t.Fatal(err)
	}
	if ans := f.do(acmeMember, "DELETE", "/api/v1/alert-receivers/"+rcv.ID, "", nil); ans.status != http.StatusNoContent {
		t.Fatalf("delete receiver = %d %s", ans.status, ans.body)
	}
	var dl list[DeadLetter]
	if f.do(acmeViewer, "GET", "/api/v1/alert-dead-letters", "", &dl); len(dl.Items) != 1 || dl.Items[0].LastError != "receiver deleted" {
		t.Fatalf("dead letters after deleting the receiver = %+v", dl.Items)
	}
	ans := f.do(acmeMember, "POST", fmt.Sprintf("/api/v1/alert-dead-letters/%d/retry", dl.Items[0].ID), "", nil)
	if ans.status != http.StatusConflict || !strings.Contains(ans.problem(t).Detail, "receiver was deleted") {
		t.Fatalf("retry = %d %s, want 409 naming the deleted receiver", ans.status, ans.body)
	}
	if f.do(acmeViewer, "GET", "/api/v1/alert-dead-letters", "", &dl); len(dl.Items) != 1 {
		t.Fatalf("dead letters after the refused retry = %+v", dl.Items)
	}
}

// TestPrometheusTargets: HTTP SD lists the caller's nodes.
func TestPrometheusTargets(t *testing.T) {
	f := newFixture(t)
	var tg []nodes.TargetGroup
	if ans := f.do(acmeViewer, "GET", "/api/v1/prometheus/targets", "", &tg); ans.status != http.StatusOK || ans.header.Get("Content-Type") != "application/json" {
		t.Fatalf("targets = %d %v", ans.status, ans.header)
	}
	if len(tg) != 1 || tg[0].Targets[0] != "10.0.0.1:3306" || tg[0].Labels["tenant"] != "acme" {
		t.Fatalf("acme targets = %+v", tg)
	}
	f.do(platform, "GET", "/api/v1/prometheus/targets", "", &tg)
	if len(tg) != 2 {
		t.Fatalf("platform targets = %+v", tg)
	}
}

// TestAlertmanagerStatus: tools asking whether this is an Alertmanager get
// its status shape.
func TestAlertmanagerStatus(t *testing.T) {
	f := newFixture(t)
	var st struct {
		Cluster struct {
			Status string   `json:"status"`
			Peers  []string `json:"peers"`
		} `json:"cluster"`
		VersionInfo map[string]string `json:"versionInfo"`
		Uptime      string            `json:"uptime"`
	}
	if ans := f.do(acmeViewer, "GET", "/api/v2/status", "", &st); ans.status != http.StatusOK || st.Cluster.Status != "disabled" ||
		st.Cluster.Peers == nil || st.VersionInfo["goVersion"] == "" || st.Uptime != "2026-12-03T10:00:00Z" {
		t.Fatalf("status = %d %s", ans.status, ans.body)
	}
}

// TestNewRequiresDeps: a missing dependency is a construction error.
func TestNewRequiresDeps(t *testing.T) {
	full := Deps{Store: newStore(t), Engine: &fakeEngine{}, Nodes: fakeNodes{}, URLs: urlPolicy{}}
	if _, err := New(full); err != nil {
		t.Fatalf("New(full) = %v", err)
	}
	for name, d := range map[string]Deps{
		"store":   {Engine: full.Engine, Nodes: full.Nodes, URLs: full.URLs},
		"engine":  {Store: full.Store, Nodes: full.Nodes, URLs: full.URLs},
		"nodes":   {Store: full.Store, Engine: full.Engine, URLs: full.URLs},
		"urls":    {Store: full.Store, Engine: full.Engine, Nodes: full.Nodes},
		"timeout": {Store: full.Store, Engine: full.Engine, Nodes: full.Nodes, URLs: full.URLs, ResolveTimeout: -1},
	} {
		if _, err := New(d); err == nil {
			t.Errorf("New without %s succeeded", name)
		}
	}
}
