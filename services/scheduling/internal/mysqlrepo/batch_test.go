package mysqlrepo_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// TestReserveBatchIsolatesFailures: decisions written in one transaction
// keep Reserve's guarantees each, and one that cannot be booked (no room
// left, a repeat, a port taken) does not fail the others.
func TestReserveBatchIsolatesFailures(t *testing.T) {
	r, db := newRepo(t, "reserve_batch")
	ctx := context.Background()
	if _, err := r.Seed(ctx, smallInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Minute)
	item := func(id string, nodes ...placement.Assignment) placement.Reservation {
		return placement.Reservation{Request: placement.Request{InstanceID: id, Tenant: "acme", Mode: placement.MultiAZ, RequestID: "req-" + id},
			Decision: decision(id, nodes...), ExpiresAt: exp}
	}
	if err := r.Reserve(ctx, placement.Request{InstanceID: "i0", Mode: placement.MultiAZ}, decision("i0", node("n0", "h2", 2009, 100)), "", exp); err != nil {
		t.Fatal(err)
	}

	// The fast path: everything fits, one transaction.
	const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	a1 := item("a1", node("n0", "h1", 1000, 1000), node("n1", "h2", 2000, 1000))
	a1.TraceParent = trace
	replace := item("a3", node("n0", "h1", 1005, 10))
	replace.Decision.Kind = placement.KindReplace
	errs := r.ReserveBatch(ctx, []placement.Reservation{a1, item("a2", node("n0", "h1", 1001, 1000)), replace})
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Fatalf("fast path: %v", errs)
	}
	var tp string
	if err := db.SQL().QueryRow("SELECT JSON_UNQUOTE(JSON_EXTRACT(headers, '$.traceparent')) FROM outbox WHERE msg_key = 'a1'").Scan(&tp); err != nil || tp != trace {
		t.Fatalf("a1's event traceparent %q (%v)", tp, err)
	}

	// h1 has 6192 MiB left: b1 takes 6000, b2 (decided on a stale view) no
	// longer fits; b3 is independent; i0 is a repeat.
	errs = r.ReserveBatch(ctx, []placement.Reservation{
		item("b1", node("n0", "h1", 1002, 6000)),
		item("b2", node("n0", "h2", 2001, 100), node("n1", "h1", 1003, 1000)),
		item("b3", node("n0", "h2", 2002, 1000)),
		item("i0", node("n0", "h2", 2003, 100)),
	})
	var se *placement.StaleError
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("b1/b3 failed: %v", errs)
	}
	if !errors.As(errs[1], &se) || !slices.Contains(se.Hosts, "h1") {
		t.Fatalf("b2: want stale naming h1, got %v", errs[1])
	}
	if !errors.Is(errs[3], placement.ErrAlreadyPlaced) {
		t.Fatalf("i0: want already placed, got %v", errs[3])
	}
	if _, err := r.GetPlacement(ctx, "b2"); !errors.Is(err, placement.ErrNotPlaced) {
		t.Fatalf("b2 partially written: %v", err)
	}

	// A port taken by another placement: the batch falls back to one
	// transaction per decision, and only the colliding one fails.
	errs = r.ReserveBatch(ctx, []placement.Reservation{
		item("c1", node("n0", "h2", 2004, 100)),
		item("c2", node("n0", "h2", 2002, 100)), // b3's port
		item("c3", node("n0", "h1", 1004, 100)),
	})
	if errs[0] != nil || errs[2] != nil || !errors.As(errs[1], &se) {
		t.Fatalf("port collision: %v", errs)
	}

	for _, id := range []string{"a1", "a2", "b1", "b3", "c1", "c3"} {
		rec, err := r.GetPlacement(ctx, id)
		if err != nil || rec.Status != placement.StatusReserved || rec.ExpiresAt == nil || rec.RequestID != "req-"+id || len(rec.Nodes) == 0 {
			t.Fatalf("%s: %+v %v", id, rec, err)
		}
	}
	h1, _ := r.GetHost(ctx, "h1")
	h2, _ := r.GetHost(ctx, "h2")
	if h1.Allocated.MemoryMB != 8100 || h2.Allocated.MemoryMB != 100+1000+1000+100 {
		t.Fatalf("allocations h1 %v h2 %v", h1.Allocated, h2.Allocated)
	}
	decided := 0
	for _, typ := range outboxTypes(t, db) {
		if typ == events.TypePlacementDecided {
			decided++
		}
	}
	if decided != 7 { // i0 + six batched
		t.Fatalf("%d decided events, want 7", decided)
	}
}
