package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// Deadlines of the instance scenario. Generous against a loaded 2-core
// machine; on an idle one every wait ends in a fraction of them.
const (
	readyTimeout      = 3 * time.Minute
	replicaTimeout    = 20 * time.Second
	healthTimeout     = 45 * time.Second
	deleteTimeout     = 2 * time.Minute
	cleanTimeout      = 30 * time.Second
	releaseTimeout    = 30 * time.Second
	operationInterval = 100 * time.Millisecond
)

// TestScenarioMySQLAndRedisLifecycle walks README's quick start through the
// public gateway: a tenant orders a multi-az MySQL and a multi-az Redis,
// waits for them, binds, writes on the primary and reads on every replica,
// sees every node up, and deletes them; afterwards no node process, port,
// data directory or capacity reservation is left, and a second tenant never
// sees any of it.
func TestScenarioMySQLAndRedisLifecycle(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	start := time.Now()
	phase := func(name string, since time.Time) { t.Logf("%-28s %6.2fs", name, time.Since(since).Seconds()) }

	// The contract is served without a key.
	if status, body, err := p.client(t, "").do("GET", "/api/v1/openapi.yaml", nil); err != nil || status != http.StatusOK || !strings.Contains(string(body), "openapi: 3.0.3") {
		t.Errorf("GET /api/v1/openapi.yaml without a key: %d %v %.100s", status, err, body)
	}

	before := admin.allocation()
	if len(before) == 0 {
		t.Fatal("the inventory has no hosts")
	}
	suffix := randHex(3)
	acmeID := "acme-" + suffix
	acme := p.newTenant(t, acmeID, "tenant-admin")
	globex := p.newTenant(t, "globex-"+suffix, "tenant-admin")

	// Order both; they are created side by side.
	t0 := time.Now()
	orders := []struct{ name, plan, engine string }{
		{"orders", "mysql-ha-multi-az", "mysql"},
		{"sessions", "redis-ha-multi-az", "redis"},
	}
	var created []instanceAccepted
	for _, o := range orders {
		var acc, again instanceAccepted
		order := map[string]any{"name": o.name, "plan_id": acme.planID(o.plan)}
		idem := acme.with("Idempotency-Key", "e2e-"+o.name+"-"+suffix)
		idem.must("POST", "/api/v1/instances", order, http.StatusAccepted, &acc)
		if acc.Instance.ID == "" || acc.OperationID == "" {
			t.Fatalf("order of %s: no instance or operation id in %+v", o.plan, acc)
		}
		// A retried order (same Idempotency-Key) is the same order.
		idem.must("POST", "/api/v1/instances", order, http.StatusAccepted, &again)
		if again.Instance.ID != acc.Instance.ID || again.OperationID != acc.OperationID {
			t.Errorf("retried order of %s with the same Idempotency-Key: instance %s op %s, first was %s op %s",
				o.plan, again.Instance.ID, again.OperationID, acc.Instance.ID, acc.OperationID)
		}
		created = append(created, acc)
		id := acc.Instance.ID
		// A failed scenario still removes what it ordered, so no node
		// outlives the run; the platform's stop reports any that does.
		t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	}
	for _, acc := range created {
		waitOperation(t, acme, acc.OperationID, readyTimeout)
	}
	phase("order → ready (both)", t0)

	insts := make([]instance, len(created))
	for i, acc := range created {
		acme.must("GET", "/api/v1/instances/"+acc.Instance.ID, nil, http.StatusOK, &insts[i])
		checkTopology(t, insts[i], orders[i].engine)
		for _, n := range insts[i].Nodes {
			if n.Port < p.PortsFrom || n.Port > p.PortsTo || n.Address != fmt.Sprintf("127.0.0.1:%d", n.Port) {
				t.Errorf("node %s of %s listens on %s (port %d), outside the inventory's ports %d-%d", n.Name, insts[i].ID, n.Address, n.Port, p.PortsFrom, p.PortsTo)
			}
		}
	}
	mysqlInst, redisInst := insts[0], insts[1]

	// The reservations are visible in the inventory while the instances run.
	during := admin.allocation()
	if got, was := total(during), total(before); got.VCPU <= was.VCPU || got.MemoryMB <= was.MemoryMB {
		t.Errorf("inventory allocation did not grow with 6 running nodes: before %+v, now %+v", was, got)
	}

	// Scheduling holds a reservation per instance, confirmed once the
	// instance's ready event reaches it (asynchronously, over Kafka).
	for _, inst := range insts {
		waitFor(t, "the placement of "+inst.ID+" to be confirmed with its 3 nodes", releaseTimeout, func() (bool, string) {
			var pl placement
			if err := admin.call("GET", "/api/v1/placements/"+inst.ID, nil, http.StatusOK, &pl); err != nil {
				return false, err.Error()
			}
			return pl.Status == "confirmed" && len(pl.Nodes) == len(inst.Nodes), fmt.Sprintf("%s with %d nodes", pl.Status, len(pl.Nodes))
		})
	}

	// Bindings, and data through them: written on the primary, read on every replica.
	t0 = time.Now()
	var mb, rb binding
	acme.must("POST", "/api/v1/instances/"+mysqlInst.ID+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &mb)
	acme.must("POST", "/api/v1/instances/"+redisInst.ID+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &rb)
	checkMySQLData(t, mysqlInst, mb)
	checkRedisData(t, redisInst, rb)
	phase("bind, write, read replicas", t0)

	// A revoked binding's user is gone from every node, with its open sessions.
	t0 = time.Now()
	checkRevoke(t, acme, mysqlInst, mysqlSession)
	checkRevoke(t, acme, redisInst, redisSession)
	phase("revoke a binding", t0)

	// Parameters: a change reaches every node; a setting that is not tunable is refused.
	t0 = time.Now()
	checkParameters(t, acme, mysqlInst, mb)
	phase("change parameters", t0)

	// Health: every node up, as the health checker sees it.
	t0 = time.Now()
	for _, inst := range insts {
		waitAllUp(t, acme, inst)
	}
	phase("health: every node up", t0)

	// What the deletion must remove is there now (so its absence later means something).
	for _, inst := range insts {
		for _, n := range inst.Nodes {
			if _, err := os.Stat(filepath.Join(p.StateDir, "nodes", n.ID)); err != nil {
				t.Errorf("node %s of %s has no data directory under the state dir: %v", n.ID, inst.ID, err)
			}
		}
	}
	if pids := nodeProcesses(p.StateDir); len(pids) != 6 {
		t.Errorf("want 6 tenant node processes working under %s/nodes, found %v", p.StateDir, pids)
	}

	// The health checker probes all six nodes.
	if n := len(healthTargetsOf(t, admin, insts)); n != 6 {
		t.Errorf("the health checker has %d targets for the two instances, want 6", n)
	}

	// Another tenant sees none of it.
	checkInvisible(t, globex, created)

	// Without a valid key nothing is answered but 401.
	for _, key := range []string{"", "cnp_01m8vjpmk92r2cqmh2zr5wqsdq_" + strings.Repeat("a", 52), "not-a-key"} {
		p.client(t, key).mustProblem("GET", "/api/v1/instances/"+mysqlInst.ID, nil, http.StatusUnauthorized)
	}

	// Roles and fleet access on the same instances.
	checkRoles(t, p, acmeID, acme, admin, insts)

	// Delete both, and nothing is left.
	t0 = time.Now()
	var deletes []string
	for _, inst := range insts {
		var acc instanceAccepted
		acme.must("DELETE", "/api/v1/instances/"+inst.ID, nil, http.StatusAccepted, &acc)
		deletes = append(deletes, acc.OperationID)
	}
	for _, op := range deletes {
		waitOperation(t, acme, op, deleteTimeout)
	}
	phase("delete → deleted (both)", t0)
	for _, inst := range insts {
		acme.mustProblem("DELETE", "/api/v1/instances/"+inst.ID, nil, http.StatusGone)
		if status, body, err := acme.do("POST", "/api/v1/instances/"+inst.ID+"/bindings", map[string]any{"name": "late"}); err != nil || (status != http.StatusConflict && status != http.StatusGone && status != http.StatusNotFound) {
			t.Errorf("binding on deleted instance %s: want 409, 410 or 404, got %d %v %.300s", inst.ID, status, err, body)
		}
	}
	t0 = time.Now()
	checkNothingLeft(t, p, acme, admin, before, insts)
	phase("nothing left", t0)
	phase("scenario total", start)
}

// waitOperation polls an operation until it succeeds; failing fails the test.
func waitOperation(t *testing.T, c *client, id string, timeout time.Duration) {
	t.Helper()
	waitFor(t, "operation "+id+" to succeed", timeout, func() (bool, string) {
		var op operation
		if err := c.call("GET", "/api/v1/operations/"+id, nil, http.StatusOK, &op); err != nil {
			return false, err.Error()
		}
		if op.State == "failed" {
			t.Fatalf("operation %s (%s) failed at step %q: %s", id, op.Type, op.Step, op.Error)
		}
		return op.State == "succeeded", fmt.Sprintf("%s %s, step %q", op.Type, op.State, op.Step)
	})
}

// checkTopology checks a ready multi-az instance: a primary and two
// replicas, each in its own AZ and on its own host, with endpoints.
func checkTopology(t *testing.T, inst instance, engine string) {
	t.Helper()
	if inst.State != "ready" || inst.Engine != engine {
		t.Fatalf("instance %s: want a ready %s instance, got state %q engine %q (%s)", inst.ID, engine, inst.State, inst.Engine, inst.Reason)
	}
	roles := map[string]int{}
	azs, hosts := map[string]bool{}, map[string]bool{}
	for _, n := range inst.Nodes {
		roles[n.Role]++
		azs[n.AZ], hosts[n.Host] = true, true
		if n.State != "running" || n.Address == "" {
			t.Errorf("instance %s node %s: want running with an address, got %q %q", inst.ID, n.Name, n.State, n.Address)
		}
	}
	if len(inst.Nodes) != 3 || roles["primary"] != 1 || roles["replica"] != 2 {
		t.Fatalf("instance %s: want a primary and 2 replicas, got %d nodes with roles %v", inst.ID, len(inst.Nodes), roles)
	}
	if len(azs) != 3 || len(hosts) != 3 {
		t.Errorf("instance %s: multi-az wants 3 AZs and 3 hosts, got %d AZs and %d hosts", inst.ID, len(azs), len(hosts))
	}
	if inst.Endpoints.Primary == "" || len(inst.Endpoints.Replicas) != 2 {
		t.Fatalf("instance %s: want a primary and 2 replica endpoints, got %+v", inst.ID, inst.Endpoints)
	}
}

// checkBinding checks that the credentials point at the router's
// read-write endpoint, the instance's stable address for its primary.
func checkBinding(t *testing.T, inst instance, b binding) {
	t.Helper()
	c := b.Credentials
	if c.Username == "" || c.Password == "" || c.URI == "" {
		t.Fatalf("binding of %s: incomplete credentials (username %q, password set %v, uri set %v)", inst.ID, c.Username, c.Password != "", c.URI != "")
	}
	if got := net.JoinHostPort(c.Host, fmt.Sprint(c.Port)); got != inst.Endpoints.RW || got != c.Endpoints.RW {
		t.Errorf("binding of %s points at %s, the rw endpoint is %s (credentials' endpoints %+v)", inst.ID, got, inst.Endpoints.RW, c.Endpoints)
	}
}

// checkMySQLData creates a table and a row on the primary with the
// binding's credentials, reads the row on every replica within a deadline,
// and checks that a replica refuses the binding's writes.
func checkMySQLData(t *testing.T, inst instance, b binding) {
	t.Helper()
	checkBinding(t, inst, b)
	open := func(addr string) *sql.DB {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = b.Credentials.Username, b.Credentials.Password, "tcp", addr, b.Credentials.Database
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 10*time.Second, 10*time.Second
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(conn)
		t.Cleanup(func() { db.Close() })
		return db
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	primary := open(inst.Endpoints.Primary)
	token := "e2e-" + randHex(8)
	for _, q := range []string{
		"CREATE TABLE e2e_items (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL)",
		"INSERT INTO e2e_items (id, v) VALUES (1, '" + token + "')",
	} {
		if _, err := primary.ExecContext(ctx, q); err != nil {
			t.Fatalf("mysql primary %s as %s: %s: %v", inst.Endpoints.Primary, b.Credentials.Username, q, err)
		}
	}
	for _, addr := range inst.Endpoints.Replicas {
		replica := open(addr)
		waitFor(t, "the row written on the primary to be read on mysql replica "+addr, replicaTimeout, func() (bool, string) {
			var v string
			err := replica.QueryRowContext(ctx, "SELECT v FROM e2e_items WHERE id = 1").Scan(&v)
			if err != nil {
				return false, err.Error()
			}
			return v == token, "read " + v
		})
		if _, err := replica.ExecContext(ctx, "INSERT INTO e2e_items (id, v) VALUES (2, 'x')"); err == nil {
			t.Errorf("mysql replica %s accepted a write from the binding's user", addr)
		}
	}
	// The binding's user is confined to the instance's application database.
	var n int
	if err := primary.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user").Scan(&n); err == nil {
		t.Errorf("the binding's user %s can read mysql.user on %s", b.Credentials.Username, inst.Endpoints.Primary)
	}
}

// checkRedisData SETs a key on the primary with the binding's ACL user and
// GETs it on every replica within a deadline.
func checkRedisData(t *testing.T, inst instance, b binding) {
	t.Helper()
	checkBinding(t, inst, b)
	open := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, Username: b.Credentials.Username, Password: b.Credentials.Password,
			DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1, PoolSize: 2})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	token := "e2e-" + randHex(8)
	primary := open(inst.Endpoints.Primary)
	if err := primary.Set(ctx, "e2e:key", token, 0).Err(); err != nil {
		t.Fatalf("redis primary %s as %s: SET: %v", inst.Endpoints.Primary, b.Credentials.Username, err)
	}
	// Data commands only: no administration.
	if err := primary.ConfigGet(ctx, "maxmemory").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("redis primary %s: CONFIG GET as the binding's user %s: want NOPERM, got %v", inst.Endpoints.Primary, b.Credentials.Username, err)
	}
	for _, addr := range inst.Endpoints.Replicas {
		replica := open(addr)
		waitFor(t, "the key set on the primary to be read on redis replica "+addr, replicaTimeout, func() (bool, string) {
			v, err := replica.Get(ctx, "e2e:key").Result()
			if err != nil {
				return false, err.Error()
			}
			return v == token, "read " + v
		})
	}
}

// checkParameters changes a MySQL instance's max_connections, waits for the
// update operation and reads the value on every node through the binding;
// a setting the engine does not allow is 422 naming it and changes nothing.
func checkParameters(t *testing.T, c *client, inst instance, b binding) {
	t.Helper()
	p := c.mustProblem("PATCH", "/api/v1/instances/"+inst.ID, map[string]any{"parameters": map[string]any{"datadir": "/tmp"}}, http.StatusUnprocessableEntity)
	// The plan's schema refuses it first, as an additional property of `parameters`.
	if len(p.Errors) == 0 || !strings.HasPrefix(p.Errors[0].Field, "parameters") || !strings.Contains(p.Errors[0].Field+p.Errors[0].Reason, "datadir") {
		t.Errorf("PATCH with datadir: want errors[] naming parameters and datadir, got %+v", p.Errors)
	}
	var acc instanceAccepted
	c.must("PATCH", "/api/v1/instances/"+inst.ID, map[string]any{"parameters": map[string]any{"max_connections": 321}}, http.StatusAccepted, &acc)
	waitOperation(t, c, acc.OperationID, deleteTimeout)
	var now instance
	c.must("GET", "/api/v1/instances/"+inst.ID, nil, http.StatusOK, &now)
	if now.State != "ready" {
		t.Errorf("instance %s after the update: state %q", inst.ID, now.State)
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	for _, addr := range append([]string{inst.Endpoints.Primary}, inst.Endpoints.Replicas...) {
		s, err := mysqlSession(ctx, addr, b)
		if err != nil {
			t.Fatalf("mysql node %s: %v", addr, err)
		}
		var v int
		err = s.(mysqlConn).conn.QueryRowContext(ctx, "SELECT @@GLOBAL.max_connections").Scan(&v)
		s.close()
		if err != nil || v != 321 {
			t.Errorf("mysql node %s after the update: max_connections %d (%v), want 321", addr, v, err)
		}
	}
}

// session is one open connection of a binding's user to one node.
type session interface {
	// ping runs a trivial command on the connection.
	ping(ctx context.Context) error
	close()
}

// opener opens a session to addr with a binding's credentials.
type opener func(ctx context.Context, addr string, b binding) (session, error)

type mysqlConn struct {
	db   *sql.DB
	conn *sql.Conn
}

func (m mysqlConn) ping(ctx context.Context) error {
	var one int
	return m.conn.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}
func (m mysqlConn) close() { m.conn.Close(); m.db.Close() }

func mysqlSession(ctx context.Context, addr string, b binding) (session, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = b.Credentials.Username, b.Credentials.Password, "tcp", addr, b.Credentials.Database
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	cfg.Logger = log.New(io.Discard, "", 0) // the killed sessions' EOFs are expected
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := mysqlConn{db: db, conn: conn}
	if err := s.ping(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

type redisConn struct {
	rdb  *redis.Client
	conn *redis.Conn
}

func (r redisConn) ping(ctx context.Context) error { return r.conn.Get(ctx, "e2e:key").Err() }
func (r redisConn) close()                         { r.conn.Close(); r.rdb.Close() }

func redisSession(ctx context.Context, addr string, b binding) (session, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, Username: b.Credentials.Username, Password: b.Credentials.Password,
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1, PoolSize: 1})
	s := redisConn{rdb: rdb, conn: rdb.Conn()}
	if err := s.ping(ctx); err != nil && !errors.Is(err, redis.Nil) {
		s.close()
		return nil, err
	}
	return s, nil
}

// checkRevoke creates a binding, holds a session of its user on every node,
// deletes the binding and checks that every held session ends and that no
// node accepts the credentials any more.
func checkRevoke(t *testing.T, c *client, inst instance, open opener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*replicaTimeout)
	defer cancel()
	var b binding
	c.must("POST", "/api/v1/instances/"+inst.ID+"/bindings", map[string]any{"name": "short-lived"}, http.StatusCreated, &b)
	addrs := append([]string{inst.Endpoints.Primary}, inst.Endpoints.Replicas...)
	held := map[string]session{}
	for _, addr := range addrs {
		// On a MySQL replica the user exists once the CREATE USER replicated.
		waitFor(t, "a session of binding "+b.Username+" on "+inst.Engine+" node "+addr, replicaTimeout, func() (bool, string) {
			s, err := open(ctx, addr, b)
			if err != nil {
				return false, err.Error()
			}
			held[addr] = s
			return true, ""
		})
		t.Cleanup(held[addr].close)
	}
	c.must("DELETE", "/api/v1/instances/"+inst.ID+"/bindings/"+b.ID, nil, http.StatusNoContent, nil)
	c.mustProblem("GET", "/api/v1/instances/"+inst.ID+"/bindings/"+b.ID, nil, http.StatusNotFound)
	for _, addr := range addrs {
		if err := held[addr].ping(ctx); err == nil || errors.Is(err, redis.Nil) {
			t.Errorf("%s node %s: a session of the revoked binding %s still works after the DELETE answered", inst.Engine, addr, b.Username)
		}
		waitFor(t, inst.Engine+" node "+addr+" to refuse the revoked binding "+b.Username, replicaTimeout, func() (bool, string) {
			s, err := open(ctx, addr, b)
			if err != nil {
				return true, ""
			}
			s.close()
			return false, "a new session was accepted"
		})
	}
}

// waitAllUp waits until the health checker reports every node of inst up.
func waitAllUp(t *testing.T, c *client, inst instance) {
	t.Helper()
	waitFor(t, "every node of "+inst.Engine+" instance "+inst.ID+" to be up", healthTimeout, func() (bool, string) {
		var h instanceHealth
		if err := c.call("GET", "/api/v1/instances/"+inst.ID+"/health", nil, http.StatusOK, &h); err != nil {
			return false, err.Error()
		}
		var seen []string
		up := 0
		for _, n := range h.Nodes {
			seen = append(seen, fmt.Sprintf("%s(%s)=%s %s", n.Address, n.Role, n.Status, n.Reason))
			if n.Status == "up" {
				up++
			}
		}
		return len(h.Nodes) == len(inst.Nodes) && up == len(h.Nodes), strings.Join(seen, ", ")
	})
}

// checkRoles checks, on a tenant's ready instances, what a tenant-viewer and
// a platform-admin may do: the viewer reads but changes nothing (403); the
// admin sees them in the fleet list and under ?tenant=, reads them, but
// cannot create credentials (400); a second order under a taken name is 409.
func checkRoles(t *testing.T, p *platform, tenantID string, tenant, admin *client, insts []instance) {
	t.Helper()
	viewer := p.newKey(t, tenantID, "tenant-viewer")
	for _, inst := range insts {
		viewer.must("GET", "/api/v1/instances/"+inst.ID, nil, http.StatusOK, nil)
		viewer.must("GET", "/api/v1/instances/"+inst.ID+"/health", nil, http.StatusOK, nil)
		viewer.mustProblem("POST", "/api/v1/instances/"+inst.ID+"/bindings", map[string]any{"name": "viewer"}, http.StatusForbidden)
		viewer.mustProblem("DELETE", "/api/v1/instances/"+inst.ID, nil, http.StatusForbidden)

		admin.must("GET", "/api/v1/instances/"+inst.ID, nil, http.StatusOK, nil)
		admin.mustProblem("POST", "/api/v1/instances/"+inst.ID+"/bindings", map[string]any{"name": "admin"}, http.StatusBadRequest)
		tenant.mustProblem("POST", "/api/v1/instances", map[string]any{"name": inst.Name, "plan_id": tenant.planID(planOf(inst))}, http.StatusConflict)
	}
	viewer.mustProblem("POST", "/api/v1/instances", map[string]any{"name": "by-viewer", "plan_id": tenant.planID("redis-dev-single-az")}, http.StatusForbidden)
	var list struct{ Items []instance }
	admin.must("GET", "/api/v1/instances?tenant="+tenantID, nil, http.StatusOK, &list)
	if len(list.Items) != len(insts) {
		t.Errorf("platform-admin lists %d instances of %s, want %d", len(list.Items), tenantID, len(insts))
	}
	tenant.mustProblem("GET", "/api/v1/instances?tenant=someone-else", nil, http.StatusForbidden)
}

// planOf is the plan name of a scenario's multi-az instance.
func planOf(inst instance) string { return inst.Engine + "-ha-multi-az" }

// checkInvisible checks that other, a tenant that owns none of the
// instances, gets 404 for each of them and all that hangs off them, and
// lists none.
func checkInvisible(t *testing.T, other *client, created []instanceAccepted) {
	t.Helper()
	for _, acc := range created {
		id := acc.Instance.ID
		for _, r := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/v1/instances/" + id, nil},
			{"GET", "/api/v1/instances/" + id + "/health", nil},
			{"GET", "/api/v1/instances/" + id + "/bindings", nil},
			{"POST", "/api/v1/instances/" + id + "/bindings", map[string]any{"name": "steal"}},
			{"GET", "/api/v1/operations/" + acc.OperationID, nil},
			{"PATCH", "/api/v1/instances/" + id, map[string]any{"parameters": map[string]any{}}},
			{"DELETE", "/api/v1/instances/" + id, nil},
		} {
			other.mustProblem(r.method, r.path, r.body, http.StatusNotFound)
		}
	}
	var list struct{ Items []instance }
	other.must("GET", "/api/v1/instances", nil, http.StatusOK, &list)
	if len(list.Items) != 0 {
		t.Errorf("another tenant lists %d instances, want none: %+v", len(list.Items), list.Items)
	}
}

// checkNothingLeft checks, after tenant deleted insts, that nothing of them is
// left: each is gone (checkGone), the tenant lists no live instance, their
// health answers 404, their placements are released, the health checker
// probes none of their nodes and every host's allocation is back to before.
func checkNothingLeft(t *testing.T, p *platform, tenant, admin *client, before map[string]resources, insts []instance) {
	t.Helper()
	for _, inst := range insts {
		checkGone(t, p, tenant, inst)
	}
	var list struct{ Items []instance }
	tenant.must("GET", "/api/v1/instances", nil, http.StatusOK, &list)
	if len(list.Items) != 0 {
		t.Errorf("the tenant still lists %d live instances after deleting everything: %+v", len(list.Items), list.Items)
	}
	for _, inst := range insts {
		tenant.mustProblem("GET", "/api/v1/instances/"+inst.ID+"/health", nil, http.StatusNotFound)
		waitFor(t, "the placement of "+inst.ID+" to be released", releaseTimeout, func() (bool, string) {
			var pl placement
			err := admin.call("GET", "/api/v1/placements/"+inst.ID, nil, http.StatusOK, &pl)
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				return true, ""
			}
			if err != nil {
				return false, err.Error()
			}
			return pl.Status == "released", "status " + pl.Status
		})
	}
	waitFor(t, "the health checker to drop the deleted nodes", releaseTimeout, func() (bool, string) {
		left := healthTargetsOf(t, admin, insts)
		return len(left) == 0, fmt.Sprintf("still probing %v", left)
	})
	waitFor(t, "the inventory's allocation to return to what it was before the orders", releaseTimeout, func() (bool, string) {
		now := admin.allocation()
		diff := allocationDiff(before, now)
		return diff == "", diff
	})
}

// checkGone checks that a deleted instance left nothing: it reads deleted,
// its nodes' ports refuse connections, no node process runs in the state
// directory and the nodes' data directories are removed.
func checkGone(t *testing.T, p *platform, c *client, inst instance) {
	t.Helper()
	status, body, err := c.do("GET", "/api/v1/instances/"+inst.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusGone && status != http.StatusNotFound && !(status == http.StatusOK && strings.Contains(string(body), `"state":"deleted"`)) {
		t.Errorf("deleted instance %s reads %d: %.300s", inst.ID, status, body)
	}
	for _, n := range inst.Nodes {
		if n.Address == "" {
			continue // never created
		}
		waitFor(t, "node "+n.Name+" ("+n.Address+") of "+inst.ID+" to refuse connections", cleanTimeout, func() (bool, string) {
			conn, err := net.DialTimeout("tcp", n.Address, time.Second)
			if err == nil {
				conn.Close()
				return false, "accepted a connection"
			}
			return errors.Is(err, syscall.ECONNREFUSED), err.Error()
		})
	}
	for _, n := range inst.Nodes {
		waitFor(t, "the data directory of node "+n.ID+" to be removed", cleanTimeout, func() (bool, string) {
			_, err := os.Stat(filepath.Join(p.StateDir, "nodes", n.ID))
			return errors.Is(err, os.ErrNotExist), fmt.Sprintf("stat: %v", err)
		})
	}
	waitFor(t, "no tenant node process left in "+p.StateDir, cleanTimeout, func() (bool, string) {
		pids := nodeProcesses(p.StateDir)
		return len(pids) == 0, fmt.Sprintf("pids %v", pids)
	})
	entries, _ := os.ReadDir(filepath.Join(p.StateDir, "nodes"))
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("node data directories left under %s/nodes: %v", p.StateDir, names)
	}
}

// bestEffortDelete deletes an instance the scenario ordered when the scenario
// failed before its own delete, and waits for it to be deleted.
func bestEffortDelete(t *testing.T, admin *client, id string) {
	// The next scenario measures the inventory against what it was before
	// its orders, so a cleanup is not over until scheduling has released
	// the placement too, which it does after the delete operation ends.
	defer awaitReleased(t, admin, id)
	var inst instance
	if err := admin.call("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst); err != nil || inst.State == "deleted" {
		return
	}
	var acc instanceAccepted
	if err := admin.call("DELETE", "/api/v1/instances/"+id, nil, http.StatusAccepted, &acc); err != nil {
		t.Logf("cleanup: delete %s: %v", id, err)
		return
	}
	deadline := time.Now().Add(deleteTimeout)
	for time.Now().Before(deadline) {
		var op operation
		if err := admin.call("GET", "/api/v1/operations/"+acc.OperationID, nil, http.StatusOK, &op); err == nil && op.State != "in_progress" {
			return
		}
		time.Sleep(operationInterval)
	}
	t.Logf("cleanup: instance %s not deleted within %s", id, deleteTimeout)
}

// awaitReleased waits, as a cleanup, for the placement of a deleted
// instance to be released or gone; an instance that is not deleted keeps
// its placement and is not waited for.
func awaitReleased(t *testing.T, admin *client, id string) {
	deadline := time.Now().Add(releaseTimeout)
	for {
		var inst instance
		if err := admin.call("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst); err != nil || inst.State != "deleted" {
			return
		}
		var pl placement
		err := admin.call("GET", "/api/v1/placements/"+id, nil, http.StatusOK, &pl)
		var ae *apiError
		if (errors.As(err, &ae) && ae.Status == http.StatusNotFound) || (err == nil && pl.Status == "released") {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("cleanup: the placement of %s not released within %s", id, releaseTimeout)
			return
		}
		time.Sleep(operationInterval)
	}
}

// healthTargetsOf lists the health checker's targets (addresses) that
// belong to insts.
func healthTargetsOf(t *testing.T, admin *client, insts []instance) []string {
	t.Helper()
	ids := map[string]bool{}
	for _, inst := range insts {
		ids[inst.ID] = true
	}
	var ht healthTargets
	admin.must("GET", "/api/v1/health/targets", nil, http.StatusOK, &ht)
	var out []string
	for _, tg := range ht.Targets {
		if ids[tg.InstanceID] {
			out = append(out, tg.Address)
		}
	}
	return out
}

// total sums resources over hosts.
func total(m map[string]resources) resources {
	var r resources
	for _, v := range m {
		r.VCPU += v.VCPU
		r.MemoryMB += v.MemoryMB
		r.StorageGB += v.StorageGB
	}
	return r
}

// allocationDiff describes the hosts whose allocation differs, "" when none.
func allocationDiff(before, now map[string]resources) string {
	var diffs []string
	for id, b := range before {
		if n := now[id]; n != b {
			diffs = append(diffs, fmt.Sprintf("%s: %+v, was %+v", id, n, b))
		}
	}
	for id, n := range now {
		if _, ok := before[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: new host %+v", id, n))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}
