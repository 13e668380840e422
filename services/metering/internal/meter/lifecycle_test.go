package meter

import (
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func instance(state string, nodes ...events.Node) events.Instance {
	return events.Instance{
		InstanceID: "i-1", TenantID: "t-1", PlanID: "p-small", State: state,
		VCPU: 2, MemoryMB: 4096, StorageGB: 20, Nodes: nodes,
	}
}

func node(id, role, state string) events.Node {
	return events.Node{ID: id, Role: role, Region: "eu", State: state}
}

// fold adds cs to a new batch with SUM and returns it.
func fold(cs ...[]Contribution) *Batch {
	b := NewBatch()
	for _, c := range cs {
		for _, x := range c {
			b.Add(x, Sum)
		}
	}
	return b
}

// total is the total of one window of the batch (0 when absent).
func total(b *Batch, meter string, l Level, start time.Time) float64 {
	var sum float64
	for w, a := range b.Aggs {
		if w.Meter == meter && w.Level == l && w.Start.Equal(start) {
			sum += a.Total
		}
	}
	return sum
}

func count(b *Batch, meter string, l Level, start time.Time) int64 {
	var n int64
	for w, a := range b.Aggs {
		if w.Meter == meter && w.Level == l && w.Start.Equal(start) {
			n += a.Count
		}
	}
	return n
}

func TestBilledNodes(t *testing.T) {
	running, failed := node("n-1", "primary", "running"), node("n-2", "replica", "failed")
	cases := []struct {
		name  string
		in    events.Instance
		nodes []string
	}{
		{"requested is not billed", instance("requested", running), nil},
		{"ready bills running nodes", instance("ready", running, node("n-3", "replica", "running")), []string{"n-1", "n-3"}},
		{"failed node is not billed", instance("ready", running, failed), []string{"n-1"}},
		{"stopped node is not billed", instance("updating", node("n-1", "primary", "stopped")), nil},
		{"updating bills", instance("updating", running), []string{"n-1"}},
		{"deleting bills", instance("deleting", running), []string{"n-1"}},
		{"deleted is not billed", instance("deleted", running), nil},
		{"failed instance is not billed", instance("failed", running), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := BilledNodes(c.in)
			if len(got) != len(c.nodes) {
				t.Fatalf("billed %v, want %v", got, c.nodes)
			}
			for i, n := range got {
				want := BilledNode{InstanceID: "i-1", NodeID: c.nodes[i], Tenant: "t-1", Plan: "p-small", Region: "eu",
					Size: NodeSize{VCPU: 2, MemoryMB: 4096, StorageGB: 20}}
				if n != want {
					t.Errorf("node %d = %+v, want %+v", i, n, want)
				}
			}
		})
	}
}

func TestBilledNodesRegionPerNode(t *testing.T) {
	a, b := node("n-1", "primary", "running"), node("n-2", "replica", "running")
	b.Region = "us"
	got := BilledNodes(instance("ready", a, b))
	if len(got) != 2 || got[0].Region != "eu" || got[1].Region != "us" {
		t.Fatalf("regions %+v, want eu then us", got)
	}
}

func TestFailoverKeepsBilledNodes(t *testing.T) {
	before := BilledNodes(instance("ready", node("n-1", "primary", "running"), node("n-2", "replica", "running")))
	after := BilledNodes(instance("ready", node("n-1", "replica", "running"), node("n-2", "primary", "running")))
	if len(before) != 2 || len(after) != 2 {
		t.Fatalf("billed %d then %d nodes, want 2 and 2", len(before), len(after))
	}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("node %d changed on failover: %+v -> %+v", i, before[i], after[i])
		}
	}
}

func TestIntervalContributions(t *testing.T) {
	n := BilledNodes(instance("ready", node("n-1", "primary", "running")))[0]
	cases := []struct {
		name     string
		from, to time.Time
		// minutes: node-seconds per minute window starting at t0+i minutes.
		minutes map[int]float64
	}{
		{"90 s instance", t0.Add(20 * time.Second), t0.Add(110 * time.Second), map[int]float64{0: 40, 1: 50}},
		{"within a minute", t0.Add(5 * time.Second), t0.Add(7 * time.Second), map[int]float64{0: 2}},
		{"exact minutes", t0, t0.Add(2 * time.Minute), map[int]float64{0: 60, 1: 60}},
		{"sub-second", t0.Add(59*time.Second + 750*time.Millisecond), t0.Add(60*time.Second + 500*time.Millisecond), map[int]float64{0: 0.25, 1: 0.5}},
		{"empty", t0, t0, nil},
		{"inverted", t0.Add(time.Minute), t0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs := IntervalContributions(n, c.from, c.to, 1)
			b := fold(cs)
			var want float64
			for i, secs := range c.minutes {
				m := t0.Add(time.Duration(i) * time.Minute)
				if got := total(b, NodeHours, Minute, m); got != secs {
					t.Errorf("minute %d node seconds %v, want %v", i, got, secs)
				}
				if got := total(b, VCPUHours, Minute, m); got != 2*secs {
					t.Errorf("minute %d vcpu seconds %v, want %v", i, got, 2*secs)
				}
				if got := total(b, MemoryGBHours, Minute, m); got != 4096*secs {
					t.Errorf("minute %d MB seconds %v, want %v", i, got, 4096*secs)
				}
				if got := total(b, StorageGBHours, Minute, m); got != 20*secs {
					t.Errorf("minute %d GB seconds %v, want %v", i, got, 20*secs)
				}
				want += secs
			}
			if got := total(b, NodeHours, Hour, t0); got != want {
				t.Errorf("hour node seconds %v, want %v", got, want)
			}
			if len(cs) != 4*len(c.minutes) {
				t.Errorf("%d contributions, want %d", len(cs), 4*len(c.minutes))
			}
			for _, x := range cs {
				if x.Subject != "i-1" || x.Tenant != "t-1" || x.Plan != "p-small" || x.Region != "eu" || x.Count != 1 {
					t.Errorf("contribution %+v: wrong key or count", x)
				}
				if x.At.Before(c.from) || !x.At.Before(c.to) {
					t.Errorf("contribution At %v outside [%v, %v)", x.At, c.from, c.to)
				}
			}
		})
	}
}

func TestIntervalZeroWeightMetersSkipped(t *testing.T) {
	n := BilledNode{InstanceID: "i-1", NodeID: "n", Tenant: "t", Size: NodeSize{VCPU: 1}}
	for _, c := range IntervalContributions(n, t0, t0.Add(time.Second), 1) {
		if c.Meter == MemoryGBHours || c.Meter == StorageGBHours {
			t.Errorf("zero-weight meter %s contributed", c.Meter)
		}
	}
}

// TestDeletedMidHour: ready at 10:40:15, deleted at 11:20:45 (a two node
// instance): each hour and day window gets exactly its seconds.
func TestDeletedMidHour(t *testing.T) {
	ready := t0.Add(40*time.Minute + 15*time.Second)
	deleted := t0.Add(80*time.Minute + 45*time.Second)
	nodes := BilledNodes(instance("ready", node("n-1", "primary", "running"), node("n-2", "replica", "running")))
	var cs [][]Contribution
	for _, n := range nodes {
		cs = append(cs, IntervalContributions(n, ready, deleted, 1))
	}
	b := fold(cs...)
	cases := []struct {
		level Level
		start time.Time
		secs  float64
	}{
		{Hour, t0, 2 * (19*60 + 45)},
		{Hour, t0.Add(time.Hour), 2 * (20*60 + 45)},
		{Day, Day.Start(t0), 2 * (40*60 + 30)},
		{Minute, t0.Add(40 * time.Minute), 2 * 45},
		{Minute, t0.Add(80 * time.Minute), 2 * 45},
		{Minute, t0.Add(60 * time.Minute), 2 * 60},
	}
	for _, c := range cases {
		if got := total(b, NodeHours, c.level, c.start); got != c.secs {
			t.Errorf("%s %v: %v node-seconds, want %v", c.level, c.start, got, c.secs)
		}
		if got := total(b, MemoryGBHours, c.level, c.start); got != 4096*c.secs {
			t.Errorf("%s %v: %v MB-seconds, want %v", c.level, c.start, got, 4096*c.secs)
		}
	}
}

// TestFailoverIntervalsContinue: the same nodes stay billed across a
// failover, so the intervals [ready, failover) and [failover, deleted)
// together are the whole [ready, deleted).
func TestFailoverIntervalsContinue(t *testing.T) {
	ready, failover, deleted := t0.Add(10*time.Second), t0.Add(95*time.Second+300*time.Millisecond), t0.Add(190*time.Second)
	n := BilledNodes(instance("ready", node("n-1", "primary", "running")))[0]
	split := fold(IntervalContributions(n, ready, failover, 1), IntervalContributions(n, failover, deleted, 1))
	whole := fold(IntervalContributions(n, ready, deleted, 1))
	for w, a := range whole.Aggs {
		if w.Level == Minute {
			continue // the failover splits one minute piece in two
		}
		if got := split.Aggs[w]; got == nil || got.Total != a.Total {
			t.Errorf("%v: split %+v, whole %+v", w, got, a)
		}
	}
	if got := total(split, NodeHours, Hour, t0); got != 180 {
		t.Errorf("node seconds %v, want 180", got)
	}
}

// TestAccrualTakeBack: accruing in 10 s steps then taking back past the
// close equals the closed interval, counts included.
func TestAccrualTakeBack(t *testing.T) {
	n := BilledNodes(instance("ready", node("n-1", "primary", "running")))[0]
	cases := []struct {
		name                     string
		start, close, accruedTil time.Time
		step                     time.Duration
	}{
		{"close inside last step", t0.Add(55 * time.Second), t0.Add(3*time.Minute + 2*time.Second), t0.Add(3*time.Minute + 5*time.Second), 10 * time.Second},
		{"close across a minute", t0.Add(58 * time.Minute), t0.Add(59*time.Minute + 57*time.Second), t0.Add(60*time.Minute + 8*time.Second), 10 * time.Second},
		{"sub-second steps", t0.Add(1500 * time.Millisecond), t0.Add(61*time.Second + 250*time.Millisecond), t0.Add(70 * time.Second), 3*time.Second + 333*time.Millisecond},
		{"close at accrued", t0, t0.Add(40 * time.Second), t0.Add(40 * time.Second), 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var steps [][]Contribution
			for at := c.start; at.Before(c.accruedTil); at = at.Add(c.step) {
				end := at.Add(c.step)
				if end.After(c.accruedTil) {
					end = c.accruedTil
				}
				steps = append(steps, IntervalContributions(n, at, end, 1))
			}
			steps = append(steps, IntervalContributions(n, c.close, c.accruedTil, -1))
			got := fold(steps...)
			want := fold(IntervalContributions(n, c.start, c.close, 1))
			for _, slug := range []string{NodeHours, VCPUHours, MemoryGBHours, StorageGBHours} {
				for _, l := range []Level{Hour, Day} {
					for _, h := range []time.Time{t0, t0.Add(time.Hour)} {
						g, w := total(got, slug, l, l.Start(h)), total(want, slug, l, l.Start(h))
						if !closeEnough(g, w) {
							t.Errorf("%s %s %v: accrued %v, closed %v", slug, l, h, g, w)
						}
					}
				}
			}
			for w, a := range want.Aggs {
				if w.Level == Minute && !closeEnough(got.Aggs[w].Total, a.Total) {
					t.Errorf("minute %v: accrued %v, closed %v", w.Start, got.Aggs[w].Total, a.Total)
				}
			}
		})
	}
}

// closeEnough compares exactly when both are whole (as whole seconds are),
// and to a nanosecond-second otherwise (float sums of sub-second pieces).
func closeEnough(a, b float64) bool {
	if a == float64(int64(a)) && b == float64(int64(b)) {
		return a == b
	}
	d := a - b
	return d < 1e-6 && d > -1e-6
}

func TestTakeBackCountsCancel(t *testing.T) {
	n := BilledNodes(instance("ready", node("n-1", "primary", "running")))[0]
	b := fold(IntervalContributions(n, t0, t0.Add(90*time.Second), 1), IntervalContributions(n, t0.Add(30*time.Second), t0.Add(90*time.Second), -1))
	if got := total(b, NodeHours, Hour, t0); got != 30 {
		t.Errorf("node seconds %v, want 30", got)
	}
	if got := count(b, NodeHours, Minute, t0.Add(time.Minute)); got != 0 {
		t.Errorf("count of the taken back minute %d, want 0", got)
	}
}
