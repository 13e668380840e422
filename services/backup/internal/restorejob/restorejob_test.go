package restorejob

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
	"github.com/canopy-platform/canopy/services/backup/migrations"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}

const tenant = "tenant-a"

// Canopy's admin account on the source node, as provisioning makes it.
const (
	adminUser     = "canopy_admin"
	adminPassword = "admin-secret-1"
)

// fixture is the backup service's state: a catalog database, a directory
// repository and the keyring.
type fixture struct {
	st     *backupstore.Store
	blobs  *repo.FS
	box    *secrets.Box
	tools  *mysqlphys.Tools
	log    *slog.Logger
	staged string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db := storetest.NewDB(t, "backup_restorejob")
	var err error
	if err := db.Migrate(ctx, store.OutboxMigrations(), migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var st *backupstore.Store
	built(t, "backupstore", func() { st, err = backupstore.New(db) })
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
	var tools *mysqlphys.Tools
	built(t, "mysqlphys", func() { tools, err = mysqlphys.New(mysqlphys.Config{ScratchDir: enginetest.TempDir(t)}) })
	if err != nil {
		t.Skipf("backup tools: %v", err)
	}
	return &fixture{st: st, blobs: blobs, box: box, tools: tools, staged: t.TempDir(),
		log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

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

// runner builds a runner over the fixture; now shifts its clock.
func (f *fixture) runner(t *testing.T, shift *atomic.Int64) *Runner {
	t.Helper()
	r, err := New(Config{StagingDir: f.staged, SeedTTL: time.Hour, Workers: 2, PollEvery: 100 * time.Millisecond},
		f.st, f.blobs, f.box, f.tools, f.log)
	if err != nil {
		t.Fatal(err)
	}
	if shift != nil {
		r.now = func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }
	}
	return r
}

// run runs r until the test ends.
func run(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitJob waits until the job leaves pending and running.
func waitJob(t *testing.T, r *Runner, id string) backup.Restore {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		job, err := r.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if job.Status != backup.RestorePending && job.Status != backup.RestoreRunning {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore %s still %s/%s", id, job.Status, job.Phase)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}

// seal stores plaintext as a sealed object under key with a fresh data key
// wrapped for aad.
func (f *fixture) seal(t *testing.T, key, aad string, r io.Reader) (backup.Object, []byte) {
	t.Helper()
	dk, err := repo.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	obj, err := repo.Seal(context.Background(), f.blobs, key, dk, r)
	if err != nil {
		t.Fatalf("seal %s: %v", key, err)
	}
	wrapped, err := repo.WrapKey(f.box, dk, aad)
	if err != nil {
		t.Fatal(err)
	}
	return obj, wrapped
}

// record stores a completed backup.
func (f *fixture) record(t *testing.T, b backup.Backup) {
	t.Helper()
	ctx := context.Background()
	done := b
	b.Status, b.FinishedAt, b.Objects, b.WrappedKey = backup.StatusRunning, time.Time{}, nil, nil
	if err := f.st.CreateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := f.st.UpdateBackup(ctx, done); err != nil {
		t.Fatal(err)
	}
}

// node is a MariaDB source node as Canopy runs them: binlog on, GTID
// strict, the admin account over TCP.
type node struct {
	proc *enginetest.Proc
	root *sql.DB
}

func mariadbArgs(datadir string, withBinlog bool) func(p *enginetest.Proc, _ bool) []string {
	return func(p *enginetest.Proc, _ bool) []string {
		args := []string{"--no-defaults", "--datadir=" + datadir, "--tmpdir=" + p.Dir,
			"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
			"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"), "--server-id=1",
			"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--performance-schema=OFF"}
		if withBinlog {
			args = append(args, "--log-bin=mysql-bin", "--binlog-format=ROW", "--gtid-strict-mode=ON", "--log-slave-updates")
		}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		return args
	}
}

func startNode(t *testing.T) *node {
	t.Helper()
	var p *enginetest.Proc
	p = enginetest.New(t, "mariadbd", func(q *enginetest.Proc, r bool) []string {
		return mariadbArgs(filepath.Join(q.Dir, "data"), true)(q, r)
	}, enginetest.WaitMariaDB)
	enginetest.MariaDBData(t, filepath.Join(p.Dir, "data"))
	p.Start()
	n := &node{proc: p, root: enginetest.RootDB(enginetest.MariaDBSocket(p))}
	t.Cleanup(func() { n.root.Close() })
	n.exec(t, "CREATE USER "+adminUser+"@'%' IDENTIFIED BY '"+adminPassword+"'",
		"GRANT ALL ON *.* TO "+adminUser+"@'%' WITH GRANT OPTION")
	return n
}

func (n *node) exec(t testing.TB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := n.root.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func (n *node) query(t testing.TB, q string) string {
	t.Helper()
	var s sql.NullString
	if err := n.root.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s.String
}

// binlogFile is the binlog file the node writes now.
func (n *node) binlogFile(t testing.TB) string {
	t.Helper()
	var file, pos, doDB, ignoreDB sql.NullString
	if err := n.root.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatalf("SHOW MASTER STATUS: %v", err)
	}
	return file.String
}

// scratchRows starts a mariadbd on a copy of a seed and returns the ids in
// shop.t, and the replication state it starts with.
func scratchRows(t *testing.T, seed string) (ids, slavePos string, slaveStatus map[string]string) {
	t.Helper()
	var p *enginetest.Proc
	p = enginetest.New(t, "mariadbd", func(q *enginetest.Proc, r bool) []string {
		return mariadbArgs(filepath.Join(q.Dir, "data"), false)(q, r)
	}, enginetest.WaitMariaDB)
	if out, err := exec.Command("cp", "-a", seed, filepath.Join(p.Dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("copy seed: %v: %s", err, out)
	}
	p.Start()
	db := enginetest.RootDB(enginetest.MariaDBSocket(p))
	defer db.Close()
	var got sql.NullString
	if err := db.QueryRow("SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.t").Scan(&got); err != nil {
		t.Fatalf("read restored rows: %v\n%s", err, p.Tail())
	}
	if err := db.QueryRow("SELECT @@gtid_slave_pos").Scan(&slavePos); err != nil {
		t.Fatal(err)
	}
	return got.String, slavePos, enginetest.SlaveStatus(db)
}

// TestRestoreToPointInTime backs up a real node, archives a binlog file of
// later writes as a segment, and restores to a second between them: the
// seed holds exactly the rows committed by then, with no replication
// state. A job a dead process left running starts again from a clean
// staging dir in a new runner; a corrupted object fails its job with the
// object named and nothing staged.
func TestRestoreToPointInTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	n := startNode(t)
	n.exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB",
		"INSERT INTO shop.t VALUES (1,'a'),(2,'b'),(3,'c')")
	const source = "in-src"
	in := backup.Instance{ID: source, TenantID: tenant, Name: "shop", Engine: backup.EngineMySQL, PlanID: "mysql-small", State: "ready"}
	if err := f.st.UpsertInstances(ctx, []backup.Instance{in}); err != nil {
		t.Fatal(err)
	}

	// The full backup, streamed into the repository as the engine does.
	b := backup.Backup{ID: ulid.Make().String(), TenantID: tenant, InstanceID: source, Engine: backup.EngineMySQL,
		Kind: backup.KindFull, Trigger: backup.TriggerOnDemand, NodeID: "n-1", StartedAt: time.Now().UTC()}
	pr, pw := io.Pipe()
	type result struct {
		res mysqlphys.Result
		err error
	}
	took := make(chan result, 1)
	go func() {
		res, err := f.tools.Backup(ctx, mysqlphys.Source{Address: n.proc.Addr, DataDir: filepath.Join(n.proc.Dir, "data"),
			User: adminUser, Password: adminPassword}, pw)
		pw.CloseWithError(err)
		took <- result{res, err}
	}()
	dataKey := tenant + "/" + source + "/backups/" + b.ID + "/data"
	obj, wrapped := f.seal(t, dataKey, b.ID, pr)
	bk := <-took
	if bk.err != nil {
		t.Fatalf("backup: %v", bk.err)
	}
	b.Status, b.FinishedAt, b.GTID, b.ConsistentAt = backup.StatusCompleted, time.Now().UTC(), bk.res.GTID, bk.res.ConsistentAt
	b.DataBytes, b.StoredBytes, b.Objects, b.WrappedKey = bk.res.DataBytes, obj.Size, []backup.Object{obj}, wrapped
	f.record(t, b)

	// Later writes in a binlog file of their own, with binlog timestamps
	// of our choosing (SET timestamp) so the target second is exact.
	n.exec(t, "FLUSH BINARY LOGS")
	file := n.binlogFile(t)
	startPos := n.query(t, "SELECT @@gtid_binlog_pos")
	base := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	conn, err := n.root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"SET timestamp=" + strconv.FormatInt(base.Add(10*time.Second).Unix(), 10),
		"INSERT INTO shop.t VALUES (4,'d')", "INSERT INTO shop.t VALUES (5,'e')",
		"SET timestamp=" + strconv.FormatInt(base.Add(20*time.Second).Unix(), 10),
		"INSERT INTO shop.t VALUES (6,'f')",
	} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	conn.Close()
	endPos := n.query(t, "SELECT @@gtid_binlog_pos")
	n.exec(t, "FLUSH BINARY LOGS")
	raw, err := os.ReadFile(filepath.Join(n.proc.Dir, "data", file))
	if err != nil {
		t.Fatal(err)
	}
	segKey := tenant + "/" + source + "/binlog/000000000001"
	segObj, segWrapped := f.seal(t, segKey, segKey, bytes.NewReader(raw))
	if err := f.st.AppendSegment(ctx, backup.Segment{TenantID: tenant, InstanceID: source, Seq: 1, Object: segObj,
		WrappedKey: segWrapped, StartPos: startPos, EndPos: endPos, FirstAt: base.Add(10 * time.Second),
		LastAt: base.Add(20 * time.Second), Transactions: 3, SourceNode: "n-1", ArchivedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}

	// A job a dead process left in the middle of preparing, with debris.
	first := f.runner(t, nil)
	job, err := first.Start(ctx, tenant, source, "in-target", backup.Target{PointInTime: base.Add(10 * time.Second)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if len(job.Plan.Segments) != 1 || job.Plan.Backup.ID != b.ID || job.Status != backup.RestorePending {
		t.Fatalf("planned %+v", job)
	}
	job.Status, job.Phase = backup.RestoreRunning, backup.PhasePreparing
	if err := f.st.UpdateRestore(ctx, job); err != nil {
		t.Fatal(err)
	}
	debris := filepath.Join(f.staged, job.ID, "data", "half-written")
	if err := os.MkdirAll(filepath.Dir(debris), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(debris, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := f.runner(t, nil)
	run(t, r)
	got := waitJob(t, r, job.ID)
	if got.Status != backup.RestoreReady || got.Seed != filepath.Join(f.staged, job.ID, "data") || got.ReachedGTID == "" {
		t.Fatalf("restore = %+v", got)
	}
	if _, err := os.Stat(debris); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the interrupted job's debris is in the seed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.staged, job.ID, "binlog")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment files left after replay: %v", err)
	}
	// Rows 4 and 5 are the two transactions after the segment's start.
	sp, err := backup.ParsePos(startPos)
	if err != nil {
		t.Fatal(err)
	}
	last := sp[0]
	last.Seq += 2
	if got.ReachedGTID != last.String() {
		t.Fatalf("reached %s, want %s (row 5's transaction)", got.ReachedGTID, last)
	}
	ids, slavePos, slave := scratchRows(t, got.Seed)
	if ids != "1,2,3,4,5" {
		t.Fatalf("restored rows %q, want 1,2,3,4,5 (row 6 was written after the target)", ids)
	}
	if slavePos != "" || len(slave) != 0 {
		t.Fatalf("the seed keeps replication state: gtid_slave_pos %q, slave status %v", slavePos, slave)
	}

	// The same target again is the same job; Done removes the seed.
	again, err := r.Start(ctx, tenant, source, "in-target", backup.Target{PointInTime: base})
	if err != nil || again.ID != job.ID {
		t.Fatalf("second Start = %s, %v; want job %s", again.ID, err, job.ID)
	}
	if err := r.Done(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.Done(ctx, job.ID); err != nil {
		t.Fatalf("Done twice: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.staged, job.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("seed left after Done: %v", err)
	}
	if done, _ := r.Get(ctx, job.ID); done.Status != backup.RestoreDone {
		t.Fatalf("after Done: %s", done.Status)
	}

	// A corrupted backup object: the job fails naming it, nothing staged.
	path := filepath.Join(f.blobs.Dir(), filepath.FromSlash(obj.Key))
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stored[len(stored)/2] ^= 0xff
	if err := os.WriteFile(path, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	bad, err := r.Start(ctx, tenant, source, "in-target-2", backup.Target{BackupID: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	failed := waitJob(t, r, bad.ID)
	if failed.Status != backup.RestoreFailed || !strings.Contains(failed.Error, obj.Key) || failed.Seed != "" {
		t.Fatalf("restore of a corrupt object = %+v; want failed naming %s", failed, obj.Key)
	}
	if _, err := os.Stat(filepath.Join(f.staged, bad.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging dir left by a failed restore: %v", err)
	}
}

// TestRedisSeedAndExpiry restores a Redis snapshot into a seed dir with the
// snapshot's exact bytes as dump.rdb, refuses what cannot be planned, and
// removes a seed nobody took within its TTL.
func TestRedisSeedAndExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const source = "in-redis"
	if err := f.st.UpsertInstances(ctx, []backup.Instance{{ID: source, TenantID: tenant, Name: "cache",
		Engine: backup.EngineRedis, PlanID: "redis-small", State: "ready"}}); err != nil {
		t.Fatal(err)
	}
	rdb := []byte("REDIS0011\xfa\x09redis-ver\x057.2.4 stand-in snapshot bytes")
	id := ulid.Make().String()
	key := tenant + "/" + source + "/backups/" + id + "/data"
	obj, wrapped := f.seal(t, key, id, bytes.NewReader(rdb))
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	f.record(t, backup.Backup{ID: id, TenantID: tenant, InstanceID: source, Engine: backup.EngineRedis, Kind: backup.KindSnapshot,
		Trigger: backup.TriggerScheduled, Status: backup.StatusCompleted, NodeID: "n-1", StartedAt: at, FinishedAt: at,
		ConsistentAt: at, Objects: []backup.Object{obj}, WrappedKey: wrapped})

	var shift atomic.Int64
	r := f.runner(t, &shift)
	tests := []struct {
		name   string
		tenant string
		source string
		target backup.Target
		want   error
	}{
		{"another tenant's instance", "tenant-b", source, backup.Target{BackupID: id}, backup.ErrNotFound},
		{"unknown backup", tenant, source, backup.Target{BackupID: "nope"}, backup.ErrNotFound},
		{"two targets", tenant, source, backup.Target{BackupID: id, PointInTime: at}, backup.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Start(ctx, tt.tenant, tt.source, "in-x", tt.target); !errors.Is(err, tt.want) {
				t.Fatalf("Start = %v, want %v", err, tt.want)
			}
		})
	}
	var outside *backup.OutsideWindowError
	if _, err := r.Start(ctx, tenant, source, "in-x", backup.Target{PointInTime: at.Add(-time.Hour)}); !errors.As(err, &outside) {
		t.Fatalf("a time before the first snapshot: %v, want OutsideWindowError", err)
	}
	if _, err := r.StartEngine(ctx, tenant, source, "in-x", backup.EngineMySQL, backup.Target{BackupID: id}); !errors.Is(err, backup.ErrInvalid) {
		t.Fatalf("engine mismatch: %v, want ErrInvalid", err)
	}

	run(t, r)
	job, err := r.Start(ctx, tenant, source, "in-cache-2", backup.Target{PointInTime: at})
	if err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, r, job.ID)
	if got.Status != backup.RestoreReady || got.Seed != filepath.Join(f.staged, job.ID) {
		t.Fatalf("restore = %+v", got)
	}
	dump, err := os.ReadFile(filepath.Join(got.Seed, "dump.rdb"))
	if err != nil || !bytes.Equal(dump, rdb) {
		t.Fatalf("seed dump.rdb = %q, %v", dump, err)
	}

	shift.Store(int64(2 * time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := r.Get(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == backup.RestoreFailed {
			if j.Error != "seed expired" {
				t.Fatalf("expired seed error %q", j.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seed not expired: %s", j.Status)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	if _, err := os.Stat(got.Seed); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired seed still on disk: %v", err)
	}
}
