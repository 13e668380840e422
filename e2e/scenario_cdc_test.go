package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// cdcStream is the stream resource as a user reads it.
type cdcStream struct {
	ID          string   `json:"id"`
	InstanceID  string   `json:"instance_id"`
	State       string   `json:"state"`
	Tables      []string `json:"tables"`
	TopicPrefix string   `json:"topic_prefix"`
	LastError   string   `json:"last_error"`
	SourceNode  string   `json:"source_node"`
	Position    struct {
		GTID string `json:"gtid"`
	} `json:"position"`
	Lag struct {
		Ms     int64 `json:"ms"`
		Events int64 `json:"events"`
	} `json:"lag"`
}

// cdcEvent is the Debezium envelope as a consumer decodes it.
type cdcEvent struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Op     string         `json:"op"`
	Source struct {
		Name     string `json:"name"`
		DB       string `json:"db"`
		Table    string `json:"table"`
		GTID     string `json:"gtid"`
		Row      int    `json:"row"`
		Snapshot string `json:"snapshot"`
	} `json:"source"`
}

// topicView follows a CDC topic from its start and keeps, per key, the last
// value, as a compacted topic's reader would see the table.
type topicView struct {
	mu     sync.Mutex
	rows   map[string]map[string]any // id → after (nil after a delete)
	ops    map[string]int
	seen   map[string]bool // gtid/row, for dedupe
	dups   int
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func followTopic(t *testing.T, broker, topic string) *topicView {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	v := &topicView{rows: map[string]map[string]any{}, ops: map[string]int{}, seen: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
	go func() {
		defer close(v.done)
		defer r.Close()
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					v.mu.Lock()
					v.err = err
					v.mu.Unlock()
				}
				return
			}
			if m.Value == nil {
				continue // tombstone
			}
			var e cdcEvent
			var key map[string]any
			if err := json.Unmarshal(m.Value, &e); err != nil || json.Unmarshal(m.Key, &key) != nil {
				v.mu.Lock()
				v.err = fmt.Errorf("undecodable event %q / key %q: %v", m.Value, m.Key, err)
				v.mu.Unlock()
				return
			}
			id := fmt.Sprint(key["id"])
			v.mu.Lock()
			dk := fmt.Sprintf("%s/%d", e.Source.GTID, e.Source.Row)
			if e.Op != "r" && v.seen[dk] {
				v.dups++
				v.mu.Unlock()
				continue
			}
			v.seen[dk] = true
			v.ops[e.Op]++
			if e.Op == "d" {
				v.rows[id] = nil
			} else {
				v.rows[id] = e.After
			}
			v.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-v.done })
	return v
}

// table returns id → name of the rows present in the view.
func (v *topicView) table() (map[string]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]string{}
	for id, r := range v.rows {
		if r != nil {
			out[id] = fmt.Sprint(r["name"])
		}
	}
	return out, v.err
}

func diffRows(want, got map[string]string) string {
	var d []string
	for id, n := range want {
		if g, ok := got[id]; !ok {
			d = append(d, "missing "+id)
		} else if g != n {
			d = append(d, fmt.Sprintf("%s: %q, want %q", id, g, n))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			d = append(d, "extra "+id)
		}
	}
	sort.Strings(d)
	if len(d) > 8 {
		d = append(d[:8], fmt.Sprintf("… %d more", len(d)-8))
	}
	return strings.Join(d, "; ")
}

// TestScenarioCDC is the walk: a tenant creates a table in a MySQL
// instance, enables a CDC stream with an initial snapshot, writes, reads
// Debezium-shaped events from cdc.<tenant>.<instance>.<db>.<table>, kills
// the primary and keeps receiving changes; other tenants cannot see the
// stream.
func TestScenarioCDC(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenantID := "cdc-" + randHex(3)
	tenant := p.newTenant(t, tenantID, "tenant-admin")
	other := p.newTenant(t, "cdcx-"+randHex(3), "tenant-admin")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cdc's log:\n%s", p.logLines("service=cdc", "http request", 200))
		}
	})
	var acc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": "cdc-db", "plan_id": tenant.planID("mysql-ha-multi-az")}, http.StatusAccepted, &acc)
	id := acc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	waitOperation(t, tenant, acc.OperationID, readyTimeout)
	var inst instance
	tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
	waitAllUp(t, tenant, inst)
	var b binding
	tenant.must("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"}, http.StatusCreated, &b)
	db := routedDB(b, b.Credentials.Endpoints.RW)
	defer db.Close()
	dbName := b.Credentials.Database
	exec := func(q string, args ...any) {
		t.Helper()
		var err error
		for range 50 { // the rw endpoint waits through a switch; a write cut by the kill is retried
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = db.ExecContext(ctx, q, args...)
			cancel()
			if err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // paced retry of a write refused during the failover
		}
		t.Fatalf("%s: %v", q, err)
	}
	exec("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, balance DECIMAL(10,2), joined DATETIME(3))")
	want := map[string]string{}
	for i := 1; i <= 500; i++ {
		exec("INSERT INTO customers VALUES (?, ?, ?, NOW(3))", i, fmt.Sprintf("c%d", i), fmt.Sprintf("%d.25", i))
		want[fmt.Sprint(i)] = fmt.Sprintf("c%d", i)
	}

	// Another tenant sees neither the instance nor its streams.
	other.mustProblem("POST", "/api/v1/instances/"+id+"/cdc-streams", map[string]any{"tables": []string{dbName + ".*"}}, http.StatusNotFound)
	var s cdcStream
	tenant.must("POST", "/api/v1/instances/"+id+"/cdc-streams", map[string]any{"tables": []string{dbName + ".customers"}, "snapshot": "initial", "tombstones": true}, http.StatusCreated, &s)
	other.mustProblem("GET", "/api/v1/instances/"+id+"/cdc-streams/"+s.ID, nil, http.StatusNotFound)
	topic := fmt.Sprintf("cdc.%s.%s.%s.customers", tenantID, id, dbName)
	if s.TopicPrefix != fmt.Sprintf("cdc.%s.%s", tenantID, id) {
		t.Fatalf("topic prefix %q", s.TopicPrefix)
	}
	// Writes while the snapshot runs.
	for i := 501; i <= 600; i++ {
		exec("INSERT INTO customers VALUES (?, ?, 0, NOW(3))", i, fmt.Sprintf("c%d", i))
		want[fmt.Sprint(i)] = fmt.Sprintf("c%d", i)
	}
	waitFor(t, "the stream to stream", 60*time.Second, func() (bool, string) {
		tenant.must("GET", "/api/v1/instances/"+id+"/cdc-streams/"+s.ID, nil, http.StatusOK, &s)
		if s.State == "failed" {
			t.Fatalf("stream failed: %s", s.LastError)
		}
		return s.State == "streaming", s.State
	})
	waitFor(t, "the stream's status to name its source node", 30*time.Second, func() (bool, string) {
		var raw map[string]any
		tenant.must("GET", "/api/v1/instances/"+id+"/cdc-streams/"+s.ID, nil, http.StatusOK, &raw)
		tenant.must("GET", "/api/v1/instances/"+id+"/cdc-streams/"+s.ID, nil, http.StatusOK, &s)
		return s.SourceNode != "" && s.Position.GTID != "", fmt.Sprint(raw)
	})
	v := followTopic(t, p.KafkaAddr, topic)
	exec("UPDATE customers SET name = CONCAT(name, '-u') WHERE id <= 50")
	for i := 1; i <= 50; i++ {
		want[fmt.Sprint(i)] += "-u"
	}
	exec("DELETE FROM customers WHERE id BETWEEN 51 AND 60")
	for i := 51; i <= 60; i++ {
		delete(want, fmt.Sprint(i))
	}
	converged := func(what string) {
		t.Helper()
		waitFor(t, what, 60*time.Second, func() (bool, string) {
			got, err := v.table()
			if err != nil {
				t.Fatalf("reading %s: %v", topic, err)
			}
			d := diffRows(want, got)
			return d == "", d
		})
	}
	converged("the topic's view to equal the table")
	v.mu.Lock()
	if v.ops["r"] < 500 || v.ops["u"] < 50 || v.ops["d"] < 10 {
		t.Errorf("ops seen %v: want ≥500 r (snapshot), 50 u, 10 d", v.ops)
	}
	v.mu.Unlock()

	// Kill -9 the primary while a writer runs: changes keep coming.
	old := nodeByRole(t, inst, "primary")
	stop := make(chan struct{})
	var wmu sync.Mutex
	var written []int
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for i := 1001; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			// A write whose acknowledgement the kill cut may have committed
			// (and reached the new primary): its retry must not fail forever
			// on the duplicate key.
			_, err := db.ExecContext(ctx, "INSERT INTO customers VALUES (?, ?, 0, NOW(3)) ON DUPLICATE KEY UPDATE name = VALUES(name)", i, fmt.Sprintf("c%d", i))
			cancel()
			if err != nil {
				i-- // retry the same row: only acknowledged rows count
				continue
			}
			wmu.Lock()
			written = append(written, i)
			wmu.Unlock()
		}
	}()
	waitFor(t, "some writes before the kill", 30*time.Second, func() (bool, string) {
		wmu.Lock()
		defer wmu.Unlock()
		return len(written) >= 20, fmt.Sprint(len(written))
	})
	pid := nodePID(p.StateDir, old.id)
	if pid == 0 {
		t.Fatalf("no process for primary %s", old.id)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill primary: %v", err)
	}
	waitFailover(t, tenant, id, "automatic", old.id)
	var after int
	waitFor(t, "writes after the failover", 60*time.Second, func() (bool, string) {
		wmu.Lock()
		defer wmu.Unlock()
		if after == 0 {
			after = len(written)
		}
		return len(written) >= after+50, fmt.Sprint(len(written) - after)
	})
	close(stop)
	<-wdone
	for _, i := range written {
		want[fmt.Sprint(i)] = fmt.Sprintf("c%d", i)
	}
	// Rows committed but unacknowledged at the kill may exist on the new
	// primary too: the table, read back, is the truth the topic must equal.
	rows, err := db.Query("SELECT id, name FROM customers")
	if err != nil {
		t.Fatalf("read table: %v", err)
	}
	table := map[string]string{}
	for rows.Next() {
		var rid int
		var name string
		if err := rows.Scan(&rid, &name); err != nil {
			t.Fatal(err)
		}
		table[fmt.Sprint(rid)] = name
	}
	rows.Close()
	if d := diffRows(want, table); d != "" {
		t.Fatalf("the table lost acknowledged writes: %s", d)
	}
	want = table
	converged("the topic's view to equal the table after the failover")
	tenant.must("GET", "/api/v1/instances/"+id+"/cdc-streams/"+s.ID, nil, http.StatusOK, &s)
	if s.State != "streaming" {
		t.Errorf("stream after the failover: %s (%s)", s.State, s.LastError)
	}
	t.Logf("cdc: %d rows written across the failover; stream reads from %s at %s; duplicates dropped by gtid+row: %d", len(written), s.SourceNode, s.Position.GTID, v.dups)

	// Pause, resume, delete.
	tenant.must("POST", "/api/v1/instances/"+id+"/cdc-streams/"+s.ID+":pause", nil, http.StatusOK, &s)
	if s.State != "paused" {
		t.Errorf("after :pause the state is %s", s.State)
	}
	tenant.must("POST", "/api/v1/instances/"+id+"/cdc-streams/"+s.ID+":resume", nil, http.StatusOK, &s)
	tenant.must("DELETE", "/api/v1/instances/"+id+"/cdc-streams/"+s.ID, nil, http.StatusAccepted, nil)
}
