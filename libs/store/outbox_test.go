package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// published is one event as a fake publisher saw it.
type published struct {
	topic string
	event eventbus.Event
	by    string
}

// recorder is a fake Publisher that acks and records every event.
type recorder struct {
	mu  sync.Mutex
	got []published
}

func (r *recorder) add(by, topic string, events []eventbus.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		r.got = append(r.got, published{topic: topic, event: e, by: by})
	}
}

func (r *recorder) snapshot() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]published(nil), r.got...)
}

func (r *recorder) has(id string) bool {
	for _, p := range r.snapshot() {
		if p.event.ID == id {
			return true
		}
	}
	return false
}

// fakePublisher acks into a recorder under a name; after allow calls (when
// allow >= 0) it blocks until its context ends, as a hung broker would.
type fakePublisher struct {
	name      string
	rec       *recorder
	allow     int
	failEvery int64 // when > 0, every failEvery-th call fails without acking
	calls     atomic.Int64
	blocked   chan struct{} // closed when the first call blocks
	once      sync.Once
	inFlight  *atomic.Int64 // shared between publishers: concurrent Publish calls
	overlap   *atomic.Bool  // set when two publishers were inside Publish at once
}

func (p *fakePublisher) Publish(ctx context.Context, topic string, events ...eventbus.Event) error {
	if p.inFlight != nil {
		if p.inFlight.Add(1) > 1 {
			p.overlap.Store(true)
		}
		defer p.inFlight.Add(-1)
	}
	n := p.calls.Add(1)
	if p.allow >= 0 && n > int64(p.allow) {
		p.once.Do(func() { close(p.blocked) })
		<-ctx.Done()
		return ctx.Err()
	}
	if p.failEvery > 0 && n%p.failEvery == 0 {
		return errors.New("broker unavailable")
	}
	p.rec.add(p.name, topic, events)
	return nil
}

func newPublisher(name string, rec *recorder) *fakePublisher {
	return &fakePublisher{name: name, rec: rec, allow: -1, blocked: make(chan struct{})}
}

// payload is the test events' data.
type payload struct {
	Seq int `json:"seq"`
}

// emitter commits events for a few keys with a per-key sequence number.
type emitter struct {
	t    *testing.T
	db   *store.DB
	seq  map[string]int
	ids  []string // committed event ids, in commit order
	keys []string
}

func newEmitter(t *testing.T, db *store.DB) *emitter {
	return &emitter{t: t, db: db, seq: map[string]int{}, keys: []string{"inst-a", "inst-b", "inst-c"}}
}

func (em *emitter) event(key string) eventbus.Event {
	em.t.Helper()
	em.seq[key]++
	e, err := eventbus.NewEvent("test.instance.changed", "/test", key, payload{Seq: em.seq[key]})
	if err != nil {
		em.t.Fatalf("NewEvent: %v", err)
	}
	return e
}

// commit emits n transactions, each with 1-3 events on alternating topics
// and keys, and returns the ids committed.
func (em *emitter) commit(ctx context.Context, n int) {
	em.t.Helper()
	for i := range n {
		topic := []string{"canopy.test.a", "canopy.test.b"}[i%2]
		var evs []eventbus.Event
		for j := range 1 + i%3 {
			evs = append(evs, em.event(em.keys[(i+j)%len(em.keys)]))
		}
		err := em.db.Tx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
				return err
			}
			return tx.Emit(ctx, topic, evs...)
		})
		if err != nil {
			em.t.Fatalf("commit tx %d: %v", i, err)
		}
		for _, e := range evs {
			em.ids = append(em.ids, e.ID)
		}
	}
}

// checkExactlyOnceInOrder asserts that got holds each id in want exactly
// once and nothing else, and that per key the sequence numbers increase by one.
func checkExactlyOnceInOrder(t *testing.T, got []published, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, p := range got {
		count[p.event.ID]++
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Errorf("event %s published %d times, want 1", id, count[id])
		}
		delete(count, id)
	}
	for id, n := range count {
		t.Errorf("unexpected event %s published %d times", id, n)
	}
	last := map[string]int{}
	for _, p := range got {
		var pl payload
		if err := p.event.Decode(&pl); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if pl.Seq != last[p.event.Key]+1 {
			t.Errorf("key %s: got seq %d after %d (out of order)", p.event.Key, pl.Seq, last[p.event.Key])
		}
		last[p.event.Key] = pl.Seq
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startRelay runs relay until the test ends or the returned stop is called;
// stop waits for Run to return and fails the test on an error.
func startRelay(t *testing.T, relay *store.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("relay Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("relay did not stop within 15s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func unsentRows(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(context.Background(), "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").Scan(&n); err != nil {
		t.Fatalf("count unsent: %v", err)
	}
	return n
}

// newOutboxDB is a fresh database with the outbox migrated.
func newOutboxDB(t *testing.T, name string) *store.DB {
	t.Helper()
	db := storetest.NewDB(t, name)
	if err := db.Migrate(testCtx(t), store.OutboxMigrations()); err != nil {
		t.Fatalf("migrate outbox: %v", err)
	}
	return db
}

func TestTx(t *testing.T) {
	db := storetest.NewDB(t, "tx")
	ctx := testCtx(t)
	if err := db.Migrate(ctx, store.OutboxMigrations(), fstest.MapFS{"0001_kv.up.sql": sqlFile("CREATE TABLE kv (k VARCHAR(32) PRIMARY KEY, v INT NOT NULL)")}); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	count := func() int {
		var n int
		if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM kv").Scan(&n); err != nil {
			t.Fatalf("count kv: %v", err)
		}
		return n
	}
	errBoom := errors.New("boom")
	insert := func(tx *store.Tx, k string) {
		if _, err := tx.ExecContext(ctx, "INSERT INTO kv VALUES (?, 1)", k); err != nil {
			t.Fatalf("insert: %v", err)
		}
		ev, _ := eventbus.NewEvent("test.kv.put", "/test", k, payload{})
		if err := tx.Emit(ctx, "canopy.test.kv", ev); err != nil {
			t.Fatalf("emit: %v", err)
		}
	}

	if err := db.Tx(ctx, func(tx *store.Tx) error { insert(tx, "committed"); return nil }); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := db.Tx(ctx, func(tx *store.Tx) error { insert(tx, "failed"); return errBoom }); !errors.Is(err, errBoom) {
		t.Fatalf("Tx returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v, want the re-raised panic", r)
			}
		}()
		_ = db.Tx(ctx, func(tx *store.Tx) error { insert(tx, "panicked"); panic("kaboom") })
	}()
	if n := count(); n != 1 {
		t.Fatalf("kv rows = %d, want 1 (only the committed tx)", n)
	}
	if n := unsentRows(t, db); n != 1 {
		t.Fatalf("outbox rows = %d, want 1 (only the committed tx)", n)
	}

	if err := db.Tx(ctx, func(tx *store.Tx) error {
		return tx.Emit(ctx, "", eventbus.Event{Type: "x"})
	}); !errors.Is(err, store.ErrInvalidEvent) {
		t.Fatalf("emit to empty topic: err = %v, want ErrInvalidEvent", err)
	}
}

func TestEmitFillsDefaultsAndRoundTrips(t *testing.T) {
	db := newOutboxDB(t, "emit")
	ctx := testCtx(t)
	ctx = tenancy.WithTenant(ctx, tenancy.ID("acme"))
	in := eventbus.Event{
		Type: "test.thing.made", Source: "/test", Subject: "thing-1", Key: "thing-1",
		ContentType: "application/json", Data: []byte(`{"x":1}`),
		Extensions: map[string]string{"ext1": "v1"},
	}
	if err := db.Tx(ctx, func(tx *store.Tx) error { return tx.Emit(ctx, "canopy.test.things", in) }); err != nil {
		t.Fatalf("Tx: %v", err)
	}
	rec := &recorder{}
	stop := startRelay(t, store.NewRelay(db, newPublisher("r", rec), store.RelayConfig{}, nil, nil))
	waitFor(t, 10*time.Second, "the event to be published", func() bool { return len(rec.snapshot()) == 1 })
	stop()
	got := rec.snapshot()[0]
	if got.topic != "canopy.test.things" {
		t.Errorf("topic = %q", got.topic)
	}
	e := got.event
	if e.ID == "" || e.Time.IsZero() {
		t.Errorf("id/time not filled: %+v", e)
	}
	if e.Tenant != "acme" {
		t.Errorf("tenant = %q, want acme from the context", e.Tenant)
	}
	if e.Type != in.Type || e.Source != in.Source || e.Subject != in.Subject || e.Key != in.Key ||
		e.ContentType != in.ContentType || string(e.Data) != string(in.Data) || e.Extensions["ext1"] != "v1" {
		t.Errorf("event did not round-trip: got %+v, want %+v", e, in)
	}
}

func TestRelayPublishesCommittedInKeyOrder(t *testing.T) {
	db := newOutboxDB(t, "relay_order")
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	relay := store.NewRelay(db, newPublisher("r", rec), store.RelayConfig{BatchSize: 7}, slog.New(slog.DiscardHandler), reg)
	stop := startRelay(t, relay)

	em := newEmitter(t, db)
	var rolledBack []string
	errAbort := errors.New("abort")
	for round := range 5 {
		em.commit(ctx, 10)
		ev, err := eventbus.NewEvent("test.instance.changed", "/test", "inst-a", payload{Seq: -1})
		if err != nil {
			t.Fatal(err)
		}
		rolledBack = append(rolledBack, ev.ID)
		err = db.Tx(ctx, func(tx *store.Tx) error {
			if err := tx.Emit(ctx, "canopy.test.a", ev); err != nil {
				return err
			}
			return fmt.Errorf("round %d: %w", round, errAbort)
		})
		if !errors.Is(err, errAbort) {
			t.Fatalf("rolled back tx: err = %v", err)
		}
	}
	em.commit(ctx, 3) // committed after the last rollback: once it is out, nothing earlier is pending
	last := em.ids[len(em.ids)-1]
	waitFor(t, 20*time.Second, "all committed events", func() bool { return rec.has(last) })
	stop() // the counters are final once Run has returned

	got := rec.snapshot()
	checkExactlyOnceInOrder(t, got, em.ids)
	for _, id := range rolledBack {
		if rec.has(id) {
			t.Errorf("rolled back event %s was published", id)
		}
	}
	if n := unsentRows(t, db); n != 0 {
		t.Errorf("unsent rows = %d, want 0", n)
	}
	if got := metricSum(t, reg, "canopy_outbox_published_events_total"); int(got) != len(em.ids) {
		t.Errorf("published counter = %v, want %d", got, len(em.ids))
	}
	if got := metricSum(t, reg, "canopy_outbox_pending_events"); got != 0 {
		t.Errorf("pending gauge = %v, want 0", got)
	}
}

func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func TestRelayKilledBeforePublishAck(t *testing.T) {
	db := newOutboxDB(t, "relay_kill")
	ctx := testCtx(t)
	em := newEmitter(t, db)
	em.commit(ctx, 20)

	// The first relay gets two publishes acked, then the broker hangs and the
	// relay is killed while the third publish is in flight.
	rec := &recorder{}
	hung := newPublisher("first", rec)
	hung.allow = 2
	stop := startRelay(t, store.NewRelay(db, hung, store.RelayConfig{BatchSize: 8}, nil, nil))
	select {
	case <-hung.blocked:
	case <-time.After(15 * time.Second):
		t.Fatal("first relay never reached the hung publish")
	}
	stop()
	acked := len(rec.snapshot())
	if acked == 0 || acked >= len(em.ids) {
		t.Fatalf("first relay acked %d of %d events; the kill should fall in between", acked, len(em.ids))
	}
	if n := unsentRows(t, db); n != len(em.ids)-acked {
		t.Fatalf("unsent rows after kill = %d, want %d (acked rows marked sent, the rest not)", n, len(em.ids)-acked)
	}

	// More commits while no relay runs, then a new relay finishes the job.
	em.commit(ctx, 5)
	startRelay(t, store.NewRelay(db, newPublisher("second", rec), store.RelayConfig{}, nil, nil))
	want := len(em.ids)
	waitFor(t, 20*time.Second, "every event", func() bool { return len(rec.snapshot()) >= want && unsentRows(t, db) == 0 })
	checkExactlyOnceInOrder(t, rec.snapshot(), em.ids)
}

func TestTwoRelaysOneActive(t *testing.T) {
	cfg := storetest.NewConfig(t, "relay_two")
	ctx := testCtx(t)
	open := func() *store.DB {
		db, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	// Two replicas of a service: separate pools on one database.
	dbA, dbB := open(), open()
	if err := dbA.Migrate(ctx, store.OutboxMigrations()); err != nil {
		t.Fatalf("migrate outbox: %v", err)
	}
	rec := &recorder{}
	var inFlight atomic.Int64
	var overlap atomic.Bool
	pub := func(name string) *fakePublisher {
		p := newPublisher(name, rec)
		p.inFlight, p.overlap = &inFlight, &overlap
		return p
	}
	stops := map[string]func(){
		"a": startRelay(t, store.NewRelay(dbA, pub("a"), store.RelayConfig{BatchSize: 5}, nil, nil)),
		"b": startRelay(t, store.NewRelay(dbB, pub("b"), store.RelayConfig{BatchSize: 5}, nil, nil)),
	}

	em := newEmitter(t, dbA)
	em.commit(ctx, 30)
	first := len(em.ids)
	waitFor(t, 20*time.Second, "the first batch", func() bool { return len(rec.snapshot()) >= first && unsentRows(t, dbA) == 0 })
	got := rec.snapshot()
	active := got[0].by
	for _, p := range got {
		if p.by != active {
			t.Fatalf("events published by both relays (%s and %s) while both ran", active, p.by)
		}
	}

	// The active relay stops; the standby takes over.
	stops[active]()
	standby := map[string]string{"a": "b", "b": "a"}[active]
	em.db = map[string]*store.DB{"a": dbA, "b": dbB}[standby]
	em.commit(ctx, 20)
	want := len(em.ids)
	waitFor(t, 20*time.Second, "the standby to publish the second batch", func() bool { return len(rec.snapshot()) >= want && unsentRows(t, dbA) == 0 })
	got = rec.snapshot()
	for _, p := range got[first:] {
		if p.by != standby {
			t.Fatalf("event %s of the second batch published by %s, want the standby %s", p.event.ID, p.by, standby)
		}
	}
	checkExactlyOnceInOrder(t, got, em.ids)
	if overlap.Load() {
		t.Error("two relays were publishing at the same time")
	}
}

func TestRelayPurgesOldSentRows(t *testing.T) {
	db := newOutboxDB(t, "relay_purge")
	ctx := testCtx(t)
	em := newEmitter(t, db)
	em.commit(ctx, 4)
	rec := &recorder{}
	startRelay(t, store.NewRelay(db, newPublisher("r", rec), store.RelayConfig{
		Retention: time.Millisecond, PurgeInterval: 20 * time.Millisecond,
	}, nil, nil))
	waitFor(t, 20*time.Second, "sent rows to be purged", func() bool {
		var n int
		if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox").Scan(&n); err != nil {
			t.Fatalf("count outbox: %v", err)
		}
		return n == 0
	})
	checkExactlyOnceInOrder(t, rec.snapshot(), em.ids)
}

func TestRelayWokenByCommit(t *testing.T) {
	db := newOutboxDB(t, "relay_notify")
	ctx := testCtx(t)
	rec := &recorder{}
	// With an hour between polls, only the commit's wake-up can deliver in time.
	startRelay(t, store.NewRelay(db, newPublisher("r", rec), store.RelayConfig{PollInterval: time.Hour}, nil, nil))
	em := newEmitter(t, db)
	for i := range 3 {
		em.commit(ctx, 1)
		want := len(em.ids)
		waitFor(t, 10*time.Second, fmt.Sprintf("commit %d to be published", i), func() bool { return len(rec.snapshot()) >= want })
	}
	checkExactlyOnceInOrder(t, rec.snapshot(), em.ids)
}

func TestRelayRecoversFromKilledLockConnection(t *testing.T) {
	db := newOutboxDB(t, "relay_conn_kill")
	ctx := testCtx(t)
	lock := fmt.Sprintf("canopy_test_relay_%d", time.Now().UnixNano())
	rec := &recorder{}
	startRelay(t, store.NewRelay(db, newPublisher("r", rec), store.RelayConfig{LockName: lock}, nil, nil))
	em := newEmitter(t, db)
	em.commit(ctx, 5)
	first := len(em.ids)
	waitFor(t, 10*time.Second, "the first events", func() bool { return len(rec.snapshot()) >= first && unsentRows(t, db) == 0 })

	var holder int64
	if err := db.SQL().QueryRowContext(ctx, "SELECT COALESCE(IS_USED_LOCK(?), 0)", lock).Scan(&holder); err != nil || holder == 0 {
		t.Fatalf("lock holder = %d, %v; want the relay's connection", holder, err)
	}
	if _, err := db.SQL().ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", holder)); err != nil {
		t.Fatalf("kill relay connection: %v", err)
	}
	em.commit(ctx, 5)
	want := len(em.ids)
	waitFor(t, 20*time.Second, "events after the connection was killed", func() bool { return len(rec.snapshot()) >= want && unsentRows(t, db) == 0 })
	checkExactlyOnceInOrder(t, rec.snapshot(), em.ids)
	var newHolder int64
	if err := db.SQL().QueryRowContext(ctx, "SELECT COALESCE(IS_USED_LOCK(?), 0)", lock).Scan(&newHolder); err != nil || newHolder == 0 || newHolder == holder {
		t.Fatalf("lock holder after kill = %d, %v; want a new connection", newHolder, err)
	}
}

func TestRelayRetriesFailedPublishInOrder(t *testing.T) {
	db := newOutboxDB(t, "relay_retry")
	ctx := testCtx(t)
	em := newEmitter(t, db)
	em.commit(ctx, 30)
	rec := &recorder{}
	flaky := newPublisher("r", rec)
	flaky.failEvery = 3
	reg := prometheus.NewRegistry()
	stop := startRelay(t, store.NewRelay(db, flaky, store.RelayConfig{
		BatchSize:    6,
		PublishRetry: retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxTries: 2},
	}, nil, reg))
	want := len(em.ids)
	waitFor(t, 20*time.Second, "every event despite failures", func() bool { return len(rec.snapshot()) >= want && unsentRows(t, db) == 0 })
	stop()
	checkExactlyOnceInOrder(t, rec.snapshot(), em.ids)
	if got := metricSum(t, reg, "canopy_outbox_publish_errors_total"); got == 0 {
		t.Error("publish errors counter = 0, want the injected failures counted")
	}
}
