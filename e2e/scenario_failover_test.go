package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

const (
	// failoverTimeout bounds kill → a write acknowledged by a new primary
	// found through the API. The service aims at about a second; the bound
	// is loose because CI machines are loaded, and the benchmark measures.
	failoverTimeout = 30 * time.Second
	// rejoinTimeout bounds kill → the old primary back as a read-only
	// replica (the driver restarts it after a delay, then failover rejoins it).
	rejoinTimeout = 60 * time.Second
)

type failoverRecord struct {
	ID               string   `json:"id"`
	Kind             string   `json:"kind"`
	Problem          string   `json:"problem"`
	OldPrimary       string   `json:"old_primary"`
	NewPrimary       string   `json:"new_primary"`
	State            string   `json:"state"`
	Reason           string   `json:"reason"`
	RTOMS            int64    `json:"rto_ms"`
	DetectionMS      int64    `json:"detection_ms"`
	PromotionMS      int64    `json:"promotion_ms"`
	LostTransactions []string `json:"lost_transactions"`
}

type failoverList struct {
	Items []failoverRecord `json:"items"`
}

// TestScenarioFailover is what a user checks of high availability, for a
// multi-az MySQL and a multi-az Redis, each under a writer that records every
// acknowledged write and finds the primary through the API: kill -9 the
// primary's process → a new primary takes writes, no acknowledged write is
// lost, the failover is in the instance's history with its RTO, and the old
// primary comes back as a read-only replica; then a planned switchover back
// to it and away again and a drill through the API. A checker polls every node's
// writability all along: never two writable nodes.
func TestScenarioFailover(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenant := p.newTenant(t, "ha-"+randHex(3), "tenant-admin")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failover service's log:\n%s", p.logLines("service=failover", "http request", 200))
		}
	})
	for _, tc := range []struct{ name, plan string }{{"mysql", "mysql-ha-multi-az"}, {"redis", "redis-ha-multi-az"}} {
		t.Run(tc.name, func(t *testing.T) {
			var acc instanceAccepted
			tenant.must("POST", "/api/v1/instances", map[string]any{"name": "ha-" + tc.name, "plan_id": tenant.planID(tc.plan)}, http.StatusAccepted, &acc)
			id := acc.Instance.ID
			t.Cleanup(func() { bestEffortDelete(t, admin, id) })
			waitOperation(t, tenant, acc.OperationID, readyTimeout)
			var inst instance
			tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
			waitAllUp(t, tenant, inst)
			var b binding
			tenant.must("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &b)

			eng := newEngineClient(t, tc.name, b)
			// The writer reads the primary as platform-admin: its polls during
			// a failover do not spend the tenant's rate limit, which the
			// scenario's own waits use.
			primaryOf := func() string {
				var in instance
				if err := admin.call("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &in); err != nil {
					return ""
				}
				return in.Endpoints.Primary
			}
			var addrs []string
			for _, n := range inst.Nodes {
				addrs = append(addrs, n.Address)
			}
			checker := startWritableChecker(eng, addrs)
			w := startWriter(eng, primaryOf)
			// Stopped before the test ends even when it fails: their
			// goroutines report through t.
			t.Cleanup(func() { w.stop(); checker.stop() })
			w.waitAcked(t, 20)

			// 1. kill -9 the primary.
			old := nodeByRole(t, inst, "primary")
			pid := nodePID(p.StateDir, old.id)
			if pid == 0 {
				t.Fatalf("no process works in the directory of primary %s", old.id)
			}
			killed := time.Now()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill primary %s (pid %d): %v", old.id, pid, err)
			}
			took := waitFor(t, "a new primary of "+tc.name+" to acknowledge a write", failoverTimeout, func() (bool, string) {
				// A write in flight at the kill may still be acknowledged by
				// the old primary just after our timestamp: look past it.
				at := w.firstAckAfter(killed, old.addr)
				return !at.IsZero(), fmt.Sprintf("acked=%d last error=%v", w.acked(), w.lastErr())
			})
			t.Logf("%s: kill -9 of the primary → first acknowledged write on the new primary: %v", tc.name, took)
			rec := waitFailover(t, tenant, id, "automatic", old.id)
			t.Logf("%s: failover record: problem=%s rto_ms=%d detection_ms=%d promotion_ms=%d", tc.name, rec.Problem, rec.RTOMS, rec.DetectionMS, rec.PromotionMS)
			if rec.RTOMS <= 0 || rec.NewPrimary == "" || rec.NewPrimary == old.id {
				t.Errorf("failover record without RTO or new primary: %+v", rec)
			}
			w.checkNothingLost(t, primaryOf())

			// 2. The old primary comes back on its own, read-only, replicating.
			waitRejoined(t, eng, old.addr, primaryOf)
			tenant.must("POST", "/api/v1/instances/"+id+"/failovers/"+rec.ID+"/acknowledge", nil, http.StatusOK, nil)

			// 3. Planned switchover back to the old primary: zero loss.
			var sw failoverRecord
			tenant.must("POST", "/api/v1/instances/"+id+"/switchover", map[string]any{"target_node": old.id}, http.StatusAccepted, &sw)
			waitRecovery(t, tenant, id, sw.ID)
			waitFor(t, "the API to show "+old.addr+" as primary after the switchover", failoverTimeout, func() (bool, string) {
				got := primaryOf()
				return got == old.addr, got
			})
			w.waitAckedAt(t, old.addr)
			w.checkNothingLost(t, old.addr)
			// ... and away from it again, to whichever replica is best.
			var sw2 failoverRecord
			tenant.must("POST", "/api/v1/instances/"+id+"/switchover", map[string]any{}, http.StatusAccepted, &sw2)
			waitRecovery(t, tenant, id, sw2.ID)
			waitFor(t, "the API to show a primary other than "+old.addr+" after the second switchover", failoverTimeout, func() (bool, string) {
				got := primaryOf()
				return got != old.addr && got != "", got
			})
			w.waitAckedAt(t, primaryOf())
			w.checkNothingLost(t, primaryOf())

			// 4. A drill through the API: kill-primary, recorded as a drill.
			var drill struct {
				ID string `json:"id"`
			}
			var cur instance
			tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &cur)
			drilled := nodeByRole(t, cur, "primary")
			tenant.must("POST", "/api/v1/instances/"+id+"/drills", map[string]any{"kind": "kill-primary"}, http.StatusAccepted, &drill)
			d := waitFailover(t, tenant, id, "drill", drilled.id)
			// The record completes before provisioning has moved the
			// endpoint: wait for the API to name the new primary.
			var after string
			waitFor(t, "the API to show a primary other than the drilled "+drilled.addr, failoverTimeout, func() (bool, string) {
				after = primaryOf()
				return after != drilled.addr && after != "", after
			})
			w.waitAckedAt(t, after)
			w.stop()
			w.checkNothingLost(t, primaryOf())
			t.Logf("%s: drill record: rto_ms=%d", tc.name, d.RTOMS)
			if n, at := checker.stop(); n > 0 {
				t.Errorf("%s: %d moments with two writable nodes (first: %s)", tc.name, n, at)
			}
			var del instanceAccepted
			tenant.must("DELETE", "/api/v1/instances/"+id, nil, http.StatusAccepted, &del)
			waitOperation(t, tenant, del.OperationID, deleteTimeout)
		})
	}
}

type nodeRef struct{ id, addr string }

func nodeByRole(t *testing.T, inst instance, role string) nodeRef {
	t.Helper()
	for _, n := range inst.Nodes {
		if n.Role == role {
			return nodeRef{n.ID, n.Address}
		}
	}
	t.Fatalf("instance %s has no %s", inst.ID, role)
	return nodeRef{}
}

// waitFailover waits for a completed recovery of kind whose old primary is
// old, and returns it.
func waitFailover(t *testing.T, c *client, id, kind, old string) failoverRecord {
	t.Helper()
	var rec failoverRecord
	waitFor(t, "a completed "+kind+" failover of "+old+" in the history of "+id, failoverTimeout, func() (bool, string) {
		var l failoverList
		if err := c.call("GET", "/api/v1/instances/"+id+"/failovers", nil, http.StatusOK, &l); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, r := range l.Items {
			seen = append(seen, r.Kind+"/"+r.State+"/"+r.OldPrimary+"/"+r.Reason)
			if r.Kind == kind && r.OldPrimary == old && r.State == "completed" {
				rec = r
				return true, ""
			}
		}
		return false, strings.Join(seen, ", ")
	})
	return rec
}

func waitRecovery(t *testing.T, c *client, id, rid string) {
	t.Helper()
	waitFor(t, "recovery "+rid+" of "+id+" to complete", failoverTimeout, func() (bool, string) {
		var r failoverRecord
		if err := c.call("GET", "/api/v1/instances/"+id+"/failovers/"+rid, nil, http.StatusOK, &r); err != nil {
			return false, err.Error()
		}
		if r.State == "failed" {
			t.Fatalf("recovery %s failed: %s", rid, r.Reason)
		}
		return r.State == "completed", r.State
	})
}

// waitRejoined waits until the node at addr answers, refuses writes and
// holds a marker written on the current primary after it came back.
func waitRejoined(t *testing.T, eng engineClient, addr string, primaryOf func() string) {
	t.Helper()
	marker := "rejoin-" + randHex(6)
	wrote := false
	waitFor(t, "the old primary "+addr+" back as a read-only replica", rejoinTimeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		writable, err := eng.writable(ctx, addr)
		if err != nil {
			return false, "not answering: " + err.Error()
		}
		if writable {
			return false, "answers and takes writes"
		}
		if !wrote {
			if err := eng.put(ctx, primaryOf(), marker); err != nil {
				return false, "write marker on the primary: " + err.Error()
			}
			wrote = true
		}
		ok, err := eng.has(ctx, addr, marker)
		if err != nil {
			return false, err.Error()
		}
		return ok, "read-only, marker not replicated yet"
	})
}

// engineClient is what the scenario does on a node with the binding's
// credentials, for one engine.
type engineClient interface {
	// put writes key; returns once the write is acknowledged (MySQL commit
	// on a semi-sync primary; Redis SET then WAIT 1 for one replica).
	put(ctx context.Context, addr, key string) error
	// has reads key on addr.
	has(ctx context.Context, addr, key string) (bool, error)
	// writable tells whether addr takes client writes now.
	writable(ctx context.Context, addr string) (bool, error)
	close()
}

func newEngineClient(t *testing.T, engine string, b binding) engineClient {
	t.Helper()
	var c engineClient
	if engine == "mysql" {
		c = &mysqlClient{b: b, dbs: map[string]*sql.DB{}}
	} else {
		c = &redisClient{b: b, cs: map[string]*redis.Client{}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if m, ok := c.(*mysqlClient); ok {
		if _, err := m.db(b.Credentials.Host+fmt.Sprintf(":%d", b.Credentials.Port)).ExecContext(ctx,
			"CREATE TABLE IF NOT EXISTS e2e_acks (k VARCHAR(64) PRIMARY KEY)"); err != nil {
			t.Fatalf("create table: %v", err)
		}
	}
	t.Cleanup(c.close)
	return c
}

type mysqlClient struct {
	b   binding
	mu  sync.Mutex
	dbs map[string]*sql.DB
}

func (m *mysqlClient) db(addr string) *sql.DB {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.dbs[addr]; ok {
		return d
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = m.b.Credentials.Username, m.b.Credentials.Password, "tcp", addr, m.b.Credentials.Database
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = time.Second, 5*time.Second, 5*time.Second
	conn, _ := mysql.NewConnector(cfg)
	d := sql.OpenDB(conn)
	d.SetMaxOpenConns(2)
	m.dbs[addr] = d
	return d
}

func (m *mysqlClient) put(ctx context.Context, addr, key string) error {
	_, err := m.db(addr).ExecContext(ctx, "INSERT INTO e2e_acks (k) VALUES (?)", key)
	return err
}

func (m *mysqlClient) has(ctx context.Context, addr, key string) (bool, error) {
	var n int
	err := m.db(addr).QueryRowContext(ctx, "SELECT COUNT(*) FROM e2e_acks WHERE k = ?", key).Scan(&n)
	return n == 1, err
}

func (m *mysqlClient) writable(ctx context.Context, addr string) (bool, error) {
	var ro int
	err := m.db(addr).QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro)
	return err == nil && ro == 0, err
}

func (m *mysqlClient) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.dbs {
		d.Close()
	}
}

type redisClient struct {
	b  binding
	mu sync.Mutex
	cs map[string]*redis.Client
}

func (r *redisClient) c(addr string) *redis.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cs[addr]; ok {
		return c
	}
	c := redis.NewClient(&redis.Options{Addr: addr, Username: r.b.Credentials.Username, Password: r.b.Credentials.Password,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1, PoolSize: 2})
	r.cs[addr] = c
	return c
}

func (r *redisClient) put(ctx context.Context, addr, key string) error {
	c := r.c(addr)
	if err := c.Set(ctx, "e2e:ack:"+key, "1", 0).Err(); err != nil {
		return err
	}
	n, err := c.Wait(ctx, 1, 200*time.Millisecond).Result()
	if err != nil {
		return err
	}
	if n < 1 {
		return errors.New("WAIT: no replica acknowledged the write")
	}
	return nil
}

func (r *redisClient) has(ctx context.Context, addr, key string) (bool, error) {
	n, err := r.c(addr).Exists(ctx, "e2e:ack:"+key).Result()
	return n == 1, err
}

// writable SETs a probe key: a replica answers READONLY, an isolated primary
// NOREPLICAS; either way no write was taken.
func (r *redisClient) writable(ctx context.Context, addr string) (bool, error) {
	err := r.c(addr).Set(ctx, "e2e:writable-probe", addr, 0).Err()
	if err == nil {
		return true, nil
	}
	if strings.HasPrefix(err.Error(), "READONLY") || strings.HasPrefix(err.Error(), "NOREPLICAS") {
		return false, nil
	}
	return false, err
}

func (r *redisClient) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cs {
		c.Close()
	}
}

// writer writes a new key every few milliseconds to the primary the API
// names, and records every acknowledged one with its time and address.
type writer struct {
	eng       engineClient
	primaryOf func() string
	done      chan struct{}
	stopped   chan struct{}

	mu    sync.Mutex
	acks  []ack
	err   error
	seq   int
	cache string
}

type ack struct {
	key  string
	addr string
	at   time.Time
}

func startWriter(eng engineClient, primaryOf func() string) *writer {
	w := &writer{eng: eng, primaryOf: primaryOf, done: make(chan struct{}), stopped: make(chan struct{})}
	go w.run()
	return w
}

func (w *writer) run() {
	defer close(w.stopped)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	addr := w.primaryOf()
	var lastLookup time.Time
	for {
		select {
		case <-w.done:
			return
		case <-tick.C:
		}
		w.seq++
		key := fmt.Sprintf("w%06d", w.seq)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := w.eng.put(ctx, addr, key)
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acks = append(w.acks, ack{key, addr, time.Now()})
		} else {
			w.err = err
		}
		w.mu.Unlock()
		if err != nil && time.Since(lastLookup) >= 20*time.Millisecond {
			// Find the primary again, as an application using the API
			// would, at most every 20ms.
			lastLookup = time.Now()
			if a := w.primaryOf(); a != "" {
				addr = a
			}
		}
	}
}

func (w *writer) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	<-w.stopped
}

func (w *writer) acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

func (w *writer) lastErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// firstAckAfter is the time of the first write acknowledged after t by a
// node other than not (zero if none yet).
func (w *writer) firstAckAfter(t time.Time, not string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.acks {
		if a.at.After(t) && a.addr != not {
			return a.at
		}
	}
	return time.Time{}
}

func (w *writer) waitAcked(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the writer to have %d acknowledged writes", n), failoverTimeout, func() (bool, string) {
		return w.acked() >= n, fmt.Sprintf("%d, last error %v", w.acked(), w.lastErr())
	})
}

func (w *writer) waitAckedAt(t *testing.T, addr string) {
	t.Helper()
	since := time.Now()
	waitFor(t, "the writer to have a write acknowledged by "+addr, failoverTimeout, func() (bool, string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for i := len(w.acks) - 1; i >= 0 && w.acks[i].at.After(since); i-- {
			if w.acks[i].addr == addr {
				return true, ""
			}
		}
		return false, fmt.Sprintf("last error %v", w.err)
	})
}

// checkNothingLost reads every acknowledged key on the primary at addr.
func (w *writer) checkNothingLost(t *testing.T, addr string) {
	t.Helper()
	w.mu.Lock()
	acks := append([]ack(nil), w.acks...)
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lost []string
	for _, a := range acks {
		ok, err := w.eng.has(ctx, addr, a.key)
		if err != nil {
			t.Fatalf("read %s on %s: %v", a.key, addr, err)
		}
		if !ok {
			lost = append(lost, a.key+"@"+a.addr)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes are missing on the primary %s: %v", len(lost), len(acks), addr, lost)
	}
}

// writableChecker polls every node's writability and counts the rounds in
// which more than one node took writes.
type writableChecker struct {
	once    sync.Once
	done    chan struct{}
	stopped chan struct{}
	two     int
	first   string
}

func startWritableChecker(eng engineClient, addrs []string) *writableChecker {
	c := &writableChecker{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(c.stopped)
		for {
			select {
			case <-c.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var writable []string
			for _, a := range addrs {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				if ok, _ := eng.writable(ctx, a); ok {
					writable = append(writable, a)
				}
				cancel()
			}
			if len(writable) > 1 {
				c.two++
				if c.first == "" {
					c.first = time.Now().Format(time.RFC3339Nano) + " " + strings.Join(writable, ",")
				}
			}
		}
	}()
	return c
}

func (c *writableChecker) stop() (int, string) {
	c.once.Do(func() { close(c.done) })
	<-c.stopped
	return c.two, c.first
}
