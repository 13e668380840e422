package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The chaos phase of TestScenarioSplitMode (issue 19): 50 operations —
// orders and deletes of single-az and multi-az Redis and MySQL instances,
// chaosInFlight instances under way at a time, through both gateways with
// the load client (round robin, the other gateway after a refused connect,
// retrying only what the API marks retryable) — while one replica of every
// service, the gateway last, is killed with SIGKILL and started again, one
// at a time, each ready (or live as a standby) before the next. Then:
// every operation ended, and none failed; no node process was orphaned or
// ran twice during the run, and at the end every node process belongs to a
// live instance's recorded nodes; no instance has duplicate nodes; every
// outbox is drained; every reservation matches a live instance and every
// ready instance has its reservations; after deleting what is left, no node
// process and no reservation remains.

// chaosPlans are the instances the chaos orders (and deletes: two
// operations each), in order: mostly Redis, a few MySQL.
var chaosPlans = func() []string {
	var plans []string
	for i := range 25 {
		switch {
		case i == 6 || i == 17:
			plans = append(plans, "mysql-ha-multi-az")
		case i == 3 || i == 12:
			plans = append(plans, "mysql-dev-single-az")
		case i%4 == 1:
			plans = append(plans, "redis-ha-multi-az")
		default:
			plans = append(plans, "redis-dev-single-az")
		}
	}
	return plans
}()

const (
	// chaosInFlight is how many instances are ordered or deleted at a time.
	chaosInFlight = 4
	// orphanAfter is how long a node process may run without a live node of
	// a live instance before it counts as orphaned: a delete stops the
	// process before it records the node destroyed, so a sample may see the
	// two apart for a moment, never for seconds.
	orphanAfter = 3 * time.Second
)

// chaosOp is one operation of the chaos and how it ended.
type chaosOp struct {
	kind, plan, instance string // kind: create or delete
	end, reason          string // ready, deleted or failed (with its reason)
	took                 time.Duration
}

func chaos(t *testing.T, sp *splitRun) {
	p := sp.p
	tenant := p.newTenant(t, "chaos-"+randHex(3), "tenant-admin")
	planIDs := map[string]string{}
	for _, name := range chaosPlans {
		if planIDs[name] == "" {
			planIDs[name] = tenant.planID(name)
		}
	}
	db, err := sql.Open("mysql", mysqlServerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	prov, sched := "`"+p.DBPrefix+"provisioning`", "`"+p.DBPrefix+"scheduling`"

	ld := newLoad(t, tenant.key, "e2e-chaos-", p.URL, sp.gw2)
	abort, stopOps := context.WithCancel(context.Background())
	c := &chaosRun{t: t, ld: ld, abort: abort}
	watch := &nodeWatch{t: t, db: db, prov: prov, sched: sched, stateDir: p.StateDir, suspect: map[string]time.Time{}, pids: map[int]bool{}, strays: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); watch.run(ctx) }()

	// The operations: chaosInFlight workers take the next instance to order
	// and delete.
	queue := make(chan int, len(chaosPlans))
	for i := range chaosPlans {
		queue <- i
	}
	close(queue)
	// The kills and the operations are spread over each other: instance i
	// is ordered once i*kills/instances replicas were killed (gates[k]
	// closes after kill k), so the last kills still meet operations under
	// way however long a restart takes (the router's ~10 s).
	nKills := len(backendServices) + 1
	gates := make([]chan struct{}, nKills)
	for k := range gates {
		gates[k] = make(chan struct{})
	}
	close(gates[0])
	var workers sync.WaitGroup
	opsDone := make(chan struct{})
	t0 := time.Now()
	for range chaosInFlight {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range queue {
				select {
				case <-gates[i*nKills/len(chaosPlans)]:
				case <-abort.Done():
					return
				}
				c.lifecycle(i, chaosPlans[i], planIDs[chaosPlans[i]])
			}
		}()
	}
	go func() { workers.Wait(); close(opsDone) }()
	// A phase that ends early (a failed wait) stops the workers first: no
	// operation outlives the test that logs it.
	defer func() {
		stopOps()
		ld.halt()
		<-opsDone
	}()

	// The kills: one replica of every backend service, then a gateway; for
	// the single-active services (alerting, backup, cdc) the active one.
	for i, svc := range append(append([]string{}, backendServices...), "gateway") {
		name := fmt.Sprintf("%s-%d", svc, i%2+1)
		if singleActive[svc] {
			name = sp.activeReplica(t, svc)
		}
		waitFor(t, "an operation under way before killing "+name, 10*time.Minute, func() (bool, string) {
			n, s := c.ended.Load(), c.started.Load()
			return s > n || n == int64(2*len(chaosPlans)), fmt.Sprintf("%d started, %d ended", s, n)
		})
		ended := c.ended.Load()
		inFlight := c.started.Load() - ended
		t1 := time.Now()
		gone, _ := sp.restart(t, name, syscall.SIGKILL)
		c.kills++
		if c.kills < nKills {
			close(gates[c.kills])
		}
		t.Logf("chaos: %s killed with %d operations in flight (%d ended): gone %.1fs after SIGKILL, ready again %.1fs after the kill",
			name, inFlight, ended, gone.Seconds(), time.Since(t1).Seconds())
	}
	kills := time.Since(t0)

	select {
	case <-opsDone:
	case <-time.After(15 * time.Minute):
		t.Fatalf("the chaos's operations did not end within 15m of the last kill (%d of %d ended)", c.ended.Load(), c.started.Load())
	}
	took := time.Since(t0)

	counts := map[string]int{}
	c.mu.Lock()
	ops := c.ops
	c.mu.Unlock()
	for _, op := range ops {
		counts[op.kind+" "+op.end]++
		switch {
		case op.end != "failed":
		case op.reason == "":
			t.Errorf("%s of %s (%s) failed without a reason", op.kind, op.instance, op.plan)
		default:
			// Every request of the chaos is a keyed POST, a GET or a
			// DELETE: one lost in flight to a killed replica is answered
			// 502 with Retry-After (docs/operations.md, "Crashes") and sent
			// again, so none may fail.
			t.Errorf("%s of %s (%s) failed after %.1fs: %s", op.kind, op.instance, op.plan, op.took.Seconds(), op.reason)
		}
	}
	t.Logf("chaos: %d operations in %.1fs (kills over the first %.1fs): %d ready, %d deleted, %d failed (%v); %d kills; requests %d, retried as the API allows %d, failed %d",
		len(ops), took.Seconds(), kills.Seconds(), counts["create ready"], counts["delete deleted"], counts["create failed"]+counts["delete failed"],
		counts, c.kills, ld.requests.Load(), ld.retried.Load(), ld.failed.Load())
	if want := 2 * len(chaosPlans); len(ops) < want {
		t.Errorf("%d operations ended, want %d", len(ops), want)
	}
	if n := ld.failed.Load(); n > 0 {
		t.Errorf("%d requests failed in a way the API does not mark retryable", n)
	}

	// What the run left, before deleting anything: processes, nodes,
	// reservations, outboxes.
	cancel()
	wg.Wait()
	watch.sample(time.Now())
	watch.report()
	live := checkNodes(t, db, prov, p.StateDir)
	checkReservations(t, db, prov, sched, false)
	checkOutboxes(t, db, p.DBPrefix)

	// Delete every instance still alive (an order whose answer was lost
	// may have made one), then nothing may be left.
	for _, id := range live {
		st, b := ld.send(context.Background(), http.MethodDelete, "/api/v1/instances/"+id, nil, "", http.StatusAccepted, http.StatusGone)
		t.Logf("chaos: instance %s still alive after the run: DELETE %d %.200s", id, st, b)
	}
	waitFor(t, "every instance of the chaos to be deleted", deleteTimeout, func() (bool, string) {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + prov + ".instances WHERE state <> 'deleted'").Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == 0, fmt.Sprintf("%d instances not deleted", n)
	})
	waitFor(t, "no node process left", cleanTimeout, func() (bool, string) {
		pids := nodeProcesses(p.StateDir)
		return len(pids) == 0, fmt.Sprintf("node processes %v", pids)
	})
	checkReservations(t, db, prov, sched, true)
	checkOutboxes(t, db, p.DBPrefix)
}

// chaosRun is the operations' side of the chaos.
type chaosRun struct {
	t              *testing.T
	ld             *load
	abort          context.Context // ends the operations early
	started, ended atomic.Int64
	kills          int

	mu  sync.Mutex
	ops []chaosOp
}

// lifecycle orders instance i of plan, waits until the create ends, deletes
// it (a failed one too) and waits until the delete ends.
func (c *chaosRun) lifecycle(i int, plan, planID string) {
	ctx := context.Background()
	name := fmt.Sprintf("chaos-%d-%s", i, randHex(2))
	t0 := time.Now()
	c.started.Add(1)
	st, b := c.ld.send(ctx, http.MethodPost, "/api/v1/instances", map[string]any{"name": name, "plan_id": planID}, "chaos-"+name, http.StatusAccepted)
	var acc instanceAccepted
	if st != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
		c.record(chaosOp{kind: "create", plan: plan, instance: name, end: "failed", reason: fmt.Sprintf("POST answered %d: %.300s", st, b), took: time.Since(t0)})
		return
	}
	id := acc.Instance.ID
	end, reason := c.await(acc.OperationID, readyTimeout+time.Minute)
	if end == "succeeded" {
		end = "ready"
	}
	c.record(chaosOp{kind: "create", plan: plan, instance: id, end: end, reason: reason, took: time.Since(t0)})

	t1 := time.Now()
	c.started.Add(1)
	st, b = c.ld.send(ctx, http.MethodDelete, "/api/v1/instances/"+id, nil, "", http.StatusAccepted, http.StatusGone)
	switch {
	case st == http.StatusGone: // a retried DELETE whose first attempt went through and finished
		c.record(chaosOp{kind: "delete", plan: plan, instance: id, end: "deleted", took: time.Since(t1)})
		return
	case st != http.StatusAccepted || json.Unmarshal(b, &acc) != nil:
		c.record(chaosOp{kind: "delete", plan: plan, instance: id, end: "failed", reason: fmt.Sprintf("DELETE answered %d: %.300s", st, b), took: time.Since(t1)})
		return
	}
	end, reason = c.await(acc.OperationID, deleteTimeout+time.Minute)
	if end == "succeeded" {
		end = "deleted"
	}
	c.record(chaosOp{kind: "delete", plan: plan, instance: id, end: end, reason: reason, took: time.Since(t1)})
}

// await polls operation id every 250ms until it succeeded or failed (with
// its error), or timeout passed ("failed", saying so).
func (c *chaosRun) await(id string, timeout time.Duration) (end, reason string) {
	deadline := time.Now().Add(timeout)
	var op operation
	for time.Now().Before(deadline) && c.abort.Err() == nil {
		st, b := c.ld.send(context.Background(), http.MethodGet, "/api/v1/operations/"+id, nil, "", http.StatusOK)
		if st == http.StatusOK && json.Unmarshal(b, &op) == nil {
			switch op.State {
			case "succeeded":
				return op.State, ""
			case "failed":
				return op.State, fmt.Sprintf("operation %s failed at step %q: %s", id, op.Step, op.Error)
			}
		}
		time.Sleep(250 * time.Millisecond) // the polling interval
	}
	return "failed", fmt.Sprintf("operation %s (%s) did not end within %s: %s, step %q", id, op.Type, timeout, op.State, op.Step)
}

func (c *chaosRun) record(op chaosOp) {
	c.mu.Lock()
	c.ops = append(c.ops, op)
	c.mu.Unlock()
	c.ended.Add(1)
}

// activeReplica is the replica of a single-active service (alerting,
// backup) whose /readyz answers 200.
func (sp *splitRun) activeReplica(t *testing.T, svc string) string {
	t.Helper()
	var active string
	waitFor(t, "an active replica of "+svc, time.Minute, func() (bool, string) {
		for _, r := range []string{"-1", "-2"} {
			_, env, _ := procCommand(t, sp.procs[svc+r])
			if httpOK("http://" + envValue(env, "CANOPY_"+strings.ToUpper(svc)+"_ADDR") + "/readyz") {
				active = svc + r
				return true, ""
			}
		}
		return false, "no replica ready"
	})
	return active
}

// nodeWatch samples the node processes of the run's state directory every
// 500ms and checks each against provisioning's records: no two servers of
// one node at once, and none running for long without a live node of a
// live instance (orphaned).
type nodeWatch struct {
	t           *testing.T
	db          *sql.DB
	prov, sched string
	stateDir    string

	samples  int
	strays   map[string]bool      // reservations reported
	pids     map[int]bool         // every server process seen
	suspect  map[string]time.Time // node id → first seen without a live owner
	problems []string
}

func (w *nodeWatch) run(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			w.sample(now)
		}
	}
}

// sample takes one look: the reservations of instances deleted (or never
// made) for longer than a release takes, then the servers running per node
// id (from their working directory, stateDir/nodes/<node id>/...) against
// the nodes' records.
func (w *nodeWatch) sample(now time.Time) {
	w.samples++
	var stray string
	err := w.db.QueryRow(`SELECT COALESCE(GROUP_CONCAT(DISTINCT r.instance_id), '') FROM ` + w.sched + `.reservations r
		LEFT JOIN ` + w.prov + `.instances i ON i.id = r.instance_id
		WHERE (i.id IS NULL AND r.created_at < UTC_TIMESTAMP(6) - INTERVAL 10 SECOND)
		OR (i.state = 'deleted' AND i.updated_at < UTC_TIMESTAMP(6) - INTERVAL 10 SECOND)`).Scan(&stray)
	switch {
	case err != nil:
		w.problem("read reservations: %v", err)
	case stray != "" && !w.strays[stray]:
		w.strays[stray] = true
		w.problem("reservations held 10s after their instance was deleted (or of no instance): %s", stray)
	}
	nodes := filepath.Join(w.stateDir, "nodes") + string(filepath.Separator)
	byNode := map[string][]int{}
	for _, pid := range serverProcesses(w.stateDir) {
		cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
		if err != nil {
			continue // gone since
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(cwd, nodes), string(filepath.Separator))
		byNode[id] = append(byNode[id], pid)
		w.pids[pid] = true
	}
	if len(byNode) == 0 {
		clear(w.suspect)
		return
	}
	ids := make([]any, 0, len(byNode))
	for id, pids := range byNode {
		ids = append(ids, id)
		if len(pids) > 1 {
			w.problem("node %s runs %d servers at once: pids %v", id, len(pids), pids)
		}
	}
	rows, err := w.db.Query("SELECT n.id, n.state, i.state FROM "+w.prov+".nodes n JOIN "+w.prov+".instances i ON i.id = n.instance_id WHERE n.id IN (?"+strings.Repeat(", ?", len(ids)-1)+")", ids...)
	if err != nil {
		w.problem("read nodes: %v", err)
		return
	}
	owned := map[string]bool{}
	for rows.Next() {
		var id, nodeState, instState string
		if err := rows.Scan(&id, &nodeState, &instState); err != nil {
			w.problem("read nodes: %v", err)
			break
		}
		owned[id] = nodeState != "destroyed" && instState != "deleted"
	}
	rows.Close()
	for id, pids := range byNode {
		if owned[id] {
			delete(w.suspect, id)
			continue
		}
		first, ok := w.suspect[id]
		if !ok {
			w.suspect[id] = now
			continue
		}
		if now.Sub(first) >= orphanAfter {
			w.problem("node %s (pids %v) has run for %.1fs without a live node of a live instance: orphaned", id, pids, now.Sub(first).Seconds())
			w.suspect[id] = now.Add(time.Hour) // said once
		}
	}
	for id := range w.suspect {
		if _, ok := byNode[id]; !ok {
			delete(w.suspect, id)
		}
	}
}

func (w *nodeWatch) problem(format string, args ...any) {
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

func (w *nodeWatch) report() {
	w.t.Logf("chaos: node processes sampled %d times, %d server processes seen", w.samples, len(w.pids))
	for _, p := range w.problems {
		w.t.Error(p)
	}
}

// checkNodes checks provisioning's records of the run against the running
// servers, once every instance's operation ended: each instance has no
// nodes yet or exactly its plan's, no two under one name and at most one
// primary among those not destroyed; a ready instance runs one server per
// node and a failed one none; every server belongs to a node of a live
// instance. It returns the live (not deleted) instances.
func checkNodes(t *testing.T, db *sql.DB, prov, stateDir string) (live []string) {
	t.Helper()
	type inst struct {
		state        string
		plan         int
		nodes, names int
		primaries    int
		running      int
	}
	insts := map[string]*inst{}
	rows, err := db.Query(`SELECT i.id, i.state, JSON_LENGTH(i.plan, '$.nodes'),
		COUNT(n.id), COUNT(DISTINCT n.name), COALESCE(SUM(n.role = 'primary' AND n.state <> 'destroyed'), 0)
		FROM ` + prov + `.instances i LEFT JOIN ` + prov + `.nodes n ON n.instance_id = i.id GROUP BY i.id, i.state, i.plan`)
	if err != nil {
		t.Fatalf("read instances and nodes: %v", err)
	}
	for rows.Next() {
		var id string
		in := &inst{}
		if err := rows.Scan(&id, &in.state, &in.plan, &in.nodes, &in.names, &in.primaries); err != nil {
			t.Fatalf("read instances and nodes: %v", err)
		}
		insts[id] = in
	}
	rows.Close()

	nodeOf := map[string]string{} // node id → instance id
	rows, err = db.Query("SELECT id, instance_id FROM " + prov + ".nodes")
	if err != nil {
		t.Fatalf("read nodes: %v", err)
	}
	for rows.Next() {
		var id, instID string
		if err := rows.Scan(&id, &instID); err != nil {
			t.Fatalf("read nodes: %v", err)
		}
		nodeOf[id] = instID
	}
	rows.Close()
	nodes := filepath.Join(stateDir, "nodes") + string(filepath.Separator)
	perNode := map[string]int{}
	for _, pid := range serverProcesses(stateDir) {
		cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
		if err != nil {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(cwd, nodes), string(filepath.Separator))
		perNode[id]++
		in := insts[nodeOf[id]]
		switch {
		case in == nil:
			t.Errorf("server pid %d (%s) belongs to no recorded node: orphaned", pid, cwd)
		case in.state == "deleted":
			t.Errorf("server pid %d of node %s runs for deleted instance %s: orphaned", pid, id, nodeOf[id])
		default:
			in.running++
		}
	}

	var states []string
	for id, in := range insts {
		if in.state != "deleted" {
			live = append(live, id)
		}
		states = append(states, in.state)
		if in.nodes != 0 && in.nodes != in.plan {
			t.Errorf("instance %s (%s) has %d nodes recorded, its plan %d: duplicate or missing nodes", id, in.state, in.nodes, in.plan)
		}
		if in.names != in.nodes {
			t.Errorf("instance %s has %d nodes under %d names", id, in.nodes, in.names)
		}
		if in.primaries > 1 {
			t.Errorf("instance %s has %d primaries", id, in.primaries)
		}
		switch in.state {
		case "ready":
			if in.running != in.plan {
				t.Errorf("ready instance %s runs %d servers, its plan %d nodes", id, in.running, in.plan)
			}
		case "failed", "deleted":
			if in.running != 0 {
				t.Errorf("%s instance %s runs %d servers", in.state, id, in.running)
			}
		}
	}
	for id, n := range perNode {
		if n > 1 {
			t.Errorf("node %s runs %d servers", id, n)
		}
	}
	sort.Strings(states)
	t.Logf("chaos: %d instances recorded (%s), %d live, %d servers running", len(insts), strings.Join(compact(states), ", "), len(live), len(perNode))
	return live
}

// compact counts runs of equal sorted strings: [a a b] → [a×2 b×1].
func compact(sorted []string) []string {
	var out []string
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j] == sorted[i] {
			j++
		}
		out = append(out, fmt.Sprintf("%s×%d", sorted[i], j-i))
		i = j
	}
	return out
}

// checkReservations checks scheduling's reservations against
// provisioning's instances, within cleanTimeout (a release follows a delete
// through an event): every reservation is of a node of a live instance, and
// every ready instance has one per node. With empty, none may be left.
func checkReservations(t *testing.T, db *sql.DB, prov, sched string, empty bool) {
	t.Helper()
	waitFor(t, "every reservation to match a live instance", cleanTimeout, func() (bool, string) {
		var stray, missing, total int
		err := db.QueryRow(`SELECT COUNT(*),
			COALESCE(SUM(NOT EXISTS (SELECT 1 FROM `+prov+`.instances i JOIN `+prov+`.nodes n ON n.instance_id = i.id
				WHERE i.id = r.instance_id AND n.name = r.node_name AND i.state <> 'deleted')), 0)
			FROM `+sched+`.reservations r`).Scan(&total, &stray)
		if err != nil {
			return false, err.Error()
		}
		err = db.QueryRow(`SELECT COUNT(*) FROM ` + prov + `.instances i JOIN ` + prov + `.nodes n ON n.instance_id = i.id
			WHERE i.state = 'ready' AND NOT EXISTS (SELECT 1 FROM ` + sched + `.reservations r WHERE r.instance_id = i.id AND r.node_name = n.name)`).Scan(&missing)
		if err != nil {
			return false, err.Error()
		}
		if empty && total > 0 {
			return false, fmt.Sprintf("%d reservations left", total)
		}
		return stray == 0 && missing == 0, fmt.Sprintf("%d reservations, %d of no live instance's node, %d nodes of ready instances without one", total, stray, missing)
	})
}

// checkOutboxes waits until no outbox of the run's databases holds an
// unsent event, and logs how long that took.
func checkOutboxes(t *testing.T, db *sql.DB, prefix string) {
	t.Helper()
	var dbs []string
	rows, err := db.Query("SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox' AND table_schema LIKE ?", strings.ReplaceAll(prefix, "_", `\_`)+"%")
	if err != nil {
		t.Fatalf("find the outboxes: %v", err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, s)
	}
	rows.Close()
	if len(dbs) == 0 {
		t.Fatalf("no outbox in any database %s*", prefix)
	}
	t0 := time.Now()
	waitFor(t, "every outbox to be drained", cleanTimeout, func() (bool, string) {
		var left []string
		for _, s := range dbs {
			var n int
			if err := db.QueryRow("SELECT COUNT(*) FROM `" + s + "`.outbox WHERE sent_at IS NULL").Scan(&n); err != nil {
				return false, err.Error()
			}
			if n > 0 {
				left = append(left, fmt.Sprintf("%s: %d", s, n))
			}
		}
		return len(left) == 0, "unsent: " + strings.Join(left, ", ")
	})
	t.Logf("chaos: %d outboxes drained (%.1fs)", len(dbs), time.Since(t0).Seconds())
}
