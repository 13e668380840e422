package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// TestReceiverCreateDefaultsAndWriteOnlySecret: a receiver gets
// Alertmanager's timers and Canopy's grouping by default, its secret is
// never shown, and the engine reloads its routes.
func TestReceiverCreateDefaultsAndWriteOnlySecret(t *testing.T) {
	f := newFixture(t)
	var rc Receiver
	ans := f.do(acmeMember, "POST", "/api/v1/alert-receivers",
		`{"name":"oncall","url":"https://hooks.acme.example/am","secret":"s3cr3t","matchers":["severity=~critical|warning"]}`, &rc)
	if ans.status != http.StatusCreated {
		t.Fatalf("create = %d %s", ans.status, ans.body)
	}
	if strings.Contains(string(ans.body), "s3cr3t") || !rc.HasSecret {
		t.Fatalf("secret shown or has_secret false: %s", ans.body)
	}
	if rc.GroupWait != "30s" || rc.GroupInterval != "5m" || rc.RepeatInterval != "4h" || !rc.SendResolved || rc.Continue {
		t.Fatalf("defaults = %+v", rc)
	}
	if !slices.Equal(rc.GroupBy, []string{"alertname", "instance"}) || !slices.Equal(rc.Matchers, []string{`severity=~"critical|warning"`}) {
		t.Fatalf("group_by %v matchers %v", rc.GroupBy, rc.Matchers)
	}
	if rc.Tenant != "acme" || ans.header.Get("Location") != "/api/v1/alert-receivers/"+rc.ID {
		t.Fatalf("tenant %q location %q", rc.Tenant, ans.header.Get("Location"))
	}
	if got := f.engine.reloaded(); !slices.Equal(got, []engine.What{engine.ReloadReceivers}) {
		t.Fatalf("reloads = %v", got)
	}
	if stored, err := f.store.GetReceiver(context.Background(), "acme", false, rc.ID); err != nil || stored.Secret != "s3cr3t" {
		t.Fatalf("stored secret = %q, %v", stored.Secret, err)
	}
}

// TestReceiverPatch: a PATCH changes what it names and keeps the rest; an
// empty secret removes it.
func TestReceiverPatch(t *testing.T) {
	f := newFixture(t)
	var rc Receiver
	f.do(acmeMember, "POST", "/api/v1/alert-receivers", `{"name":"oncall","url":"https://a.example/","secret":"x","group_wait":"10s"}`, &rc)
	var got Receiver
	ans := f.do(acmeMember, "PATCH", "/api/v1/alert-receivers/"+rc.ID, `{"url":"https://b.example/hook","secret":"","repeat_interval":"12h"}`, &got)
	if ans.status != http.StatusOK {
		t.Fatalf("patch = %d %s", ans.status, ans.body)
	}
	if got.URL != "https://b.example/hook" || got.HasSecret || got.RepeatInterval != "12h" || got.GroupWait != "10s" || got.Name != "oncall" {
		t.Fatalf("patched = %+v", got)
	}
}

// TestReceiverValidation: every invalid field is named in a 400.
func TestReceiverValidation(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"metadata address", `{"name":"a","url":"http://169.254.169.254/latest"}`, "url"},
		{"not http", `{"name":"a","url":"ftp://x.example/"}`, "url"},
		{"missing url", `{"name":"a"}`, "url"},
		{"bad name", `{"name":"On Call","url":"https://x.example/"}`, "name"},
		{"bad matcher", `{"name":"a","url":"https://x.example/","matchers":["severity=~\"(\""]}`, "matchers[0]"},
		{"another tenant", `{"name":"a","url":"https://x.example/","matchers":["job=x","tenant=\"globex\""]}`, "matchers[1]"},
		{"tenant regexp", `{"name":"a","url":"https://x.example/","matchers":["tenant=~\".*\""]}`, "matchers[0]"},
		{"bad group_by", `{"name":"a","url":"https://x.example/","group_by":["instance","..."]}`, "group_by[1]"},
		{"negative group_wait", `{"name":"a","url":"https://x.example/","group_wait":"-1s"}`, "group_wait"},
		{"zero group_interval", `{"name":"a","url":"https://x.example/","group_interval":"0s"}`, "group_interval"},
		{"repeat below group interval", `{"name":"a","url":"https://x.example/","group_interval":"10m","repeat_interval":"5m"}`, "repeat_interval"},
		{"not a duration", `{"name":"a","url":"https://x.example/","group_wait":"30"}`, "group_wait"},
	}
	f := newFixture(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans := f.do(acmeMember, "POST", "/api/v1/alert-receivers", tc.body, nil)
			if ans.status != http.StatusBadRequest || !ans.hasField(t, tc.field) {
				t.Fatalf("= %d %s, want 400 naming %s", ans.status, ans.body, tc.field)
			}
		})
	}
	stored, err := f.store.ListReceivers(context.Background(), "", true)
	if err != nil || len(stored) != 0 || len(f.engine.reloaded()) != 0 {
		t.Fatalf("invalid receivers stored or reloaded: %+v, %v", stored, err)
	}
}

// TestReceiverTenantIsolation: another tenant's receiver is 404 whatever
// the method, lists hold only one's own, the platform sees all, and a
// viewer may not write.
func TestReceiverTenantIsolation(t *testing.T) {
	f := newFixture(t)
	var rc Receiver
	f.do(acmeMember, "POST", "/api/v1/alert-receivers", `{"name":"oncall","url":"https://a.example/","matchers":["tenant=acme"]}`, &rc)
	var plat Receiver
	if ans := f.do(platform, "POST", "/api/v1/alert-receivers", `{"name":"noc","url":"https://noc.example/","matchers":["tenant=~\"acme|globex\""]}`, &plat); ans.status != http.StatusCreated || plat.Tenant != "" {
		t.Fatalf("platform create = %d %s", ans.status, ans.body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if ans := f.do(globex, m, "/api/v1/alert-receivers/"+rc.ID, "", nil); ans.status != http.StatusNotFound {
			t.Errorf("globex %s acme's receiver = %d, want 404", m, ans.status)
		}
	}
	if ans := f.do(globex, "PATCH", "/api/v1/alert-receivers/"+rc.ID, `{"url":"https://evil.example/"}`, nil); ans.status != http.StatusNotFound {
		t.Errorf("globex PATCH acme's receiver = %d, want 404", ans.status)
	}
	if stored, err := f.store.GetReceiver(context.Background(), "acme", false, rc.ID); err != nil || stored.URL != "https://a.example/" {
		t.Fatalf("acme's receiver after globex's writes = %+v, %v", stored, err)
	}
	var gl list[Receiver]
	f.do(globex, "GET", "/api/v1/alert-receivers", "", &gl)
	if len(gl.Items) != 0 {
		t.Fatalf("globex lists %+v", gl.Items)
	}
	var al list[Receiver]
	f.do(platform, "GET", "/api/v1/alert-receivers", "", &al)
	if len(al.Items) != 2 {
		t.Fatalf("platform lists %d receivers, want 2", len(al.Items))
	}
	if ans := f.do(acmeViewer, "POST", "/api/v1/alert-receivers", `{"name":"v","url":"https://a.example/"}`, nil); ans.status != http.StatusForbidden {
		t.Fatalf("viewer create = %d, want 403", ans.status)
	}
	if ans := f.do(acmeViewer, "GET", "/api/v1/alert-receivers/"+rc.ID, "", nil); ans.status != http.StatusOK {
		t.Fatalf("viewer get = %d", ans.status)
	}
	if ans := f.do(acmeMember, "GET", "/api/v1/alert-receivers?tenant=globex", "", nil); ans.status != http.StatusForbidden {
		t.Fatalf("acme naming globex = %d, want 403", ans.status)
	}
	if ans := f.do(acmeMember, "POST", "/api/v1/alert-receivers", `{"name":"oncall","url":"https://a.example/"}`, nil); ans.status != http.StatusConflict {
		t.Fatalf("duplicate name = %d, want 409", ans.status)
	}
	if ans := f.do(acmeMember, "DELETE", "/api/v1/alert-receivers/"+rc.ID, "", nil); ans.status != http.StatusNoContent {
		t.Fatalf("delete = %d", ans.status)
	}
}
