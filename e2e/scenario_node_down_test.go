package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestScenarioNodeDownThenDelete hangs a replica of a multi-az MySQL and of
// a multi-az Redis (SIGSTOP): the health checker reports that node down with
// a reason while the others stay up, and up again once it continues; then
// kills it (kill -9, as a crash would): the driver restarts it and it is
// reported up again on its own. Deleting the instances still works and
// leaves nothing behind.
func TestScenarioNodeDownThenDelete(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	start := time.Now()
	before := admin.allocation()
	tenant := p.newTenant(t, "crash-"+randHex(3), "tenant-admin")

	var insts []instance
	for i, plan := range []string{"mysql-ha-multi-az", "redis-ha-multi-az"} {
		var acc instanceAccepted
		tenant.must("POST", "/api/v1/instances", map[string]any{"name": []string{"db", "kv"}[i], "plan_id": tenant.planID(plan)}, http.StatusAccepted, &acc)
		id := acc.Instance.ID
		t.Cleanup(func() { bestEffortDelete(t, admin, id) })
		waitOperation(t, tenant, acc.OperationID, readyTimeout)
		var inst instance
		tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
		insts = append(insts, inst)
	}
	for _, inst := range insts {
		waitAllUp(t, tenant, inst)
	}

	// The process of a node is not in the API: it is the one working in the
	// node's directory (the local driver starts it there).
	for _, inst := range insts {
		var victim string
		for _, n := range inst.Nodes {
			if n.Role == "replica" {
				victim = n.ID
				break
			}
		}
		pid := nodePID(p.StateDir, victim)
		if pid == 0 {
			t.Fatalf("no process works in the directory of node %s of %s", victim, inst.ID)
		}
		// A hung node (SIGSTOP): its process lives on, so the driver's
		// supervisor leaves it alone, and only the health checker's probes
		// (timing out) tell that it is down.
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("stop node %s (pid %d): %v", victim, pid, err)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
		t0 := time.Now()
		waitHealth(t, tenant, inst, victim, "down")
		t.Logf("%s replica hung: reported down after %.2fs", inst.Engine, time.Since(t0).Seconds())
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatalf("continue node %s (pid %d): %v", victim, pid, err)
		}
		waitHealth(t, tenant, inst, victim, "up")

		// A crashed node (kill -9): the supervisor starts it again, and it
		// is back, replicating, without anyone's help.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill node %s (pid %d): %v", victim, pid, err)
		}
		t0 = time.Now()
		waitFor(t, "a new process for node "+victim+" after kill -9", healthTimeout, func() (bool, string) {
			np := nodePID(p.StateDir, victim)
			return np != 0 && np != pid, fmt.Sprintf("pid %d", np)
		})
		waitHealth(t, tenant, inst, victim, "up")
		t.Logf("%s replica killed: restarted and up after %.2fs", inst.Engine, time.Since(t0).Seconds())
	}

	for _, inst := range insts {
		var acc instanceAccepted
		tenant.must("DELETE", "/api/v1/instances/"+inst.ID, nil, http.StatusAccepted, &acc)
		waitOperation(t, tenant, acc.OperationID, deleteTimeout)
	}
	checkNothingLeft(t, p, tenant, admin, before, insts)
	t.Logf("scenario total %.2fs", time.Since(start).Seconds())
}

// waitHealth waits until the health checker reports node victim of inst
// with status (with a reason when down) and every other node up.
func waitHealth(t *testing.T, c *client, inst instance, victim, status string) {
	t.Helper()
	waitFor(t, "the health checker to report node "+victim+" of "+inst.Engine+" instance "+inst.ID+" "+status+", the others up", healthTimeout, func() (bool, string) {
		var h instanceHealth
		if err := c.call("GET", "/api/v1/instances/"+inst.ID+"/health", nil, http.StatusOK, &h); err != nil {
			return false, err.Error()
		}
		ok := len(h.Nodes) == len(inst.Nodes)
		var seen []string
		for _, n := range h.Nodes {
			seen = append(seen, fmt.Sprintf("%s=%s %s", n.ID, n.Status, n.Reason))
			if n.ID == victim {
				ok = ok && n.Status == status && (status != "down" || n.Reason != "")
			} else {
				ok = ok && n.Status == "up"
			}
		}
		return ok, strings.Join(seen, ", ")
	})
}

// nodePID is the pid of the process working in the directory of node id, 0
// when none.
func nodePID(stateDir, id string) int {
	dir := filepath.Join(stateDir, "nodes", id)
	for _, pid := range nodeProcesses(stateDir) {
		cwd, err := os.Readlink(filepath.Join("/proc", fmt.Sprint(pid), "cwd"))
		if err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+string(filepath.Separator))) {
			return pid
		}
	}
	return 0
}
