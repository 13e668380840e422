package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/migrations"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}

const (
	tenant        = "tenant-a"
	adminUser     = "canopy_admin"
	adminPassword = "admin-secret-1"
)

// built runs fn and skips the test while a package it calls is still a
// contract stub (on a branch without its implementation merged).
func built(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			if p == "contract" {
				t.Skipf("%s is not built on this branch yet", what)
			}
			panic(p)
		}
	}()
	fn()
}

func newStore(t *testing.T) (*backupstore.Store, *store.DB) {
	t.Helper()
	db := storetest.NewDB(t, "backup_drill")
	if err := db.Migrate(context.Background(), store.OutboxMigrations(), migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var st *backupstore.Store
	var err error
	built(t, "backupstore", func() { st, err = backupstore.New(db) })
	if err != nil {
		t.Fatal(err)
	}
	return st, db
}

func testLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// order is one CreateRestored call.
type order struct{ tenant, name, plan, source, backup string }

// standIn is provisioning as the drill sees it: scratch instances that
// become ready after a first "creating" answer, pointing at a node the
// test runs; state failed makes every scratch instance fail.
type standIn struct {
	mu      sync.Mutex
	orders  []order
	deleted []string
	gets    map[string]int
	node    string // host:port of the scratch instance's primary
	state   string // the state after "creating" (ready by default)
	hold    chan struct{}
}

func (s *standIn) CreateRestored(_ context.Context, tenant, name, planID, sourceID, backupID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders = append(s.orders, order{tenant, name, planID, sourceID, backupID})
	return fmt.Sprintf("scratch-%d", len(s.orders)), nil
}

func (s *standIn) Get(ctx context.Context, id string) (backup.Instance, error) {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return backup.Instance{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets[id]++
	state := "creating"
	if s.gets[id] > 1 {
		state = s.state
		if state == "" {
			state = "ready"
		}
	}
	return backup.Instance{ID: id, TenantID: tenant, Name: "scratch", Engine: backup.EngineMySQL, State: state,
		Nodes: []backup.Node{{ID: id + "-n1", Role: backup.RolePrimary, Address: s.node, Healthy: true}},
		Admin: backup.Credentials{Username: adminUser, Password: adminPassword}}, nil
}

func (s *standIn) Delete(_ context.Context, tenant, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = append(s.deleted, id)
	return nil
}

func (s *standIn) deletedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deleted)
}

// startNode runs a mariadbd with shop.t (3 rows) and the admin account
// over TCP: the data a restored scratch instance holds.
func startNode(t *testing.T) (*enginetest.Proc, *sql.DB) {
	t.Helper()
	p := enginetest.New(t, "mariadbd", func(p *enginetest.Proc, _ bool) []string {
		args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir,
			"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
			"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"), "--server-id=1",
			"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--performance-schema=OFF"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		return args
	}, enginetest.WaitMariaDB)
	enginetest.MariaDBData(t, filepath.Join(p.Dir, "data"))
	p.Start()
	root := enginetest.RootDB(enginetest.MariaDBSocket(p))
	t.Cleanup(func() { root.Close() })
	for _, s := range []string{
		"CREATE USER " + adminUser + "@'%' IDENTIFIED BY '" + adminPassword + "'",
		"GRANT ALL ON *.* TO " + adminUser + "@'%' WITH GRANT OPTION",
		"CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB",
		"INSERT INTO shop.t VALUES (1,'a'),(2,'b'),(3,'c')",
	} {
		if _, err := root.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = adminUser, adminPassword, "tcp", p.Addr
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := sql.OpenDB(conn)
	t.Cleanup(func() { admin.Close() })
	return p, admin
}

// verify measures what a backup of the node's verification does: a
// physical backup, prepared and inspected on a scratch server.
func verify(t *testing.T, node *enginetest.Proc) backup.DataStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var tools *mysqlphys.Tools
	var err error
	built(t, "mysqlphys", func() { tools, err = mysqlphys.New(mysqlphys.Config{ScratchDir: enginetest.TempDir(t)}) })
	if err != nil {
		t.Skipf("backup tools: %v", err)
	}
	pr, pw := io.Pipe()
	took := make(chan error, 1)
	go func() {
		_, err := tools.Backup(ctx, mysqlphys.Source{Address: node.Addr, DataDir: filepath.Join(node.Dir, "data"),
			User: adminUser, Password: adminPassword}, pw)
		pw.CloseWithError(err)
		took <- err
	}()
	dir := filepath.Join(t.TempDir(), "prepared")
	_, prepErr := tools.Prepare(ctx, pr, dir)
	pr.CloseWithError(io.ErrClosedPipe) // a failed prepare must not leave the backup blocked
	backupErr := <-took
	if prepErr != nil {
		t.Fatalf("prepare: %v (backup: %v)", prepErr, backupErr)
	}
	if backupErr != nil {
		t.Fatalf("backup: %v", backupErr)
	}
	stats, err := tools.Inspect(ctx, dir, 10)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if stats.Tables != 1 || len(stats.Sample) != 1 || stats.Sample[0].Rows != 3 || !stats.Sample[0].CheckOK {
		t.Fatalf("verification measured %+v; want shop.t with 3 rows", stats)
	}
	return stats
}

// recordBackup stores a completed backup with the given verification.
func recordBackup(t *testing.T, st *backupstore.Store, instanceID string, at time.Time, stats *backup.DataStats) backup.Backup {
	t.Helper()
	ctx := context.Background()
	b := backup.Backup{ID: ulid.Make().String(), TenantID: tenant, InstanceID: instanceID, Engine: backup.EngineMySQL,
		Kind: backup.KindFull, Trigger: backup.TriggerScheduled, Status: backup.StatusRunning, NodeID: "n-1", StartedAt: at}
	if err := st.CreateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.Status, b.FinishedAt, b.ConsistentAt, b.GTID = backup.StatusCompleted, at.Add(time.Minute), at.Add(time.Minute), "0-1-5"
	b.Objects = []backup.Object{{Key: tenant + "/" + instanceID + "/backups/" + b.ID + "/data", SHA256: "00", Size: 1}}
	if stats != nil {
		b.Verified, b.VerifiedAt, b.Stats = true, at.Add(2*time.Minute), stats
	}
	if err := st.UpdateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// waitDrill waits until the instance's newest drill has ended.
func waitDrill(t *testing.T, st *backupstore.Store, instanceID, id string) backup.Drill {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ds, err := st.ListDrills(context.Background(), tenant, instanceID, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.ID == id && d.Status != backup.DrillRunning {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("drill %s of %s still running: %+v", id, instanceID, ds)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}

// outboxTypes returns the event types written for an instance, in order.
func outboxTypes(t *testing.T, db *store.DB, instanceID string) []string {
	t.Helper()
	rows, err := db.SQL().Query("SELECT topic, headers FROM outbox WHERE msg_key = ? ORDER BY id", instanceID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var topic, headers string
		if err := rows.Scan(&topic, &headers); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"backup.drill.completed", "backup.drill.failed"} {
			if strings.Contains(headers, typ) {
				out = append(out, topic+" "+typ)
			}
		}
	}
	return out
}

func newRunner(t *testing.T, cfg Config, st *backupstore.Store, prov Provisioner) *Runner {
	t.Helper()
	if cfg.PollEvery == 0 {
		cfg.PollEvery = 20 * time.Millisecond
	}
	r, err := New(cfg, st, prov, testLog())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDrillComparesScratchWithVerification restores the newest verified
// backup into a scratch instance (a real mariadbd), finds it equal to what
// the verification measured, then finds a different row count and names
// it; each scratch instance is deleted and each report published.
func TestDrillComparesScratchWithVerification(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	ctx := context.Background()
	node, admin := startNode(t)
	expected := verify(t, node)
	const id = "in-shop"
	in := backup.Instance{ID: id, TenantID: tenant, Name: "shop", Engine: backup.EngineMySQL, PlanID: "mysql-small", State: "ready"}
	if err := st.UpsertInstances(ctx, []backup.Instance{in, {ID: "in-empty", TenantID: tenant, Name: "empty",
		Engine: backup.EngineMySQL, PlanID: "mysql-small", State: "ready"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	recordBackup(t, st, id, now.Add(-48*time.Hour), &expected)
	want := recordBackup(t, st, id, now.Add(-24*time.Hour), &expected)
	recordBackup(t, st, id, now.Add(-time.Hour), nil) // newer, not verified yet
	recordBackup(t, st, "in-empty", now.Add(-time.Hour), nil)

	prov := &standIn{gets: map[string]int{}, node: node.Addr}
	r := newRunner(t, Config{Sample: 10, Timeout: 30 * time.Second}, st, prov)

	refusals := []struct {
		name     string
		tenant   string
		instance string
		want     error
	}{
		{"no verified backup", tenant, "in-empty", backup.ErrNoBackup},
		{"another tenant's instance", "tenant-b", id, backup.ErrNotFound},
		{"unknown instance", tenant, "in-nope", backup.ErrNotFound},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Start(ctx, tt.tenant, tt.instance); !errors.Is(err, tt.want) {
				t.Fatalf("Start = %v, want %v", err, tt.want)
			}
		})
	}

	d, err := r.Start(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != backup.DrillRunning || d.BackupID != want.ID {
		t.Fatalf("started %+v; want running on backup %s", d, want.ID)
	}
	got := waitDrill(t, st, id, d.ID)
	if got.Status != backup.DrillSucceeded || len(got.Mismatches) != 0 || got.ScratchInstanceID != "scratch-1" ||
		got.Measured == nil || got.Measured.Tables != expected.Tables || got.FinishedAt.IsZero() {
		t.Fatalf("drill = %+v", got)
	}
	prov.mu.Lock()
	o := prov.orders[0]
	prov.mu.Unlock()
	if o.tenant != tenant || o.plan != "mysql-small" || o.source != id || o.backup != want.ID || o.name != ScratchName("shop", d.ID) {
		t.Fatalf("ordered %+v", o)
	}
	if del := prov.deletedIDs(); !slices.Equal(del, []string{"scratch-1"}) {
		t.Fatalf("deleted %v, want the scratch instance", del)
	}

	// Different data in the scratch instance: the drill fails naming it.
	// While it waits, a second drill of the instance is refused.
	if _, err := admin.Exec("INSERT INTO shop.t VALUES (4,'d')"); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	prov.mu.Lock()
	prov.hold = hold
	prov.mu.Unlock()
	d2, err := r.Start(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, tenant, id); !errors.Is(err, backup.ErrBusy) {
		t.Fatalf("a second drill while one runs: %v, want ErrBusy", err)
	}
	close(hold)
	got = waitDrill(t, st, id, d2.ID)
	if got.Status != backup.DrillFailed || !slices.Contains(got.Mismatches, "shop.t: rows 3 != 4") || got.Error == "" {
		t.Fatalf("drill on different data = %+v; want failed with shop.t: rows 3 != 4", got)
	}
	if del := prov.deletedIDs(); !slices.Equal(del, []string{"scratch-1", "scratch-2"}) {
		t.Fatalf("deleted %v", del)
	}
	wantEvents := []string{"canopy.backups.v1 backup.drill.completed", "canopy.backups.v1 backup.drill.failed"}
	if evs := outboxTypes(t, db, id); !slices.Equal(evs, wantEvents) {
		t.Fatalf("events %v, want %v", evs, wantEvents)
	}
}

// TestRunFinishesInterruptedDrillsAndSchedules: at start a drill a dead
// process left running has its scratch instance deleted and is reported
// failed "interrupted"; an instance due for a drill gets one, and a
// scratch instance provisioning fails fails the drill and is deleted.
func TestRunFinishesInterruptedDrillsAndSchedules(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	ctx := context.Background()
	if err := st.UpsertInstances(ctx, []backup.Instance{
		{ID: "in-a", TenantID: tenant, Name: "a", Engine: backup.EngineMySQL, PlanID: "mysql-small", State: "ready"},
		{ID: "in-b", TenantID: tenant, Name: "b", Engine: backup.EngineMySQL, PlanID: "mysql-small", State: "ready"},
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	left := backup.Drill{ID: ulid.Make().String(), TenantID: tenant, InstanceID: "in-a", BackupID: "b-old",
		Status: backup.DrillRunning, ScratchInstanceID: "scratch-old", StartedAt: now.Add(-time.Minute)}
	if err := st.CreateDrill(ctx, left); err != nil {
		t.Fatal(err)
	}
	b := recordBackup(t, st, "in-b", now.Add(-25*time.Hour), &backup.DataStats{Tables: 1})

	prov := &standIn{gets: map[string]int{}, node: "127.0.0.1:1", state: "failed"}
	policy := backup.DefaultPolicy()
	policy.DrillEvery = 24 * time.Hour
	r := newRunner(t, Config{Policy: policy, TickEvery: 50 * time.Millisecond, Timeout: 30 * time.Second}, st, prov)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	got := waitDrill(t, st, "in-a", left.ID)
	if got.Status != backup.DrillFailed || got.Error != "interrupted" {
		t.Fatalf("interrupted drill = %+v", got)
	}
	if evs := outboxTypes(t, db, "in-a"); !slices.Equal(evs, []string{"canopy.backups.v1 backup.drill.failed"}) {
		t.Fatalf("events of the interrupted drill %v", evs)
	}

	// The scheduled drill of in-b: its first completed backup is older than
	// DrillEvery (a first drill comes a period after the first backup).
	deadline := time.Now().Add(30 * time.Second)
	var scheduled backup.Drill
	for scheduled.ID == "" {
		ds, err := st.ListDrills(ctx, tenant, "in-b", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) > 0 && ds[0].Status != backup.DrillRunning {
			scheduled = ds[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled drill of in-b finished: %+v", ds)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	if scheduled.Status != backup.DrillFailed || scheduled.BackupID != b.ID || !strings.Contains(scheduled.Error, "failed") {
		t.Fatalf("scheduled drill = %+v; want failed: provisioning failed the scratch instance", scheduled)
	}
	del := prov.deletedIDs()
	if !slices.Contains(del, "scratch-old") || !slices.Contains(del, scheduled.ScratchInstanceID) {
		t.Fatalf("deleted %v; want scratch-old and %s", del, scheduled.ScratchInstanceID)
	}
	// Not due again for a day: one drill only.
	if ds, _ := st.ListDrills(ctx, tenant, "in-b", 10); len(ds) != 1 {
		t.Fatalf("drills of in-b: %d, want 1", len(ds))
	}
}

func TestScratchName(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, instance, drill, want string }{
		{"short", "shop", "01J0000000000000000ABCDEF", "drill-shop-abcdef"},
		{"long name cut to 63", strings.Repeat("a", 60), "01J0000000000000000ABCDEF", "drill-" + strings.Repeat("a", 50) + "-abcdef"},
		{"cut at a dash", strings.Repeat("a", 49) + "-b", "01J0000000000000000ABCDEF", "drill-" + strings.Repeat("a", 49) + "-abcdef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ScratchName(tt.instance, tt.drill)
			if got != tt.want || len(got) > 63 {
				t.Fatalf("ScratchName = %q (%d), want %q", got, len(got), tt.want)
			}
		})
	}
}
