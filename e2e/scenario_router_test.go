package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// routerEndpoints are a binding's stable endpoints.
type routerEndpoints struct {
	RW         string `json:"rw"`
	RO         string `json:"ro"`
	Sentinel   string `json:"sentinel"`
	MasterName string `json:"master_name"`
}

// routedWrite is one acknowledged write through the rw endpoint, with the
// port of the server that took it (as the server itself said).
type routedWrite struct {
	key    string
	server int
	at     time.Time
}

// routedWriter writes through one unchanging connection pool (the
// credentials' host and port, never re-read) every few milliseconds and
// records which server acknowledged each write.
type routedWriter struct {
	db      *sql.DB
	done    chan struct{}
	stopped chan struct{}

	mu   sync.Mutex
	acks []routedWrite
	errs int
	err  error
}

func startRoutedWriter(t *testing.T, db *sql.DB) *routedWriter {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS router_acks (k VARCHAR(64) PRIMARY KEY, served_by INT NOT NULL)"); err != nil {
		t.Fatalf("create table through the rw endpoint: %v", err)
	}
	w := &routedWriter{db: db, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(w.stopped)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			key := fmt.Sprintf("r%06d", seq)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var port int
			tx, err := db.BeginTx(ctx, nil)
			if err == nil {
				if _, err = tx.ExecContext(ctx, "INSERT INTO router_acks (k, served_by) SELECT ?, @@port", key); err == nil {
					err = tx.QueryRowContext(ctx, "SELECT @@port").Scan(&port)
				}
				if err == nil {
					err = tx.Commit()
				} else {
					_ = tx.Rollback()
				}
			}
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acks = append(w.acks, routedWrite{key, port, time.Now()})
			} else {
				w.errs++
				w.err = err
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *routedWriter) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	<-w.stopped
}

func (w *routedWriter) snapshot() ([]routedWrite, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]routedWrite(nil), w.acks...), w.errs, w.err
}

// waitServedBy waits for a write after since acknowledged by the server on port.
func (w *routedWriter) waitServedBy(t *testing.T, port int, since time.Time) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, fmt.Sprintf("a write through the rw endpoint acknowledged by the server on port %d", port), failoverTimeout, func() (bool, string) {
		acks, errs, err := w.snapshot()
		for _, a := range acks {
			if a.at.After(since) && a.server == port {
				at = a.at
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d acks, %d errors, last %v", len(acks), errs, err)
	})
	return at
}

// checkOnlyServedBy fails when a write acknowledged after since was taken by
// another server than port.
func (w *routedWriter) checkOnlyServedBy(t *testing.T, port int, since time.Time) {
	t.Helper()
	acks, _, _ := w.snapshot()
	for _, a := range acks {
		if a.at.After(since) && a.server != port {
			t.Errorf("write %s acknowledged at %s by the server on port %d, after the switch to %d", a.key, a.at.Format(time.RFC3339Nano), a.server, port)
		}
	}
}

// gapAround is the longest time without an acknowledged write that spans t.
func (w *routedWriter) gapAround(t time.Time) time.Duration {
	acks, _, _ := w.snapshot()
	var before time.Time
	for _, a := range acks {
		if !a.at.After(t) {
			before = a.at
			continue
		}
		if before.IsZero() {
			return 0
		}
		return a.at.Sub(before)
	}
	return 0
}

func portOfAddr(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func routedDB(b binding, addr string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = b.Credentials.Username, b.Credentials.Password, "tcp", addr, b.Credentials.Database
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 3*time.Second, 5*time.Second, 5*time.Second
	conn, _ := mysql.NewConnector(cfg)
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	return db
}

// TestScenarioRouter is what a user checks of the stable endpoints: the
// binding's host and port are the router's read-write endpoint; a pool
// writing through it keeps working across a kill -9 failover and a
// switchover without any change of configuration, every write after a
// switch lands on the new primary and none on the old one; reads through
// the read-only endpoint reach replicas; a Sentinel client of the router's
// Sentinel port keeps writing to Redis across a failover, and redis-cli's
// SENTINEL get-master-addr-by-name names the new primary; after a restart
// of the platform the endpoints answer on the same ports.
func TestScenarioRouter(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenant := p.newTenant(t, "rt-"+randHex(3), "tenant-admin")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("router's log:\n%s", p.logLines("service=router", "http request", 200))
		}
	})
	create := func(t *testing.T, name, plan string) (instance, binding) {
		var acc instanceAccepted
		tenant.must("POST", "/api/v1/instances", map[string]any{"name": name, "plan_id": tenant.planID(plan)}, http.StatusAccepted, &acc)
		id := acc.Instance.ID
		t.Cleanup(func() { bestEffortDelete(t, admin, id) })
		waitOperation(t, tenant, acc.OperationID, readyTimeout)
		var inst instance
		tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
		waitAllUp(t, tenant, inst)
		var b binding
		tenant.must("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &b)
		ep := b.Credentials.Endpoints
		if ep.RW == "" || ep.RO == "" || ep.RW != net.JoinHostPort(b.Credentials.Host, strconv.Itoa(b.Credentials.Port)) {
			t.Fatalf("credentials: host %s port %d, endpoints %+v: host/port must be the rw endpoint", b.Credentials.Host, b.Credentials.Port, ep)
		}
		if ep.RW != inst.Endpoints.RW || ep.RO != inst.Endpoints.RO {
			t.Fatalf("the instance shows endpoints %+v, the binding %+v", inst.Endpoints.routerEndpoints, ep)
		}
		return inst, b
	}
	primaryOf := func(id string) string {
		var in instance
		if err := admin.call("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &in); err != nil {
			return ""
		}
		return in.Endpoints.Primary
	}

	t.Run("mysql", func(t *testing.T) {
		inst, b := create(t, "rt-mysql", "mysql-ha-multi-az")
		id := inst.ID
		rw := routedDB(b, b.Credentials.Endpoints.RW)
		defer rw.Close()
		w := startRoutedWriter(t, rw)
		t.Cleanup(w.stop)
		old := nodeByRole(t, inst, "primary")
		oldPort := portOfAddr(t, old.addr)
		w.waitServedBy(t, oldPort, time.Time{})

		// Reads through ro reach a replica.
		ro := routedDB(b, b.Credentials.Endpoints.RO)
		defer ro.Close()
		replicas := map[int]bool{}
		for _, n := range inst.Nodes {
			if n.Role == "replica" {
				replicas[portOfAddr(t, n.Address)] = true
			}
		}
		for range 4 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var port, readOnly int
			err := ro.QueryRowContext(ctx, "SELECT @@port, @@global.read_only").Scan(&port, &readOnly)
			cancel()
			if err != nil || !replicas[port] || readOnly != 1 {
				t.Fatalf("read through ro: port %d read_only %d err %v; replicas %v", port, readOnly, err, replicas)
			}
		}

		// 1. kill -9 the primary: the same pool writes again, on the new one.
		pid := nodePID(p.StateDir, old.id)
		if pid == 0 {
			t.Fatalf("no process works in the directory of primary %s", old.id)
		}
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill primary: %v", err)
		}
		rec := waitFailover(t, tenant, id, "automatic", old.id)
		var next string
		waitFor(t, "the API to name the new primary", failoverTimeout, func() (bool, string) {
			next = primaryOf(id)
			return next != "" && next != old.addr, next
		})
		first := w.waitServedBy(t, portOfAddr(t, next), killed)
		t.Logf("mysql: kill -9 → first write acknowledged through the rw endpoint by the new primary: %v (failover's own RTO %d ms; longest gap between acknowledged writes %v)",
			first.Sub(killed), rec.RTOMS, w.gapAround(killed))
		w.checkOnlyServedBy(t, portOfAddr(t, next), first)

		// 2. Switchover to another node while the writer runs.
		waitRejoined(t, newEngineClient(t, "mysql", b), old.addr, func() string { return primaryOf(id) })
		tenant.must("POST", "/api/v1/instances/"+id+"/failovers/"+rec.ID+"/acknowledge", nil, http.StatusOK, nil)
		var sw failoverRecord
		tenant.must("POST", "/api/v1/instances/"+id+"/switchover", map[string]any{"target_node": old.id}, http.StatusAccepted, &sw)
		waitRecovery(t, tenant, id, sw.ID)
		switched := time.Now()
		w.waitServedBy(t, oldPort, switched)
		w.checkOnlyServedBy(t, oldPort, switched)
		w.stop()
		acks, errs, lastErr := w.snapshot()
		t.Logf("mysql: %d writes acknowledged through one pool, %d failed during the switches (last: %v)", len(acks), errs, lastErr)

		// Nothing acknowledged is missing on the primary.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var n int
		if err := rw.QueryRowContext(ctx, "SELECT COUNT(*) FROM router_acks").Scan(&n); err != nil || n < len(acks) {
			t.Errorf("the primary holds %d rows (err %v), %d writes were acknowledged", n, err, len(acks))
		}

		// The router's own view, through the gateway.
		var ep struct {
			Primary *struct {
				Address string `json:"address"`
			} `json:"primary"`
			Endpoints []struct {
				Kind      string `json:"kind"`
				Port      int    `json:"port"`
				Listening bool   `json:"listening"`
			} `json:"endpoints"`
		}
		tenant.must("GET", "/api/v1/instances/"+id+"/endpoints", nil, http.StatusOK, &ep)
		if ep.Primary == nil || ep.Primary.Address != old.addr || len(ep.Endpoints) != 2 || !ep.Endpoints[0].Listening {
			t.Errorf("router view of the endpoints: %+v", ep)
		}
	})

	t.Run("redis", func(t *testing.T) {
		inst, b := create(t, "rt-redis", "redis-ha-multi-az")
		id := inst.ID
		ep := b.Credentials.Endpoints
		if ep.Sentinel == "" || ep.MasterName != "rt-redis" {
			t.Fatalf("redis endpoints %+v: want a sentinel address and the instance's name as master name", ep)
		}
		c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: ep.MasterName, SentinelAddrs: []string{ep.Sentinel},
			SentinelUsername: b.Credentials.Username, SentinelPassword: b.Credentials.Password,
			Username: b.Credentials.Username, Password: b.Credentials.Password,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
		defer c.Close()
		var mu sync.Mutex
		var acked []string
		var lastErr error
		done, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			for seq := 1; ; seq++ {
				select {
				case <-done:
					return
				case <-time.After(5 * time.Millisecond):
				}
				key := fmt.Sprintf("rt:%06d", seq)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := c.Set(ctx, key, "1", 0).Err()
				cancel()
				mu.Lock()
				if err == nil {
					acked = append(acked, key)
				} else {
					lastErr = err
				}
				mu.Unlock()
			}
		}()
		stopWriter := func() {
			select {
			case <-done:
			default:
				close(done)
			}
			<-stopped
		}
		t.Cleanup(stopWriter)
		count := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(acked)
		}
		lastError := func() error {
			mu.Lock()
			defer mu.Unlock()
			return lastErr
		}
		waitFor(t, "writes through the Sentinel client", failoverTimeout, func() (bool, string) {
			return count() >= 20, fmt.Sprintf("%d acked, last error %v", count(), lastError())
		})

		old := nodeByRole(t, inst, "primary")
		pid := nodePID(p.StateDir, old.id)
		if pid == 0 {
			t.Fatalf("no process works in the directory of primary %s", old.id)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill primary: %v", err)
		}
		waitFailover(t, tenant, id, "automatic", old.id)
		var next string
		waitFor(t, "the API to name the new primary", failoverTimeout, func() (bool, string) {
			next = primaryOf(id)
			return next != "" && next != old.addr, next
		})
		before := count()
		waitFor(t, "the Sentinel client writing again after the failover", failoverTimeout, func() (bool, string) {
			return count() >= before+20, fmt.Sprintf("%d acked, last error %v", count(), lastError())
		})
		stopWriter()

		// The last acknowledged writes are on the new primary.
		direct := redis.NewClient(&redis.Options{Addr: next, Username: b.Credentials.Username, Password: b.Credentials.Password})
		defer direct.Close()
		mu.Lock()
		tail := append([]string(nil), acked[len(acked)-10:]...)
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if n, err := direct.Exists(ctx, tail...).Result(); err != nil || n != int64(len(tail)) {
			t.Errorf("the new primary %s has %d of the last %d acknowledged keys (err %v)", next, n, len(tail), err)
		}

		// redis-cli asks the router's Sentinel port, as an operator would.
		host, port, _ := net.SplitHostPort(ep.Sentinel)
		out, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "--user", b.Credentials.Username, "--pass", b.Credentials.Password,
			"--no-auth-warning", "SENTINEL", "get-master-addr-by-name", ep.MasterName).CombinedOutput()
		nh, np, _ := net.SplitHostPort(next)
		if err != nil || strings.Fields(string(out))[0] != nh || strings.Fields(string(out))[1] != np {
			t.Errorf("redis-cli SENTINEL get-master-addr-by-name: %q (err %v), want %s %s", out, err, nh, np)
		}
		// Another tenant's credentials do not see the name.
		out, _ = exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "SENTINEL", "get-master-addr-by-name", ep.MasterName).CombinedOutput()
		if !strings.Contains(string(out), "NOAUTH") {
			t.Errorf("unauthenticated SENTINEL query answered %q", out)
		}
	})

	t.Run("restart", func(t *testing.T) {
		_, b := create(t, "rt-restart", "mysql-dev-single-az")
		p.restart(t)
		db := routedDB(b, b.Credentials.Endpoints.RW)
		defer db.Close()
		waitFor(t, "the rw endpoint on the same port after the restart", failoverTimeout, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var one int
			err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
			return err == nil && one == 1, fmt.Sprint(err)
		})
	})
}
