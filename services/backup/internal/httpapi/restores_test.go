package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

const restoreBody = `{"tenant_id":"acme","source_instance_id":"i-acme","target_instance_id":"i-new","engine":"mysql",
	"target":{"point_in_time":"2026-12-04T03:00:07Z"}}`

// TestInternalRestoresOnlyForProvisioning: any identity but provisioning's
// gets 404, as if the routes did not exist; no identity 401.
func TestInternalRestoresOnlyForProvisioning(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.restores.jobs["r-1"] = backup.Restore{ID: "r-1", TenantID: "acme", Status: backup.RestoreReady}
	for _, p := range []tenancy.Principal{platform, acmeAdmin, otherService} {
		for _, rq := range []struct{ method, path, body string }{
			{http.MethodPost, "/internal/v1/restores", restoreBody},
			{http.MethodGet, "/internal/v1/restores/r-1", ""},
			{http.MethodPost, "/internal/v1/restores/r-1/done", ""},
		} {
			if a := f.do(p, rq.method, rq.path, rq.body, nil); a.status != 404 {
				t.Errorf("%s %s %s: status %d, want 404", p.Subject, rq.method, rq.path, a.status)
			}
		}
	}
	if a := f.do(tenancy.Principal{}, http.MethodGet, "/internal/v1/restores/r-1", "", nil); a.status != 401 {
		t.Errorf("unsigned: status %d, want 401", a.status)
	}
	if len(f.restores.done) != 0 || len(f.restores.jobs) != 1 {
		t.Fatalf("a refused caller changed jobs: done %v, jobs %v", f.restores.done, f.restores.jobs)
	}
}

func TestStartRestore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got backup.Restore
	a := f.do(provisioningAcme, http.MethodPost, "/internal/v1/restores", restoreBody, &got)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	at := time.Date(2026, 12, 4, 3, 0, 7, 0, time.UTC)
	if got.ID != "r-i-new" || got.TenantID != "acme" || got.SourceInstanceID != "i-acme" || got.TargetInstanceID != "i-new" ||
		!got.Target.PointInTime.Equal(at) || got.Status != backup.RestorePending {
		t.Fatalf("restore %+v", got)
	}
	// The wire shape provisioning decodes: backup.Restore's JSON.
	var wire map[string]any
	if err := json.Unmarshal(a.body, &wire); err != nil {
		t.Fatal(err)
	}
	if wire["status"] != "pending" || wire["target"].(map[string]any)["point_in_time"] != "2026-12-04T03:00:07Z" {
		t.Fatalf("wire %s", a.body)
	}
	// provisioning without a tenant in its identity (platform-admin) too,
	// from a deleted instance's backups, by backup id and by GTID.
	for _, body := range []string{
		`{"tenant_id":"acme","source_instance_id":"i-gone","target_instance_id":"i-2","engine":"redis","target":{"backup_id":"b-redis"}}`,
		`{"tenant_id":"acme","source_instance_id":"i-acme","target_instance_id":"i-3","engine":"mysql","target":{"gtid":"0-1-310"}}`,
	} {
		if a := f.do(provisioning, http.MethodPost, "/internal/v1/restores", body, nil); a.status != 200 {
			t.Fatalf("%s: status %d: %s", body, a.status, a.body)
		}
	}
	if f.restores.jobs["r-i-2"].Target.BackupID != "b-redis" || f.restores.jobs["r-i-3"].Target.GTID != "0-1-310" {
		t.Fatalf("jobs %+v", f.restores.jobs)
	}
}

func TestStartRestoreRefusals(t *testing.T) {
	t.Parallel()
	window := backup.Window{Earliest: time.Date(2026, 12, 3, 2, 5, 0, 0, time.UTC), Latest: time.Date(2026, 12, 5, 2, 9, 0, 0, time.UTC),
		LatestGTID: "0-1-320"}
	body := func(tenant, source, engine, target string) string {
		return `{"tenant_id":"` + tenant + `","source_instance_id":"` + source + `","target_instance_id":"i-new","engine":"` + engine +
			`","target":` + target + `}`
	}
	pit := `{"point_in_time":"2026-12-04T03:00:07Z"}`
	tests := []struct {
		name   string
		p      tenancy.Principal
		body   string
		err    error
		status int
		fields []string
		detail string
	}{
		{"another tenant's source", provisioning, body("globex", "i-acme", "mysql", pit), nil, 404, nil, "source instance"},
		{"an unknown source", provisioning, body("acme", "nope", "mysql", pit), nil, 404, nil, "source instance"},
		{"an unknown backup", provisioning, body("acme", "i-acme", "mysql", `{"backup_id":"b-9"}`), backup.ErrNotFound, 404, nil, "backup b-9"},
		{"a tenant other than the signed one", provisioningAcme, body("globex", "i-globex", "mysql", pit), nil, 403, nil, ""},
		{"an engine mismatch", provisioning, body("acme", "i-acme", "redis", pit), nil, 422, []string{"engine"}, "mysql"},
		{"two targets", provisioning, body("acme", "i-acme", "mysql", `{"backup_id":"b-1","gtid":"0-1-1"}`), nil, 422, []string{"target"}, "target exactly one of"},
		{"no target", provisioning, body("acme", "i-acme", "mysql", `{}`), nil, 422, []string{"target"}, ""},
		{"a time below the second", provisioning, body("acme", "i-acme", "mysql", `{"point_in_time":"2026-12-04T03:00:07.5Z"}`), nil, 422, []string{"target.point_in_time"}, ""},
		{"a time that is not one", provisioning, body("acme", "i-acme", "mysql", `{"point_in_time":"yesterday"}`), nil, 422, []string{"target.point_in_time"}, ""},
		{"missing ids", provisioning, body("", "", "", pit), nil, 422, []string{"tenant_id", "source_instance_id", "engine"}, ""},
		{"an unknown member", provisioning, `{"tenant_id":"acme","source":"x"}`, nil, 400, []string{"source"}, ""},
		{"no backup before the target", provisioning, body("acme", "i-acme", "mysql", pit), backup.ErrNoBackup, 422, nil, "no completed backup"},
		{"an invalid target", provisioning, body("acme", "i-acme", "mysql", `{"gtid":"zero"}`), backup.ErrInvalid, 422, nil, ""},
		{"outside the window", provisioning, body("acme", "i-acme", "mysql", pit), &backup.OutsideWindowError{Window: window}, 422, nil,
			"2026-12-03T02:05:00Z .. 2026-12-05T02:09:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.restores.err = tc.err
			a := f.do(tc.p, http.MethodPost, "/internal/v1/restores", tc.body, nil)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			for _, fe := range tc.fields {
				if !slices.Contains(a.fields(t), fe) {
					t.Errorf("problem names %v, want %s", a.fields(t), fe)
				}
			}
			if !strings.Contains(a.problem(t).Detail, tc.detail) {
				t.Errorf("detail %q does not say %q", a.problem(t).Detail, tc.detail)
			}
			if tc.err == nil && len(f.restores.jobs) != 0 {
				t.Fatalf("a refused restore was queued: %v", f.restores.jobs)
			}
		})
	}
	t.Run("the window is named", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.restores.err = &backup.OutsideWindowError{Window: window}
		a := f.do(provisioning, http.MethodPost, "/internal/v1/restores", body("acme", "i-acme", "mysql", pit), nil)
		var p map[string]any
		if err := json.Unmarshal(a.body, &p); err != nil {
			t.Fatal(err)
		}
		if p["earliest"] != "2026-12-03T02:05:00Z" || p["latest"] != "2026-12-05T02:09:00Z" || p["latest_gtid"] != "0-1-320" {
			t.Fatalf("problem %s", a.body)
		}
	})
}

func TestGetAndDoneRestore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.restores.jobs["r-1"] = backup.Restore{ID: "r-1", TenantID: "acme", SourceInstanceID: "i-acme", TargetInstanceID: "i-new",
		Status: backup.RestoreRunning, Phase: backup.PhaseReplaying, CreatedAt: t0, UpdatedAt: t0}
	var got backup.Restore
	if a := f.do(provisioning, http.MethodGet, "/internal/v1/restores/r-1", "", &got); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if got.Status != backup.RestoreRunning || got.Phase != "replaying" {
		t.Fatalf("restore %+v", got)
	}
	if a := f.do(provisioning, http.MethodGet, "/internal/v1/restores/r-9", "", nil); a.status != 404 {
		t.Fatalf("unknown: status %d", a.status)
	}
	if a := f.do(provisioningAcme, http.MethodPost, "/internal/v1/restores/r-1/done", "", nil); a.status != 204 {
		t.Fatalf("done: status %d: %s", a.status, a.body)
	}
	if !slices.Equal(f.restores.done, []string{"r-1"}) {
		t.Fatalf("done %v", f.restores.done)
	}
	if a := f.do(provisioning, http.MethodPost, "/internal/v1/restores/r-9/done", "", nil); a.status != 404 {
		t.Fatalf("done of an unknown job: status %d", a.status)
	}
	// provisioning acting for another tenant does not see acme's job.
	provisioningGlobex := tenancy.Principal{Tenant: "globex", Role: tenancy.RolePlatformAdmin, Subject: Restorer}
	for _, rq := range []struct{ method, path string }{{http.MethodGet, "/internal/v1/restores/r-1"}, {http.MethodPost, "/internal/v1/restores/r-1/done"}} {
		if a := f.do(provisioningGlobex, rq.method, rq.path, "", nil); a.status != 404 {
			t.Fatalf("%s %s for another tenant: status %d", rq.method, rq.path, a.status)
		}
	}
	if !slices.Equal(f.restores.done, []string{"r-1"}) {
		t.Fatalf("done %v", f.restores.done)
	}
	f.restores.getErr = errBoom
	a := f.do(provisioning, http.MethodGet, "/internal/v1/restores/r-1", "", nil)
	if a.status != 500 || strings.Contains(string(a.body), "boom") {
		t.Fatalf("a failure: status %d: %s", a.status, a.body)
	}
	if logs := f.logged(); !strings.Contains(logs, "boom") || !strings.Contains(logs, `"restore":"r-1"`) {
		t.Fatalf("the failure is not logged with the job id: %s", logs)
	}
}
