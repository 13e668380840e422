package mysqlrepo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

func newRepo(t testing.TB, name string) (*mysqlrepo.Repo, *store.DB) {
	t.Helper()
	db := storetest.NewDB(t, name)
	r, err := mysqlrepo.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, db
}

func smallInventory() inventory.Inventory {
	return inventory.Inventory{
		Regions: []inventory.Region{{ID: "r1"}},
		Zones:   []inventory.Zone{{ID: "r1-a", Region: "r1"}, {ID: "r1-b", Region: "r1"}},
		Hosts: []inventory.Host{
			{ID: "h1", Zone: "r1-a", Address: "127.0.0.1", Ports: inventory.PortRange{From: 1000, To: 1009}, Capacity: inventory.Resources{MilliCPU: 4000, MemoryMB: 8192, StorageGB: 100}},
			{ID: "h2", Zone: "r1-b", Address: "127.0.0.1", Ports: inventory.PortRange{From: 2000, To: 2009}, Capacity: inventory.Resources{MilliCPU: 4000, MemoryMB: 8192, StorageGB: 100}},
		},
		Latencies: []inventory.Latency{{A: "r1-a", B: "r1-b", P95MS: 1}},
	}
}

func outboxTypes(t testing.TB, db *store.DB) []string {
	t.Helper()
	rows, err := db.SQL().Query("SELECT JSON_UNQUOTE(JSON_EXTRACT(headers, '$.type')) FROM outbox ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestSeedIsIdempotentAndLoads(t *testing.T) {
	r, db := newRepo(t, "seed")
	ctx := context.Background()
	for i, want := range []bool{true, false} {
		got, err := r.Seed(ctx, smallInventory(), "test")
		if err != nil || got != want {
			t.Fatalf("seed %d: %v %v", i, got, err)
		}
	}
	inv, ports, err := r.LoadInventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Regions) != 1 || len(inv.Zones) != 2 || len(inv.Hosts) != 2 || len(inv.Latencies) != 1 || len(ports) != 0 {
		t.Fatalf("%+v %v", inv, ports)
	}
	if _, err := placement.NewCluster(inv); err != nil {
		t.Fatal(err)
	}
	if got := outboxTypes(t, db); len(got) != 1 || got[0] != events.TypeInventoryLoaded {
		t.Fatalf("outbox %v", got)
	}
}

func decision(id string, nodes ...placement.Assignment) placement.Decision {
	return placement.Decision{InstanceID: id, Kind: placement.KindNew, Mode: placement.MultiAZ, Nodes: nodes}
}

func node(name, host string, port int, memMB int64) placement.Assignment {
	return placement.Assignment{Name: name, Role: "replica", Region: "r1", Zone: "r1-a", HostID: host, Address: "127.0.0.1", Port: port,
		Resources: inventory.Resources{MilliCPU: 1000, MemoryMB: memMB, StorageGB: 10}}
}

func TestReserveIsConditionalAndAtomic(t *testing.T) {
	r, db := newRepo(t, "reserve")
	ctx := context.Background()
	if _, err := r.Seed(ctx, smallInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	req := placement.Request{InstanceID: "i1", Mode: placement.MultiAZ}
	exp := time.Now().Add(time.Minute)
	if err := r.Reserve(ctx, req, decision("i1", node("n0", "h1", 1000, 6000), node("n1", "h2", 2000, 6000)), "", exp); err != nil {
		t.Fatal(err)
	}
	// h1 has 2192 MiB left: a decision made on stale data must not book anything.
	req2 := placement.Request{InstanceID: "i2", Mode: placement.MultiAZ}
	err := r.Reserve(ctx, req2, decision("i2", node("n0", "h2", 2001, 1000), node("n1", "h1", 1001, 4000)), "", exp)
	var se *placement.StaleError
	if !errors.As(err, &se) || len(se.Hosts) == 0 || se.Hosts[0] != "h1" {
		t.Fatalf("want stale naming h1, got %v", err)
	}
	// Same port on the same host: stale as well.
	err = r.Reserve(ctx, req2, decision("i2", node("n0", "h2", 2000, 100)), "", exp)
	if !errors.As(err, &se) {
		t.Fatalf("want stale port, got %v", err)
	}
	// Nothing of i2 was written.
	if _, err := r.GetPlacement(ctx, "i2"); !errors.Is(err, placement.ErrNotPlaced) {
		t.Fatalf("i2 partially written: %v", err)
	}
	h2, _ := r.GetHost(ctx, "h2")
	if h2.Allocated.MemoryMB != 6000 {
		t.Fatalf("h2 allocation %v", h2.Allocated)
	}
	if got := outboxTypes(t, db); len(got) != 2 || got[1] != events.TypePlacementDecided {
		t.Fatalf("outbox %v", got)
	}
	// A second placement for a placed instance is refused.
	if err := r.Reserve(ctx, req, decision("i1", node("n0", "h2", 2005, 10)), "", exp); !errors.Is(err, placement.ErrAlreadyPlaced) {
		t.Fatalf("want already placed, got %v", err)
	}
	rec, err := r.GetPlacement(ctx, "i1")
	if err != nil || rec.Status != placement.StatusReserved || len(rec.Nodes) != 2 || rec.ExpiresAt == nil {
		t.Fatalf("%+v %v", rec, err)
	}
}

func TestReleaseConfirmAndExpiry(t *testing.T) {
	r, db := newRepo(t, "release")
	ctx := context.Background()
	if _, err := r.Seed(ctx, smallInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, id := range []string{"a", "b"} {
		port := 1000
		if id == "b" {
			port = 1001
		}
		if err := r.Reserve(ctx, placement.Request{InstanceID: id, Mode: placement.SingleAZ}, decision(id, node("n0", "h1", port, 1000)), "", now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Confirm(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	later := now.Add(2 * time.Second)
	ids, err := r.Expired(ctx, later, 10)
	if err != nil || len(ids) != 1 || ids[0] != "b" {
		t.Fatalf("expired %v %v", ids, err)
	}
	// The reaper's conditional release skips a confirmed placement.
	if freed, err := r.Release(ctx, "a", "expired", &later); err != nil || len(freed) != 0 {
		t.Fatalf("released confirmed: %v %v", freed, err)
	}
	if freed, err := r.Release(ctx, "b", "expired", &later); err != nil || len(freed) != 1 {
		t.Fatalf("release b: %v %v", freed, err)
	}
	if freed, err := r.Release(ctx, "b", "again", nil); err != nil || len(freed) != 0 {
		t.Fatalf("release is idempotent: %v %v", freed, err)
	}
	h1, _ := r.GetHost(ctx, "h1")
	if h1.Allocated.MemoryMB != 1000 {
		t.Fatalf("h1 allocation %v", h1.Allocated)
	}
	want := []string{events.TypeInventoryLoaded, events.TypePlacementDecided, events.TypePlacementDecided, events.TypePlacementConfirmed, events.TypePlacementReleased}
	if got := outboxTypes(t, db); len(got) != len(want) || got[4] != want[4] || got[3] != want[3] {
		t.Fatalf("outbox %v", got)
	}
}

func TestUpdateHost(t *testing.T) {
	r, db := newRepo(t, "host")
	ctx := context.Background()
	if _, err := r.Seed(ctx, smallInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	if err := r.Reserve(ctx, placement.Request{InstanceID: "i1", Mode: placement.SingleAZ}, decision("i1", node("n0", "h1", 1000, 4096)), "", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err := r.UpdateHost(ctx, "h1", func(h *inventory.Host) error { h.Capacity.MemoryMB = 2048; return nil })
	if !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("shrinking below allocation: %v", err)
	}
	h, err := r.UpdateHost(ctx, "h1", func(h *inventory.Host) error { h.State = inventory.StateCordoned; return nil })
	if err != nil || h.State != inventory.StateCordoned || h.Version != 3 {
		t.Fatalf("%+v %v", h, err)
	}
	if _, err := r.UpdateHost(ctx, "nope", func(*inventory.Host) error { return nil }); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("unknown host: %v", err)
	}
	if _, err := r.CreateHost(ctx, inventory.Host{ID: "h1", Zone: "r1-a", Address: "x", Ports: inventory.PortRange{From: 1, To: 2}, Capacity: inventory.Resources{MilliCPU: 1, MemoryMB: 1, StorageGB: 1}}); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("duplicate host: %v", err)
	}
	var ve *inventory.ValidationError
	if _, err := r.CreateHost(ctx, inventory.Host{ID: "h9", Zone: "zz", Address: "x", Ports: inventory.PortRange{From: 1, To: 2}, Capacity: inventory.Resources{MilliCPU: 1, MemoryMB: 1, StorageGB: 1}}); !errors.As(err, &ve) {
		t.Fatalf("unknown zone: %v", err)
	}
	if err := r.CreateZone(ctx, inventory.Zone{ID: "r1-c", Region: "r1"}, []inventory.Latency{{A: "r1-a", B: "r1-c", P95MS: 2}}); !errors.As(err, &ve) {
		t.Fatalf("zone without all latencies: %v", err)
	}
	if err := r.CreateZone(ctx, inventory.Zone{ID: "r1-c", Region: "r1"}, []inventory.Latency{{A: "r1-a", B: "r1-c", P95MS: 2}, {A: "r1-c", B: "r1-b", P95MS: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateRegion(ctx, inventory.Region{ID: "r2"}, nil); !errors.As(err, &ve) {
		t.Fatalf("region without latency: %v", err)
	}
	if err := r.CreateRegion(ctx, inventory.Region{ID: "r2"}, []inventory.Latency{{A: "r1", B: "r2", P95MS: 30}}); err != nil {
		t.Fatal(err)
	}
	got := outboxTypes(t, db)
	if got[len(got)-3] != events.TypeHostCordoned {
		t.Fatalf("outbox %v", got)
	}
	var payload events.HostChanged
	var data []byte
	if err := db.SQL().QueryRow("SELECT payload FROM outbox WHERE JSON_UNQUOTE(JSON_EXTRACT(headers, '$.type')) = ?", events.TypeHostCordoned).Scan(&data); err != nil {
		t.Fatal(err)
	}
	if err := (eventbus.Event{Data: data}).Decode(&payload); err != nil || len(payload.Instances) != 1 || payload.Instances[0] != "i1" || payload.PreviousState != "ready" {
		t.Fatalf("%+v %v", payload, err)
	}
}
