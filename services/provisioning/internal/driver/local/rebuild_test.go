package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver/drivertest"
)

// rows returns app.t's ids in order.
func rows(t *testing.T, ctx context.Context, db *sql.DB) []string {
	t.Helper()
	r, err := db.QueryContext(ctx, "SELECT id FROM app.t ORDER BY id")
	if err != nil {
		t.Fatalf("read app.t: %v", err)
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var id string
		if err := r.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustExec(t *testing.T, ctx context.Context, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func(ctx context.Context) error) {
	t.Helper()
	var last error
	err := retry.Do(ctx, retry.Policy{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond}, func(ctx context.Context) error {
		last = cond(ctx)
		return last
	})
	if err != nil {
		t.Fatalf("%s: %v (last: %v)", what, err, last)
	}
}

// An old primary that took a write its replica never received (an async
// link, then a failover to the replica) is rebuilt from the new primary:
// afterwards its data is the new primary's (the errant row is gone, the
// tenant's account is there), it is read-only, and re-pointed it replicates
// the new primary's next writes. A source that cannot be read leaves the
// node as it was; a Redis node is refused.
func TestRebuildFromNewPrimary(t *testing.T) {
	requireBinaries(t)
	if _, err := exec.LookPath("mariadb-dump"); err != nil {
		t.Skip("mariadb-dump not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := dataRoot(t)
	specs := drivertest.Specs("rbd", driver.EngineMySQL, "", root, func() int { return freePort(t) })[:2]
	for i := range specs {
		specs[i].SemiSync = false // the async link that lets a primary run ahead
	}
	d := newDriver(t, Config{StopTimeout: 20 * time.Second})
	for _, s := range specs {
		t.Cleanup(func() { _ = d.Destroy(context.Background(), s.NodeID) })
	}
	nodes, err := drivertest.StartReplicated(ctx, d, specs)
	if err != nil {
		t.Fatal(err)
	}
	oldP, newP := nodes[0], nodes[1]
	dbOld, err := openMySQL(oldP.Address, specs[0].Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer dbOld.Close()
	dbNew, err := openMySQL(newP.Address, specs[1].Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer dbNew.Close()

	mustExec(t, ctx, dbOld, "CREATE TABLE app.t (id VARCHAR(32) PRIMARY KEY)", "INSERT INTO app.t VALUES ('1'), ('2')",
		"CREATE USER 'tenant'@'%' IDENTIFIED BY 'tenant-pw'", "GRANT SELECT, INSERT ON app.* TO 'tenant'@'%'")
	waitFor(t, ctx, "the replica has the first writes", func(ctx context.Context) error {
		var n int
		if err := dbNew.QueryRowContext(ctx, "SELECT COUNT(*) FROM app.t").Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})

	// The failover: the replica is promoted; the old primary took one more
	// write meanwhile (errant), then was fenced.
	if err := d.ConfigurePrimary(ctx, newP.ID, driver.PrimaryOpts{}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, dbOld, "INSERT INTO app.t VALUES ('errant')", "SET GLOBAL read_only=ON")
	mustExec(t, ctx, dbNew, "INSERT INTO app.t VALUES ('3')")
	newEP, err := driver.EndpointOf(newP)
	if err != nil {
		t.Fatal(err)
	}

	// A source that cannot be read: nothing changes on the node.
	if err := d.Rebuild(ctx, oldP.ID, driver.Endpoint{Host: loopback, Port: freePort(t)}); err == nil {
		t.Fatal("rebuild from a dead source succeeded")
	}
	if st, err := d.Status(ctx, oldP.ID); err != nil || st.State != driver.StateRunning || st.Node.PID != oldP.PID {
		t.Fatalf("after a failed rebuild: %+v, %v (was pid %d)", st, err, oldP.PID)
	}
	if got := rows(t, ctx, dbOld); !slices.Equal(got, []string{"1", "2", "errant"}) {
		t.Fatalf("after a failed rebuild the node has %v", got)
	}

	began := time.Now()
	if err := d.Rebuild(ctx, oldP.ID, newEP); err != nil {
		t.Fatal(err)
	}
	t.Logf("rebuild took %s", time.Since(began).Round(time.Millisecond))
	st, err := d.Status(ctx, oldP.ID)
	if err != nil || st.State != driver.StateRunning || st.Node.PID == oldP.PID {
		t.Fatalf("after the rebuild: %+v, %v", st, err)
	}
	dbOld.Close()
	if dbOld, err = openMySQL(oldP.Address, specs[0].Admin); err != nil {
		t.Fatal(err)
	}
	defer dbOld.Close()
	if got, want := rows(t, ctx, dbOld), rows(t, ctx, dbNew); !slices.Equal(got, want) || slices.Contains(got, "errant") {
		t.Fatalf("rebuilt node has %v, the new primary %v", got, want)
	}
	var readOnly int
	var binlogState, newState string
	if err := dbOld.QueryRowContext(ctx, "SELECT @@read_only, @@gtid_binlog_state").Scan(&readOnly, &binlogState); err != nil {
		t.Fatal(err)
	}
	if err := dbNew.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&newState); err != nil {
		t.Fatal(err)
	}
	if readOnly != 1 || binlogState != newState {
		t.Fatalf("rebuilt node read_only=%d gtid_binlog_state=%q, want read-only at the new primary's %q", readOnly, binlogState, newState)
	}
	tenant, err := openMySQL(oldP.Address, driver.Credentials{Username: "tenant", Password: "tenant-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer tenant.Close()
	if _, err := tenant.ExecContext(ctx, "INSERT INTO app.t VALUES ('x')"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a client's write on the rebuilt node: %v, want refused as read-only", err)
	}
	if got := rows(t, ctx, tenant); len(got) != 3 {
		t.Fatalf("the tenant's account reads %v on the rebuilt node", got)
	}
	if err := drivertest.CheckCDC(ctx, driver.Node{ID: oldP.ID, Address: oldP.Address, Role: driver.RoleReplica}, specs[0]); err != nil {
		t.Fatalf("the cdc account on the rebuilt node: %v", err)
	}

	// Re-pointed, it continues exactly after the copy.
	if err := d.ConfigureReplica(ctx, oldP.ID, driver.ReplicaOpts{Primary: newEP}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, dbNew, "INSERT INTO app.t VALUES ('4')")
	waitFor(t, ctx, "the rebuilt node replicates the new primary", func(ctx context.Context) error {
		if got, want := rows(t, ctx, dbOld), rows(t, ctx, dbNew); !slices.Equal(got, want) {
			return fmt.Errorf("rebuilt node has %v, the new primary %v", got, want)
		}
		return nil
	})
	var io, sqlRunning, sqlErr string
	if err := dbOld.QueryRowContext(ctx, "SELECT 1").Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	conn, err := dbOld.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sst, err := slaveStatus(ctx, conn)
	conn.Close()
	if err != nil || sst == nil {
		t.Fatalf("slave status %v, %v", sst, err)
	}
	io, sqlRunning, sqlErr = sst["Slave_IO_Running"], sst["Slave_SQL_Running"], sst["Last_SQL_Error"]
	if io != "Yes" || sqlRunning != "Yes" || sqlErr != "" {
		t.Fatalf("replication io=%s sql=%s error=%q", io, sqlRunning, sqlErr)
	}

	// Redis: a replica resynchronises by itself.
	rspec := drivertest.Specs("rbr", driver.EngineRedis, "", root, func() int { return freePort(t) })[0]
	t.Cleanup(func() { _ = d.Destroy(context.Background(), rspec.NodeID) })
	if _, err := d.Create(ctx, rspec); err != nil {
		t.Fatal(err)
	}
	if err := d.Rebuild(ctx, rspec.NodeID, newEP); !errors.Is(err, driver.ErrUnsupported) {
		t.Fatalf("rebuild of a Redis node: %v, want ErrUnsupported", err)
	}
	if err := d.Rebuild(ctx, "nope", newEP); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("rebuild of an unknown node: %v, want ErrNotFound", err)
	}
}
