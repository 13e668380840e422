package provisioning

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver/drivertest"
	"github.com/canopy-platform/canopy/services/provisioning/internal/httpapi"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// cdcView is the cdc service's view of an instance.
type cdcView struct {
	InstanceID string `json:"instance_id"`
	Engine     string `json:"engine"`
	State      string `json:"state"`
	Nodes      []struct {
		ID, Address, Role, Region string
		RegionRole                string `json:"region_role"`
		Healthy                   bool
	} `json:"nodes"`
	CDC driver.Credentials `json:"cdc"`
}

func getCDCView(t *testing.T, s *stack, id string) (int, cdcView) {
	t.Helper()
	c := &client{t: t, s: s, role: tenancy.RolePlatformAdmin, subject: httpapi.CDCReader}
	r := c.do("GET", httpapi.CDCPath+"/"+id, nil)
	var v cdcView
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatal(err)
		}
	}
	return r.status, v
}

// checkCDCAccount checks on every node of the view that its account can
// snapshot table kv of db and dump the binlog; replicas get there by
// replication.
func checkCDCAccount(t *testing.T, v cdcView, db string) {
	t.Helper()
	for _, n := range v.Nodes {
		node := driver.Node{ID: n.ID, Address: n.Address, Role: driver.Role(n.Role)}
		spec := driver.NodeSpec{CDC: v.CDC, Database: db}
		eventually(t, 30*time.Second, "cdc account works on "+n.ID, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
			defer cancel()
			return drivertest.CheckCDC(ctx, node, spec)
		})
	}
}

// A new MySQL instance has the canopy_cdc account on every node, shown by
// the cdc view; an instance that predates it (account neither stored nor
// on the nodes) gets it on the cdc service's first read.
func TestCDCAccount(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	c := s.as("acme")
	r := c.do("POST", "/api/v1/instances", map[string]any{"name": "cdc-db", "plan_id": planMySQLHA})
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.body)
	}
	id := r.json(t)["instance"].(map[string]any)["id"].(string)
	if inst := c.waitState(id, readyWithin, "ready", "failed"); inst["state"] != "ready" {
		t.Fatalf("instance failed: %v", inst["reason"])
	}
	status, v := getCDCView(t, s, id)
	if status != http.StatusOK || v.Engine != "mysql" || v.State != "ready" || v.CDC.Username != "canopy_cdc" || len(v.CDC.Password) != 32 || len(v.Nodes) != 3 {
		t.Fatalf("cdc view: %d %+v", status, v)
	}
	primaries := 0
	for _, n := range v.Nodes {
		if n.Role == "primary" {
			primaries++
		}
		if !n.Healthy || n.RegionRole != "primary" || n.Region == "" || n.Address == "" {
			t.Errorf("cdc view node %+v", n)
		}
	}
	if primaries != 1 {
		t.Fatalf("cdc view has %d primaries: %+v", primaries, v.Nodes)
	}

	// A table to snapshot, made with the admin account.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in := s.instance(ctx, id)
	primary, _ := in.Primary()
	admin := drivertest.OpenMySQL(primary.Address, driver.Credentials(in.Accounts.Admin), in.Database())
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE TABLE kv (k VARCHAR(64) PRIMARY KEY, v VARCHAR(128) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	checkCDCAccount(t, v, in.Database())

	// Make it an instance from before CDC: no stored account, none on the
	// nodes (dropped on the primary, replicated).
	old := v.CDC
	s.stopService()
	s.editRepo(ctx, id, func(c *port.Change) error { c.Instance.Accounts.CDC = instance.Credentials{}; return nil })
	if _, err := admin.ExecContext(ctx, "DROP USER 'canopy_cdc'@'%'"); err != nil {
		t.Fatal(err)
	}
	s.start()
	status, v = getCDCView(t, s, id)
	if status != http.StatusOK || v.CDC.Username != "canopy_cdc" || len(v.CDC.Password) != 32 || v.CDC.Password == old.Password {
		t.Fatalf("cdc view of a predating instance: %d %+v", status, v)
	}
	checkCDCAccount(t, v, in.Database())
	// Stored: the next read shows the same account.
	if _, again := getCDCView(t, s, id); again.CDC != v.CDC {
		t.Fatalf("second read: %+v, first %+v", again.CDC, v.CDC)
	}
}

// repo opens the stack's repository (the service's database and secrets
// key) for a test to look at or edit what the service stored.
func (s *stack) repo(ctx context.Context) *mysqlrepo.Repo {
	s.t.Helper()
	db, err := store.Open(ctx, s.cfg.Store(s.cfg.Database), testLogger(s.t))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { db.Close() })
	key, err := secrets.LoadOrCreateKey(s.cfg.SecretsKey, s.stateDir)
	if err != nil {
		s.t.Fatal(err)
	}
	box, err := secrets.NewKeyring(key)
	if err != nil {
		s.t.Fatal(err)
	}
	r, err := mysqlrepo.New(db, box)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *stack) instance(ctx context.Context, id string) *instance.Instance {
	s.t.Helper()
	in, err := s.repo(ctx).GetAnyTenant(ctx, id)
	if err != nil {
		s.t.Fatal(err)
	}
	return in
}

func (s *stack) editRepo(ctx context.Context, id string, fn func(c *port.Change) error) {
	s.t.Helper()
	if _, err := s.repo(ctx).Update(ctx, id, fn); err != nil {
		s.t.Fatal(err)
	}
}
