package provisioning

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

const readyWithin = 3 * time.Minute

func openMySQL(addr, user, pass, db string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pass, "tcp", addr, db
	cfg.Timeout = 3 * time.Second
	conn, _ := mysql.NewConnector(cfg)
	return sql.OpenDB(conn)
}

func redisClient(addr, user, pass string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr, Username: user, Password: pass, DialTimeout: 3 * time.Second, MaxRetries: -1, DisableIdentity: true})
}

// checkData writes with the binding on the primary and reads the write on
// every replica (through the binding's user, which replicates on MySQL and is
// created on every Redis node).
func checkData(t *testing.T, inst map[string]any, creds map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	user, pass := creds["username"].(string), creds["password"].(string)
	primary := inst["endpoints"].(map[string]any)["primary"].(string)
	var replicas []string
	for _, r := range inst["endpoints"].(map[string]any)["replicas"].([]any) {
		replicas = append(replicas, r.(string))
	}
	if inst["engine"] == "mysql" {
		db := creds["database"].(string)
		p := openMySQL(primary, user, pass, db)
		defer p.Close()
		if _, err := p.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, v VARCHAR(20))"); err != nil {
			t.Fatalf("create table on primary: %v", err)
		}
		if _, err := p.ExecContext(ctx, "REPLACE INTO t VALUES (1, 'hello')"); err != nil {
			t.Fatalf("write on primary: %v", err)
		}
		if _, err := p.ExecContext(ctx, "CREATE DATABASE other_db"); err == nil {
			t.Fatal("binding user created a database outside its own")
		}
		for _, addr := range replicas {
			r := openMySQL(addr, user, pass, db)
			eventually(t, 30*time.Second, "read on replica "+addr, func() error {
				var v string
				if err := r.QueryRowContext(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil {
					return err
				}
				if v != "hello" {
					return fmt.Errorf("got %q", v)
				}
				return nil
			})
			if _, err := r.ExecContext(ctx, "INSERT INTO t VALUES (2, 'x')"); err == nil {
				t.Errorf("write on replica %s succeeded", addr)
			}
			r.Close()
		}
		if len(replicas) > 0 {
			// multi-az MySQL waits for a replica's acknowledgement.
			var name, val string
			if err := p.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'").Scan(&name, &val); err == nil && val != "ON" {
				t.Errorf("semi-sync status on primary = %s", val)
			}
		}
		return
	}
	p := redisClient(primary, user, pass)
	defer p.Close()
	if err := p.Set(ctx, "k", "hello", 0).Err(); err != nil {
		t.Fatalf("write on primary: %v", err)
	}
	if err := p.Do(ctx, "CONFIG", "GET", "maxmemory").Err(); err == nil {
		t.Error("binding user may run CONFIG")
	}
	for _, addr := range replicas {
		r := redisClient(addr, user, pass)
		eventually(t, 30*time.Second, "read on replica "+addr, func() error {
			v, err := r.Get(ctx, "k").Result()
			if err != nil {
				return err
			}
			if v != "hello" {
				return fmt.Errorf("got %q", v)
			}
			return nil
		})
		if err := r.Set(ctx, "k2", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
			t.Errorf("write on replica %s: %v", addr, err)
		}
		r.Close()
	}
}

func loginFails(t *testing.T, inst map[string]any, creds map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := inst["endpoints"].(map[string]any)["primary"].(string)
	user, pass := creds["username"].(string), creds["password"].(string)
	eventually(t, 20*time.Second, "binding revoked", func() error {
		var err error
		if inst["engine"] == "mysql" {
			db := openMySQL(addr, user, pass, "")
			err = db.PingContext(ctx)
			db.Close()
		} else {
			c := redisClient(addr, user, pass)
			err = c.Ping(ctx).Err()
			c.Close()
		}
		if err == nil {
			return errors.New("login still works")
		}
		return nil
	})
}

// TestLifecycle orders each plan of both engines, binds, checks data flows
// from primary to replicas, unbinds, deletes and checks the processes are gone.
func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	mysqlBuild, redisBuild := installedBuild(t, driver.EngineMySQL), installedBuild(t, driver.EngineRedis)
	cases := []struct {
		name, plan string
		nodes      int
		build      driver.EngineVersion
	}{
		{"mysql-single-az", planMySQLDev, 1, mysqlBuild},
		{"mysql-multi-az", planMySQLHA, 3, mysqlBuild},
		{"redis-single-az", planRedisDev, 1, redisBuild},
		{"redis-multi-az", planRedisHA, 3, redisBuild},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := s.as("acme")
			c.t = t
			r := c.do("POST", "/api/v1/instances", map[string]any{"name": tc.name, "plan_id": tc.plan})
			if r.status != http.StatusAccepted {
				t.Fatalf("order: %d %s", r.status, r.body)
			}
			body := r.json(t)
			inst := body["instance"].(map[string]any)
			id := inst["id"].(string)
			if inst["state"] != "provisioning" || body["operation_id"] == "" {
				t.Fatalf("order answer: %s", r.body)
			}
			began := time.Now()
			inst = c.waitState(id, readyWithin, "ready", "failed")
			if inst["state"] != "ready" {
				t.Fatalf("instance failed: %v", inst["reason"])
			}
			t.Logf("%s ready in %s", tc.name, time.Since(began).Round(time.Millisecond))
			// The version shown is what the server says it runs, under the
			// major.minor ordered (the plan's default: what the host runs).
			if inst["engine_version"] != tc.build.Label() || inst["version"] != tc.build.Series() {
				t.Errorf("version %v, engine_version %v; want %s, %s", inst["version"], inst["engine_version"], tc.build.Series(), tc.build.Label())
			}
			nodes := inst["nodes"].([]any)
			if len(nodes) != tc.nodes {
				t.Fatalf("%d nodes, want %d", len(nodes), tc.nodes)
			}
			azs := map[any]bool{}
			for i, n := range nodes {
				nm := n.(map[string]any)
				wantRole := "replica"
				if i == 0 {
					wantRole = "primary"
				}
				if nm["role"] != wantRole || nm["state"] != "running" || nm["address"] == "" {
					t.Errorf("node %d: %v", i, nm)
				}
				azs[nm["az"]] = true
			}
			if len(azs) != tc.nodes {
				t.Errorf("nodes share zones: %v", azs)
			}
			if len(inst["tuning"].(map[string]any)["sysctls"].([]any)) == 0 {
				t.Error("no sysctls recorded")
			}
			op := c.do("GET", "/api/v1/operations/"+body["operation_id"].(string), nil).json(t)
			if op["state"] != "succeeded" || op["type"] != "create" || op["finished_at"] == nil {
				t.Errorf("operation: %v", op)
			}

			// The health checker's view: every node with the monitor account,
			// for the health checker's identity only; a tenant, a platform
			// admin or another service does not learn it exists.
			hc := &client{t: t, s: s, role: tenancy.RolePlatformAdmin, subject: "service:healthcheck"}
			mon := hc.do("GET", "/internal/v1/monitoring/instances/"+id, nil)
			if mon.status != http.StatusOK {
				t.Fatalf("monitoring view: %d %s", mon.status, mon.body)
			}
			mv := mon.json(t)
			if len(mv["nodes"].([]any)) != tc.nodes || mv["monitor"].(map[string]any)["username"] == "" || mv["tenant_id"] != "acme" {
				t.Errorf("monitoring view: %s", mon.body)
			}
			if got := c.do("GET", "/internal/v1/monitoring/instances/"+id, nil); got.status != http.StatusNotFound {
				t.Errorf("tenant reads monitoring view: %d", got.status)
			}
			for _, subject := range []string{"apikey:root", "service:scheduling", "service:provisioning"} {
				other := &client{t: t, s: s, role: tenancy.RolePlatformAdmin, subject: subject}
				for _, p := range []string{"/internal/v1/monitoring/instances/" + id, "/internal/v1/monitoring/instances"} {
					if got := other.do("GET", p, nil); got.status != http.StatusNotFound || strings.Contains(string(got.body), "password") {
						t.Errorf("platform admin %s reads %s: %d %s", subject, p, got.status, got.body)
					}
				}
			}
			if got := hc.do("GET", "/internal/v1/monitoring/instances?limit=500", nil); got.status != http.StatusOK || !strings.Contains(string(got.body), id) {
				t.Errorf("monitoring list: %d %s", got.status, got.body)
			}

			// Another tenant sees nothing and can touch nothing.
			other := s.as("globex")
			other.t = t
			for _, rq := range []struct{ m, p string }{{"GET", "/api/v1/instances/" + id}, {"DELETE", "/api/v1/instances/" + id},
				{"POST", "/api/v1/instances/" + id + "/bindings"}, {"GET", "/api/v1/operations/" + body["operation_id"].(string)}} {
				var b any
				if rq.m == "POST" {
					b = map[string]any{"name": "steal"}
				}
				if got := other.do(rq.m, rq.p, b); got.status != http.StatusNotFound {
					t.Errorf("other tenant %s %s: %d", rq.m, rq.p, got.status)
				}
			}

			br := c.do("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"})
			if br.status != http.StatusCreated {
				t.Fatalf("bind: %d %s", br.status, br.body)
			}
			binding := br.json(t)
			creds := binding["credentials"].(map[string]any)
			checkData(t, inst, creds)
			if r := c.do("DELETE", "/api/v1/instances/"+id+"/bindings/"+binding["id"].(string), nil); r.status != http.StatusNoContent {
				t.Fatalf("unbind: %d %s", r.status, r.body)
			}
			loginFails(t, inst, creds)

			before := nodePIDs(s.stateDir)
			dr := c.do("DELETE", "/api/v1/instances/"+id, nil)
			if dr.status != http.StatusAccepted {
				t.Fatalf("delete: %d %s", dr.status, dr.body)
			}
			eventually(t, time.Minute, "deleted", func() error {
				r := c.do("GET", "/api/v1/instances/"+id, nil)
				if st := r.json(t)["state"]; st != "deleted" {
					return fmt.Errorf("state %v", st)
				}
				return nil
			})
			after := nodePIDs(s.stateDir)
			for _, n := range nodes {
				nid := n.(map[string]any)["id"].(string)
				if _, ok := before[nid]; !ok {
					t.Errorf("node %s had no process before delete", nid)
				}
				if pid, ok := after[nid]; ok {
					t.Errorf("node %s still runs as %d after delete", nid, pid)
				}
			}
			if r := c.do("DELETE", "/api/v1/instances/"+id, nil); r.status != http.StatusGone {
				t.Errorf("second delete: %d", r.status)
			}
		})
	}
}
