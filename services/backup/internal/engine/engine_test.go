package engine_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/internal/engine"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
	"github.com/canopy-platform/canopy/services/backup/migrations"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}

// harness is one engine over its own database and directory repository;
// run starts it and returns its stop.
type harness struct {
	db    *store.DB
	st    *backupstore.Store
	blobs *repo.FS
	// secondary is the second repository (nil: none).
	secondary *repo.FS
	box       *secrets.Box
	phys      *mysqlphys.Tools
	inst      *instances
	cfg       engine.Config
	reg       *prometheus.Registry
}

func newHarness(t *testing.T, cfg engine.Config, inst *instances) *harness {
	t.Helper()
	ctx := context.Background()
	db := storetest.NewDB(t, "backup_engine")
	if err := db.Migrate(ctx, store.OutboxMigrations(), migrations.FS); err != nil {
		t.Fatal(err)
	}
	st, err := backupstore.New(db)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := repo.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	phys, err := mysqlphys.New(mysqlphys.Config{ScratchDir: enginetest.TempDir(t), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.WorkDir = enginetest.TempDir(t)
	return &harness{db: db, st: st, blobs: blobs, box: box, phys: phys, inst: inst, cfg: cfg, reg: prometheus.NewRegistry()}
}

// run starts a fresh engine (a process start) and returns it and its stop,
// which waits for Run to return.
func (h *harness) run(t *testing.T) (*engine.Engine, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var secondary repo.Blobs
	if h.secondary != nil {
		secondary = h.secondary
	}
	e, err := engine.New(h.cfg, h.db, h.st, h.inst, h.blobs, secondary, h.box, h.phys, log, h.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("engine run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("engine did not stop within 60s")
		}
	}
	t.Cleanup(stop)
	select {
	case <-e.Ready():
	case err := <-done:
		t.Fatalf("engine stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("engine not ready within 30s")
	}
	return e, stop
}

type testWriter struct{ t *testing.T }

// signalWriter closes seen once a log line contains match.
type signalWriter struct {
	match string
	once  sync.Once
	seen  chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.match) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitBackup waits until the backup is no longer running.
func (h *harness) waitBackup(t *testing.T, instanceID, id string) backup.Backup {
	t.Helper()
	var b backup.Backup
	eventually(t, 60*time.Second, func() error {
		var err error
		if b, err = h.st.GetBackup(context.Background(), "", instanceID, id); err != nil {
			return err
		}
		if b.Status == backup.StatusRunning {
			return errors.New("still running")
		}
		return nil
	})
	return b
}

// outboxTypes counts the outbox events by type.
func (h *harness) outboxTypes(t *testing.T) map[string]int {
	t.Helper()
	rows, err := h.db.SQL().Query("SELECT JSON_UNQUOTE(JSON_EXTRACT(headers, '$.type')) FROM outbox")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			t.Fatal(err)
		}
		out[typ]++
	}
	return out
}

// openObject reads a sealed object through, as a restore would.
func (h *harness) openObject(t *testing.T, obj backup.Object, wrapped []byte, aad string) []byte {
	t.Helper()
	ctx := context.Background()
	key, err := repo.UnwrapKey(h.box, wrapped, aad)
	if err != nil {
		t.Fatalf("unwrap key of %s: %v", obj.Key, err)
	}
	rc, err := repo.Open(ctx, h.blobs, obj, key)
	if err != nil {
		t.Fatalf("open %s: %v", obj.Key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", obj.Key, err)
	}
	return data
}

func mysqlInstance(primary, replica *mariadb) backup.Instance {
	return backup.Instance{ID: "i-mysql", TenantID: "acme", Name: "orders", Engine: backup.EngineMySQL,
		PlanID: "small", State: "ready", Admin: backup.Credentials{Username: adminUser, Password: adminPassword},
		Nodes: []backup.Node{
			{ID: "n-1", Role: backup.RolePrimary, Address: primary.addr, DataDir: primary.dataDir, Host: "h1", Region: "r1", Healthy: true},
			{ID: "n-2", Role: backup.RoleReplica, Address: replica.addr, DataDir: replica.dataDir, Host: "h2", Region: "r1", Healthy: true},
		}}
}

// A MySQL instance with a primary and a replica: the first tick takes the
// scheduled backup from the replica, verified; an on-demand backup too
// (another tenant's request is not found; a second one while it runs is
// busy); the archiver seals segments of the primary's binlog as rows are
// written; retention expires an old backup and removes its objects; a
// backup cut short by the engine stopping ends failed "interrupted" with
// its objects removed when the next engine starts; a deleted instance's
// archiver stops.
func TestMySQLBackupsArchiveRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary, replica := startPair(t)
	primary.exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(40))",
		"INSERT INTO shop.orders (item) VALUES ('a'), ('b'), ('c')")
	waitCaughtUp(t, primary, replica)

	in := mysqlInstance(primary, replica)
	policy := backup.DefaultPolicy()
	h := newHarness(t, engine.Config{Policy: policy, SyncEvery: 300 * time.Millisecond, TickEvery: 300 * time.Millisecond,
		ArchiveLagBound: time.Minute, ArchiveFlushEvery: 200 * time.Millisecond, MaxConcurrentBackups: 2, Sample: 5,
		Verify: true}, newInstances(in))
	e, stop := h.run(t)

	// The first tick finds no backup: the scheduled one is due at once.
	var scheduled backup.Backup
	eventually(t, 30*time.Second, func() error {
		bs, err := h.st.AllBackups(ctx, in.ID)
		if err != nil {
			return err
		}
		if len(bs) == 0 {
			return errors.New("no backup yet")
		}
		scheduled = bs[0]
		return nil
	})
	scheduled = h.waitBackup(t, in.ID, scheduled.ID)
	if scheduled.Status != backup.StatusCompleted || scheduled.Trigger != backup.TriggerScheduled {
		t.Fatalf("scheduled backup = %s/%s (%s), want completed scheduled", scheduled.Status, scheduled.Trigger, scheduled.Error)
	}

	if _, err := e.BackupNow(ctx, "other-tenant", in.ID); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("BackupNow by another tenant: %v, want ErrNotFound", err)
	}
	running, err := e.BackupNow(ctx, "acme", in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if running.Status != backup.StatusRunning || running.Trigger != backup.TriggerOnDemand {
		t.Fatalf("BackupNow = %+v, want a running on-demand backup", running)
	}
	if _, err := e.BackupNow(ctx, "acme", in.ID); !errors.Is(err, backup.ErrBusy) {
		t.Fatalf("second BackupNow: %v, want ErrBusy", err)
	}
	done := h.waitBackup(t, in.ID, running.ID)
	for _, b := range []backup.Backup{scheduled, done} {
		if b.Status != backup.StatusCompleted || !b.Verified || b.Stats == nil {
			t.Fatalf("backup %s: status %s verified %v stats %v error %q", b.ID, b.Status, b.Verified, b.Stats, b.Error)
		}
		if !b.FromReplica || b.NodeID != "n-2" {
			t.Errorf("backup %s taken from %s (replica %v), want the replica n-2", b.ID, b.NodeID, b.FromReplica)
		}
		if b.Stats.Tables != 1 {
			t.Errorf("backup %s stats: %d tables, want 1 (shop.orders)", b.ID, b.Stats.Tables)
		}
		if b.GTID == "" || b.ConsistentAt.IsZero() || b.StoredBytes <= 0 {
			t.Errorf("backup %s: gtid %q consistent at %v stored %d", b.ID, b.GTID, b.ConsistentAt, b.StoredBytes)
		}
		if len(b.Objects) != 2 || !strings.HasSuffix(b.Objects[0].Key, "/data") || !strings.HasSuffix(b.Objects[1].Key, "/manifest.json") {
			t.Fatalf("backup %s objects = %+v, want data and manifest.json", b.ID, b.Objects)
		}
		for _, o := range b.Objects {
			if err := repo.Verify(ctx, h.blobs, o); err != nil {
				t.Errorf("verify %s: %v", o.Key, err)
			}
		}
		mf := h.openObject(t, b.Objects[1], b.WrappedKey, b.ID)
		if !bytes.Contains(mf, []byte(b.GTID)) {
			t.Errorf("manifest of %s does not name its gtid %s: %s", b.ID, b.GTID, mf)
		}
		h.openObject(t, b.Objects[0], b.WrappedKey, b.ID)
	}
	if got := counterValue(t, h.reg, "canopy_backups_total", "mysql", "completed"); got < 2 {
		t.Errorf("canopy_backups_total{mysql,completed} = %v, want >= 2", got)
	}
	if n := h.outboxTypes(t)[events.TypeBackupCompleted]; n != 2 {
		t.Errorf("%d backup.completed events, want 2", n)
	}

	// The archive follows the primary's writes in sealed segments.
	for i := 0; i < 20; i++ {
		primary.exec(t, fmt.Sprintf("INSERT INTO shop.orders (item) VALUES ('row %d')", i))
	}
	want := primary.pos(t)
	eventually(t, 30*time.Second, func() error {
		last, ok, err := h.st.LastSegment(ctx, in.ID)
		if err != nil {
			return err
		}
		if !ok || last.EndPos != want {
			return fmt.Errorf("last segment %+v, want end at %s", last, want)
		}
		return nil
	})
	segs, err := h.st.Segments(ctx, in.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Retention may already have dropped the first segments (those ending
	// at or before the oldest backup's GTID): the rest must still chain.
	for i, s := range segs {
		if s.Seq != segs[0].Seq+int64(i) || (i > 0 && s.StartPos != segs[i-1].EndPos) {
			t.Fatalf("segment %d: seq %d start %s, previous end %s", i, s.Seq, s.StartPos, segs[max(i-1, 0)].EndPos)
		}
		if s.SourceNode != "n-1" {
			t.Errorf("segment %d read from %s, want the primary n-1", s.Seq, s.SourceNode)
		}
		data := h.openObject(t, s.Object, s.WrappedKey, s.Object.Key)
		if !bytes.HasPrefix(data, []byte("\xfebin")) {
			t.Errorf("segment %d is not a binlog file: % x", s.Seq, data[:min(len(data), 8)])
		}
	}
	if lag, ok := e.ArchiveLag(in.ID); !ok || lag > time.Minute {
		t.Errorf("ArchiveLag = %v, %v; want archived within the bound", lag, ok)
	}

	// Retention: of two old completed backups (no monthly ones kept), the
	// one point-in-time restore no longer needs goes, with its objects.
	zero := 0
	if err := h.st.SetPolicyOverride(ctx, backupstore.ScopeInstance, in.ID, backup.PolicyOverride{MonthlyKeepMonths: &zero}); err != nil {
		t.Fatal(err)
	}
	old := plantBackup(t, h, in, time.Now().AddDate(0, 0, -40))
	anchor := plantBackup(t, h, in, time.Now().AddDate(0, 0, -20))
	eventually(t, 30*time.Second, func() error {
		b, err := h.st.GetBackup(ctx, "", in.ID, old.ID)
		if err != nil {
			return err
		}
		if b.Status != backup.StatusExpired {
			return fmt.Errorf("old backup %s", b.Status)
		}
		return nil
	})
	if keys, err := h.blobs.List(ctx, "acme/i-mysql/backups/"+old.ID+"/"); err != nil || len(keys) != 0 {
		t.Fatalf("expired backup's objects: %v, %v; want none", keys, err)
	}
	for _, b := range []backup.Backup{anchor, scheduled, done} {
		if got, err := h.st.GetBackup(ctx, "", in.ID, b.ID); err != nil || got.Status != backup.StatusCompleted {
			t.Fatalf("recent backup %s after retention: %v %v", b.ID, got.Status, err)
		}
	}

	// A backup cut short: the engine stops once its data is stored (it is
	// being verified), and the next engine fails it and removes its objects.
	cut, err := e.BackupNow(ctx, "acme", in.ID)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "acme/i-mysql/backups/" + cut.ID + "/"
	eventually(t, 30*time.Second, func() error {
		keys, err := h.blobs.List(ctx, prefix)
		if err != nil || len(keys) == 0 {
			return fmt.Errorf("no object yet (%v)", err)
		}
		return nil
	})
	stop()
	if b, err := h.st.GetBackup(ctx, "", in.ID, cut.ID); err != nil || b.Status != backup.StatusRunning {
		t.Fatalf("backup cut short, before the next start: %v %v; want still running", b.Status, err)
	}
	e, _ = h.run(t)
	b, err := h.st.GetBackup(ctx, "", in.ID, cut.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != backup.StatusFailed || b.Error != "interrupted" {
		t.Fatalf("backup cut short: %s %q, want failed interrupted", b.Status, b.Error)
	}
	if keys, err := h.blobs.List(ctx, prefix); err != nil || len(keys) != 0 {
		t.Fatalf("interrupted backup's objects: %v, %v; want none", keys, err)
	}
	if n := h.outboxTypes(t)[events.TypeBackupFailed]; n != 1 {
		t.Errorf("%d backup.failed events, want 1", n)
	}

	// The instance goes: it is marked deleted and no longer archived.
	eventually(t, 30*time.Second, func() error {
		if _, ok := e.ArchiveLag(in.ID); !ok {
			return errors.New("not archived yet after the restart")
		}
		return nil
	})
	h.inst.remove(in.ID)
	eventually(t, 30*time.Second, func() error {
		got, err := h.st.GetInstance(ctx, "", in.ID)
		if err != nil {
			return err
		}
		if got.DeletedAt.IsZero() {
			return errors.New("not marked deleted")
		}
		if _, ok := e.ArchiveLag(in.ID); ok {
			return errors.New("still archived")
		}
		return nil
	})
	if _, err := e.BackupNow(ctx, "acme", in.ID); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("BackupNow of a deleted instance: %v, want ErrNotFound", err)
	}
}

// plantBackup records a completed backup taken at `at`, with one sealed
// object, as an earlier process would have.
func plantBackup(t *testing.T, h *harness, in backup.Instance, at time.Time) backup.Backup {
	t.Helper()
	ctx := context.Background()
	id := "old-" + fmt.Sprint(at.Unix())
	key, err := repo.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := repo.WrapKey(h.box, key, id)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := repo.Seal(ctx, h.blobs, "acme/"+in.ID+"/backups/"+id+"/data", key, strings.NewReader("old data"))
	if err != nil {
		t.Fatal(err)
	}
	b := backup.Backup{ID: id, TenantID: in.TenantID, InstanceID: in.ID, Engine: in.Engine, Kind: backup.KindFull,
		Trigger: backup.TriggerScheduled, Status: backup.StatusRunning, NodeID: "n-2", FromReplica: true,
		StartedAt: at.UTC().Truncate(time.Second), WrappedKey: wrapped}
	if err := h.st.CreateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.Status, b.FinishedAt, b.ConsistentAt = backup.StatusCompleted, b.StartedAt.Add(time.Minute), b.StartedAt.Add(time.Minute)
	b.GTID, b.Objects, b.Copies = "0-1-1", []backup.Object{obj}, []string{"primary"}
	if err := h.st.UpdateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// gaugeOrCounter is the value of an unlabelled series.
func gaugeOrCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return counterValue(t, reg, name)
}

// counterValue is a counter's value by its label values (in label name
// order).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
			if strings.Join(got, ",") == strings.Join(labels, ",") {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A Redis instance: an on-demand snapshot from the replica, checked by a
// scratch server that counts its keys.
func TestRedisSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary, replica := startRedis(t), startRedis(t)
	replicaOf(t, replica, primary)
	for i := 0; i < 50; i++ {
		redisDo(t, primary, "SET", fmt.Sprintf("k%d", i), "v")
	}
	eventually(t, 30*time.Second, func() error {
		if n := redisDo(t, replica, "DBSIZE"); n != "50" {
			return fmt.Errorf("replica has %s keys", n)
		}
		return nil
	})
	in := backup.Instance{ID: "i-redis", TenantID: "acme", Name: "cache", Engine: backup.EngineRedis, PlanID: "small",
		State: "ready", Admin: backup.Credentials{Username: redisUser, Password: redisPassword},
		Nodes: []backup.Node{
			{ID: "n-1", Role: backup.RolePrimary, Address: primary.Addr, DataDir: primary.Dir, Healthy: true},
			{ID: "n-2", Role: backup.RoleReplica, Address: replica.Addr, DataDir: replica.Dir, Healthy: true},
		}}
	// Schedules off: only the on-demand snapshot runs.
	policy := backup.DefaultPolicy()
	policy.Enabled = false
	// A second instance whose only node does not answer.
	down := backup.Instance{ID: "i-down", TenantID: "acme", Name: "down", Engine: backup.EngineRedis, PlanID: "small",
		State: "ready", Admin: in.Admin,
		Nodes: []backup.Node{{ID: "n-9", Role: backup.RolePrimary, Address: "127.0.0.1:1", DataDir: t.TempDir(), Healthy: true}}}
	h := newHarness(t, engine.Config{Policy: policy, SyncEvery: 300 * time.Millisecond, TickEvery: 300 * time.Millisecond},
		newInstances(in, down))
	var err error
	if h.secondary, err = repo.NewFS(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	e, _ := h.run(t)

	b, err := e.BackupNow(ctx, "acme", in.ID)
	if err != nil {
		t.Fatal(err)
	}
	b = h.waitBackup(t, in.ID, b.ID)
	if b.Status != backup.StatusCompleted || b.Kind != backup.KindSnapshot {
		t.Fatalf("snapshot: %s %s (%q), want a completed snapshot", b.Status, b.Kind, b.Error)
	}
	if !b.Verified || b.Stats == nil || b.Stats.Keys != 50 {
		t.Fatalf("snapshot verified %v stats %+v, want 50 keys", b.Verified, b.Stats)
	}
	if b.NodeID != "n-2" || !b.FromReplica {
		t.Errorf("snapshot taken from %s, want the replica n-2", b.NodeID)
	}
	data := h.openObject(t, b.Objects[0], b.WrappedKey, b.ID)
	if !bytes.HasPrefix(data, []byte("REDIS")) {
		t.Errorf("snapshot object is not an RDB file: %q", data[:min(len(data), 9)])
	}
	if _, ok := e.ArchiveLag(in.ID); ok {
		t.Error("a Redis instance is archived")
	}
	if strings.Join(b.Copies, ",") != "primary,secondary" {
		t.Errorf("copies = %v, want primary and secondary", b.Copies)
	}
	for _, o := range b.Objects {
		if err := repo.Verify(ctx, h.secondary, o); err != nil {
			t.Errorf("secondary copy of %s: %v", o.Key, err)
		}
	}

	// A snapshot that cannot be taken fails, leaving nothing behind.
	f, err := e.BackupNow(ctx, "acme", down.ID)
	if err != nil {
		t.Fatal(err)
	}
	f = h.waitBackup(t, down.ID, f.ID)
	if f.Status != backup.StatusFailed || f.Error == "" || len(f.Objects) != 0 {
		t.Fatalf("snapshot of a node that is down: %s %q objects %v, want failed with a reason", f.Status, f.Error, f.Objects)
	}
	for _, r := range []*repo.FS{h.blobs, h.secondary} {
		if keys, err := r.List(ctx, "acme/i-down/"); err != nil || len(keys) != 0 {
			t.Errorf("failed snapshot left %v (%v)", keys, err)
		}
	}
	evs := h.outboxTypes(t)
	if evs[events.TypeBackupCompleted] != 1 || evs[events.TypeBackupFailed] != 1 {
		t.Errorf("events %v, want one backup.completed and one backup.failed", evs)
	}
	if got := counterValue(t, h.reg, "canopy_backups_total", "redis", "failed"); got != 1 {
		t.Errorf("canopy_backups_total{redis,failed} = %v, want 1", got)
	}
}

// One engine is active per database: a second one waits, and takes over
// once the first stops.
func TestStandbyTakesOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, engine.Config{Policy: backup.DefaultPolicy(), SyncEvery: 200 * time.Millisecond}, newInstances())
	first, stopFirst := h.run(t)

	waiting := &signalWriter{match: "waiting for the active lock", seen: make(chan struct{})}
	second, err := engine.New(h.cfg, h.db, h.st, h.inst, h.blobs, nil, h.box, h.phys, slog.New(slog.NewTextHandler(waiting, nil)), h.reg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- second.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-waiting.seen:
	case err := <-done:
		t.Fatalf("standby stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the second engine did not wait for the lock")
	}
	select {
	case <-second.Ready():
		t.Fatal("a second engine became active while the first holds the lock")
	default:
	}
	if _, err := second.BackupNow(ctx, "acme", "i-none"); err == nil {
		t.Fatal("a standby took a backup")
	}
	stopFirst()
	if _, err := first.BackupNow(ctx, "acme", "i-none"); err == nil {
		t.Fatal("a stopped engine took a backup")
	}
	select {
	case <-second.Ready():
	case err := <-done:
		t.Fatalf("standby stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("standby did not take over within 30s")
	}
}

// An archive whose position the primary purged stops on the gap (counted,
// and lagging past the bound is announced), waits for the next full
// backup, then archives again from the primary's oldest binlog and
// announces it caught up.
func TestArchiveGapResumesAfterFullBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := startMariaDB(t, 1)
	enginetest.StartAll(t, []*enginetest.Proc{primary.proc})
	primary.exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(40))")
	archived := primary.pos(t)
	primary.exec(t, "INSERT INTO shop.orders (item) VALUES ('a')", "FLUSH BINARY LOGS", "INSERT INTO shop.orders (item) VALUES ('b')")
	var file string
	var pos int64
	var rest1, rest2 sql.NullString
	if err := primary.root.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &rest1, &rest2); err != nil {
		t.Fatal(err)
	}
	// A purge right after a rotation may keep the older file while the
	// server still checkpoints it: purge until it is gone.
	eventually(t, 20*time.Second, func() error {
		primary.exec(t, "PURGE BINARY LOGS TO '"+file+"'")
		var first, size string
		if err := primary.root.QueryRow("SHOW BINARY LOGS").Scan(&first, &size); err != nil {
			return err
		}
		if first != file {
			return fmt.Errorf("oldest binlog %s, want %s", first, file)
		}
		return nil
	})

	in := backup.Instance{ID: "i-gap", TenantID: "acme", Name: "gap", Engine: backup.EngineMySQL, PlanID: "small", State: "ready",
		Admin: backup.Credentials{Username: adminUser, Password: adminPassword},
		Nodes: []backup.Node{{ID: "n-1", Role: backup.RolePrimary, Address: primary.addr, DataDir: primary.dataDir, Healthy: true}}}
	h := newHarness(t, engine.Config{Policy: backup.DefaultPolicy(), SyncEvery: 300 * time.Millisecond, TickEvery: 300 * time.Millisecond,
		ArchiveLagBound: time.Second, ArchiveFlushEvery: 200 * time.Millisecond}, newInstances(in))
	// What an earlier process left: the archive up to `archived`, and
	// today's backup (no scheduled one is due).
	if err := h.st.UpsertInstances(ctx, []backup.Instance{in}); err != nil {
		t.Fatal(err)
	}
	if err := h.st.AppendSegment(ctx, backup.Segment{TenantID: in.TenantID, InstanceID: in.ID, Seq: 1,
		Object: backup.Object{Key: "acme/i-gap/binlog/000000000001"}, WrappedKey: []byte("k"), StartPos: "", EndPos: archived,
		FirstAt: time.Now().Add(-time.Minute).UTC().Truncate(time.Second), LastAt: time.Now().Add(-time.Minute).UTC().Truncate(time.Second),
		Transactions: 2, SourceNode: "n-1", ArchivedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	plantBackup(t, h, in, time.Now().Add(-time.Hour))
	e, _ := h.run(t)

	eventually(t, 30*time.Second, func() error {
		if n := gaugeOrCounter(t, h.reg, "canopy_backup_archive_gaps_total"); n < 1 {
			return errors.New("no gap counted")
		}
		if n := h.outboxTypes(t)[events.TypeArchiveLagging]; n != 1 {
			return fmt.Errorf("%d lagging events", n)
		}
		return nil
	})
	if segs, err := h.st.Segments(ctx, in.ID, 0); err != nil || len(segs) != 1 {
		t.Fatalf("segments across the gap: %d (%v), want only the planted one", len(segs), err)
	}

	b, err := e.BackupNow(ctx, "acme", in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b = h.waitBackup(t, in.ID, b.ID); b.Status != backup.StatusCompleted || b.FromReplica {
		t.Fatalf("backup of a lone primary: %s from replica %v (%q)", b.Status, b.FromReplica, b.Error)
	}
	primary.exec(t, "INSERT INTO shop.orders (item) VALUES ('c')")
	want := primary.pos(t)
	eventually(t, 30*time.Second, func() error {
		last, ok, err := h.st.LastSegment(ctx, in.ID)
		if err != nil {
			return err
		}
		if !ok || last.Seq < 2 || last.EndPos != want {
			return fmt.Errorf("last segment %d ends at %s, want %s", last.Seq, last.EndPos, want)
		}
		if n := h.outboxTypes(t)[events.TypeArchiveCaughtUp]; n != 1 {
			return fmt.Errorf("%d caught-up events", n)
		}
		return nil
	})
	if lag, ok := e.ArchiveLag(in.ID); !ok || lag > time.Second {
		t.Errorf("ArchiveLag after catching up = %v, %v", lag, ok)
	}
}
