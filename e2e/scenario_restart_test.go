package e2e

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// TestScenarioRestartKeepsInstances restarts the platform (SIGTERM, start
// again on the same state directory and databases) under running instances:
// the nodes keep running (the same processes), the instances stay ready with
// their data, bindings made before the restart still work, the health
// checker finds every node up again, and new bindings and the deletes work.
// It runs on a platform of its own, so the restart disturbs no other
// scenario.
func TestScenarioRestartKeepsInstances(t *testing.T) {
	p := ownPlatform(t)
	admin := p.admin(t)
	start := time.Now()
	before := admin.allocation()
	tenant := p.newTenant(t, "restart-"+randHex(3), "tenant-admin")

	plans := []string{"mysql-ha-multi-az", "redis-ha-multi-az"}
	var created []instanceAccepted
	for i, plan := range plans {
		var acc instanceAccepted
		tenant.must("POST", "/api/v1/instances", map[string]any{"name": []string{"db", "kv"}[i], "plan_id": tenant.planID(plan)}, http.StatusAccepted, &acc)
		id := acc.Instance.ID
		t.Cleanup(func() { bestEffortDelete(t, admin, id) })
		created = append(created, acc)
	}
	insts := make([]instance, len(created))
	bindings := make([]binding, len(created))
	for i, acc := range created {
		waitOperation(t, tenant, acc.OperationID, readyTimeout)
		tenant.must("GET", "/api/v1/instances/"+acc.Instance.ID, nil, http.StatusOK, &insts[i])
		tenant.must("POST", "/api/v1/instances/"+acc.Instance.ID+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &bindings[i])
	}
	mysqlInst, redisInst := insts[0], insts[1]
	checkMySQLData(t, mysqlInst, bindings[0])
	checkRedisData(t, redisInst, bindings[1])
	pids := serverProcesses(p.StateDir)
	slices.Sort(pids)

	p.restart(t)

	// The same node processes run: they were adopted, not restarted.
	after := serverProcesses(p.StateDir)
	slices.Sort(after)
	if !slices.Equal(pids, after) {
		t.Errorf("tenant node processes changed across the platform's restart: before %v, after %v", pids, after)
	}
	for i, inst := range insts {
		var now instance
		tenant.must("GET", "/api/v1/instances/"+inst.ID, nil, http.StatusOK, &now)
		if now.State != "ready" || now.Endpoints.Primary != inst.Endpoints.Primary {
			t.Errorf("instance %s after the restart: state %q primary %s, before: ready %s", inst.ID, now.State, now.Endpoints.Primary, inst.Endpoints.Primary)
		}
		waitAllUp(t, tenant, inst)
		// The binding made before the restart still reads what it wrote.
		checkStillReadable(t, inst, bindings[i])
	}
	// Provisioning can still act on the nodes: bindings, and deletes.
	checkRevoke(t, tenant, mysqlInst, mysqlSession)
	checkRevoke(t, tenant, redisInst, redisSession)
	for _, inst := range insts {
		var acc instanceAccepted
		tenant.must("DELETE", "/api/v1/instances/"+inst.ID, nil, http.StatusAccepted, &acc)
		waitOperation(t, tenant, acc.OperationID, deleteTimeout)
	}
	checkNothingLeft(t, p, tenant, admin, before, insts)
	t.Logf("scenario total %.2fs", time.Since(start).Seconds())
}

// checkStillReadable reads, on every node, what checkMySQLData or
// checkRedisData wrote through binding b before.
func checkStillReadable(t *testing.T, inst instance, b binding) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	for _, addr := range append([]string{inst.Endpoints.Primary}, inst.Endpoints.Replicas...) {
		var err error
		switch inst.Engine {
		case "mysql":
			cfg := mysql.NewConfig()
			cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = b.Credentials.Username, b.Credentials.Password, "tcp", addr, b.Credentials.Database
			cfg.Timeout = 5 * time.Second
			var connector driver.Connector
			if connector, err = mysql.NewConnector(cfg); err == nil {
				db := sql.OpenDB(connector)
				var n int
				err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM e2e_items").Scan(&n)
				db.Close()
			}
		case "redis":
			rdb := redis.NewClient(&redis.Options{Addr: addr, Username: b.Credentials.Username, Password: b.Credentials.Password, MaxRetries: -1})
			err = rdb.Get(ctx, "e2e:key").Err()
			rdb.Close()
		}
		if err != nil {
			t.Errorf("%s node %s after the restart: the binding made before cannot read its data: %v", inst.Engine, addr, err)
		}
	}
}
