package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func ids(items []Backup) []string {
	out := make([]string, len(items))
	for i, b := range items {
		out[i] = b.ID
	}
	return out
}

// TestBackupsTenantScoping: a tenant sees only its own instances' backups
// (another tenant's instance is as unknown as a missing one), a
// platform-admin sees any, and ?tenant= narrows it.
func TestBackupsTenantScoping(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name   string
		p      tenancy.Principal
		path   string
		status int
		want   []string
	}{
		{"viewer lists its instance's backups newest first", acmeViewer, "/api/v1/instances/i-acme/backups", 200, []string{"b-3", "b-2", "b-1"}},
		{"another tenant's instance is unknown", globex, "/api/v1/instances/i-acme/backups", 404, nil},
		{"an unknown instance", acmeViewer, "/api/v1/instances/nope/backups", 404, nil},
		{"platform-admin sees any tenant's", platform, "/api/v1/instances/i-globex/backups", 200, []string{"b-globex"}},
		{"platform-admin narrowed to another tenant", platform, "/api/v1/instances/i-acme/backups?tenant=globex", 404, nil},
		{"platform-admin narrowed to the owner", platform, "/api/v1/instances/i-acme/backups?tenant=acme", 200, []string{"b-3", "b-2", "b-1"}},
		{"a tenant naming another tenant", acmeViewer, "/api/v1/instances/i-acme/backups?tenant=globex", 403, nil},
		{"a tenant naming itself", acmeViewer, "/api/v1/instances/i-acme/backups?tenant=acme", 200, []string{"b-3", "b-2", "b-1"}},
		{"a malformed tenant", platform, "/api/v1/instances/i-acme/backups?tenant=Not_A_Tenant", 400, nil},
		{"a deleted instance's backups stay listed", acmeViewer, "/api/v1/instances/i-gone/backups", 200, []string{"b-redis"}},
		{"no identity", tenancy.Principal{}, "/api/v1/instances/i-acme/backups", 401, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got list[Backup]
			a := f.do(tc.p, http.MethodGet, tc.path, "", &got)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.status == 200 && !slices.Equal(ids(got.Items), tc.want) {
				t.Fatalf("backups %v, want %v", ids(got.Items), tc.want)
			}
		})
	}
}

func TestListBackupsPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var page list[Backup]
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-acme/backups?limit=2", "", &page); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if !slices.Equal(ids(page.Items), []string{"b-3", "b-2"}) || page.NextCursor == "" {
		t.Fatalf("first page %v, cursor %q", ids(page.Items), page.NextCursor)
	}
	var rest list[Backup]
	f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-acme/backups?limit=2&cursor="+url.QueryEscape(page.NextCursor), "", &rest)
	if !slices.Equal(ids(rest.Items), []string{"b-1"}) || rest.NextCursor != "" {
		t.Fatalf("second page %v, cursor %q", ids(rest.Items), rest.NextCursor)
	}
	// the last: a well-formed cursor naming no backup of this instance
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=%21%21", "cursor=" + paging.EncodeKey("b-globex")} {
		a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-acme/backups?"+q, "", nil)
		if a.status != 400 {
			t.Errorf("%s: status %d, want 400: %s", q, a.status, a.body)
		}
	}
}

func TestGetBackup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var b Backup
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-acme/backups/b-2", "", &b); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	} else if strings.Contains(string(a.body), "wrapped") || strings.Contains(string(a.body), "acme/i-acme/backups") {
		t.Fatalf("the answer shows the data key or repository keys: %s", a.body)
	}
	want := f.backups[1]
	if b.ID != "b-2" || b.GTID != want.GTID || !b.Verified || b.Stats == nil || b.Stats.Sample[0].Checksum != 1<<40 ||
		!b.FinishedAt.Equal(want.FinishedAt) || !b.FromReplica || b.Kind != "full" || b.Trigger != "scheduled" {
		t.Fatalf("backup %+v, want the stored b-2", b)
	}
	tests := []struct {
		name   string
		p      tenancy.Principal
		path   string
		status int
	}{
		{"another instance's backup", acmeViewer, "/api/v1/instances/i-gone/backups/b-2", 404},
		{"an unknown backup", acmeViewer, "/api/v1/instances/i-acme/backups/b-9", 404},
		{"another tenant's backup", globex, "/api/v1/instances/i-acme/backups/b-2", 404},
		{"a deleted instance's backup", acmeViewer, "/api/v1/instances/i-gone/backups/b-redis", 200},
		{"a failed backup", platform, "/api/v1/instances/i-globex/backups/b-globex", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a := f.do(tc.p, http.MethodGet, tc.path, "", nil); a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
		})
	}
}

func TestCreateBackup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var b Backup
	a := f.do(acmeMember, http.MethodPost, "/api/v1/instances/i-acme/backups", "", &b)
	if a.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if b.Status != "running" || b.Trigger != "on_demand" || b.FinishedAt != nil || a.header.Get("Location") != "/api/v1/instances/i-acme/backups/b-new" {
		t.Fatalf("backup %+v, location %q", b, a.header.Get("Location"))
	}
	if a := f.do(platform, http.MethodPost, "/api/v1/instances/i-globex/backups", "", nil); a.status != http.StatusAccepted {
		t.Fatalf("platform-admin: status %d: %s", a.status, a.body)
	}
	if got := f.engine.started; !slices.Equal(got, []string{"acme/i-acme", "globex/i-globex"}) {
		t.Fatalf("engine asked for %v", got)
	}

	tests := []struct {
		name   string
		p      tenancy.Principal
		path   string
		err    error
		status int
	}{
		{"a viewer may not", acmeViewer, "/api/v1/instances/i-acme/backups", nil, 403},
		{"another tenant's instance", globex, "/api/v1/instances/i-acme/backups", nil, 404},
		{"a deleted instance", acmeAdmin, "/api/v1/instances/i-gone/backups", nil, 409},
		{"one runs already", acmeAdmin, "/api/v1/instances/i-acme/backups", backup.ErrBusy, 409},
		{"the engine does not know it (yet)", acmeAdmin, "/api/v1/instances/i-acme/backups", backup.ErrNotFound, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.engine.err = tc.err
			a := f.do(tc.p, http.MethodPost, tc.path, "", nil)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if len(f.engine.started) != 0 {
				t.Fatalf("engine asked for %v", f.engine.started)
			}
			if tc.err == backup.ErrBusy && !strings.Contains(a.problem(t).Detail, "already running") {
				t.Fatalf("detail %q", a.problem(t).Detail)
			}
		})
	}
}

// TestStoreFailureIs500 checks an unexpected error is a logged 500 that
// does not leak the error.
func TestStoreFailureIs500(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(s store) store { return failingStore{store: s, err: errBoom} })
	// Not through f.do: a 500 is documented nowhere in the OpenAPI document.
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/v1/instances/i-acme/backups", nil)
	f.signer.SignRequest(req, nil, tenancy.AudienceBackup, acmeViewer)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.Contains(string(body), "boom") {
		t.Fatalf("status %d, want 500 without the error: %s", resp.StatusCode, body)
	}
	if logs := f.logged(); !strings.Contains(logs, "boom") || !strings.Contains(logs, `"instance":"i-acme"`) || !strings.Contains(logs, `"tenant":"acme"`) {
		t.Fatalf("the failure is not logged with its ids: %s", logs)
	}
}

func TestRestoreWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	last := f.backups[2]
	for _, seg := range []backup.Segment{
		{TenantID: "acme", InstanceID: "i-acme", Seq: 1, StartPos: "0-1-300", EndPos: "0-1-310",
			FirstAt: last.ConsistentAt.Add(time.Minute), LastAt: last.ConsistentAt.Add(2 * time.Minute), Transactions: 10, ArchivedAt: t0},
		{TenantID: "acme", InstanceID: "i-acme", Seq: 2, StartPos: "0-1-310", EndPos: "0-1-320",
			FirstAt: last.ConsistentAt.Add(3 * time.Minute), LastAt: last.ConsistentAt.Add(4 * time.Minute), Transactions: 10, ArchivedAt: t0},
	} {
		if err := f.store.AppendSegment(ctx, seg); err != nil {
			t.Fatal(err)
		}
	}
	var w RestoreWindow
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-acme/restore-window", "", &w); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if !w.Available || w.Earliest == nil || !w.Earliest.Equal(f.backups[0].ConsistentAt) || w.Latest == nil ||
		!w.Latest.Equal(last.ConsistentAt.Add(4*time.Minute)) || w.LatestGTID != "0-1-320" ||
		w.ArchiveLagSeconds == nil || *w.ArchiveLagSeconds != 1.5 {
		t.Fatalf("window %+v", w)
	}
	var none RestoreWindow
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-empty/restore-window", "", &none); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if none.Available || none.Earliest != nil || none.Latest != nil || none.ArchiveLagSeconds != nil {
		t.Fatalf("window without backups %+v", none)
	}
	var redis RestoreWindow
	if a := f.do(acmeViewer, http.MethodGet, "/api/v1/instances/i-gone/restore-window", "", &redis); a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if !redis.Available || !redis.Latest.Equal(t0) || redis.LatestGTID != "" {
		t.Fatalf("a deleted Redis instance's window %+v", redis)
	}
	if a := f.do(globex, http.MethodGet, "/api/v1/instances/i-acme/restore-window", "", nil); a.status != 404 {
		t.Fatalf("another tenant: status %d", a.status)
	}
}

func TestNewNeedsItsCollaborators(t *testing.T) {
	t.Parallel()
	if _, err := New(Deps{Engine: &fakeEngine{}, Restores: &fakeRestores{}, Drills: &fakeDrills{}}); err == nil {
		t.Fatal("New without a store succeeded")
	}
	if _, err := newAPI(Deps{Restores: &fakeRestores{}, Drills: &fakeDrills{}}, failingStore{}); err == nil {
		t.Fatal("an API without an engine was built")
	}
	bad := backup.DefaultPolicy()
	bad.PITRDays = bad.DailyKeepDays + 1
	if _, err := newAPI(Deps{Engine: &fakeEngine{}, Restores: &fakeRestores{}, Drills: &fakeDrills{}, Base: bad}, failingStore{}); err == nil {
		t.Fatal("an API over an invalid base policy was built")
	}
}
