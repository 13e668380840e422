package meter

import (
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
)

func TestDelta(t *testing.T) {
	c := func(v, up int64) *Counter { return &Counter{Value: v, Uptime: up} }
	cases := []struct {
		name string
		prev *Counter
		cur  Counter
		want int64
	}{
		{"first sample is a baseline", nil, *c(5000, 100), 0},
		{"growth", c(1000, 100), *c(1500, 110), 500},
		{"no growth", c(1000, 100), *c(1000, 110), 0},
		{"value dropped: restart counts cur", c(1000, 100), *c(300, 110), 300},
		{"uptime dropped: restart counts cur", c(1000, 100), *c(1200, 5), 1200},
		{"restart to zero", c(1000, 100), *c(0, 0), 0},
		{"negative value never negative", c(1000, 100), *c(-5, 110), 0},
		{"negative after baseline", c(-10, 100), *c(-5, 110), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Delta(tc.prev, tc.cur); got != tc.want {
				t.Errorf("Delta = %d, want %d", got, tc.want)
			}
		})
	}
}

var info = InstanceInfo{Tenant: "t-1", Plan: "p-small", Region: "eu"}

func sample(node, status string, at time.Time, metrics map[string]int64) events.NodeSample {
	return events.NodeSample{NodeID: node, Status: status, At: at, Metrics: metrics}
}

// run feeds batches through SampleContributions the way the ledger does
// (stored counters updated with what each returns) and folds the result.
func run(t *testing.T, batches ...events.SampleBatch) (*Batch, map[CounterKey]Counter) {
	t.Helper()
	stored := map[CounterKey]Counter{}
	b := NewBatch()
	aggs := map[string]Aggregation{}
	for _, m := range Builtins() {
		aggs[m.Slug] = m.Aggregation
	}
	for _, sb := range batches {
		cs, next := SampleContributions(sb, info, stored)
		for _, c := range cs {
			if c.Value < 0 {
				t.Errorf("negative contribution %+v", c)
			}
			if c.Tenant != "t-1" || c.Subject != sb.InstanceID || c.Plan != "p-small" || c.Region != "eu" {
				t.Errorf("contribution key %+v", c.Key)
			}
			b.Add(c, aggs[c.Meter])
		}
		for k, v := range next {
			stored[k] = v
		}
	}
	return b, stored
}

func batch(at time.Time, nodes ...events.NodeSample) events.SampleBatch {
	return events.SampleBatch{InstanceID: "i-1", TenantID: "t-1", Engine: "mysql", Nodes: nodes, WindowEnd: at}
}

func TestSampleCounters(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	m := func(in, up int64) map[string]int64 {
		return map[string]int64{MetricNetIn: in, MetricUptime: up}
	}
	cases := []struct {
		name    string
		batches []events.SampleBatch
		want    float64
	}{
		{"first sample is a baseline", []events.SampleBatch{batch(at(10), sample("n-1", "up", at(10), m(5000, 100)))}, 0},
		{"growth", []events.SampleBatch{
			batch(at(10), sample("n-1", "up", at(10), m(5000, 100))),
			batch(at(20), sample("n-1", "up", at(20), m(7000, 110))),
			batch(at(30), sample("n-1", "up", at(30), m(7500, 120))),
		}, 2500},
		{"reset by value drop counts from zero", []events.SampleBatch{
			batch(at(10), sample("n-1", "up", at(10), m(5000, 100))),
			batch(at(20), sample("n-1", "up", at(20), m(800, 110))),
			batch(at(30), sample("n-1", "up", at(30), m(1000, 120))),
		}, 1000},
		{"reset by uptime drop counts from zero", []events.SampleBatch{
			batch(at(10), sample("n-1", "up", at(10), m(5000, 100))),
			batch(at(20), sample("n-1", "up", at(20), m(6000, 3))),
			batch(at(30), sample("n-1", "up", at(30), m(6100, 13))),
		}, 6100},
		{"restart seen through a down node is not doubled", []events.SampleBatch{
			batch(at(10), sample("n-1", "up", at(10), m(5000, 100))),
			batch(at(20), sample("n-1", "down", at(20), nil)),
			batch(at(30), sample("n-1", "down", at(30), m(0, 0))),
			batch(at(40), sample("n-1", "up", at(40), m(400, 5))),
			batch(at(50), sample("n-1", "up", at(50), m(900, 15))),
		}, 900},
		{"replayed old sample is not a reset", []events.SampleBatch{
			batch(at(10), sample("n-1", "up", at(10), m(5000, 100))),
			batch(at(20), sample("n-1", "up", at(20), m(6000, 110))),
			batch(at(10), sample("n-1", "up", at(10), m(5000, 100))),
			batch(at(30), sample("n-1", "up", at(30), m(6500, 120))),
		}, 1500},
		{"missing uptime is not a restart", []events.SampleBatch{
			batch(at(10), sample("n-1", "up", at(10), m(5000, 100))),
			batch(at(20), sample("n-1", "up", at(20), map[string]int64{MetricNetIn: 5500})),
			batch(at(30), sample("n-1", "up", at(30), m(5600, 120))),
		}, 600},
		{"nodes counted separately (failover swaps roles)", []events.SampleBatch{
			batch(at(10), sample("n-1", "up", at(10), m(5000, 100)), sample("n-2", "up", at(10), m(100, 100))),
			batch(at(20), sample("n-1", "up", at(20), m(5200, 110)), sample("n-2", "up", at(20), m(150, 110))),
		}, 250},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := run(t, tc.batches...)
			if got := total(b, NetworkBytesIn, Hour, t0); got != tc.want {
				t.Errorf("bytes in %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSampleMeters(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	b, stored := run(t,
		batch(at(10),
			sample("n-1", "up", at(10), map[string]int64{MetricNetIn: 10, MetricNetOut: 20, MetricQuestions: 30, MetricConnections: 4, MetricStorageUsed: 1000, MetricUptime: 50}),
			sample("n-2", "up", at(10), map[string]int64{MetricNetIn: 10, MetricNetOut: 20, MetricQuestions: 30, MetricConnections: 1, MetricStorageUsed: 500, MetricUptime: 50})),
		batch(at(20),
			sample("n-1", "up", at(20), map[string]int64{MetricNetIn: 110, MetricNetOut: 220, MetricQuestions: 330, MetricConnections: 6, MetricStorageUsed: 2000, MetricUptime: 60}),
			sample("n-2", "up", at(20), map[string]int64{MetricNetIn: 15, MetricNetOut: 25, MetricQuestions: 35, MetricConnections: 2, MetricStorageUsed: 500, MetricUptime: 60})),
		// n-2 last sampled 20 min ago: storage integrates at most 300 s.
		batch(at(1220),
			sample("n-2", "up", at(1220), map[string]int64{MetricStorageUsed: 700, MetricUptime: 1260})),
	)
	cases := []struct {
		meter string
		want  float64
	}{
		{NetworkBytesIn, 105},
		{NetworkBytesOut, 205},
		{Operations, 305},
		{StorageUsedGBHours, 2000*10 + 500*10 + 700*300},
	}
	for _, c := range cases {
		if got := total(b, c.meter, Hour, t0); got != c.want {
			t.Errorf("%s = %v, want %v", c.meter, got, c.want)
		}
	}
	mx := b.Aggs[Window{Key: Key{Tenant: "t-1", Meter: ConnectionsMax, Subject: "i-1", Plan: "p-small", Region: "eu"}, Level: Hour, Start: t0}]
	if mx == nil || mx.Max != 8 {
		t.Errorf("connections_max %+v, want max 8", mx)
	}
	avg := b.Aggs[Window{Key: Key{Tenant: "t-1", Meter: ConnectionsAvg, Subject: "i-1", Plan: "p-small", Region: "eu"}, Level: Hour, Start: t0}]
	if avg == nil || avg.Total != 13 || avg.Count != 2 {
		t.Errorf("connections_avg %+v, want total 13 over 2 samples", avg)
	}
	if got := stored[CounterKey{"n-2", MetricStorageUsed}]; got.Value != 700 || !got.At.Equal(at(1220)) {
		t.Errorf("stored storage counter %+v", got)
	}
	if got := stored[CounterKey{"n-1", MetricNetIn}]; got.Value != 110 || got.Uptime != 60 {
		t.Errorf("stored net in counter %+v", got)
	}
}

func TestSampleDownNodeKeepsCounters(t *testing.T) {
	prev := map[CounterKey]Counter{{"n-1", MetricNetIn}: {Value: 100, Uptime: 10, At: t0}}
	cs, next := SampleContributions(batch(t0.Add(time.Minute), sample("n-1", "down", t0.Add(time.Minute), map[string]int64{MetricNetIn: 0, MetricConnections: 3})), info, prev)
	if len(cs) != 0 || len(next) != 0 {
		t.Errorf("down node: contributions %+v, counters %+v; want none", cs, next)
	}
}

func TestSampleCountersNames(t *testing.T) {
	got := map[string]bool{}
	for _, n := range SampleCounters() {
		got[n] = true
	}
	for _, n := range []string{MetricNetIn, MetricNetOut, MetricQuestions, MetricCommands, MetricStorageUsed} {
		if !got[n] {
			t.Errorf("SampleCounters misses %s", n)
		}
	}
}

func TestCDCContributions(t *testing.T) {
	u := events.CDCStreamUsage{StreamID: "s", TenantID: "t-1", InstanceID: "i-1", Rows: 42, From: t0, To: t0.Add(time.Minute)}
	cs := CDCContributions(u, info)
	if len(cs) != 1 || cs[0].Meter != CDCRows || cs[0].Value != 42 || !cs[0].At.Equal(t0.Add(time.Minute)) || cs[0].Subject != "i-1" {
		t.Errorf("cdc contributions %+v", cs)
	}
	u.Rows = 0
	if cs := CDCContributions(u, info); cs != nil {
		t.Errorf("zero rows: %+v", cs)
	}
}
