package mysqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	conformance "github.com/canopy-platform/canopy/services/failover/internal/storetest"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

func newStore(t *testing.T) (*Store, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := New(storetest.NewDB(t, "failover"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s, ctx
}

type outboxEvent struct {
	Key, Type, Tenant string
	Data              []byte
}

func outbox(t *testing.T, s *Store, ctx context.Context) []outboxEvent {
	t.Helper()
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT topic, msg_key, headers, payload FROM outbox ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxEvent
	for rows.Next() {
		var topic, key string
		var headers, payload []byte
		if err := rows.Scan(&topic, &key, &headers, &payload); err != nil {
			t.Fatal(err)
		}
		if topic != events.TopicFailover {
			t.Fatalf("event on topic %s", topic)
		}
		var h struct {
			Type   string `json:"type"`
			Tenant string `json:"tenant"`
		}
		if err := json.Unmarshal(headers, &h); err != nil {
			t.Fatal(err)
		}
		out = append(out, outboxEvent{Key: key, Type: h.Type, Tenant: h.Tenant, Data: payload})
	}
	return out
}

func types(evs []outboxEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func recovery(instance string) topology.Recovery {
	return topology.Recovery{ID: ulid.Make().String(), InstanceID: instance, Tenant: "acme", Engine: topology.EngineMySQL,
		Kind: topology.KindAutomatic, Problem: "DeadPrimary", State: topology.StateStarted, Step: topology.StepDetected,
		OldPrimary: "n1", DetectedAt: time.Now().UTC().Truncate(time.Microsecond)}
}

// TestLeaseTermsAndFencing: one holder at a time; a new term increments the
// token, and the old term's writes are refused with ErrFenced.
func TestLeaseTermsAndFencing(t *testing.T) {
	s, ctx := newStore(t)
	a, err := s.Acquire(ctx, "i1", "a", time.Minute)
	if err != nil || a.Token != 1 {
		t.Fatalf("first acquire = %+v, %v; want token 1", a, err)
	}
	if _, err := s.Acquire(ctx, "i1", "b", time.Minute); !errors.Is(err, topology.ErrLeaseHeld) {
		t.Fatalf("b acquiring a's live lease: %v, want ErrLeaseHeld", err)
	}
	renewed, err := s.Acquire(ctx, "i1", "a", time.Minute)
	if err != nil || renewed.Token != 1 || !renewed.Expires.After(time.Now()) {
		t.Fatalf("renew = %+v, %v; want token 1 kept", renewed, err)
	}
	if err := s.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	b, err := s.Acquire(ctx, "i1", "b", time.Minute)
	if err != nil || b.Token != 2 {
		t.Fatalf("b after release = %+v, %v; want token 2", b, err)
	}
	r := recovery("i1")
	if err := s.Begin(ctx, a, r); !errors.Is(err, topology.ErrFenced) {
		t.Fatalf("begin under superseded lease: %v, want ErrFenced", err)
	}
	if err := s.Begin(ctx, b, r); err != nil {
		t.Fatal(err)
	}
	r.Step = topology.StepPromoting
	if err := s.Save(ctx, a, r); !errors.Is(err, topology.ErrFenced) {
		t.Fatalf("save under superseded lease: %v, want ErrFenced", err)
	}
	if got := types(outbox(t, s, ctx)); len(got) != 1 || got[0] != events.TypeFailoverStarted {
		t.Fatalf("outbox = %v, want only the started event of b", got)
	}
}

// TestLeaseExpiry: an expired lease goes to the next holder with a new token.
func TestLeaseExpiry(t *testing.T) {
	s, ctx := newStore(t)
	a, err := s.Acquire(ctx, "i1", "a", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := s.Acquire(ctx, "i1", "b", time.Minute)
		if err == nil {
			if b.Token != a.Token+1 {
				t.Fatalf("token after expiry = %d, want %d", b.Token, a.Token+1)
			}
			return
		}
		if !errors.Is(err, topology.ErrLeaseHeld) || time.Now().After(deadline) {
			t.Fatalf("acquire after expiry: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentAcquire: of many actors racing for a free lease, exactly one wins.
func TestConcurrentAcquire(t *testing.T) {
	s, ctx := newStore(t)
	var mu sync.Mutex
	var won []topology.Lease
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := s.Acquire(ctx, "race", string(rune('a'+i)), time.Minute)
			if err == nil {
				mu.Lock()
				won = append(won, l)
				mu.Unlock()
			} else if !errors.Is(err, topology.ErrLeaseHeld) {
				t.Errorf("acquire: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 || won[0].Token != 1 {
		t.Fatalf("winners = %+v, want exactly one with token 1", won)
	}
}

// TestRecoveryLifecycle: Begin, Save to completion, read back every field;
// events carry the payload, the instance key and the tenant.
func TestRecoveryLifecycle(t *testing.T) {
	s, ctx := newStore(t)
	l, err := s.Acquire(ctx, "i1", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := recovery("i1")
	if err := s.Begin(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	open, err := s.Open(ctx, "i1")
	if err != nil || open.ID != r.ID || open.Token != l.Token {
		t.Fatalf("open = %+v, %v", open, err)
	}
	if _, err := s.LastAutomatic(ctx, "i1"); !errors.Is(err, topology.ErrNotFound) {
		t.Fatalf("last automatic before completion: %v, want ErrNotFound", err)
	}
	promoted := r.DetectedAt.Add(300 * time.Millisecond)
	done := promoted.Add(100 * time.Millisecond)
	r.Step, r.Candidate, r.CandidateAddress, r.PromotedAt = topology.StepPromoted, "n2", "127.0.0.1:3307", &promoted
	if err := s.Save(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	r.State, r.Step, r.CompletedAt = topology.StateCompleted, topology.StepDone, &done
	r.Roles = map[string]topology.Role{"n1": topology.RoleFenced, "n2": topology.RolePrimary, "n3": topology.RoleReplica}
	r.LostTransactions = []string{"0-1-42"}
	r.RTOMS, r.DetectionMS, r.PromotionMS = 400, 300, 100
	if err := s.Save(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, l, r); err != nil { // a repeated save announces nothing more
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "i1", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := r
	want.Token, want.Holder = l.Token, l.Holder
	if gj, wj := mustJSON(t, got), mustJSON(t, want); gj != wj {
		t.Fatalf("read back\n got %s\nwant %s", gj, wj)
	}
	if _, err := s.Open(ctx, "i1"); !errors.Is(err, topology.ErrNotFound) {
		t.Fatalf("open after completion: %v", err)
	}
	last, err := s.LastAutomatic(ctx, "i1")
	if err != nil || last.ID != r.ID || last.Acknowledged {
		t.Fatalf("last automatic = %+v, %v", last, err)
	}
	if err := s.Acknowledge(ctx, "i1", r.ID); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastAutomatic(ctx, "i1"); !last.Acknowledged {
		t.Fatal("acknowledge not recorded")
	}
	if err := s.Acknowledge(ctx, "i1", "nope"); !errors.Is(err, topology.ErrNotFound) {
		t.Fatalf("acknowledge unknown: %v", err)
	}
	evs := outbox(t, s, ctx)
	if got := types(evs); len(got) != 2 || got[0] != events.TypeFailoverStarted || got[1] != events.TypeFailoverCompleted {
		t.Fatalf("events = %v", got)
	}
	var p events.Recovery
	if err := json.Unmarshal(evs[1].Data, &p); err != nil {
		t.Fatal(err)
	}
	if evs[1].Key != "i1" || evs[1].Tenant != "acme" || p.NewPrimary != "n2" || p.NewPrimaryAddress != "127.0.0.1:3307" ||
		p.RTOMS != 400 || p.Roles["n1"] != "fenced" || p.FencingToken != l.Token || len(p.LostTransactions) != 1 {
		t.Fatalf("completed event key=%s tenant=%s payload=%+v", evs[1].Key, evs[1].Tenant, p)
	}
}

// TestFailedRecoveryAnnounced: a recovery that stops without a candidate
// emits failover.failed with its reason.
func TestFailedRecoveryAnnounced(t *testing.T) {
	s, ctx := newStore(t)
	l, _ := s.Acquire(ctx, "i1", "a", time.Minute)
	r := recovery("i1")
	r.State, r.Reason = topology.StateFailed, "no safe candidate: n2 lags 40s"
	if err := s.Begin(ctx, l, r); err != nil {
		t.Fatal(err)
	}
	if got := types(outbox(t, s, ctx)); len(got) != 2 || got[1] != events.TypeFailoverFailed {
		t.Fatalf("events = %v", got)
	}
}

// TestListPages: an instance's history, newest first, in pages.
func TestListPages(t *testing.T) {
	s, ctx := newStore(t)
	l, _ := s.Acquire(ctx, "i1", "a", time.Minute)
	var ids []string
	for range 5 {
		r := recovery("i1")
		r.State = topology.StateCompleted
		if err := s.Begin(ctx, l, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	other, _ := s.Acquire(ctx, "i2", "a", time.Minute)
	if err := s.Begin(ctx, other, recovery("i2")); err != nil {
		t.Fatal(err)
	}
	var seen []string
	after := ""
	for {
		page, err := s.List(ctx, "i1", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		more := len(page) > 2
		if more {
			page = page[:2]
		}
		for _, r := range page {
			seen = append(seen, r.ID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	if len(seen) != 5 || seen[0] != ids[4] || seen[4] != ids[0] {
		t.Fatalf("listed %v, want %v reversed", seen, ids)
	}
}

// TestRejoined records the rejoin and announces it.
func TestRejoined(t *testing.T) {
	s, ctx := newStore(t)
	in := topology.Instance{ID: "i1", Tenant: "acme"}
	if err := s.Rejoined(ctx, in, "n1", "n2", true, []string{"0-1-43"}); err != nil {
		t.Fatal(err)
	}
	evs := outbox(t, s, ctx)
	var p events.NodeRejoined
	if len(evs) != 1 || evs[0].Type != events.TypeNodeRejoined || json.Unmarshal(evs[0].Data, &p) != nil ||
		p.NodeID != "n1" || p.Primary != "n2" || !p.Rebuilt || evs[0].Tenant != "acme" {
		t.Fatalf("events = %+v", evs)
	}
}

// TestDrills: drill reports per tenant, finished with their recovery.
func TestDrills(t *testing.T) {
	s, ctx := newStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i, tenant := range []string{"acme", "acme", "globex"} {
		d := Drill{ID: ulid.Make().String(), InstanceID: "i" + string(rune('1'+i)), Tenant: tenant, Kind: DrillKillPrimary,
			State: DrillRunning, RequestedAt: now}
		if err := s.CreateDrill(ctx, d); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := s.FinishDrill(ctx, d.ID, DrillPassed, "rec1", "", now); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetDrill(ctx, d.ID)
			if err != nil || got.State != DrillPassed || got.RecoveryID != "rec1" || got.FinishedAt == nil {
				t.Fatalf("finished drill = %+v, %v", got, err)
			}
		}
	}
	if d, err := s.ActiveDrill(ctx, "i2"); err != nil || d.Tenant != "acme" {
		t.Fatalf("active drill of i2 = %+v, %v", d, err)
	}
	if _, err := s.ActiveDrill(ctx, "i1"); !errors.Is(err, topology.ErrNotFound) {
		t.Fatalf("active drill of i1 (finished): %v, want ErrNotFound", err)
	}
	acme, err := s.ListDrills(ctx, "acme", "", 10)
	if err != nil || len(acme) != 2 {
		t.Fatalf("acme's drills = %d, %v", len(acme), err)
	}
	all, _ := s.ListDrills(ctx, "", "", 10)
	if len(all) != 3 {
		t.Fatalf("all drills = %d", len(all))
	}
	if err := s.PutSchedule(ctx, Schedule{InstanceID: "i1", Tenant: "acme", Cadence: "weekly", DrillKind: DrillKillPrimary, NextAt: now}); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueSchedules(ctx, now.Add(time.Second))
	if err != nil || len(due) != 1 || due[0].Cadence != "weekly" {
		t.Fatalf("due = %+v, %v", due, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConformance runs the shared topology.Store suite, the one the
// in-memory store passes, against MariaDB.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) topology.Store { s, _ := newStore(t); return s })
}
