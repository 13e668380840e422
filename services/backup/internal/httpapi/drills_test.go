package httpapi

import (
	"net/http"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func TestListDrills(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got list[Drill]
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-acme/restore-drills", "", &got); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if len(got.Items) != 1 || got.Items[0].ID != "d-1" || got.Items[0].Status != "succeeded" || got.Items[0].Measured == nil ||
		got.Items[0].RestoreSeconds != 42 || got.Items[0].Mismatches == nil {
		t.Fatalf("drills %+v", got.Items)
	}
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-globex/restore-drills", "", nil); a.status != 404 {
		t.Fatalf("another tenant's drills: status %d", a.status)
	}
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-acme/restore-drills?limit=0", "", nil); a.status != 400 {
		t.Fatalf("limit 0: status %d", a.status)
	}
}

func TestCreateDrill(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		p      tenancy.Principal
		path   string
		err    error
		status int
	}{
		{"a member runs one", acmeMember, "/api/v1/instances/i-acme/restore-drills", nil, 202},
		{"a platform-admin runs one", platform, "/api/v1/instances/i-globex/restore-drills", nil, 202},
		{"a viewer may not", acmeViewer, "/api/v1/instances/i-acme/restore-drills", nil, 403},
		{"another tenant's instance", globex, "/api/v1/instances/i-acme/restore-drills", nil, 404},
		{"a deleted instance", acmeAdmin, "/api/v1/instances/i-gone/restore-drills", nil, 409},
		{"one runs already", acmeAdmin, "/api/v1/instances/i-acme/restore-drills", backup.ErrBusy, 409},
		{"no verified backup", acmeAdmin, "/api/v1/instances/i-acme/restore-drills", backup.ErrNoBackup, 422},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.drills.err = tc.err
			var d Drill
			a := f.do(tc.p, http.MethodPost, tc.path, "", &d)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.status == 202 && (d.ID != "d-new" || d.Status != "running" || d.FinishedAt != nil) {
				t.Fatalf("drill %+v", d)
			}
		})
	}
}
