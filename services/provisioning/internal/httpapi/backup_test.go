package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/memrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// backupFixture: b1 (mysql: primary, stopped replica, fenced former
// primary; data dirs recorded), b2 (redis), b3 (placed, no node created
// yet), b4 (deleted).
func backupFixture(t *testing.T) *Handler {
	t.Helper()
	ctx := context.Background()
	repo := memrepo.New()
	for _, c := range []struct{ id, engine string }{{"b1", instance.EngineMySQL}, {"b2", instance.EngineRedis}, {"b3", instance.EngineMySQL}, {"b4", instance.EngineMySQL}} {
		in := routedInstance(c.id, c.engine)
		for i := range in.Nodes {
			n := &in.Nodes[i]
			n.Region, n.AZ, n.DataDir = "eu-1", "eu-1"+string(rune('a'+i)), "/canopy/nodes/"+n.ID
		}
		in.Nodes[1].State = instance.NodeStopped
		if c.id == "b3" {
			in.State, in.Step = instance.StateProvisioning, instance.StepCreating
			for i := range in.Nodes {
				in.Nodes[i].State, in.Nodes[i].Address = instance.NodePending, ""
			}
		}
		req := port.CreateRequest{Instance: in, Op: instance.Operation{ID: "op-" + c.id, InstanceID: c.id, Tenant: "acme"}}
		if err := repo.Create(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := repo.Update(ctx, "b4", func(c *port.Change) error { c.Instance.State = instance.StateDeleted; return nil }); err != nil {
		t.Fatal(err)
	}
	h, err := New(repo, fuzzSaga{}, fuzzCatalog{}, func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The backup view answers only the signed identity service:backup.
func TestBackupViewWho(t *testing.T) {
	h := backupFixture(t)
	tests := []struct {
		name   string
		who    *tenancy.Principal
		status int
	}{
		{"backup", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: BackupReader}, http.StatusOK},
		{"no identity", nil, http.StatusUnauthorized},
		{"backup subject with a tenant role", &tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: BackupReader}, http.StatusNotFound},
		{"cdc service", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: CDCReader}, http.StatusNotFound},
		{"health checker", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: MonitorReader}, http.StatusNotFound},
		{"another platform admin", &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}, http.StatusNotFound},
	}
	for _, tt := range tests {
		for _, path := range []string{BackupPath, BackupPath + "/b1"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				rec := serveAs(h, tt.who, path)
				if rec.Code != tt.status {
					t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
				}
				if tt.status != http.StatusOK && strings.Contains(rec.Body.String(), "admin-secret-pw") {
					t.Fatalf("refused caller sees the admin password: %s", rec.Body)
				}
			})
		}
	}
}

// The backup view shows each node's role (fenced included), address,
// engine data directory, placement and health, and the admin account; the
// list holds the live instances that have nodes.
func TestBackupViewContents(t *testing.T) {
	h := backupFixture(t)
	who := &tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: BackupReader}
	want := `{"instance_id":"b1","tenant_id":"acme","name":"db-b1","engine":"mysql","plan_id":"p","state":"ready","nodes":[` +
		`{"id":"b1-n0","role":"primary","address":"127.0.0.1:20000","data_dir":"/canopy/nodes/b1-n0/data","host":"h","region":"eu-1","zone":"eu-1a","healthy":true},` +
		`{"id":"b1-n1","role":"replica","address":"127.0.0.1:20001","data_dir":"/canopy/nodes/b1-n1/data","host":"h","region":"eu-1","zone":"eu-1b","healthy":false},` +
		`{"id":"b1-n2","role":"fenced","address":"127.0.0.1:20002","data_dir":"/canopy/nodes/b1-n2/data","host":"h","region":"eu-1","zone":"eu-1c","healthy":true}],` +
		`"admin":{"username":"canopy_admin","password":"admin-secret-pw"}}`
	rec := serveAs(h, who, BackupPath+"/b1")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("get b1: %d\n got %s\nwant %s", rec.Code, rec.Body, want)
	}
	for _, secret := range []string{"monitor-secret-pw", "repl-secret-pw"} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("backup view shows %s", secret)
		}
	}
	for _, id := range []string{"b4", "nope"} {
		if rec := serveAs(h, who, BackupPath+"/"+id); rec.Code != http.StatusNotFound {
			t.Fatalf("get %s: %d, want 404: %s", id, rec.Code, rec.Body)
		}
	}
	rec = serveAs(h, who, BackupPath)
	var list struct {
		Items []backupInstance `json:"items"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("list: %d %s (%v)", rec.Code, rec.Body, err)
	}
	var ids []string
	for _, in := range list.Items {
		ids = append(ids, in.InstanceID+":"+in.Engine)
		if len(in.Nodes) != 3 || in.Admin.Password != "admin-secret-pw" {
			t.Fatalf("listed %+v", in)
		}
	}
	if strings.Join(ids, ",") != "b1:mysql,b2:redis" {
		t.Fatalf("listed %v, want b1 and b2 (b3 has no nodes yet, b4 is deleted)", ids)
	}
}
