package cdc_test

// Service-level tests of sync jobs: the cdc binary as a subprocess (killed
// with SIGKILL and restarted), real MariaDB pairs as source and target, a
// provisioning stand-in serving several instances.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/svctest"
)

// provFleet is provisioning's internal cdc view of several instances.
type provFleet struct {
	srv  *httptest.Server
	mu   sync.Mutex
	inst map[string]fleetInstance
}

type fleetInstance struct {
	Tenant, Engine string
	Nodes          []provNode
}

func startFleet(t *testing.T) *provFleet {
	f := &provFleet{inst: map[string]fleetInstance{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/internal/v1/cdc/instances/")
		f.mu.Lock()
		in, found := f.inst[id]
		f.mu.Unlock()
		if r.Method != http.MethodGet || !ok || !found {
			http.NotFound(w, r)
			return
		}
		body := map[string]any{"instance_id": id, "tenant_id": in.Tenant, "name": id, "engine": in.Engine,
			"state": "ready", "nodes": in.Nodes, "cdc": map[string]string{"username": cdcUser, "password": cdcPassword}}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *provFleet) set(id, tenant string, nodes ...provNode) {
	f.mu.Lock()
	f.inst[id] = fleetInstance{Tenant: tenant, Engine: "mysql", Nodes: nodes}
	f.mu.Unlock()
}

// syncJobJSON is the sync job resource as a user reads it.
type syncJobJSON struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Status struct {
		Directions []struct {
			From       string `json:"from"`
			To         string `json:"to"`
			Watermark  string `json:"watermark"`
			SourceNode string `json:"source_node"`
			Applied    int64  `json:"applied_rows"`
			Conflicts  int64  `json:"conflicts"`
			Skipped    int64  `json:"skipped_transactions"`
			LagMs      int64  `json:"lag_ms"`
		} `json:"directions"`
		Applied   int64 `json:"applied_rows"`
		Conflicts int64 `json:"conflicts"`
	} `json:"status"`
	LastError string    `json:"last_error"`
	UpdatedAt time.Time `json:"updated_at"`
}

type verificationJSON struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Error  string `json:"error"`
	Report struct {
		Tables []struct {
			Table       string `json:"table"`
			RowsChecked int64  `json:"rows_checked"`
			Differences []struct {
				Key  map[string]any `json:"key"`
				Kind string         `json:"kind"`
			} `json:"differences"`
		} `json:"tables"`
		RowsChecked   int64 `json:"rows_checked"`
		DifferingRows int64 `json:"differing_rows"`
		Consistent    bool  `json:"consistent"`
	} `json:"report"`
}

func (s *service) job(id string) (syncJobJSON, error) {
	var j syncJobJSON
	err := s.Call(member, http.MethodGet, "/api/v1/sync-jobs/"+id, nil, &j)
	return j, err
}

// verify runs a verification of job id and waits for its report.
func (s *service) verify(t *testing.T, id string, repair bool) verificationJSON {
	t.Helper()
	var v verificationJSON
	if err := s.Call(member, http.MethodPost, "/api/v1/sync-jobs/"+id+"/verifications", map[string]any{"repair": repair}, &v); err != nil {
		t.Fatal(err)
	}
	svctest.WaitFor(t, "verification "+v.ID+" done", 120*time.Second, func() (bool, string) {
		err := s.Call(member, http.MethodGet, "/api/v1/sync-jobs/"+id+"/verifications/"+v.ID, nil, &v)
		return err == nil && v.State != "running", fmt.Sprintf("%+v %v", v, err)
	})
	if v.State != "done" {
		t.Fatalf("verification %s: %s %s", v.ID, v.State, v.Error)
	}
	return v
}

// dump reads every column of app.<table> as text, keyed by id.
func dump(t *testing.T, db *sql.DB, table string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+appDB+"."+table)
	if err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := map[string]string{}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out[parts[0]] = strings.Join(parts[1:], "|")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func dumpDiff(want, got map[string]string) string {
	_, d := diffRows(want, got)
	return d
}

func binlogPos(t *testing.T, n *mnode) string {
	t.Helper()
	var p string
	if err := n.root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSyncOneWayUnderKills: a one-way job copies a table under a write
// load while the cdc service is killed (SIGKILL) and restarted several
// times at random points; at the end the target equals the source — by a
// full dump comparison and by the job's own verification — and no change
// was applied twice (a redelivered change would meet a row that no longer
// matches its before image and count as a conflict: there are none).
func TestSyncOneWayUnderKills(t *testing.T) {
	rnd := seededRand(t)
	srcP, srcR := startPairIDs(t, 1)
	dstP, dstR := startPairIDs(t, 11)
	broker := startKafka(t)
	fleet := startFleet(t)
	fleet.set("src", tenantID, viewNode(srcP, "primary", true), viewNode(srcR, "replica", true))
	fleet.set("dst", tenantID, viewNode(dstP, "primary", true), viewNode(dstR, "replica", true))
	createTable(t, srcP.root, "t")
	const seeded = 20000
	seed(t, srcP.root, "t", seeded)
	svctest.WaitFor(t, "source replica has the seed", 30*time.Second, func() (bool, string) { return caughtUp(srcP, srcR) })

	svc := startService(t, &provStandIn{srv: fleet.srv}, broker, map[string]string{"CANOPY_CDC_SNAPSHOT_CHUNK": "500", "CANOPY_CDC_MAX_BATCH": "200"})
	w := startWriter(writerDB(t, srcP), "t", seeded, rnd)
	t.Cleanup(w.stop)
	var job syncJobJSON
	if err := svc.Call(member, http.MethodPost, "/api/v1/sync-jobs", map[string]any{
		"source_instance": "src", "tables": []string{"app.t"}, "target": map[string]any{"instance": "dst"},
		"conflict": "source-wins", "direction": "one-way",
	}, &job); err != nil {
		t.Fatal(err)
	}
	applied := func() int64 {
		j, err := svc.job(job.ID)
		if err != nil {
			return -1
		}
		if j.State == "failed" {
			t.Fatalf("job failed: %s", j.LastError)
		}
		return j.Status.Applied
	}
	for kill := 1; kill <= 5; kill++ {
		at := applied()
		svctest.WaitFor(t, fmt.Sprintf("progress before kill %d", kill), 60*time.Second, func() (bool, string) {
			a := applied()
			return a > at, fmt.Sprintf("applied %d (was %d)", a, at)
		})
		// A random point within the next stretch of applying.
		deadline := time.Now().Add(time.Duration(rnd(400)) * time.Millisecond)
		svctest.WaitFor(t, "random kill point", 5*time.Second, func() (bool, string) { return !time.Now().Before(deadline), "" })
		svc.Kill()
		svc.Restart(t)
	}
	w.stop()
	committed, _ := w.stats()
	t.Logf("writer committed %d transactions", committed)

	want := dump(t, srcP.root, "t")
	svctest.WaitFor(t, "target equals source", 120*time.Second, func() (bool, string) {
		d := dumpDiff(want, dump(t, dstP.root, "t"))
		j, _ := svc.job(job.ID)
		return d == "", fmt.Sprintf("%s; job %+v", d, j)
	})
	j, err := svc.job(job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status.Conflicts != 0 {
		t.Errorf("%d conflicts in a one-way job nobody else writes to: a change was applied twice", j.Status.Conflicts)
	}
	// The target's replica got the job's writes too.
	svctest.WaitFor(t, "target replica caught up", 30*time.Second, func() (bool, string) { return caughtUp(dstP, dstR) })
	if d := dumpDiff(want, dump(t, dstR.root, "t")); d != "" {
		t.Errorf("target replica differs: %s", d)
	}
	v := svc.verify(t, job.ID, false)
	if !v.Report.Consistent || v.Report.DifferingRows != 0 || v.Report.RowsChecked != int64(len(want)) {
		t.Errorf("verification: %+v, want consistent over %d rows", v.Report, len(want))
	}
}

// TestSyncTwoWayConverges: a two-way latest-wins job between two
// instances written concurrently — disjoint rows and the same rows —
// converges to equal tables, and there is no echo: each side skipped the
// job's own writes coming back, and once both directions caught up
// neither binlog moves any more.
func TestSyncTwoWayConverges(t *testing.T) {
	rnd := seededRand(t)
	aP, aR := startPairIDs(t, 1)
	bP, bR := startPairIDs(t, 11)
	broker := startKafka(t)
	fleet := startFleet(t)
	fleet.set("east", tenantID, viewNode(aP, "primary", true), viewNode(aR, "replica", true))
	fleet.set("west", tenantID, viewNode(bP, "primary", true), viewNode(bR, "replica", true))
	ddl := "CREATE TABLE app.kv (id BIGINT PRIMARY KEY, v VARCHAR(64) NOT NULL, updated_at DATETIME(6) NOT NULL)"
	execAll(t, aP.root, ddl)
	execAll(t, bP.root, ddl)
	svc := startService(t, &provStandIn{srv: fleet.srv}, broker, nil)
	var job syncJobJSON
	if err := svc.Call(member, http.MethodPost, "/api/v1/sync-jobs", map[string]any{
		"source_instance": "east", "tables": []string{"app.kv"}, "target": map[string]any{"instance": "west"},
		"conflict": "latest-wins", "column": "updated_at", "direction": "two-way",
	}, &job); err != nil {
		t.Fatal(err)
	}
	svctest.WaitFor(t, "job running both ways", 60*time.Second, func() (bool, string) {
		j, err := svc.job(job.ID)
		return err == nil && j.State == "running" && len(j.Status.Directions) == 2, fmt.Sprintf("%+v %v", j, err)
	})

	// Each side: its own rows (east 1000+, west 2000+) and the shared rows
	// 1..50, in small transactions, at the same time.
	write := func(db *sql.DB, side string, own int) {
		ctx := context.Background()
		for i := range 300 {
			var q string
			var args []any
			switch r := rnd(3); {
			case r == 0:
				q, args = "INSERT INTO app.kv VALUES (?, ?, NOW(6))", []any{own + i, side}
			default:
				q, args = "INSERT INTO app.kv VALUES (?, ?, NOW(6)) ON DUPLICATE KEY UPDATE v = VALUES(v), updated_at = VALUES(updated_at)",
					[]any{1 + rnd(50), fmt.Sprintf("%s-%d", side, i)}
			}
			// The job's writes and ours take row locks in any order: a
			// deadlock victim retries, as an application does.
			var err error
			for range 20 {
				if _, err = db.ExecContext(ctx, q, args...); err == nil || !strings.Contains(err.Error(), "Error 1213") {
					break
				}
			}
			if err != nil {
				t.Errorf("%s: %v", side, err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); write(aP.root, "east", 1000) }()
	go func() { defer wg.Done(); write(bP.root, "west", 2000) }()
	wg.Wait()

	var a, b map[string]string
	svctest.WaitFor(t, "both sides equal", 120*time.Second, func() (bool, string) {
		a, b = dump(t, aP.root, "kv"), dump(t, bP.root, "kv")
		d := dumpDiff(a, b)
		return d == "", d
	})
	// Quiet: both directions caught up with their source's binlog, and the
	// binlogs stay where they are over several status rounds.
	caught := func() (bool, string) {
		j, err := svc.job(job.ID)
		if err != nil || len(j.Status.Directions) != 2 {
			return false, fmt.Sprint(err)
		}
		pa, pb := binlogPos(t, aP), binlogPos(t, bP)
		d0, d1 := j.Status.Directions[0], j.Status.Directions[1]
		return d0.Watermark == pa && d1.Watermark == pb, fmt.Sprintf("east %s west %s; job %+v", pa, pb, j.Status)
	}
	svctest.WaitFor(t, "both directions caught up", 60*time.Second, caught)
	pa, pb := binlogPos(t, aP), binlogPos(t, bP)
	for round := range 5 {
		// Five more status rounds of the job (each saves its status and
		// moves updated_at), still caught up.
		prev, err := svc.job(job.ID)
		if err != nil {
			t.Fatal(err)
		}
		svctest.WaitFor(t, fmt.Sprintf("status round %d", round), 30*time.Second, func() (bool, string) {
			j, err := svc.job(job.ID)
			return err == nil && j.UpdatedAt.After(prev.UpdatedAt), fmt.Sprint(err)
		})
		svctest.WaitFor(t, fmt.Sprintf("still caught up after round %d", round), 30*time.Second, caught)
	}
	if qa, qb := binlogPos(t, aP), binlogPos(t, bP); qa != pa || qb != pb {
		t.Errorf("binlogs kept moving after the job caught up (an echo loop): east %s → %s, west %s → %s", pa, qa, pb, qb)
	}
	j, err := svc.job(job.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range j.Status.Directions {
		if d.Skipped == 0 {
			t.Errorf("direction %d (%s → %s) skipped none of the job's own writes: %+v", i, d.From, d.To, d)
		}
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("converged on %d rows; status %+v", len(keys), j.Status)
	v := svc.verify(t, job.ID, false)
	if !v.Report.Consistent {
		t.Errorf("verification after convergence: %+v", v.Report)
	}
}

// TestSyncLeavesStalledReplica: the job reads the source's replica; its
// replication stops (SQL thread stopped, as when it breaks) while the
// primary takes writes. After stall_after the job reads another node and
// the target catches up with the primary.
func TestSyncLeavesStalledReplica(t *testing.T) {
	srcP, srcR := startPairIDs(t, 1)
	dst, dstR := startPairIDs(t, 11)
	broker := startKafka(t)
	fleet := startFleet(t)
	fleet.set("src", tenantID, viewNode(srcP, "primary", true), viewNode(srcR, "replica", true))
	fleet.set("dst", tenantID, viewNode(dst, "primary", true), viewNode(dstR, "replica", true))
	createTable(t, srcP.root, "t")
	seed(t, srcP.root, "t", 100)
	svctest.WaitFor(t, "source replica has the seed", 30*time.Second, func() (bool, string) { return caughtUp(srcP, srcR) })
	svc := startService(t, &provStandIn{srv: fleet.srv}, broker, map[string]string{"CANOPY_CDC_STALL_AFTER": "1s"})
	var job syncJobJSON
	if err := svc.Call(member, http.MethodPost, "/api/v1/sync-jobs", map[string]any{
		"source_instance": "src", "tables": []string{"app.t"}, "target": map[string]any{"instance": "dst"},
	}, &job); err != nil {
		t.Fatal(err)
	}
	reading := func(node string) func() (bool, string) {
		return func() (bool, string) {
			j, err := svc.job(job.ID)
			if err != nil || len(j.Status.Directions) != 1 {
				return false, fmt.Sprint(err)
			}
			return j.State == "running" && j.Status.Directions[0].SourceNode == node, fmt.Sprintf("%+v", j)
		}
	}
	svctest.WaitFor(t, "the job reading the replica", 60*time.Second, reading(srcR.id))
	execAll(t, srcR.root, "STOP SLAVE SQL_THREAD")
	execAll(t, srcP.root, "INSERT INTO app.t (id, v, n) VALUES (1000, 'after the stall', 0)")
	svctest.WaitFor(t, "the job leaving the stalled replica", 30*time.Second, reading(srcP.id))
	want := dump(t, srcP.root, "t")
	svctest.WaitFor(t, "target equals the primary", 30*time.Second, func() (bool, string) {
		d := dumpDiff(want, dump(t, dst.root, "t"))
		return d == "", d
	})
}
