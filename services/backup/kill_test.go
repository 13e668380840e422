package backup_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/svctest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/httpapi"
)

var (
	acme = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:svc-acme"}
	// provisioner is provisioning calling the internal restore routes for
	// acme's order.
	provisioner = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: httpapi.Restorer}
)

// fill creates shop.orders through replication, then puts rows of about
// 260 bytes into it on both nodes with the binary log off: the same
// amount of data on each, without a large transaction for the replica and
// the archive to chew on (the setup is not what the tests measure).
func fill(t *testing.T, primary, replica *node, rows int) {
	t.Helper()
	primary.exec(t, "CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(255) NOT NULL) ENGINE=InnoDB")
	waitCaughtUp(t, primary, replica)
	var wg sync.WaitGroup
	for _, n := range []*node{primary, replica} {
		wg.Go(func() {
			conn, err := n.root.Conn(t.Context())
			if err == nil {
				defer conn.Close()
				_, err = conn.ExecContext(t.Context(), "SET SESSION sql_log_bin=0")
			}
			if err == nil {
				_, err = conn.ExecContext(t.Context(), fmt.Sprintf(
					"INSERT INTO shop.orders (pad) SELECT REPEAT(MD5(RAND()), 7) FROM shop.seq_1_to_%d", rows))
			}
			if err != nil {
				t.Errorf("fill %s: %v", n.proc.Addr, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// TestKilledMidBackupCleansUp SIGKILLs the service while an on-demand
// backup streams into the repository. After the restart the backup is
// failed "interrupted", nothing of it is left in the repository, and the
// next backup completes and is verified.
func TestKilledMidBackupCleansUp(t *testing.T) {
	if testing.Short() {
		t.Skip("service-level crash test")
	}
	t.Parallel()
	primary, replica := startPair(t)
	in := instanceOf(t, "acme", primary, replica)
	state := t.TempDir()
	svc := startService(t, provisioning(t, in).URL, state, nil)
	// The first backup is the scheduler's, of an instance not yet filled.
	fill(t, primary, replica, 500_000)
	firstBackup(t, svc, acme, in.ID)

	var b backup.Backup
	if err := svc.Call(acme, http.MethodPost, "/api/v1/instances/"+in.ID+"/backups", nil, &b); err != nil {
		t.Fatal(err)
	}
	if b.Status != backup.StatusRunning || b.Trigger != backup.TriggerOnDemand {
		t.Fatalf("on-demand backup: %s %s, want running on_demand", b.Status, b.Trigger)
	}
	dir := filepath.Join(state, "backups", "acme", in.ID, "backups", b.ID)
	// Mid-stream: part of the data object written, in its temporary file.
	svctest.WaitFor(t, "backup data streaming into the repository", 30*time.Second, func() (bool, string) {
		var written int64
		for _, name := range entries(t, dir) {
			if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
				written += fi.Size()
			}
		}
		if cur, err := getBackup(svc, acme, in.ID, b.ID); err == nil && cur.Status != backup.StatusRunning {
			t.Fatalf("backup %s %s before the kill (%s): make the data bigger", b.ID, cur.Status, cur.Error)
		}
		return written > 4<<20, fmt.Sprintf("%d bytes in %v", written, entries(t, dir))
	})
	svc.Kill()
	t.Logf("killed mid-backup with %v in the backup's folder", entries(t, dir))
	svc.Restart(t)

	got := waitBackup(t, svc, acme, in.ID, b.ID, 30*time.Second)
	if got.Status != backup.StatusFailed || got.Error != "interrupted" {
		t.Errorf("backup %s after the restart: %s %q, want failed \"interrupted\"", b.ID, got.Status, got.Error)
	}
	if len(got.Objects) != 0 || got.Verified {
		t.Errorf("interrupted backup lists objects %v (verified %v)", got.Objects, got.Verified)
	}
	if left := entries(t, dir); len(left) != 0 {
		t.Errorf("the interrupted backup left %v in %s", left, dir)
	}

	var next backup.Backup
	if err := svc.Call(acme, http.MethodPost, "/api/v1/instances/"+in.ID+"/backups", nil, &next); err != nil {
		t.Fatal(err)
	}
	next = waitBackup(t, svc, acme, in.ID, next.ID, time.Minute)
	if next.Status != backup.StatusCompleted || !next.Verified || next.Stats == nil {
		t.Fatalf("backup after the restart: %s (verified %v) %s", next.Status, next.Verified, next.Error)
	}
	if !next.FromReplica || next.NodeID != "n2" {
		t.Errorf("backup after the restart taken from %s (from replica %v), want the replica n2", next.NodeID, next.FromReplica)
	}
	var rows int64
	for _, s := range next.Stats.Sample {
		if s.Schema == "shop" && s.Table == "orders" {
			rows = s.Rows
		}
	}
	if rows != 500_000 {
		t.Errorf("verified backup counts %d rows in shop.orders, want 500000 (stats %+v)", rows, next.Stats)
	}
	nextDir := filepath.Join(state, "backups", "acme", in.ID, "backups", next.ID)
	if got, want := entries(t, nextDir), []string{"data", "manifest.json"}; !slices.Equal(got, want) {
		t.Errorf("completed backup's folder holds %v, want %v", got, want)
	}
}

// TestKilledMidRestoreResumes SIGKILLs the service while a restore job
// prepares its seed. After the restart the job starts again from a clean
// staging directory and becomes ready with a data directory holding the
// tenant's data; done removes the seed.
func TestKilledMidRestoreResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("service-level crash test")
	}
	t.Parallel()
	primary, replica := startPair(t)
	fill(t, primary, replica, 150_000)
	in := instanceOf(t, "acme", primary, replica)
	state := t.TempDir()
	svc := startService(t, provisioning(t, in).URL, state, nil)
	first := firstBackup(t, svc, acme, in.ID)

	target := "inst-" + svctest.RandHex(t, 4)
	var job backup.Restore
	if err := svc.Call(provisioner, http.MethodPost, "/internal/v1/restores", map[string]any{
		"tenant_id": "acme", "source_instance_id": in.ID, "target_instance_id": target, "engine": "mysql",
		"target": map[string]string{"backup_id": first.ID}}, &job); err != nil {
		t.Fatal(err)
	}
	restorePath := "/internal/v1/restores/" + job.ID
	staging := filepath.Join(state, "restores", job.ID)
	// Mid-prepare: the job running, mariadb-backup --prepare at work on
	// the extracted backup.
	svctest.WaitFor(t, "restore preparing", 30*time.Second, func() (bool, string) {
		var cur backup.Restore
		if err := svc.Call(provisioner, http.MethodGet, restorePath, nil, &cur); err != nil {
			return false, err.Error()
		}
		if cur.Status == backup.RestoreReady || cur.Status == backup.RestoreFailed {
			t.Fatalf("restore %s %s before the kill (%s): make the data bigger", job.ID, cur.Status, cur.Error)
		}
		preparing := false
		for _, p := range processesOn(t, staging) {
			preparing = preparing || strings.Contains(p, "--prepare")
		}
		return cur.Status == backup.RestoreRunning && preparing, string(cur.Status) + " " + cur.Phase
	})
	svc.Kill()
	t.Logf("killed mid-restore with %v in the staging dir", entries(t, filepath.Join(staging, "data")))
	svc.Restart(t)

	svctest.WaitFor(t, "restore ready after the restart", time.Minute, func() (bool, string) {
		if err := svc.Call(provisioner, http.MethodGet, restorePath, nil, &job); err != nil {
			return false, err.Error()
		}
		if job.Status == backup.RestoreFailed {
			t.Fatalf("restore %s failed after the restart: %s", job.ID, job.Error)
		}
		return job.Status == backup.RestoreReady, string(job.Status) + " " + job.Phase
	})
	if want := filepath.Join(staging, "data"); job.Seed != want {
		t.Fatalf("seed %q, want %q", job.Seed, want)
	}
	for _, f := range []string{"ibdata1", "shop/orders.ibd", "shop/orders.frm"} {
		if _, err := os.Stat(filepath.Join(job.Seed, f)); err != nil {
			t.Errorf("seed lacks %s: %v", f, err)
		}
	}
	// Nothing of the first attempt: the staging area holds this job's
	// seed only, and no tool of the first attempt still runs on it.
	if got := entries(t, filepath.Join(state, "restores")); !slices.Equal(got, []string{job.ID}) {
		t.Errorf("staging area holds %v, want only %s", got, job.ID)
	}
	if got := entries(t, staging); !slices.Equal(got, []string{"data"}) {
		t.Errorf("staging dir of %s holds %v, want only data", job.ID, got)
	}
	if procs := processesOn(t, state); len(procs) > 0 {
		t.Errorf("processes still working in the state dir: %v", procs)
	}

	if err := svc.Call(provisioner, http.MethodPost, restorePath+"/done", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := svc.Call(provisioner, http.MethodGet, restorePath, nil, &job); err != nil {
		t.Fatal(err)
	}
	if job.Status != backup.RestoreDone {
		t.Errorf("restore %s after done: %s, want done", job.ID, job.Status)
	}
	if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("seed %s still there after done (%v)", staging, err)
	}
}

// processesOn lists the processes whose command line names a path under
// dir (orphans of a killed service would), as "pid cmdline".
func processesOn(t *testing.T, dir string) []string {
	t.Helper()
	pids, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, p := range pids {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		cmd := strings.ReplaceAll(strings.TrimRight(string(raw), "\x00"), "\x00", " ")
		if strings.Contains(cmd, dir+string(os.PathSeparator)) {
			found = append(found, p.Name()+" "+cmd)
		}
	}
	return found
}
