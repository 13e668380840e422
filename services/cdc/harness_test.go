package cdc_test

// The service-level harness: the cdc binary as a subprocess, real MariaDB
// nodes (a GTID primary and replica with log_slave_updates), the embedded
// Kafka broker in the test process, and a provisioning stand-in serving
// the internal CDC view from a value the test switches.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/api/events/eventstest"
	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/svctest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
)

// cdcBinary is the name of the cdc command built once by TestMain into a
// directory put first on PATH (svctest.Start runs commands by name).
const cdcBinary = "canopy-cdc-svctest"

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	defer enginetest.CleanupTemplate()
	return svctest.Main(m, "./cmd/cdc", cdcBinary)
}

const (
	cdcUser     = "canopy_cdc"
	cdcPassword = "svc-cdc-secret-1"
	replUser    = "canopy-repl"
	replPass    = "repl-secret-1"
	secret      = "svc-test-internal-secret-0123456789"
	tenantID    = "acme"
	appDB       = "app"
)

// mnode is a started mariadbd.
type mnode struct {
	id   string
	proc *enginetest.Proc
	root *sql.DB
}

func nodeInitSQL() string {
	return strings.Join([]string{
		"SET SESSION sql_log_bin=0",
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY '%s'", cdcUser, cdcPassword),
		fmt.Sprintf("GRANT %s ON *.* TO %s@'%%'", nodetest.CDCGrants, cdcUser),
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", replUser, replPass),
		fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO '%s'@'%%'", replUser),
	}, ";\n") + ";\n"
}

// startPair starts a primary (node-0) and a GTID replica of it (node-1)
// with binlogs as Canopy runs tenant nodes: ROW, FULL row metadata,
// log_slave_updates, strict GTID mode.
func startPair(t *testing.T) (primary, replica *mnode) {
	t.Helper()
	return startPairIDs(t, 1)
}

// startPairIDs is startPair with the server ids firstID and firstID+1
// (two instances of one test get distinct ids, as provisioning gives).
func startPairIDs(t *testing.T, firstID int) (primary, replica *mnode) {
	t.Helper()
	var nodes []*mnode
	var procs []*enginetest.Proc
	for i := range 2 {
		serverID := firstID + i
		p := enginetest.New(t, "mariadbd", func(p *enginetest.Proc, _ bool) []string {
			args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir,
				"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
				"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"), "--server-id=" + strconv.Itoa(serverID),
				"--log-bin=mysql-bin", "--relay-log=relay-bin", "--log-slave-updates", "--gtid-strict-mode=ON",
				"--binlog-format=ROW", "--binlog-row-metadata=FULL", "--skip-slave-start",
				"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--performance-schema=OFF",
				"--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
				"--max-connections=80", "--init-file=" + filepath.Join(p.Dir, "init.sql"),
			}
			if os.Geteuid() == 0 {
				args = append(args, "--user=root")
			}
			return args
		}, enginetest.WaitMariaDB)
		enginetest.MariaDBData(t, filepath.Join(p.Dir, "data"))
		if err := os.WriteFile(filepath.Join(p.Dir, "init.sql"), []byte(nodeInitSQL()), 0o600); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		nodes = append(nodes, &mnode{id: "node-" + strconv.Itoa(i), proc: p})
	}
	enginetest.StartAll(t, procs)
	for _, n := range nodes {
		n.root = enginetest.RootDB(enginetest.MariaDBSocket(n.proc))
		n.root.SetMaxOpenConns(8)
		t.Cleanup(func() { n.root.Close() })
	}
	primary, replica = nodes[0], nodes[1]
	execAll(t, replica.root, "SET GLOBAL read_only=ON",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			primary.proc.Port, replUser, replPass),
		"START SLAVE")
	execAll(t, primary.root, "CREATE DATABASE "+appDB)
	svctest.WaitFor(t, "replica caught up with the primary", 30*time.Second, func() (bool, string) {
		return caughtUp(primary, replica)
	})
	return primary, replica
}

// caughtUp says whether replica has applied everything primary logged.
func caughtUp(primary, replica *mnode) (bool, string) {
	var p, r string
	if err := primary.root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
		return false, err.Error()
	}
	if err := replica.root.QueryRow("SELECT @@gtid_slave_pos").Scan(&r); err != nil {
		return false, err.Error()
	}
	return p == r, fmt.Sprintf("primary %q replica %q %v", p, r, enginetest.SlaveStatus(replica.root)["Last_IO_Error"])
}

func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%.120s: %v", s, err)
		}
	}
}

// provStandIn is provisioning's internal CDC view of one instance, with
// the nodes' roles and health switchable by the test. It accepts the
// signed requests without verifying them (provview's own tests do).
type provStandIn struct {
	srv        *httptest.Server
	instanceID string
	mu         sync.Mutex
	nodes      []provNode
}

type provNode struct {
	ID         string `json:"id"`
	Address    string `json:"address"`
	Role       string `json:"role"`
	Region     string `json:"region"`
	RegionRole string `json:"region_role"`
	Healthy    bool   `json:"healthy"`
}

func startProvisioning(t *testing.T, instanceID string) *provStandIn {
	p := &provStandIn{instanceID: instanceID}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/internal/v1/cdc/instances/"+instanceID {
			http.NotFound(w, r)
			return
		}
		p.mu.Lock()
		body := map[string]any{"instance_id": instanceID, "tenant_id": tenantID, "name": "svc", "engine": "mysql",
			"state": "ready", "nodes": p.nodes, "cdc": map[string]string{"username": cdcUser, "password": cdcPassword}}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// set replaces the view's nodes.
func (p *provStandIn) set(nodes ...provNode) {
	p.mu.Lock()
	p.nodes = nodes
	p.mu.Unlock()
}

func viewNode(n *mnode, role string, healthy bool) provNode {
	return provNode{ID: n.id, Address: n.proc.Addr, Role: role, Region: "local", RegionRole: "primary", Healthy: healthy}
}

// service is the cdc binary, run (and killed) as a subprocess.
type service struct{ *svctest.Service }

// startService starts the cdc service on a fresh database, dropped when
// the test ends, reading instances from prov; extraEnv adds to or
// overrides its environment.
func startService(t *testing.T, prov *provStandIn, broker string, extraEnv map[string]string) *service {
	t.Helper()
	env := map[string]string{
		"CANOPY_MYSQL_DSN":            storetest.DSN(),
		"CANOPY_CDC_DATABASE":         storetest.NewConfig(t, "cdc_svc").Database,
		"CANOPY_CDC_PROVISIONING_URL": prov.srv.URL,
		"CANOPY_KAFKA_BROKERS":        broker,
		"CANOPY_INTERNAL_SECRET":      secret,
		"CANOPY_CDC_STATUS_INTERVAL":  "200ms",
	}
	maps.Copy(env, extraEnv)
	return &service{svctest.Start(t, svctest.Config{Binary: cdcBinary, AddrEnv: "CANOPY_CDC_ADDR", Env: env,
		Secret: secret, Audience: tenancy.AudienceCDC, ReadyTimeout: 30 * time.Second})}
}

// streamJSON is the stream resource of the API.
type streamJSON struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	TopicPrefix string `json:"topic_prefix"`
	LastError   string `json:"last_error"`
	SourceNode  string `json:"source_node"`
	Position    struct {
		GTID         string `json:"gtid"`
		SnapshotGTID string `json:"snapshot_gtid"`
	} `json:"position"`
	EventsTotal int64 `json:"events_total"`
	Lag         struct {
		Ms     int64 `json:"ms"`
		Events int64 `json:"events"`
	} `json:"lag"`
}

// member is the caller of every request of these tests.
var member = tenancy.Principal{Tenant: tenantID, Role: tenancy.RoleTenantMember, Subject: "apikey:svc-test"}

func (s *service) createStream(t *testing.T, instanceID string, spec map[string]any) streamJSON {
	t.Helper()
	var st streamJSON
	if err := s.Call(member, http.MethodPost, "/api/v1/instances/"+instanceID+"/cdc-streams", spec, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (s *service) stream(instanceID, id string) (streamJSON, error) {
	var st streamJSON
	err := s.Call(member, http.MethodGet, "/api/v1/instances/"+instanceID+"/cdc-streams/"+id, nil, &st)
	return st, err
}

// startKafka starts the embedded broker with one partition per topic: a
// topicView reads a data topic's partition 0 only.
func startKafka(t *testing.T) string {
	t.Helper()
	return svctest.StartKafkaWith(t, devkafka.Config{Partitions: 1})
}

// envelope is the part of a Debezium event the view needs.
type envelope struct {
	After  map[string]any `json:"after"`
	Op     string         `json:"op"`
	Source struct {
		GTID     string `json:"gtid"`
		Row      int    `json:"row"`
		Snapshot string `json:"snapshot"`
	} `json:"source"`
}

// topicView follows a data topic from its start and keeps the last value
// per key, as a compacted topic's reader sees the table: deletes remove,
// tombstones are ignored. It counts messages and duplicates (a (gtid,row)
// change seen before, or a key snapshotted twice).
type topicView struct {
	mu       sync.Mutex
	rows     map[string]string // key → canonical row
	msgs     int
	opCount  map[string]int
	seen     map[string]bool
	dups     int
	snapSeen map[string]bool
	snapDups int
	err      error
	cancel   context.CancelFunc
	done     chan struct{}
}

func followTopic(t *testing.T, broker, topic string) *topicView {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	v := &topicView{rows: map[string]string{}, opCount: map[string]int{}, seen: map[string]bool{}, snapSeen: map[string]bool{},
		cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		// Plain fetches from the next offset (a kafka-go Reader stalled
		// against the embedded broker under -race); a failed fetch is
		// retried, the topic may not exist yet.
		c := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
		var next int64
		for ctx.Err() == nil {
			res, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: 0, Offset: next, MinBytes: 1,
				MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
			if err == nil && res.Error != nil {
				err = res.Error
			}
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			for {
				rec, err := res.Records.ReadRecord()
				if err != nil {
					break
				}
				if rec.Offset < next {
					continue
				}
				m := kafka.Message{Offset: rec.Offset, Key: readBytes(rec.Key), Value: readBytes(rec.Value)}
				next = rec.Offset + 1
				v.add(m)
			}
			if cl, ok := res.Records.(io.Closer); ok {
				cl.Close()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-v.done })
	return v
}

// readBytes reads a record's key or value; nil stays nil (a tombstone).
func readBytes(b kafka.Bytes) []byte {
	if b == nil {
		return nil
	}
	out, _ := io.ReadAll(b)
	if out == nil {
		out = []byte{}
	}
	return out
}

func (v *topicView) add(m kafka.Message) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.msgs++
	if m.Value == nil {
		return // tombstone
	}
	var e envelope
	var key map[string]any
	if err := json.Unmarshal(m.Value, &e); err != nil || json.Unmarshal(m.Key, &key) != nil {
		v.err = fmt.Errorf("undecodable event %q / key %q: %v", m.Value, m.Key, err)
		return
	}
	id := fmt.Sprint(key["id"])
	v.opCount[e.Op]++
	if e.Op == "r" {
		if v.snapSeen[id] {
			v.snapDups++
		}
		v.snapSeen[id] = true
	} else {
		dk := fmt.Sprintf("%s/%d", e.Source.GTID, e.Source.Row)
		if v.seen[dk] {
			v.dups++
		}
		v.seen[dk] = true
	}
	if e.Op == "d" {
		delete(v.rows, id)
		return
	}
	v.rows[id] = fmt.Sprintf("%v|%v", e.After["v"], e.After["n"])
}

func (v *topicView) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.msgs
}

func (v *topicView) snapshot() (map[string]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]string, len(v.rows))
	for k, r := range v.rows {
		out[k] = r
	}
	return out, v.err
}

// tableRows reads the test table as the view keeps it.
func tableRows(db *sql.DB, table string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT id, v, n FROM "+appDB+"."+table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id int64
		var val string
		var n int64
		if err := rows.Scan(&id, &val, &n); err != nil {
			return nil, err
		}
		out[strconv.FormatInt(id, 10)] = fmt.Sprintf("%s|%d", val, n)
	}
	return out, rows.Err()
}

// diffRows describes how got differs from want: missing, wrong and extra
// keys (the first few of each).
func diffRows(want, got map[string]string) (missing int, desc string) {
	var d []string
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing++
			d = append(d, "missing "+id)
		case g != w:
			d = append(d, fmt.Sprintf("%s: %q, want %q", id, g, w))
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
	return missing, strings.Join(d, "; ")
}

// waitConverged waits until the topic's view equals the table on db and
// fails with the difference otherwise.
func waitConverged(t *testing.T, v *topicView, db *sql.DB, table string, timeout time.Duration, state func() string) {
	t.Helper()
	want, err := tableRows(db, table)
	if err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	svctest.WaitFor(t, "topic view equals the table ("+strconv.Itoa(len(want))+" rows)", timeout, func() (bool, string) {
		if os.Getenv("CDC_TEST_TRACE") != "" && time.Since(last) > 500*time.Millisecond {
			last = time.Now()
			t.Logf("converging: topic %d messages; %s", v.count(), state())
		}
		got, err := v.snapshot()
		if err != nil {
			t.Fatalf("topic: %v", err)
		}
		missing, d := diffRows(want, got)
		return d == "", fmt.Sprintf("%d missing: %s; topic %d messages; %s", missing, d, v.count(), state())
	})
}

// writer is a write load on one table: inserts of new ids, updates and
// deletes of existing ones, in small transactions, against whichever node
// is the primary now. It counts committed transactions; failures (the
// primary dying under it) are counted and retried on the next round.
type writer struct {
	mu        sync.Mutex
	db        *sql.DB
	table     string
	next      int64
	live      []int64
	committed int
	failed    int
	cancel    context.CancelFunc
	done      chan struct{}
	rnd       func(n int) int
}

// writerDB opens a short-timeout root pool to the node (over its socket:
// root is root@localhost).
func writerDB(t *testing.T, n *mnode) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", enginetest.MariaDBSocket(n.proc)
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = time.Second, 3*time.Second, 3*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	return db
}

func startWriter(db *sql.DB, table string, firstID int64, rnd func(int) int) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{db: db, table: table, next: firstID, cancel: cancel, done: make(chan struct{}), rnd: rnd}
	go func() {
		defer close(w.done)
		// Paced (at most one transaction per 2ms), so the replica keeps
		// up on a small machine and the test measures cdc, not it.
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			w.step(ctx)
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *writer) setDB(db *sql.DB) {
	w.mu.Lock()
	w.db = db
	w.mu.Unlock()
}

// step runs one transaction of 1–3 statements.
func (w *writer) step(ctx context.Context) {
	w.mu.Lock()
	db := w.db
	w.mu.Unlock()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		w.fail(ctx)
		return
	}
	nextBefore, liveBefore := w.next, append([]int64(nil), w.live...)
	for range 1 + w.rnd(3) {
		var q string
		switch op := w.rnd(10); {
		case op < 5 || len(w.live) < 10:
			q = fmt.Sprintf("INSERT INTO %s.%s (id, v, n) VALUES (%d, 'w%d', 0)", appDB, w.table, w.next, w.next)
			w.live = append(w.live, w.next)
			w.next++
		case op < 8:
			id := w.live[w.rnd(len(w.live))]
			q = fmt.Sprintf("UPDATE %s.%s SET n = n + 1, v = CONCAT('u', n + 1) WHERE id = %d", appDB, w.table, id)
		default:
			i := w.rnd(len(w.live))
			q = fmt.Sprintf("DELETE FROM %s.%s WHERE id = %d", appDB, w.table, w.live[i])
			w.live = append(w.live[:i], w.live[i+1:]...)
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			_ = tx.Rollback()
			w.next, w.live = nextBefore, liveBefore
			w.fail(ctx)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		// The commit may have happened: the table, not this list, is the
		// truth; keep the ids moving past anything that may exist.
		w.live = liveBefore
		w.fail(ctx)
		return
	}
	w.mu.Lock()
	w.committed++
	w.mu.Unlock()
}

func (w *writer) fail(ctx context.Context) {
	w.mu.Lock()
	w.failed++
	w.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Millisecond):
	}
}

func (w *writer) stats() (committed, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed, w.failed
}

// stop ends the load after its current transaction.
func (w *writer) stop() {
	w.cancel()
	<-w.done
}

// seed fills table with ids [0, n) in multi-row INSERTs.
func seed(t *testing.T, db *sql.DB, table string, n int) {
	t.Helper()
	for first := 0; first < n; first += 1000 {
		var sb strings.Builder
		fmt.Fprintf(&sb, "INSERT INTO %s.%s (id, v, n) VALUES ", appDB, table)
		for id := first; id < min(first+1000, n); id++ {
			if id > first {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "(%d,'s%d',0)", id, id)
		}
		execAll(t, db, sb.String())
	}
}

func createTable(t *testing.T, db *sql.DB, table string) {
	execAll(t, db, fmt.Sprintf("CREATE TABLE %s.%s (id BIGINT PRIMARY KEY, v VARCHAR(64) NOT NULL, n INT NOT NULL) ENGINE=InnoDB", appDB, table))
}

// ops returns a copy of the per-op message counts.
func (v *topicView) ops() map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]int, len(v.opCount))
	for k, n := range v.opCount {
		out[k] = n
	}
	return out
}

// dupCount is how many changes were read more than once.
func (v *topicView) dupCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dups
}

func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// distinct is how many different data rows the topic carried: row changes
// by (gtid, row) and snapshot reads by key, each once however often a
// restart re-published it. Tombstones are not rows.
func (v *topicView) distinct() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return int64(len(v.seen) + len(v.snapSeen))
}

// usageView follows canopy.cdc.v1 on every partition and adds up the rows
// of each stream's cdc.stream.usage events, as metering does: once per
// ce_id (the outbox relay delivers at least once), each payload checked
// against its schema.
type usageView struct {
	mu     sync.Mutex
	ids    map[string]bool
	rows   map[string]int64
	events int
	err    error
}

func followUsage(t *testing.T, broker string) *usageView {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	v := &usageView{ids: map[string]bool{}, rows: map[string]int64{}}
	schemas := eventstest.MustNew(t)
	go func() {
		defer close(done)
		c := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
		next := map[int]int64{}
		for ctx.Err() == nil {
			// The service creates the topic (6 partitions) when it starts.
			md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{events.TopicCDC}})
			if err != nil || len(md.Topics) == 0 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) == 0 {
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			for _, p := range md.Topics[0].Partitions {
				res, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: events.TopicCDC, Partition: p.ID, Offset: next[p.ID], MinBytes: 1,
					MaxBytes: 1 << 20, MaxWait: 20 * time.Millisecond})
				if err != nil || res.Error != nil {
					continue
				}
				for {
					rec, err := res.Records.ReadRecord()
					if err != nil {
						break
					}
					if rec.Offset < next[p.ID] {
						continue
					}
					next[p.ID] = rec.Offset + 1
					v.add(schemas, rec.Headers, readBytes(rec.Value))
				}
				if cl, ok := res.Records.(io.Closer); ok {
					cl.Close()
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return v
}

func (v *usageView) add(schemas *eventstest.Validator, headers []kafka.Header, value []byte) {
	h := map[string]string{}
	for _, hd := range headers {
		h[hd.Key] = string(hd.Value)
	}
	if h["ce_type"] != events.TypeCDCStreamUsage {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ids[h["ce_id"]] {
		return // a redelivery of the relay
	}
	v.ids[h["ce_id"]] = true
	var u events.CDCStreamUsage
	if err := schemas.Validate(events.TypeCDCStreamUsage, value); err != nil {
		v.err = err
		return
	}
	if err := json.Unmarshal(value, &u); err != nil {
		v.err = err
		return
	}
	if h["tenant"] != u.TenantID || h["ce_subject"] != u.StreamID || u.From.After(u.To) {
		v.err = fmt.Errorf("usage event headers %v payload %+v", h, u)
		return
	}
	v.events++
	v.rows[u.StreamID] += u.Rows
}

// total returns the rows reported for stream and the events they came in.
func (v *usageView) total(stream string) (int64, int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rows[stream], v.events, v.err
}
