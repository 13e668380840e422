package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/migrations"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// harness is a broker with the ledger's topics, a migrated metering
// database, and publishers for lifecycle-style events and ingested ones.
type harness struct {
	t       testing.TB
	brokers []string
	db      *store.DB
	pub     *eventbus.Publisher
	ingest  *kafka.Writer
	reg     *prometheus.Registry

	mu        sync.Mutex
	published map[string]int64 // messages per topic
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	brokers := devkafkatest.Start(t, topics...)
	return newHarnessOn(t, brokers)
}

func newHarnessOn(t testing.TB, brokers []string) *harness {
	t.Helper()
	db := storetest.NewDB(t, "metering_ledger")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.Migrate(ctx, migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: "/test", BatchSize: 1000},
		testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	h := &harness{t: t, brokers: brokers, db: db, pub: pub, ingest: w, reg: prometheus.NewRegistry(), published: map[string]int64{}}
	t.Cleanup(func() {
		_ = pub.Close()
		_ = w.Close()
		w.Transport.(*kafka.Transport).CloseIdleConnections()
	})
	return h
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("LEDGER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newLedger builds a ledger with test-short intervals.
func (h *harness) newLedger(cfg Config) *Ledger {
	h.t.Helper()
	cfg.Brokers = h.brokers
	if cfg.BatchWait == 0 {
		cfg.BatchWait = 20 * time.Millisecond
	}
	if cfg.AccrueEvery == 0 {
		cfg.AccrueEvery = 50 * time.Millisecond
	}
	l, err := New(cfg, h.db, testLogger(h.t), h.reg)
	if err != nil {
		h.t.Fatal(err)
	}
	l.discoverEvery = 100 * time.Millisecond
	l.lockRetry = 50 * time.Millisecond
	l.lockCheck = 50 * time.Millisecond
	// Not shorter than the default: kafka-go bounds a whole fetch (up to
	// readerMaxBytes) by MaxWait, and under the race detector a 4 MiB fetch
	// outlasted 50 ms every time, so the readers retried forever.
	l.readerMaxWait = 500 * time.Millisecond
	return l
}

// run runs l until the returned stop is called (or the test ends).
func (h *harness) run(l *Ledger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("ledger run: %v", err)
				}
			case <-time.After(30 * time.Second):
				h.t.Errorf("ledger did not stop within 30s")
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// publish publishes a binary-mode event of typ on topic keyed by key.
func (h *harness) publish(topic, typ, key string, at time.Time, payload any) {
	h.t.Helper()
	ev, err := eventbus.NewEvent(typ, "/test", key, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	ev.Time = at
	h.publishEvents(topic, ev)
}

func (h *harness) publishEvents(topic string, evs ...eventbus.Event) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.pub.Publish(ctx, topic, evs...); err != nil {
		h.t.Fatalf("publish %d to %s: %v", len(evs), topic, err)
	}
	h.mu.Lock()
	h.published[topic] += int64(len(evs))
	h.mu.Unlock()
}

// publishIngest writes ingested CloudEvents as the ingestion API does:
// structured JSON values keyed by source NUL id, received at recv.
func (h *harness) publishIngest(recv time.Time, evs ...meter.Event) {
	h.t.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, e := range evs {
		v, err := json.Marshal(e)
		if err != nil {
			h.t.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: events.TopicUsageIngest, Key: []byte(e.Source + "\x00" + e.ID), Value: v, Time: recv}
	}
	h.publishRaw(msgs...)
}

// publishRaw writes records as they are.
func (h *harness) publishRaw(msgs ...kafka.Message) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.ingest.WriteMessages(ctx, msgs...); err != nil {
		h.t.Fatalf("write %d records: %v", len(msgs), err)
	}
	h.mu.Lock()
	for _, m := range msgs {
		h.published[m.Topic]++
	}
	h.mu.Unlock()
}

// applied is how many messages of topic the ledger has committed.
func (h *harness) applied(topic string) int64 {
	h.t.Helper()
	var n int64
	if err := h.db.SQL().QueryRow("SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets WHERE topic = ?", topic).Scan(&n); err != nil {
		h.t.Fatalf("read offsets: %v", err)
	}
	return n
}

// waitApplied waits until everything published so far was applied (the
// topics' offsets start at zero on a fresh broker).
func (h *harness) waitApplied() {
	h.t.Helper()
	h.mu.Lock()
	want := make(map[string]int64, len(h.published))
	for k, v := range h.published {
		want[k] = v
	}
	h.mu.Unlock()
	for topic, n := range want {
		eventually(h.t, 60*time.Second, fmt.Sprintf("%d messages of %s applied", n, topic), func() bool { return h.applied(topic) == n })
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// total is SUM(total) of a meter in table for one subject ("" = all).
func (h *harness) total(table, meterSlug, subject string) float64 {
	h.t.Helper()
	q := "SELECT COALESCE(SUM(total), 0) FROM " + table + " WHERE meter = ?"
	args := []any{meterSlug}
	if subject != "" {
		q += " AND subject = ?"
		args = append(args, subject)
	}
	var v float64
	if err := h.db.SQL().QueryRow(q, args...).Scan(&v); err != nil {
		h.t.Fatalf("sum %s of %s: %v", meterSlug, table, err)
	}
	return v
}

// count runs a COUNT(*) query.
func (h *harness) count(q string, args ...any) int64 {
	h.t.Helper()
	var n int64
	if err := h.db.SQL().QueryRow(q, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// addMeter defines a custom meter over ingested events.
func (h *harness) addMeter(slug string, agg meter.Aggregation, eventType, valueProperty string) {
	h.t.Helper()
	if _, err := h.db.SQL().Exec(`INSERT INTO meters (slug, name, unit, aggregation, scale, event_type, value_property, builtin, created_at)
		VALUES (?, ?, 'unit', ?, 1, ?, ?, FALSE, ?)`, slug, slug, string(agg), eventType, valueProperty, time.Now().UTC()); err != nil {
		h.t.Fatalf("add meter %s: %v", slug, err)
	}
}

// instance builds a lifecycle payload with nodes in the given states.
func instance(id, state string, at time.Time, nodes ...events.Node) events.Instance {
	return events.Instance{InstanceID: id, TenantID: "acme", Name: id, PlanID: "mysql-s", Engine: "mysql", State: state,
		VCPU: 2, MemoryMB: 4096, StorageGB: 50, Nodes: nodes, OccurredAt: at,
		Endpoints: events.Endpoints{Primary: firstID(nodes)}}
}

func firstID(nodes []events.Node) string {
	if len(nodes) == 0 {
		return ""
	}
	return nodes[0].ID
}

func node(id, role, state string) events.Node {
	return events.Node{ID: id, Name: id, Role: role, Region: "eu-1", AZ: "eu-1a", State: state}
}

// publishInstance publishes a lifecycle event of in's state.
func (h *harness) publishInstance(typ string, in events.Instance) {
	h.t.Helper()
	ev, err := eventbus.NewEvent(typ, events.SourceProvisioning, in.InstanceID, in)
	if err != nil {
		h.t.Fatal(err)
	}
	ev.Tenant = in.TenantID
	ev.Time = in.OccurredAt
	h.publishEvents(events.TopicInstances, ev)
}

// near reports whether a and b differ by at most eps.
func near(a, b, eps float64) bool {
	d := a - b
	return d <= eps && d >= -eps
}
