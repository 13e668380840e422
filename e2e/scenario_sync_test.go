package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// syncJob is the sync job resource as a user reads it.
type syncJob struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Status struct {
		Directions []struct {
			From      string `json:"from"`
			To        string `json:"to"`
			Watermark string `json:"watermark"`
			Applied   int64  `json:"applied_rows"`
		} `json:"directions"`
		Applied   int64 `json:"applied_rows"`
		Conflicts int64 `json:"conflicts"`
	} `json:"status"`
	LastError string `json:"last_error"`
}

type syncVerification struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Error  string `json:"error"`
	Report struct {
		Tables []struct {
			Table       string `json:"table"`
			Differences []struct {
				Key      map[string]any `json:"key"`
				Kind     string         `json:"kind"`
				Repaired bool           `json:"repaired"`
			} `json:"differences"`
		} `json:"tables"`
		RowsChecked   int64 `json:"rows_checked"`
		DifferingRows int64 `json:"differing_rows"`
		Repaired      int64 `json:"repaired_rows"`
		Consistent    bool  `json:"consistent"`
	} `json:"report"`
}

type syncConflict struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Key        map[string]any `json:"key"`
	Resolution string         `json:"resolution"`
}

// nodeRootDB opens root on a platform node through its unix socket (what
// an operator on the host can do; root has no network login).
func nodeRootDB(stateDir, nodeID string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", filepath.Join(stateDir, "nodes", nodeID, "mysqld.sock")
	cfg.Timeout = 3 * time.Second
	conn, _ := mysql.NewConnector(cfg)
	return sql.OpenDB(conn)
}

// TestScenarioSync is the walk: two MySQL instances in the two
// regions of the dev inventory, a two-way latest-wins job, writes on both
// sides converge; a difference made behind the job's back is named by a
// verification and repaired; a manual-strategy job parks a conflict that
// is listed and resolved; a table synced into Redis is readable there;
// another tenant cannot name the instances.
func TestScenarioSync(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenant := p.newTenant(t, "sync-"+randHex(3), "tenant-admin")
	other := p.newTenant(t, "syncx-"+randHex(3), "tenant-admin")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cdc's log:\n%s", p.logLines("service=cdc", "http request", 200))
		}
	})
	order := func(name, plan, region string) instance {
		var acc instanceAccepted
		body := map[string]any{"name": name, "plan_id": tenant.planID(plan)}
		if region != "" {
			body["region"] = region
		}
		tenant.must("POST", "/api/v1/instances", body, http.StatusAccepted, &acc)
		t.Cleanup(func() { bestEffortDelete(t, admin, acc.Instance.ID) })
		waitOperation(t, tenant, acc.OperationID, readyTimeout)
		var inst instance
		tenant.must("GET", "/api/v1/instances/"+acc.Instance.ID, nil, http.StatusOK, &inst)
		waitAllUp(t, tenant, inst)
		return inst
	}
	// The e2e inventory's two regions (make dev's are eu-central and eu-west).
	east := order("shop-central", "mysql-dev-single-az", "e2e")
	west := order("shop-west", "mysql-dev-single-az", "e2e-west")
	bind := func(in instance) (*sql.DB, string) {
		var b binding
		tenant.must("POST", "/api/v1/instances/"+in.ID+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &b)
		db := routedDB(b, b.Credentials.Endpoints.RW)
		t.Cleanup(func() { db.Close() })
		return db, b.Credentials.Database
	}
	eastDB, eastName := bind(east)
	westDB, westName := bind(west)
	exec := func(db *sql.DB, q string, args ...any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(eastDB, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, price DECIMAL(10,2), updated_at DATETIME(6) NOT NULL)")
	for i := 1; i <= 100; i++ {
		exec(eastDB, "INSERT INTO items VALUES (?, ?, ?, NOW(6))", i, fmt.Sprintf("item-%d", i), fmt.Sprintf("%d.50", i))
	}

	// Another tenant can name neither instance.
	other.mustProblem("POST", "/api/v1/sync-jobs", map[string]any{"source_instance": east.ID, "tables": []string{eastName + ".items"},
		"target": map[string]any{"instance": west.ID}}, http.StatusNotFound)

	var job syncJob
	tenant.must("POST", "/api/v1/sync-jobs", map[string]any{
		"source_instance": east.ID, "tables": []string{eastName + ".items"},
		"target":   map[string]any{"instance": west.ID, "database": westName},
		"conflict": "latest-wins", "column": "updated_at", "direction": "two-way",
	}, http.StatusCreated, &job)
	other.mustProblem("GET", "/api/v1/sync-jobs/"+job.ID, nil, http.StatusNotFound)
	waitFor(t, "the job running both ways", 90*time.Second, func() (bool, string) {
		tenant.must("GET", "/api/v1/sync-jobs/"+job.ID, nil, http.StatusOK, &job)
		if job.State == "failed" {
			t.Fatalf("job failed: %s", job.LastError)
		}
		return job.State == "running" && len(job.Status.Directions) == 2, fmt.Sprintf("%+v", job)
	})

	// Writes on both sides, one row on both.
	for i := 101; i <= 150; i++ {
		exec(westDB, "INSERT INTO items VALUES (?, ?, 0, NOW(6))", i, fmt.Sprintf("west-%d", i))
	}
	exec(eastDB, "UPDATE items SET name = 'east-edit', updated_at = NOW(6) WHERE id = 7")
	exec(westDB, "UPDATE items SET name = 'west-edit', updated_at = NOW(6) + INTERVAL 1 SECOND WHERE id = 7")
	dumpItems := func(db *sql.DB) map[string]string {
		rows, err := db.Query("SELECT id, name, COALESCE(price, 'NULL'), updated_at FROM items")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var id, name, price, at string
			if err := rows.Scan(&id, &name, &price, &at); err != nil {
				t.Fatal(err)
			}
			out[id] = name + "|" + price + "|" + at
		}
		return out
	}
	waitFor(t, "both regions converge", 60*time.Second, func() (bool, string) {
		a, b := dumpItems(eastDB), dumpItems(westDB)
		d := diffRows(a, b)
		return d == "" && len(a) == 150, fmt.Sprintf("%d/%d rows: %s", len(a), len(b), d)
	})
	if got := dumpItems(eastDB)["7"]; !strings.HasPrefix(got, "west-edit|") {
		t.Errorf("row 7 = %q: the later update (west's) must win on both sides", got)
	}

	// A difference behind the job's back: an operator edits west's row 42
	// with the binlog off.
	root := nodeRootDB(p.StateDir, nodeByRole(t, west, "primary").id)
	defer root.Close()
	conn, err := root.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "UPDATE " + westName + ".items SET name = 'drift' WHERE id = 42"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()
	verify := func(repair bool) syncVerification {
		var v syncVerification
		tenant.must("POST", "/api/v1/sync-jobs/"+job.ID+"/verifications", map[string]any{"repair": repair}, http.StatusAccepted, &v)
		waitFor(t, "the verification to finish", 90*time.Second, func() (bool, string) {
			tenant.must("GET", "/api/v1/sync-jobs/"+job.ID+"/verifications/"+v.ID, nil, http.StatusOK, &v)
			return v.State != "running", v.State
		})
		if v.State != "done" {
			t.Fatalf("verification %s: %s", v.State, v.Error)
		}
		return v
	}
	v := verify(false)
	if v.Report.Consistent || v.Report.DifferingRows != 1 || len(v.Report.Tables) != 1 || len(v.Report.Tables[0].Differences) != 1 ||
		fmt.Sprint(v.Report.Tables[0].Differences[0].Key["id"]) != "42" {
		t.Fatalf("verification must name exactly row 42: %+v", v.Report)
	}
	v = verify(true)
	if v.Report.Repaired != 1 {
		t.Fatalf("repair: %+v", v.Report)
	}
	if got := dumpItems(westDB)["42"]; !strings.HasPrefix(got, "item-42|") {
		t.Fatalf("row 42 on west after the repair = %q", got)
	}
	if v = verify(false); !v.Report.Consistent {
		t.Fatalf("after the repair: %+v", v.Report)
	}

	// A manual job: a conflicting row is parked, listed, resolved.
	exec(eastDB, "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(64))")
	exec(westDB, "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(64))")
	exec(westDB, "INSERT INTO notes VALUES (1, 'west wrote first')")
	var manual syncJob
	tenant.must("POST", "/api/v1/sync-jobs", map[string]any{
		"source_instance": east.ID, "tables": []string{eastName + ".notes"}, "target": map[string]any{"instance": west.ID, "database": westName},
		"conflict": "manual", "direction": "one-way",
	}, http.StatusCreated, &manual)
	exec(eastDB, "INSERT INTO notes VALUES (1, 'east wrote too')")
	var conflicts struct {
		Items []syncConflict `json:"items"`
	}
	waitFor(t, "the conflict to be parked", 60*time.Second, func() (bool, string) {
		tenant.must("GET", "/api/v1/sync-jobs/"+manual.ID+"/conflicts", nil, http.StatusOK, &conflicts)
		return len(conflicts.Items) == 1, fmt.Sprintf("%+v", conflicts)
	})
	c := conflicts.Items[0]
	if c.Kind != "exists" || fmt.Sprint(c.Key["id"]) != "1" || c.Resolution != "pending" {
		t.Fatalf("conflict %+v", c)
	}
	var body string
	if err := westDB.QueryRow("SELECT body FROM notes WHERE id = 1").Scan(&body); err != nil || body != "west wrote first" {
		t.Fatalf("a parked change must not be applied: %q %v", body, err)
	}
	tenant.must("POST", "/api/v1/sync-jobs/"+manual.ID+"/conflicts/"+c.ID+":resolve", map[string]any{"use": "source"}, http.StatusOK, nil)
	if err := westDB.QueryRow("SELECT body FROM notes WHERE id = 1").Scan(&body); err != nil || body != "east wrote too" {
		t.Fatalf("after resolving with the source's version: %q %v", body, err)
	}

	// A Redis cache of the items table.
	kv := order("shop-cache", "redis-dev-single-az", "")
	var kb binding
	tenant.must("POST", "/api/v1/instances/"+kv.ID+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &kb)
	var cache syncJob
	tenant.must("POST", "/api/v1/sync-jobs", map[string]any{
		"source_instance": east.ID, "tables": []string{eastName + ".items"},
		"target": map[string]any{"redis_instance": kv.ID, "key_pattern": "item:{pk}"},
	}, http.StatusCreated, &cache)
	exec(eastDB, "UPDATE items SET name = 'cached' WHERE id = 3")
	exec(eastDB, "DELETE FROM items WHERE id = 4")
	rc := redis.NewClient(&redis.Options{Addr: kb.Credentials.Endpoints.RW, Username: kb.Credentials.Username, Password: kb.Credentials.Password})
	defer rc.Close()
	waitFor(t, "the cache to hold the table", 60*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		name, err := rc.HGet(ctx, "item:3", "name").Result()
		gone, err2 := rc.Exists(ctx, "item:4").Result()
		n, err3 := rc.Exists(ctx, "item:1", "item:150").Result()
		return err == nil && err2 == nil && err3 == nil && name == "cached" && gone == 0 && n == 2, fmt.Sprintf("item:3 name %q %v, item:4 exists %d, %d of 2", name, err, gone, n)
	})
}
