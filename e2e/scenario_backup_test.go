package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The backup resources as a user reads them.
type backupRecord struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Status      string `json:"status"`
	FromReplica bool   `json:"from_replica"`
	GTID        string `json:"gtid"`
	Verified    bool   `json:"verified"`
	DataBytes   int64  `json:"data_bytes"`
	StoredBytes int64  `json:"stored_bytes"`
	Error       string `json:"error"`
}

type restoreWindow struct {
	Available bool      `json:"available"`
	Earliest  time.Time `json:"earliest"`
	Latest    time.Time `json:"latest"`
}

type restoreDrill struct {
	ID                string   `json:"id"`
	Status            string   `json:"status"`
	BackupID          string   `json:"backup_id"`
	ScratchInstanceID string   `json:"scratch_instance_id"`
	Mismatches        []string `json:"mismatches"`
	Error             string   `json:"error"`
	Measured          *struct {
		Tables int `json:"tables"`
	} `json:"measured"`
}

// backupTimeout bounds a backup (taken, prepared and checked) and a
// restore into a new instance on the CI machine.
const backupTimeout = 3 * time.Minute

// waitBackup waits for a backup to end and returns it.
func waitBackup(t *testing.T, c *client, instanceID, backupID string) backupRecord {
	t.Helper()
	var b backupRecord
	waitFor(t, "backup "+backupID+" to end", backupTimeout, func() (bool, string) {
		c.must("GET", "/api/v1/instances/"+instanceID+"/backups/"+backupID, nil, http.StatusOK, &b)
		return b.Status != "running", b.Status
	})
	if b.Status != "completed" {
		t.Fatalf("backup %s ended %s: %s", backupID, b.Status, b.Error)
	}
	return b
}

// TestScenarioBackupAndPointInTimeRestore is the "Done when" of backups: a
// tenant writes rows into a multi-AZ MySQL, takes a backup (from a replica,
// verified), writes more, notes a second, writes more and deletes one,
// reads the restore window, restores the noted second into a new instance
// and finds exactly the rows committed up to it; another tenant sees none
// of it; a restore drill restores the backup into a scratch instance,
// checks it and deletes it.
func TestScenarioBackupAndPointInTimeRestore(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenant := p.newTenant(t, "bk-"+randHex(3), "tenant-admin")
	other := p.newTenant(t, "bkx-"+randHex(3), "tenant-admin")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("backup's log:\n%s", p.logLines("service=backup", "http request", 200))
		}
	})
	var acc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": "ledger", "plan_id": tenant.planID("mysql-ha-multi-az")}, http.StatusAccepted, &acc)
	id := acc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	waitOperation(t, tenant, acc.OperationID, readyTimeout)
	var inst instance
	tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
	waitAllUp(t, tenant, inst)
	var b binding
	tenant.must("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &b)
	db := routedDB(b, b.Credentials.Endpoints.RW)
	defer db.Close()
	exec := func(q string, args ...any) time.Time {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return time.Now()
	}
	exec("CREATE TABLE entries (id INT PRIMARY KEY, body VARCHAR(64) NOT NULL)")
	for i := 1; i <= 40; i++ {
		exec("INSERT INTO entries VALUES (?, ?)", i, fmt.Sprintf("before the backup %d", i))
	}

	// A backup now: 202 with the running record, then completed, from a
	// replica, verified. Another tenant sees neither the instance's backups
	// nor can take one.
	var bk backupRecord
	tenant.must("POST", "/api/v1/instances/"+id+"/backups", nil, http.StatusAccepted, &bk)
	other.mustProblem("GET", "/api/v1/instances/"+id+"/backups", nil, http.StatusNotFound)
	other.mustProblem("POST", "/api/v1/instances/"+id+"/backups", nil, http.StatusNotFound)
	bk = waitBackup(t, tenant, id, bk.ID)
	if !bk.FromReplica || !bk.Verified || bk.GTID == "" || bk.StoredBytes <= 0 {
		t.Fatalf("backup %+v: want taken from a replica, verified, with a GTID and stored bytes", bk)
	}

	// Rows after the backup, committed before the noted second; then the
	// noted second passes with no commit, and later rows and a delete.
	var last time.Time
	for i := 41; i <= 60; i++ {
		last = exec("INSERT INTO entries VALUES (?, ?)", i, fmt.Sprintf("after the backup %d", i))
	}
	noted := last.UTC().Truncate(time.Second).Add(time.Second)
	waitFor(t, "the second after the noted one", 3*time.Second, func() (bool, string) {
		return time.Now().After(noted.Add(time.Second)), "clock " + time.Now().UTC().Format(time.RFC3339Nano)
	})
	for i := 61; i <= 70; i++ {
		exec("INSERT INTO entries VALUES (?, ?)", i, "after the noted second")
	}
	exec("DELETE FROM entries WHERE id = 7")

	// The restore window reaches past the noted second within seconds (the
	// archive follows the primary).
	var w restoreWindow
	waitFor(t, "the restore window to reach the last writes", 60*time.Second, func() (bool, string) {
		tenant.must("GET", "/api/v1/instances/"+id+"/restore-window", nil, http.StatusOK, &w)
		return w.Available && w.Latest.After(noted), fmt.Sprintf("%+v", w)
	})
	if w.Earliest.After(noted) {
		t.Fatalf("window %+v does not include %s", w, noted)
	}

	// Restore the noted second into a new instance.
	from := map[string]any{"instance_id": id, "point_in_time": noted.Format(time.RFC3339)}
	other.mustProblem("POST", "/api/v1/instances", map[string]any{"name": "stolen", "plan_id": other.planID("mysql-ha-multi-az"),
		"restore_from": from}, http.StatusNotFound)
	tenant.mustProblem("POST", "/api/v1/instances", map[string]any{"name": "too-late", "plan_id": tenant.planID("mysql-ha-multi-az"),
		"restore_from": map[string]any{"instance_id": id, "point_in_time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}},
		http.StatusUnprocessableEntity)
	var racc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": "ledger-restored", "plan_id": tenant.planID("mysql-ha-multi-az"),
		"restore_from": from}, http.StatusAccepted, &racc)
	rid := racc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, rid) })
	waitOperation(t, tenant, racc.OperationID, backupTimeout)
	var restored instance
	tenant.must("GET", "/api/v1/instances/"+rid, nil, http.StatusOK, &restored)
	waitAllUp(t, tenant, restored)
	var rb binding
	tenant.must("POST", "/api/v1/instances/"+rid+"/bindings", map[string]any{"name": "check"}, http.StatusCreated, &rb)
	// A restored instance keeps the source's application database, so an
	// application binds and reads it where it was.
	if rb.Credentials.Database != b.Credentials.Database {
		t.Fatalf("restored instance's database %q, want the source's %q", rb.Credentials.Database, b.Credentials.Database)
	}
	rdb := routedDB(rb, rb.Credentials.Endpoints.RW)
	defer rdb.Close()
	ids := queryIDs(t, rdb, "SELECT id FROM "+b.Credentials.Database+".entries ORDER BY id")
	want := make([]int, 0, 60)
	for i := 1; i <= 60; i++ {
		want = append(want, i)
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("restored to %s: ids %v, want exactly 1..60 (the rows committed up to that second)", noted.Format(time.RFC3339), ids)
	}
	// Every replica of the restored instance holds the same rows.
	for _, addr := range restored.Endpoints.Replicas {
		waitFor(t, "replica "+addr+" of the restored instance to hold the rows", replicaTimeout, func() (bool, string) {
			replica := routedDB(rb, addr)
			defer replica.Close()
			got := queryIDs(t, replica, "SELECT id FROM "+b.Credentials.Database+".entries ORDER BY id")
			return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("%d rows", len(got))
		})
	}

	// Point in time across a failover of the source: kill -9 its primary;
	// the archive follows the new primary from the last archived GTID, so
	// a second after the failover restores the rows written on both.
	old := nodeByRole(t, inst, "primary")
	pid := nodePID(p.StateDir, old.id)
	if pid == 0 {
		t.Fatalf("no process works in the directory of primary %s", old.id)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill primary %s (pid %d): %v", old.id, pid, err)
	}
	waitFailover(t, tenant, id, "automatic", old.id)
	execRetry := func(q string, args ...any) time.Time {
		t.Helper()
		var err error
		for range 100 { // the read-write endpoint reaches the new primary within seconds
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = db.ExecContext(ctx, q, args...)
			cancel()
			if err == nil {
				return time.Now()
			}
			time.Sleep(100 * time.Millisecond) // paced retry of a write refused during the switch
		}
		t.Fatalf("%s: %v", q, err)
		return time.Time{}
	}
	for i := 71; i <= 80; i++ {
		last = execRetry("INSERT INTO entries VALUES (?, ?)", i, "after the failover")
	}
	noted2 := last.UTC().Truncate(time.Second).Add(time.Second)
	waitFor(t, "the second after the second noted one", 3*time.Second, func() (bool, string) {
		return time.Now().After(noted2.Add(time.Second)), "clock " + time.Now().UTC().Format(time.RFC3339Nano)
	})
	exec("INSERT INTO entries VALUES (81, 'after the second noted second')")
	waitFor(t, "the restore window to reach the writes after the failover", 60*time.Second, func() (bool, string) {
		tenant.must("GET", "/api/v1/instances/"+id+"/restore-window", nil, http.StatusOK, &w)
		return w.Available && w.Latest.After(noted2), fmt.Sprintf("%+v", w)
	})
	var facc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": "ledger-after-failover", "plan_id": tenant.planID("mysql-ha-multi-az"),
		"restore_from": map[string]any{"instance_id": id, "point_in_time": noted2.Format(time.RFC3339)}}, http.StatusAccepted, &facc)
	t.Cleanup(func() { bestEffortDelete(t, admin, facc.Instance.ID) })
	waitOperation(t, tenant, facc.OperationID, backupTimeout)
	var fb binding
	tenant.must("POST", "/api/v1/instances/"+facc.Instance.ID+"/bindings", map[string]any{"name": "check"}, http.StatusCreated, &fb)
	fdb := routedDB(fb, fb.Credentials.Endpoints.RW)
	defer fdb.Close()
	want2 := []int{}
	for i := 1; i <= 80; i++ {
		if i != 7 {
			want2 = append(want2, i)
		}
	}
	if got := queryIDs(t, fdb, "SELECT id FROM "+b.Credentials.Database+".entries ORDER BY id"); fmt.Sprint(got) != fmt.Sprint(want2) {
		t.Fatalf("restored to %s across the failover: ids %v, want 1..80 without 7", noted2.Format(time.RFC3339), got)
	}

	// A restore drill: the latest backup into a scratch instance, checked,
	// the scratch instance deleted afterwards.
	var d restoreDrill
	tenant.must("POST", "/api/v1/instances/"+id+"/restore-drills", nil, http.StatusAccepted, &d)
	waitFor(t, "the restore drill to end", backupTimeout, func() (bool, string) {
		var list struct {
			Items []restoreDrill `json:"items"`
		}
		tenant.must("GET", "/api/v1/instances/"+id+"/restore-drills", nil, http.StatusOK, &list)
		for _, x := range list.Items {
			if x.ID == d.ID {
				d = x
			}
		}
		return d.Status != "running", d.Status
	})
	if d.Status != "succeeded" || len(d.Mismatches) > 0 || d.Measured == nil || d.Measured.Tables < 1 {
		t.Fatalf("drill %+v: want succeeded with the table measured and no mismatch", d)
	}
	waitFor(t, "the drill's scratch instance to be deleted", readyTimeout, func() (bool, string) {
		status, body, err := admin.do("GET", "/api/v1/instances/"+d.ScratchInstanceID, nil)
		gone := status == http.StatusNotFound || status == http.StatusGone ||
			(status == http.StatusOK && strings.Contains(string(body), `"state":"deleted"`))
		return err == nil && gone, fmt.Sprintf("%d %.200s %v", status, body, err)
	})
}

// TestScenarioRedisSnapshotAndPointInTimeRestore: a Redis instance's
// snapshot restored into a new instance holds the same keys; a restore to
// a second from its archived AOF holds exactly the keys of that second.
func TestScenarioRedisSnapshotAndPointInTimeRestore(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenant := p.newTenant(t, "bkr-"+randHex(3), "tenant-admin")
	var acc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": "cache", "plan_id": tenant.planID("redis-ha-multi-az")}, http.StatusAccepted, &acc)
	id := acc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	waitOperation(t, tenant, acc.OperationID, readyTimeout)
	var inst instance
	tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
	var b binding
	tenant.must("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := map[string]string{}
	src := redis.NewClient(&redis.Options{Addr: inst.Endpoints.Primary, Username: b.Credentials.Username, Password: b.Credentials.Password})
	defer src.Close()
	for i := range 500 {
		k, v := fmt.Sprintf("k:%03d", i), randHex(6)
		if err := src.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	var bk backupRecord
	tenant.must("POST", "/api/v1/instances/"+id+"/backups", nil, http.StatusAccepted, &bk)
	bk = waitBackup(t, tenant, id, bk.ID)
	if bk.Kind != "snapshot" {
		t.Fatalf("redis backup kind %q, want snapshot", bk.Kind)
	}
	checkRedisRestore(t, tenant, admin, "cache-restored", map[string]any{"instance_id": id, "backup_id": bk.ID}, want)

	// To the second, from the archived AOF: keys written after the
	// snapshot and before the noted second, none after it; a key deleted
	// after it is still there.
	var last time.Time
	for i := range 50 {
		k, v := fmt.Sprintf("p:%03d", i), randHex(6)
		if err := src.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		want[k], last = v, time.Now()
	}
	noted := last.UTC().Truncate(time.Second).Add(time.Second)
	waitFor(t, "the second after the noted one", 3*time.Second, func() (bool, string) {
		return time.Now().After(noted.Add(time.Second)), "clock " + time.Now().UTC().Format(time.RFC3339Nano)
	})
	for i := range 20 {
		if err := src.Set(ctx, fmt.Sprintf("q:%03d", i), "after the noted second", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Del(ctx, "k:007").Err(); err != nil {
		t.Fatal(err)
	}
	var w restoreWindow
	waitFor(t, "the restore window to reach the last writes", 60*time.Second, func() (bool, string) {
		tenant.must("GET", "/api/v1/instances/"+id+"/restore-window", nil, http.StatusOK, &w)
		return w.Available && w.Latest.After(noted), fmt.Sprintf("%+v", w)
	})
	checkRedisRestore(t, tenant, admin, "cache-at-second", map[string]any{"instance_id": id, "point_in_time": noted.Format(time.RFC3339)}, want)
}

// checkRedisRestore restores from into a new Redis instance and checks it
// holds exactly want.
func checkRedisRestore(t *testing.T, tenant, admin *client, name string, from map[string]any, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var racc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": name, "plan_id": tenant.planID("redis-ha-multi-az"),
		"restore_from": from}, http.StatusAccepted, &racc)
	rid := racc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, rid) })
	waitOperation(t, tenant, racc.OperationID, backupTimeout)
	var restored instance
	tenant.must("GET", "/api/v1/instances/"+rid, nil, http.StatusOK, &restored)
	var rb binding
	tenant.must("POST", "/api/v1/instances/"+rid+"/bindings", map[string]any{"name": "check"}, http.StatusCreated, &rb)
	dst := redis.NewClient(&redis.Options{Addr: restored.Endpoints.Primary, Username: rb.Credentials.Username, Password: rb.Credentials.Password})
	defer dst.Close()
	// The binding's user may read keys but not list them all (KEYS is not
	// a data command): DBSIZE and a GET of every key.
	n, err := dst.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(want)) {
		t.Fatalf("%s: restored instance has %d keys, want %d", name, n, len(want))
	}
	var diff []string
	for k, v := range want {
		if got, err := dst.Get(ctx, k).Result(); err != nil || got != v {
			diff = append(diff, fmt.Sprintf("%s=%q (%v)", k, got, err))
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Fatalf("%s: keys missing or with other values: %s", name, strings.Join(diff, ", "))
	}
}

// queryIDs reads a column of ints, failing the test on an error.
func queryIDs(t *testing.T, db *sql.DB, q string) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
