package ledger

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// stream is a generated stream of ingested events with copies and late
// ones, and the totals it must produce.
type stream struct {
	msgs       []meter.Event
	wantTokens map[string]float64 // per tenant
	wantCalls  float64
	unique     int
	late       int
}

func genStream(rng *rand.Rand, n int, now time.Time) stream {
	s := stream{wantTokens: map[string]float64{}}
	tenants := []string{"acme", "beta", "gamma"}
	var originals []meter.Event
	for i := range n {
		tenant := tenants[rng.IntN(len(tenants))]
		at := now.Add(-time.Duration(rng.IntN(50*60)) * time.Second)
		isLate := rng.IntN(100) < 3
		if isLate {
			at = now.Add(-2*time.Hour - time.Duration(rng.IntN(3600))*time.Second)
		}
		tokens := 1 + rng.IntN(1000)
		e := apiEvent(fmt.Sprintf("ev-%06d", i), tenant, fmt.Sprintf("customer-%d", rng.IntN(40)), at, tokens, "u")
		originals = append(originals, e)
		s.msgs = append(s.msgs, e)
		s.unique++
		if isLate {
			s.late++
		} else {
			s.wantTokens[tenant] += float64(tokens)
			s.wantCalls++
		}
		// 10% get a copy somewhere later in the stream (often a later batch).
		if rng.IntN(10) == 0 {
			s.msgs = append(s.msgs, originals[rng.IntN(len(originals))])
		}
	}
	return s
}

// TestCrashRestartsKeepTotalsExact kills the ledger (cancels its context)
// at random points at least ten times while it applies a stream of 20k+
// ingested events with copies and late ones, plus instances that live
// 90 s and more while the accrual runs: after the last restart every total
// is exact.
func TestCrashRestartsKeepTotalsExact(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	h := newHarness(t)
	h.addMeter("api_tokens", meter.Sum, apiCall, "tokens")
	h.addMeter("api_calls", meter.Count, apiCall, "")
	now := time.Now().UTC()
	s := genStream(rng, 20000, now)
	for chunk := 0; chunk < len(s.msgs); chunk += 2000 {
		h.publishIngest(now, s.msgs[chunk:min(chunk+2000, len(s.msgs))]...)
	}
	const instances = 30
	t0 := now.Add(-2 * time.Hour)
	for i := range instances {
		id := fmt.Sprintf("i-%02d", i)
		h.publishInstance(events.TypeInstanceReady, instance(id, "ready", t0.Add(time.Duration(i)*time.Second), node(id+"-1", "primary", "running")))
	}
	total := int64(len(s.msgs))
	t.Logf("%d ingested messages (%d unique, %d late)", total, s.unique, s.late)

	const crashes = 12
	for round := range crashes {
		l := h.newLedger(Config{BatchMax: 250, AccrueEvery: 10 * time.Millisecond})
		stop := h.run(l)
		target := total * int64(round+1) / (crashes + 2)
		eventually(t, 60*time.Second, fmt.Sprintf("round %d progress", round), func() bool {
			return h.applied(events.TopicUsageIngest) >= target
		})
		if round == crashes/2 {
			// The deletions arrive mid-way, while crashes go on.
			for i := range instances {
				id := fmt.Sprintf("i-%02d", i)
				h.publishInstance(events.TypeInstanceDeleted, instance(id, "deleted", t0.Add(time.Duration(i)*time.Second+time.Duration(90+i)*time.Second)))
			}
		}
		t.Logf("round %d: %d applied at %s", round, h.applied(events.TopicUsageIngest), time.Since(now))
		// Kill it somewhere in the middle of whatever it is doing.
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		stop()
	}
	if got := h.applied(events.TopicUsageIngest); got >= total {
		t.Fatalf("the stream was done before the last crash (%d of %d); make it longer", got, total)
	}
	h.run(h.newLedger(Config{BatchMax: 250, AccrueEvery: 10 * time.Millisecond}))
	h.waitApplied()

	for tenant, want := range s.wantTokens {
		var got float64
		if err := h.db.SQL().QueryRow("SELECT COALESCE(SUM(total), 0) FROM usage_hour WHERE meter = 'api_tokens' AND tenant_id = ?", tenant).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s api_tokens %v, want %v", tenant, got, want)
		}
	}
	if got := h.total("usage_day", "api_calls", ""); got != s.wantCalls {
		t.Errorf("api_calls %v, want %v", got, s.wantCalls)
	}
	if got := h.total("usage_minute", "api_calls", ""); got != s.wantCalls {
		t.Errorf("per-minute api_calls %v, want %v", got, s.wantCalls)
	}
	// One row per meter the late event would have counted towards (two).
	if n := h.count("SELECT COUNT(DISTINCT event_id) FROM late_events"); n != int64(s.late) {
		t.Errorf("%d late events, want %d", n, s.late)
	}
	if n := h.count("SELECT COUNT(*) FROM late_events"); n != 2*int64(s.late) {
		t.Errorf("%d late event rows, want %d (2 meters each, once)", n, 2*s.late)
	}
	if n := h.count("SELECT COUNT(*) FROM ingest_dedup"); n != int64(s.unique) {
		t.Errorf("%d dedup keys, want %d", n, s.unique)
	}
	for i := range instances {
		id := fmt.Sprintf("i-%02d", i)
		if got := h.total("usage_hour", meter.NodeHours, id); !near(got, float64(90+i), 0.001) {
			t.Errorf("%s node_hours %.6f s, want %d", id, got, 90+i)
		}
	}
	h.checkRollups()
}

// TestSingleActive runs two ledgers on one database: one holds the lock
// and consumes; when its lock session is killed the other takes over, and
// the totals stay exact across the handover.
func TestSingleActive(t *testing.T) {
	h := newHarness(t)
	h.addMeter("api_calls", meter.Count, apiCall, "")
	h.run(h.newLedger(Config{}))
	holder := func() int64 {
		var id sql.NullInt64
		if err := h.db.SQL().QueryRow("SELECT IS_USED_LOCK(?)", h.db.ActiveLockName("ledger")).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id.Int64
	}
	eventually(t, 10*time.Second, "a ledger holding the lock", func() bool { return holder() != 0 })
	first := holder()
	h.run(h.newLedger(Config{}))

	now := time.Now().UTC()
	batch := func(from, n int) []meter.Event {
		evs := make([]meter.Event, n)
		for i := range evs {
			evs[i] = apiEvent(fmt.Sprintf("sa-%05d", from+i), "acme", "s", now, 1, "u")
		}
		return evs
	}
	h.publishIngest(now, batch(0, 3000)...)
	h.waitApplied()
	if got := holder(); got != first {
		t.Fatalf("lock moved from session %d to %d without a failure", first, got)
	}
	// Kill the active ledger's lock session while events stream in.
	h.publishIngest(now, batch(3000, 3000)...)
	if _, err := h.db.SQL().Exec(fmt.Sprintf("KILL %d", first)); err != nil {
		t.Fatal(err)
	}
	h.publishIngest(now, batch(6000, 3000)...)
	eventually(t, 20*time.Second, "the other ledger taking the lock", func() bool { id := holder(); return id != 0 && id != first })
	h.publishIngest(now, batch(9000, 1000)...)
	h.waitApplied()
	if got := h.total("usage_hour", "api_calls", ""); got != 10000 {
		t.Errorf("api_calls %v, want 10000", got)
	}
}
