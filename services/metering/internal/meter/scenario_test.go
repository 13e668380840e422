package meter

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
)

// lifecycle replays instance events the way the ledger keeps intervals: an
// interval opens when a node becomes billed and closes when it stops being;
// it returns the folded contributions.
func lifecycle(evs ...events.Instance) *Batch {
	type open struct {
		n    BilledNode
		from time.Time
	}
	opened := map[string]open{}
	var cs [][]Contribution
	for _, e := range evs {
		billed := map[string]BilledNode{}
		for _, n := range BilledNodes(e) {
			billed[n.NodeID] = n
			if _, ok := opened[n.NodeID]; !ok {
				opened[n.NodeID] = open{n, e.OccurredAt}
			}
		}
		for id, o := range opened {
			if _, ok := billed[id]; !ok {
				cs = append(cs, IntervalContributions(o.n, o.from, e.OccurredAt, 1))
				delete(opened, id)
			}
		}
	}
	return fold(cs...)
}

func at(e events.Instance, t time.Time) events.Instance { e.OccurredAt = t; return e }

func TestLifecycleScenarios(t *testing.T) {
	p, r := node("n-1", "primary", "running"), node("n-2", "replica", "running")
	pSwap, rSwap := node("n-1", "replica", "running"), node("n-2", "primary", "running")
	pFailed := node("n-1", "primary", "failed")
	cases := []struct {
		name  string
		evs   []events.Instance
		hours map[time.Time]float64 // node-seconds per hour
	}{
		{"lives 90 s", []events.Instance{
			at(instance("requested"), t0),
			at(instance("ready", p), t0.Add(15*time.Second)),
			at(instance("deleted"), t0.Add(105*time.Second)),
		}, map[time.Time]float64{t0: 90}},
		{"fails over: roles swap, billing continues", []events.Instance{
			at(instance("ready", p, r), t0.Add(10*time.Second)),
			at(instance("ready", pSwap, rSwap), t0.Add(40*time.Second)),
			at(instance("deleting", pSwap, rSwap), t0.Add(95*time.Second)),
			at(instance("deleted"), t0.Add(100*time.Second)),
		}, map[time.Time]float64{t0: 2 * 90}},
		{"failed node not billed while failed", []events.Instance{
			at(instance("ready", p, r), t0),
			at(instance("ready", pFailed, rSwap), t0.Add(30*time.Second)),
			at(instance("ready", pSwap, rSwap), t0.Add(50*time.Second)),
			at(instance("deleted"), t0.Add(60*time.Second)),
		}, map[time.Time]float64{t0: 60 + 30 + 10}},
		{"deleted mid-hour", []events.Instance{
			at(instance("ready", p), t0.Add(30*time.Minute)),
			at(instance("updating", p), t0.Add(50*time.Minute)),
			at(instance("ready", p), t0.Add(52*time.Minute)),
			at(instance("deleted"), t0.Add(90*time.Minute+7*time.Second)),
		}, map[time.Time]float64{t0: 1800, t0.Add(time.Hour): 1807}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := lifecycle(c.evs...)
			var day float64
			for h, secs := range c.hours {
				if got := total(b, NodeHours, Hour, h); got != secs {
					t.Errorf("hour %v: %v node-seconds, want %v", h.Format("15:04"), got, secs)
				}
				if got := total(b, VCPUHours, Hour, h); got != 2*secs {
					t.Errorf("hour %v: %v vCPU-seconds, want %v", h.Format("15:04"), got, 2*secs)
				}
				day += secs
			}
			if got := total(b, NodeHours, Day, Day.Start(t0)); got != day {
				t.Errorf("day: %v node-seconds, want %v", got, day)
			}
		})
	}
}

// engine is a simulated engine counter: total is the true traffic since
// the test began.
type engine struct {
	counter, uptime, total int64
}

// TestCountersRandomRestarts drives random traffic, restarts, down
// periods and replayed samples; since every restart happens right after a
// sample and is seen as an uptime drop, what is counted must be the true
// traffic exactly: never less, never doubled, never negative.
func TestCountersRandomRestarts(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		e := &engine{counter: rng.Int64N(1e9), uptime: rng.Int64N(1e6)}
		stored := map[CounterKey]Counter{}
		var counted float64
		var last events.SampleBatch
		now := t0
		sampled := false
		for step := range 300 {
			now = now.Add(10 * time.Second)
			switch r := rng.IntN(20); {
			case r == 0 && sampled && e.uptime >= 10:
				// A restart just after the last sample: the engine is up
				// for less than the sample interval when sampled next. (Two
				// restarts in consecutive intervals whose second counter is
				// higher cannot be told from growth; not simulated.)
				e.counter, e.uptime = 0, -1-rng.Int64N(9)
			case r == 1: // a replayed or out-of-order old batch
				if last.Nodes != nil {
					cs, next := SampleContributions(last, info, stored)
					if len(cs) != 0 || len(next) != 0 {
						t.Fatalf("seed %d step %d: replayed batch counted %+v", seed, step, cs)
					}
				}
				continue
			case r == 2: // down: nothing to read
				b := batch(now, sample("n-1", "down", now, nil))
				if cs, next := SampleContributions(b, info, stored); len(cs) != 0 || len(next) != 0 {
					t.Fatalf("seed %d step %d: down node counted", seed, step)
				}
				continue
			}
			d := rng.Int64N(5000)
			if sampled {
				e.total += d // traffic before the baseline is not ours to count
			}
			e.counter += d
			e.uptime += 10
			b := batch(now, sample("n-1", "up", now, map[string]int64{MetricNetIn: e.counter, MetricUptime: e.uptime}))
			cs, next := SampleContributions(b, info, stored)
			for _, c := range cs {
				if c.Value < 0 {
					t.Fatalf("seed %d: negative %+v", seed, c)
				}
				counted += c.Value
			}
			for k, v := range next {
				stored[k] = v
			}
			last, sampled = b, true
		}
		if counted != float64(e.total) {
			t.Errorf("seed %d: counted %v bytes, true traffic %d", seed, counted, e.total)
		}
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	evs, err := ParseEvents([]byte(`{"specversion":"1.0","id":"e-1","source":"gw","type":"t","time":"2026-12-03T11:15:00.123456789+01:00","data":{ "a" : 1 },"datacontenttype":"application/json; charset=utf-8"}`), false, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	e.TenantID = "t-1"
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !eventEqual(back, Event{SpecVersion: "1.0", ID: "e-1", Source: "gw", Type: "t",
		Time: time.Date(2026, 12, 3, 10, 15, 0, 123456789, time.UTC), DataContentType: "application/json; charset=utf-8",
		Data: json.RawMessage(`{"a":1}`), TenantID: "t-1"}) {
		t.Errorf("round trip %s -> %+v", raw, back)
	}
	if back.DedupKey() != e.DedupKey() {
		t.Error("dedup key changed over the wire")
	}
	// Parsing the wire form again (as the ledger may) gives the same event.
	again, err := ParseEvents(raw, false, 1, t0.Add(time.Hour))
	if err != nil || !eventEqual(again[0], back) {
		t.Errorf("re-parse: %v %+v", err, again)
	}
}
