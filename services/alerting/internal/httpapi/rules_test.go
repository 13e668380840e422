package httpapi

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

func ruleIDs(rs []Rule) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// TestRulesListCreateAndIsolation: defaults come first and read-only, a
// tenant's own rules follow and stay its own.
func TestRulesListCreateAndIsolation(t *testing.T) {
	f := newFixture(t)
	var created Rule
	ans := f.do(acmeMember, "POST", "/api/v1/alert-rules", `{"id":"evictions","name":"RedisEvictions","kind":"sample",
		"expr":"evicted_keys > 100","engine":"redis","for":"5m","labels":{"severity":"warning"}}`, &created)
	if ans.status != http.StatusCreated || created.For != "5m" || created.Tenant != "acme" || created.Default {
		t.Fatalf("create = %d %s", ans.status, ans.body)
	}
	if got := f.engine.reloaded(); !slices.Equal(got, []engine.What{engine.ReloadRules}) {
		t.Fatalf("reloads = %v", got)
	}
	var l list[Rule]
	f.do(acmeViewer, "GET", "/api/v1/alert-rules", "", &l)
	if got := ruleIDs(l.Items); !slices.Equal(got, []string{"node-down", "replica-lag", "evictions"}) || !l.Items[0].Default || l.Items[1].For != "1m" {
		t.Fatalf("acme rules = %v %+v", got, l.Items)
	}
	f.do(globex, "GET", "/api/v1/alert-rules", "", &l)
	if got := ruleIDs(l.Items); !slices.Equal(got, []string{"node-down", "replica-lag"}) {
		t.Fatalf("globex rules = %v", got)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if ans := f.do(globex, m, "/api/v1/alert-rules/evictions", "", nil); ans.status != http.StatusNotFound {
			t.Fatalf("globex %s acme's rule = %d, want 404", m, ans.status)
		}
	}
	if ans := f.do(globex, "PUT", "/api/v1/alert-rules/evictions", `{"name":"X","kind":"sample","expr":"a > 1"}`, nil); ans.status != http.StatusNotFound {
		t.Fatalf("globex PUT acme's rule = %d, want 404", ans.status)
	}
	// The refused writes changed nothing: acme's rule is as created and
	// globex stored none.
	ctx := context.Background()
	if acme, err := f.store.ListRules(ctx, "acme", false); err != nil || len(acme) != 1 || acme[0].Expr != "evicted_keys > 100" {
		t.Fatalf("acme's stored rules after globex's writes = %+v, %v", acme, err)
	}
	if gx, err := f.store.ListRules(ctx, "globex", false); err != nil || len(gx) != 0 {
		t.Fatalf("globex's stored rules = %+v, %v", gx, err)
	}
	var put Rule
	if ans := f.do(acmeMember, "PUT", "/api/v1/alert-rules/evictions", `{"name":"RedisEvictions","kind":"sample","expr":"evicted_keys > 500"}`, &put); ans.status != http.StatusOK || put.Expr != "evicted_keys > 500" || put.For != "" {
		t.Fatalf("put = %d %s", ans.status, ans.body)
	}
	var patched Rule
	if ans := f.do(acmeMember, "PATCH", "/api/v1/alert-rules/evictions", `{"for":"2m"}`, &patched); ans.status != http.StatusOK || patched.For != "2m" || patched.Expr != "evicted_keys > 500" {
		t.Fatalf("patch = %d %s", ans.status, ans.body)
	}
	if ans := f.do(acmeMember, "DELETE", "/api/v1/alert-rules/evictions", "", nil); ans.status != http.StatusNoContent {
		t.Fatalf("delete = %d", ans.status)
	}
}

// TestRuleValidation: bad rules are 400s; a default's id is taken.
func TestRuleValidation(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"no id", `{"name":"A","kind":"sample","expr":"a > 1"}`, 400, "id"},
		{"bad id", `{"id":"A B","name":"A","kind":"sample","expr":"a > 1"}`, 400, "id"},
		{"bad for", `{"id":"a","name":"A","kind":"sample","expr":"a > 1","for":"five"}`, 400, "for"},
		{"another tenant label", `{"id":"a","name":"A","kind":"sample","expr":"a > 1","labels":{"tenant":"globex"}}`, 400, "labels.tenant"},
		{"invalid rule", `{"id":"a","name":"A","kind":"sample"}`, 400, ""},
		{"default id", `{"id":"node-down","name":"A","kind":"sample","expr":"a > 1"}`, 409, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans := f.do(acmeMember, "POST", "/api/v1/alert-rules", tc.body, nil)
			if ans.status != tc.status || (tc.field != "" && !ans.hasField(t, tc.field)) {
				t.Fatalf("= %d %s, want %d naming %q", ans.status, ans.body, tc.status, tc.field)
			}
		})
	}
	if ans := f.do(acmeViewer, "POST", "/api/v1/alert-rules", `{"id":"a","name":"A","kind":"sample","expr":"a > 1"}`, nil); ans.status != http.StatusForbidden {
		t.Fatalf("viewer create = %d, want 403", ans.status)
	}
}

// TestDefaultRuleOverride: a tenant turns a default rule off and its
// action on for itself only; the rest of a default is read-only, and
// DELETE resets the override.
func TestDefaultRuleOverride(t *testing.T) {
	f := newFixture(t)
	var got Rule
	if ans := f.do(acmeMember, "PATCH", "/api/v1/alert-rules/replica-lag", `{"disabled":true,"action_enabled":true}`, &got); ans.status != http.StatusOK || !got.Disabled || !got.ActionEnabled || !got.Default {
		t.Fatalf("override = %d %s", ans.status, ans.body)
	}
	f.do(acmeViewer, "GET", "/api/v1/alert-rules/replica-lag", "", &got)
	if !got.Disabled || !got.ActionEnabled || got.Expr != "replication_lag_seconds > 10" {
		t.Fatalf("acme sees %+v", got)
	}
	f.do(globex, "GET", "/api/v1/alert-rules/replica-lag", "", &got)
	if got.Disabled || got.ActionEnabled {
		t.Fatalf("globex sees acme's override: %+v", got)
	}
	if ans := f.do(acmeMember, "PATCH", "/api/v1/alert-rules/replica-lag", `{"disabled":false}`, &got); ans.status != http.StatusOK || got.Disabled || !got.ActionEnabled {
		t.Fatalf("second override = %d %s", ans.status, ans.body)
	}
	if ans := f.do(acmeMember, "PATCH", "/api/v1/alert-rules/replica-lag", `{"expr":"replication_lag_seconds > 1"}`, nil); ans.status != http.StatusBadRequest || !ans.hasField(t, "expr") {
		t.Fatalf("patch default expr = %d %s", ans.status, ans.body)
	}
	if ans := f.do(acmeMember, "PATCH", "/api/v1/alert-rules/node-down", `{"action_enabled":true}`, nil); ans.status != http.StatusBadRequest || !ans.hasField(t, "action_enabled") {
		t.Fatalf("enable a missing action = %d %s", ans.status, ans.body)
	}
	if ans := f.do(acmeMember, "PUT", "/api/v1/alert-rules/node-down", `{"name":"X","kind":"event","on":["x"]}`, nil); ans.status != http.StatusConflict {
		t.Fatalf("PUT default = %d, want 409", ans.status)
	}
	if ans := f.do(acmeMember, "DELETE", "/api/v1/alert-rules/node-down", "", nil); ans.status != http.StatusConflict {
		t.Fatalf("DELETE default without override = %d, want 409", ans.status)
	}
	if ans := f.do(acmeMember, "DELETE", "/api/v1/alert-rules/replica-lag", "", nil); ans.status != http.StatusNoContent {
		t.Fatalf("DELETE override = %d, want 204", ans.status)
	}
	f.do(acmeViewer, "GET", "/api/v1/alert-rules/replica-lag", "", &got)
	if got.Disabled || got.ActionEnabled {
		t.Fatalf("after reset acme sees %+v", got)
	}
	if ans := f.do(acmeViewer, "GET", "/api/v1/alert-rules/nope", "", nil); ans.status != http.StatusNotFound {
		t.Fatalf("missing rule = %d", ans.status)
	}
}
