package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
	"github.com/canopy-platform/canopy/services/scheduling/internal/scheduler"
)

var nodeSize = inventory.Resources{MilliCPU: 2000, MemoryMB: 8192, StorageGB: 50}

// tightInventory has 1 region × 3 zones × 4 hosts; each host fits 2 nodes of
// nodeSize, so 8 three-node multi-az instances fit exactly.
func tightInventory() inventory.Inventory {
	inv := inventory.Inventory{Regions: []inventory.Region{{ID: "r1"}}}
	for _, z := range []string{"a", "b", "c"} {
		inv.Zones = append(inv.Zones, inventory.Zone{ID: "r1-" + z, Region: "r1"})
		for h := 0; h < 4; h++ {
			inv.Hosts = append(inv.Hosts, inventory.Host{ID: fmt.Sprintf("r1-%s-%d", z, h), Zone: "r1-" + z, Address: "127.0.0.1",
				Ports:    inventory.PortRange{From: 20000 + h*10, To: 20009 + h*10},
				Capacity: inventory.Resources{MilliCPU: 5000, MemoryMB: 2*8192 + 1000, StorageGB: 200}})
		}
	}
	inv.Latencies = []inventory.Latency{{A: "r1-a", B: "r1-b", P95MS: 1}, {A: "r1-a", B: "r1-c", P95MS: 1}, {A: "r1-b", B: "r1-c", P95MS: 1}}
	return inv
}

func open(t testing.TB, cfg store.Config) (*store.DB, *mysqlrepo.Repo) {
	t.Helper()
	db, err := store.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	repo, err := mysqlrepo.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, repo
}

func newScheduler(t testing.TB, repo scheduler.Repo, cfg scheduler.Config, now func() time.Time) *scheduler.PlacementEngine {
	t.Helper()
	s, err := scheduler.New(cfg, repo, slog.New(slog.DiscardHandler), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func multiAZ(id string) placement.Request {
	return placement.Request{InstanceID: id, Tenant: "acme", Mode: placement.MultiAZ, Nodes: []placement.NodeSpec{
		{Role: "primary", Resources: nodeSize}, {Role: "replica", Resources: nodeSize}, {Role: "replica", Resources: nodeSize}}}
}

// checkNoOvercommit compares every host row with its reservations.
func checkNoOvercommit(t *testing.T, db *store.DB) {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT h.id, h.cap_mcpu, h.cap_memory_mb, h.cap_storage_gb, h.alloc_mcpu, h.alloc_memory_mb, h.alloc_storage_gb,
		COALESCE(SUM(r.mcpu),0), COALESCE(SUM(r.memory_mb),0), COALESCE(SUM(r.storage_gb),0)
		FROM hosts h LEFT JOIN reservations r ON r.host_id = h.id GROUP BY h.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var c, a, s inventory.Resources
		if err := rows.Scan(&id, &c.MilliCPU, &c.MemoryMB, &c.StorageGB, &a.MilliCPU, &a.MemoryMB, &a.StorageGB, &s.MilliCPU, &s.MemoryMB, &s.StorageGB); err != nil {
			t.Fatal(err)
		}
		if !c.Covers(a) {
			t.Errorf("host %s overcommitted: %v of %v", id, a, c)
		}
		if a != s {
			t.Errorf("host %s allocation %v differs from its reservations %v", id, a, s)
		}
	}
	var dup int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM (SELECT instance_id FROM reservations GROUP BY instance_id, host_id HAVING COUNT(*) > 1) x`).Scan(&dup); err != nil || dup != 0 {
		t.Errorf("anti-affinity broken: %d instances with two nodes on a host (%v)", dup, err)
	}
	var zones int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM (SELECT instance_id FROM reservations GROUP BY instance_id HAVING COUNT(DISTINCT zone_id) <> COUNT(*)) x`).Scan(&zones); err != nil || zones != 0 {
		t.Errorf("multi-az spread broken for %d instances (%v)", zones, err)
	}
}

type outcome struct {
	placed, refused int
	other           []error
}

type placeFunc func(context.Context, placement.Request) (placement.Decision, error)

func placeAll(t *testing.T, scheds []placeFunc, n int) outcome {
	t.Helper()
	var mu sync.Mutex
	var out outcome
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			place := scheds[i%len(scheds)]
			d, err := place(context.Background(), multiAZ(fmt.Sprintf("inst-%02d", i)))
			mu.Lock()
			defer mu.Unlock()
			var re *placement.RefusalError
			switch {
			case err == nil && len(d.Nodes) == 3:
				out.placed++
			case errors.As(err, &re) && re.Explanation.Summary != "" && len(re.Explanation.Filters) > 0:
				out.refused++
			default:
				out.other = append(out.other, fmt.Errorf("inst-%02d: %v (%d nodes)", i, err, len(d.Nodes)))
			}
		}(i)
	}
	close(start)
	wg.Wait()
	return out
}

// TestConcurrentPlacementsFitExactly places 64 instances at once on an
// inventory that fits 8, with one and two scheduler instances, each placing
// one by one or through a Batcher (decisions written several per
// transaction), or one of each.
func TestConcurrentPlacementsFitExactly(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		batched  []bool // per replica
	}{
		{1, []bool{false}}, {2, []bool{false, false}},
		{1, []bool{true}}, {2, []bool{true, true}}, {2, []bool{true, false}},
	} {
		name := fmt.Sprintf("%d-schedulers", tc.replicas)
		switch {
		case !slices.Contains(tc.batched, false):
			name += "-batched"
		case slices.Contains(tc.batched, true):
			name += "-mixed"
		}
		replicas := tc.replicas
		t.Run(name, func(t *testing.T) {
			cfg := storetest.NewConfig(t, "sched_conc")
			var scheds []placeFunc
			var db *store.DB
			for i := 0; i < replicas; i++ {
				d, repo := open(t, cfg)
				if i == 0 {
					db = d
					if _, err := repo.Seed(context.Background(), tightInventory(), "test"); err != nil {
						t.Fatal(err)
					}
				}
				s := newScheduler(t, repo, scheduler.Config{}, nil)
				if tc.batched[i] {
					scheds = append(scheds, scheduler.NewBatcher(s, scheduler.BatcherConfig{Window: 2 * time.Millisecond}).Place)
				} else {
					scheds = append(scheds, s.Place)
				}
			}
			out := placeAll(t, scheds, 64)
			if len(out.other) > 0 {
				t.Fatalf("unexpected outcomes: %v", out.other)
			}
			if out.placed != 8 || out.refused != 56 {
				t.Fatalf("placed %d, refused %d; want 8 and 56", out.placed, out.refused)
			}
			checkNoOvercommit(t, db)
			var reserved, failed, decided, failedEvents int
			_ = db.SQL().QueryRow("SELECT COUNT(*) FROM placements WHERE status = 'reserved'").Scan(&reserved)
			_ = db.SQL().QueryRow("SELECT COUNT(*) FROM placements WHERE status = 'failed' AND reason LIKE 'no placement%'").Scan(&failed)
			_ = db.SQL().QueryRow("SELECT COUNT(*) FROM outbox WHERE JSON_UNQUOTE(JSON_EXTRACT(headers, '$.type')) = ?", events.TypePlacementDecided).Scan(&decided)
			_ = db.SQL().QueryRow("SELECT COUNT(*) FROM outbox WHERE JSON_UNQUOTE(JSON_EXTRACT(headers, '$.type')) = ?", events.TypePlacementFailed).Scan(&failedEvents)
			if reserved != 8 || failed != 56 || decided != 8 || failedEvents != 56 {
				t.Fatalf("reserved %d failed %d decided events %d failed events %d", reserved, failed, decided, failedEvents)
			}
		})
	}
}

// recorder is a store.Publisher that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	events []eventbus.Event
}

func (r *recorder) Publish(_ context.Context, topic string, evs ...eventbus.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		e.Topic = topic
		r.events = append(r.events, e)
	}
	return nil
}

func (r *recorder) find(typ, key string) (eventbus.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Type == typ && e.Key == key {
			return e, true
		}
	}
	return eventbus.Event{}, false
}

// TestRestartBetweenReserveAndPublish: the scheduler reserves and dies before
// any relay published; after a restart the relay publishes the decision that
// matches the stored reservation, exactly as it was decided.
func TestRestartBetweenReserveAndPublish(t *testing.T) {
	cfg := storetest.NewConfig(t, "sched_restart")
	db1, repo1 := open(t, cfg)
	if _, err := repo1.Seed(context.Background(), tightInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	s1 := newScheduler(t, repo1, scheduler.Config{}, nil)
	d, err := s1.Place(context.Background(), multiAZ("inst-r"))
	if err != nil {
		t.Fatal(err)
	}
	_ = db1.Close() // the process dies: nothing was published

	db2, repo2 := open(t, cfg)
	s2 := newScheduler(t, repo2, scheduler.Config{}, nil)
	rec := &recorder{}
	relay := store.NewRelay(db2, rec, store.RelayConfig{PollInterval: 20 * time.Millisecond}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(10 * time.Second)
	var ev eventbus.Event
	for {
		var ok bool
		if ev, ok = rec.find(events.TypePlacementDecided, "inst-r"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("decided event not published after restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ev.Topic != events.TopicPlacements || ev.Tenant != "acme" {
		t.Fatalf("event topic %s tenant %q", ev.Topic, ev.Tenant)
	}
	var payload events.PlacementDecided
	if err := ev.Decode(&payload); err != nil {
		t.Fatal(err)
	}
	stored, err := s2.Get(context.Background(), "inst-r")
	if err != nil {
		t.Fatal(err)
	}
	if len(payload.Nodes) != 3 || len(stored.Nodes) != 3 {
		t.Fatalf("event %d nodes, stored %d", len(payload.Nodes), len(stored.Nodes))
	}
	byName := map[string]placement.Assignment{}
	for _, n := range stored.Nodes {
		byName[n.Name] = n
	}
	for i, n := range payload.Nodes {
		s := byName[n.Name]
		if s.HostID != n.Host || s.Port != n.Port || d.Nodes[i].HostID != n.Host {
			t.Fatalf("event node %+v differs from stored %+v / decided %+v", n, s, d.Nodes[i])
		}
	}
	// The restarted scheduler sees the booking: a second instance avoids nothing
	// it should not and the totals stay consistent.
	if _, err := s2.Place(context.Background(), multiAZ("inst-s")); err != nil {
		t.Fatal(err)
	}
	checkNoOvercommit(t, db2)
}

func TestReaperReleasesUnconfirmed(t *testing.T) {
	cfg := storetest.NewConfig(t, "sched_reap")
	db, repo := open(t, cfg)
	if _, err := repo.Seed(context.Background(), tightInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	s := newScheduler(t, repo, scheduler.Config{ReservationTTL: time.Minute}, now)
	ctx := context.Background()
	for i := 0; i < 8; i++ {
		if _, err := s.Place(ctx, multiAZ(fmt.Sprintf("i%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Place(ctx, multiAZ("full")); !errors.Is(err, placement.ErrNoPlacement) {
		t.Fatalf("want full, got %v", err)
	}
	if _, err := s.Confirm(ctx, "i0"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Minute)
	mu.Unlock()
	n, err := s.Reap(ctx)
	if err != nil || n != 7 {
		t.Fatalf("reaped %d: %v", n, err)
	}
	rec, _ := s.Get(ctx, "i1")
	if rec.Status != placement.StatusReleased || len(rec.Nodes) != 0 {
		t.Fatalf("%+v", rec)
	}
	if rec, _ := s.Get(ctx, "i0"); rec.Status != placement.StatusConfirmed {
		t.Fatalf("confirmed placement reaped: %+v", rec)
	}
	// The freed capacity is usable again.
	if _, err := s.Place(ctx, multiAZ("again")); err != nil {
		t.Fatal(err)
	}
	checkNoOvercommit(t, db)
}

func TestReplaceFailedNode(t *testing.T) {
	cfg := storetest.NewConfig(t, "sched_replace")
	db, repo := open(t, cfg)
	ctx := context.Background()
	if _, err := repo.Seed(ctx, tightInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	s := newScheduler(t, repo, scheduler.Config{}, nil)
	d, err := s.Place(ctx, multiAZ("inst"))
	if err != nil {
		t.Fatal(err)
	}
	failed := d.Nodes[1]
	if _, err := repo.UpdateHost(ctx, failed.HostID, func(h *inventory.Host) error { h.State = inventory.StateDown; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.HostChanged(ctx, failed.HostID); err != nil {
		t.Fatal(err)
	}
	r, err := s.Replace(ctx, "inst", failed.Name, "req-2")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes) != 1 || r.Nodes[0].Name != failed.Name || r.Nodes[0].Zone != failed.Zone || r.Nodes[0].HostID == failed.HostID {
		t.Fatalf("replacement %+v for %+v", r.Nodes, failed)
	}
	rec, err := s.Get(ctx, "inst")
	if err != nil || len(rec.Nodes) != 3 {
		t.Fatalf("%+v %v", rec, err)
	}
	h, _ := repo.GetHost(ctx, failed.HostID)
	if h.Allocated != (inventory.Resources{}) {
		t.Fatalf("failed host still booked: %v", h.Allocated)
	}
	if _, err := s.Replace(ctx, "inst", "nope", ""); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("unknown node: %v", err)
	}
	checkNoOvercommit(t, db)
}

func TestPlaceIsIdempotentAndInvalidIsRecorded(t *testing.T) {
	cfg := storetest.NewConfig(t, "sched_idem")
	_, repo := open(t, cfg)
	ctx := context.Background()
	if _, err := repo.Seed(ctx, tightInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	s := newScheduler(t, repo, scheduler.Config{}, nil)
	a, err := s.Place(ctx, multiAZ("same"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Place(ctx, multiAZ("same"))
	if err != nil || len(b.Nodes) != 3 || a.Nodes[0].HostID != b.Nodes[0].HostID {
		t.Fatalf("second place %+v %v", b, err)
	}
	bad := multiAZ("bad")
	bad.Nodes[0].Resources.MemoryMB = -5
	if _, err := s.Place(ctx, bad); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("want invalid, got %v", err)
	}
	rec, err := s.Get(ctx, "bad")
	if err != nil || rec.Status != placement.StatusFailed || rec.Reason == "" {
		t.Fatalf("%+v %v", rec, err)
	}
}

// TestPlaceBatchIsolatesRequests: a batch written in one transaction where
// some decisions went stale (another scheduler booked their hosts), one is
// invalid and one repeats an instance of the batch: the stale ones are
// retried on their own, the others are placed, the invalid one is answered,
// and what no longer fits is refused with reasons.
func TestPlaceBatchIsolatesRequests(t *testing.T) {
	cfg := storetest.NewConfig(t, "sched_batch")
	db, repo1 := open(t, cfg)
	if _, err := repo1.Seed(context.Background(), tightInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	_, repo2 := open(t, cfg)
	reg := prometheus.NewRegistry()
	s1, err := scheduler.New(scheduler.Config{}, repo1, slog.New(slog.DiscardHandler), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s1.Load(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := newScheduler(t, repo2, scheduler.Config{}, nil)
	// s2 takes 5 of the 8 instances' room (one host per zone full); s1 does
	// not know.
	for i := 0; i < 5; i++ {
		if _, err := s2.Place(ctx, multiAZ(fmt.Sprintf("other-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	bad := multiAZ("bad")
	bad.Nodes[0].Resources.MemoryMB = -1
	reqs := []placement.Request{multiAZ("b-0"), multiAZ("b-1"), bad, multiAZ("b-2"), multiAZ("b-0")}
	ds, errs := s1.PlaceBatch(ctx, reqs)
	var ve *inventory.ValidationError
	if !errors.As(errs[2], &ve) {
		t.Fatalf("invalid request: %v", errs[2])
	}
	if stale := testutil.ToFloat64(counter(t, reg, "canopy_scheduling_stale_reservations_total")); stale == 0 {
		t.Fatal("no decision of the batch went stale; the test does not test what it should")
	}
	for _, i := range []int{0, 1, 3} {
		if errs[i] != nil || len(ds[i].Nodes) != 3 {
			t.Fatalf("request %d (%s): %v %+v", i, reqs[i].InstanceID, errs[i], ds[i])
		}
	}
	// The repeat of b-0 is handled after the batch, as Place would: it gets
	// the placement back, or (the cluster being full now) a refusal that
	// leaves the placement as it is.
	var re *placement.RefusalError
	if errs[4] != nil && !errors.As(errs[4], &re) {
		t.Fatalf("repeat of b-0: %v", errs[4])
	}
	if errs[4] == nil && ds[4].Nodes[0].HostID != ds[0].Nodes[0].HostID {
		t.Fatalf("repeat of b-0 placed elsewhere: %+v vs %+v", ds[4], ds[0])
	}
	if rec, err := s1.Get(ctx, "b-0"); err != nil || rec.Status != placement.StatusReserved || len(rec.Nodes) != 3 || rec.Nodes[0].HostID != ds[0].Nodes[0].HostID {
		t.Fatalf("b-0 stored as %+v (%v)", rec, err)
	}
	// Full now: both refused, with reasons.
	ds, errs = s1.PlaceBatch(ctx, []placement.Request{multiAZ("c-0"), multiAZ("c-1")})
	for i, err := range errs {
		var re *placement.RefusalError
		if !errors.As(err, &re) || len(re.Explanation.Filters) == 0 || len(ds[i].Nodes) != 0 {
			t.Fatalf("c-%d: want refusal, got %v", i, err)
		}
	}
	checkNoOvercommit(t, db)
	var reserved, failed int
	_ = db.SQL().QueryRow("SELECT COUNT(*) FROM placements WHERE status = 'reserved'").Scan(&reserved)
	_ = db.SQL().QueryRow("SELECT COUNT(*) FROM placements WHERE status = 'failed'").Scan(&failed)
	if reserved != 8 || failed != 3 {
		t.Fatalf("reserved %d failed %d; want 8 and 3", reserved, failed)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
			c.Add(mf.GetMetric()[0].GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

// TestSimulateSeesAnotherReplicasCordon: two schedulers on one database; a
// zone cordoned through the first (its repository) makes a multi-az
// simulation on the second refuse, as soon as its last inventory read is
// older than RefreshOnRefusalAfter — not after the 30 s refresh.
func TestSimulateSeesAnotherReplicasCordon(t *testing.T) {
	cfg := storetest.NewConfig(t, "sched_sim")
	_, repoA := open(t, cfg)
	if _, err := repoA.Seed(context.Background(), tightInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	_, repoB := open(t, cfg)
	clock := time.Now()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	b := newScheduler(t, repoB, scheduler.Config{}, now)
	if _, err := b.Simulate(context.Background(), multiAZ("sim-1")); err != nil {
		t.Fatalf("simulation before the cordon: %v", err)
	}
	for h := 0; h < 4; h++ {
		if _, err := repoA.UpdateHost(context.Background(), fmt.Sprintf("r1-c-%d", h), func(h *inventory.Host) error {
			h.State = inventory.StateCordoned
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	clock = clock.Add(2 * time.Second)
	mu.Unlock()
	_, err := b.Simulate(context.Background(), multiAZ("sim-2"))
	var re *placement.RefusalError
	if !errors.As(err, &re) {
		t.Fatalf("simulation after zone r1-c was cordoned through another replica: %v, want a refusal", err)
	}
}
