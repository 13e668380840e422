package httpapi

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
)

func TestGetInstancePolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pitr, keep := 3, 14
	win := time.Hour
	ctx := context.Background()
	if err := f.store.SetPolicyOverride(ctx, backupstore.ScopePlan, "small", backup.PolicyOverride{DailyKeepDays: &keep}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetPolicyOverride(ctx, backupstore.ScopeInstance, "i-acme", backup.PolicyOverride{PITRDays: &pitr, WindowLength: &win}); err != nil {
		t.Fatal(err)
	}
	var p InstancePolicy
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-acme/backup-policy", "", &p); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	want := Policy{Enabled: true, WindowStart: "1h30m", WindowLength: "1h", DailyKeepDays: 7, PITRDays: 7, MonthlyKeepMonths: 12,
		DrillEvery: "168h", SnapshotEvery: "6h"}
	if p.InstanceID != "i-acme" || p.PlanID != "small" || p.Effective != want {
		t.Fatalf("policy %+v, want effective %+v", p, want)
	}
	if p.PlanOverride.DailyKeepDays == nil || *p.PlanOverride.DailyKeepDays != 14 || p.PlanOverride.PITRDays != nil {
		t.Fatalf("plan override %+v", p.PlanOverride)
	}
	if p.Override.PITRDays == nil || *p.Override.PITRDays != 3 || p.Override.WindowLength == nil || *p.Override.WindowLength != "1h" {
		t.Fatalf("instance override %+v", p.Override)
	}
	if a := f.do(globex, http.MethodGet, "/api/v1/instances/i-acme/backup-policy", "", nil); a.status != 404 {
		t.Fatalf("another tenant: status %d", a.status)
	}
}

// TestPutInstancePolicyRefusals covers what is refused before the domain
// validates the override.
func TestPutInstancePolicyRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name   string
		p      tenancy.Principal
		path   string
		body   string
		status int
		field  string
	}{
		{"a viewer may not", acmeViewer, "/api/v1/instances/i-acme/backup-policy", `{"pitr_days":3}`, 403, ""},
		{"another tenant's instance", globex, "/api/v1/instances/i-acme/backup-policy", `{"pitr_days":3}`, 404, ""},
		{"a deleted instance", acmeAdmin, "/api/v1/instances/i-gone/backup-policy", `{"pitr_days":3}`, 409, ""},
		{"a duration that does not parse", acmeAdmin, "/api/v1/instances/i-acme/backup-policy", `{"drill_every":"monthly"}`, 400, "drill_every"},
		{"a duration as a number", acmeAdmin, "/api/v1/instances/i-acme/backup-policy", `{"window_start":7200}`, 400, "window_start"},
		{"an unknown member", acmeAdmin, "/api/v1/instances/i-acme/backup-policy", `{"keep_forever":true}`, 400, "keep_forever"},
		{"no body", acmeAdmin, "/api/v1/instances/i-acme/backup-policy", ``, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(tc.p, http.MethodPut, tc.path, tc.body, nil)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.field != "" && !slices.Contains(a.fields(t), tc.field) {
				t.Fatalf("problem names %v, want %s", a.fields(t), tc.field)
			}
		})
	}
	if o, ok := f.override(backupstore.ScopeInstance, "i-acme"); ok {
		t.Fatalf("a refused override was stored: %+v", o)
	}
}

func TestPutInstancePolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var p InstancePolicy
	a := f.do(acmeMember, http.MethodPut, "/api/v1/instances/i-acme/backup-policy",
		`{"pitr_days":3,"daily_keep_days":14,"window_start":"1h","drill_every":"168h"}`, &p)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	stored, _ := f.override(backupstore.ScopeInstance, "i-acme")
	if stored.PITRDays == nil || *stored.PITRDays != 3 || stored.WindowStart == nil || *stored.WindowStart != time.Hour ||
		stored.DrillEvery == nil || *stored.DrillEvery != 168*time.Hour || stored.Enabled != nil {
		t.Fatalf("stored %+v", stored)
	}
	if p.Override.DrillEvery == nil || *p.Override.DrillEvery != "168h" || p.Override.Enabled != nil {
		t.Fatalf("answer %+v", p.Override)
	}
	for body, field := range map[string]string{
		`{"daily_keep_days":-1}`: "daily_keep_days",
		`{"window_start":"25h"}`: "window_start",
		// valid on its own, but above the default 7 days of daily backups
		`{"pitr_days":10}`: "pitr_days",
	} {
		a = f.do(acmeMember, http.MethodPut, "/api/v1/instances/i-acme/backup-policy", body, nil)
		if a.status != 422 || !slices.Contains(a.fields(t), field) {
			t.Fatalf("%s: status %d, want 422 naming %s: %s", body, a.status, field, a.body)
		}
	}
	if got, _ := f.override(backupstore.ScopeInstance, "i-acme"); got.DailyKeepDays == nil || *got.DailyKeepDays != 14 {
		t.Fatalf("the refused override replaced the stored one: %+v", got)
	}
}

func TestPlanPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var p PlanPolicy
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/backup-policies/plans/small", "", &p); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if p.PlanID != "small" || p.Override != (PolicyOverride{}) || p.Effective != policyJSON(backup.DefaultPolicy()) {
		t.Fatalf("plan policy %+v", p)
	}
	if a := f.do(acmeAdmin, http.MethodPut, "/api/v1/backup-policies/plans/small", `{"pitr_days":3}`, nil); a.status != 403 {
		t.Fatalf("a tenant-admin changed a plan's policy: status %d", a.status)
	}
	if a := f.do(platform, http.MethodPut, "/api/v1/backup-policies/plans/small", `{"pitr_days":"3"}`, nil); a.status != 400 {
		t.Fatalf("a string count: status %d", a.status)
	}
	if o, ok := f.override(backupstore.ScopePlan, "small"); ok {
		t.Fatalf("a refused override was stored: %+v", o)
	}
	if a := f.do(platform, http.MethodPut, "/api/v1/backup-policies/plans/small", `{"pitr_days":3,"snapshot_every":"2h"}`, &p); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if p.Override.SnapshotEvery == nil || *p.Override.SnapshotEvery != "2h" || p.Effective.SnapshotEvery != "2h" || p.Effective.PITRDays != 3 {
		t.Fatalf("answer %+v", p)
	}
	if a := f.do(platform, http.MethodPut, "/api/v1/backup-policies/plans/small", `{"pitr_days":30}`, nil); a.status != 422 || !slices.Contains(a.fields(t), "pitr_days") {
		t.Fatalf("a plan PITR longer than the daily retention: status %d: %s", a.status, a.body)
	}
	var got PlanPolicy
	f.do(acmeViewer, http.MethodGet, "/api/v1/backup-policies/plans/small", "", &got)
	if got.Override.PITRDays == nil || *got.Override.PITRDays != 3 {
		t.Fatalf("stored %+v", got)
	}
}
