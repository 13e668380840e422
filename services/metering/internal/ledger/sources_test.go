package ledger

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

func sampleBatch(instanceID, tenant string, at time.Time, nodes ...events.NodeSample) events.SampleBatch {
	for i := range nodes {
		nodes[i].At = at
	}
	return events.SampleBatch{InstanceID: instanceID, TenantID: tenant, Engine: "mysql", Nodes: nodes, WindowEnd: at}
}

func mysqlNode(id string, netIn, netOut, questions, uptime, conns int64) events.NodeSample {
	return events.NodeSample{NodeID: id, Status: "up", Metrics: map[string]int64{
		meter.MetricNetIn: netIn, meter.MetricNetOut: netOut, meter.MetricQuestions: questions,
		meter.MetricUptime: uptime, meter.MetricConnections: conns,
	}}
}

func (h *harness) publishSamples(bs ...events.SampleBatch) {
	h.t.Helper()
	for _, b := range bs {
		h.publish(events.TopicSamples, events.TypeNodeSampled, b.InstanceID, b.WindowEnd, b)
	}
}

// TestSampleCountersAcrossRestarts feeds an instance's engine counters
// through a restart, a replayed sample and a late batch: traffic and
// operations grow by exactly what the engine did, never negative, never
// twice.
func TestSampleCountersAcrossRestarts(t *testing.T) {
	h := newHarness(t)
	l := h.newLedger(Config{})
	h.run(l)
	now := time.Now().UTC()
	h.publishInstance(events.TypeInstanceReady, instance("i-s", "ready", now.Add(-time.Hour), node("n1", "primary", "running"), node("n2", "replica", "running")))
	h.waitApplied()

	base := now.Add(-30 * time.Minute).Truncate(time.Minute)
	// Baseline: nothing counted yet.
	h.publishSamples(sampleBatch("i-s", "acme", base, mysqlNode("n1", 1000, 100, 50, 100, 3), mysqlNode("n2", 10, 10, 0, 100, 2)))
	h.waitApplied()
	// +500 in, +200 out, +30 ops on n1; +5 in on n2.
	s2 := sampleBatch("i-s", "acme", base.Add(time.Minute), mysqlNode("n1", 1500, 300, 80, 160, 4), mysqlNode("n2", 15, 10, 0, 160, 2))
	h.publishSamples(s2)
	h.waitApplied()
	// n1 restarts (counters and uptime drop): counts its new values, +200/+50/+3.
	// Then +500/+100/+10 on top, in the same batch of messages.
	h.publishSamples(
		sampleBatch("i-s", "acme", base.Add(2*time.Minute), mysqlNode("n1", 200, 50, 3, 5, 1), mysqlNode("n2", 15, 10, 0, 220, 2)),
		sampleBatch("i-s", "acme", base.Add(3*time.Minute), mysqlNode("n1", 700, 150, 13, 65, 6), mysqlNode("n2", 15, 10, 0, 280, 2)),
	)
	// A replayed older batch must not look like a reset.
	h.publishSamples(s2)
	// A batch past the grace window: recorded, not counted.
	h.publishSamples(sampleBatch("i-s", "acme", now.Add(-3*time.Hour), mysqlNode("n1", 9e6, 9e6, 9e6, 1, 99)))
	// Samples of an instance metering has not heard of: the batch's tenant;
	// without any tenant they are skipped.
	h.publishSamples(sampleBatch("i-new", "beta", base, mysqlNode("x1", 1, 1, 1, 1, 7)))
	h.publishSamples(sampleBatch("i-orphan", "", base, mysqlNode("x2", 1, 1, 1, 1, 7)))
	h.waitApplied()

	for _, c := range []struct {
		meter string
		want  float64
	}{
		{meter.NetworkBytesIn, 500 + 5 + 200 + 500},
		{meter.NetworkBytesOut, 200 + 50 + 100},
		{meter.Operations, 30 + 3 + 10},
	} {
		if got := h.total("usage_hour", c.meter, "i-s"); got != c.want {
			t.Errorf("%s = %v, want %v", c.meter, got, c.want)
		}
		if got := h.total("usage_day", c.meter, "i-s"); got != c.want {
			t.Errorf("daily %s = %v, want %v", c.meter, got, c.want)
		}
	}
	if n := h.count("SELECT COUNT(*) FROM usage_minute WHERE total < 0"); n != 0 {
		t.Errorf("%d negative minute rows", n)
	}
	var maxConns float64
	var plan, region, tenant string
	if err := h.db.SQL().QueryRow("SELECT MAX(maximum), MIN(plan_id), MIN(region), MIN(tenant_id) FROM usage_hour WHERE meter = ? AND subject = 'i-s'",
		meter.ConnectionsMax).Scan(&maxConns, &plan, &region, &tenant); err != nil {
		t.Fatal(err)
	}
	if maxConns != 8 || plan != "mysql-s" || region != "eu-1" || tenant != "acme" {
		t.Errorf("connections_max %v for %s/%s/%s, want 8 for acme/mysql-s/eu-1", maxConns, tenant, plan, region)
	}
	if n := h.count("SELECT COUNT(*) FROM late_events WHERE subject = 'i-s' AND reason = ?", reasonLate); n != 1 {
		t.Errorf("%d late sample batches recorded, want 1", n)
	}
	if n := h.count("SELECT COUNT(*) FROM usage_hour WHERE subject = 'i-new' AND tenant_id = 'beta' AND meter = ?", meter.ConnectionsMax); n != 1 {
		t.Errorf("unknown instance's samples not counted under the batch's tenant")
	}
	if n := h.count("SELECT COUNT(*) FROM usage_hour WHERE subject = 'i-orphan'"); n != 0 {
		t.Errorf("samples without any tenant were counted")
	}
	if got := testutil.ToFloat64(l.metrics.events.WithLabelValues(events.TopicSamples, outcomeLate)); got != 1 {
		t.Errorf("late samples metric %v, want 1", got)
	}
	if got := testutil.ToFloat64(l.metrics.events.WithLabelValues(events.TopicSamples, outcomeSkipped)); got != 1 {
		t.Errorf("skipped samples metric %v, want 1", got)
	}
	h.checkRollups() // connections_max: the rollups' maximum too
}

// TestCDCUsageAndCatalogPrices: cdc.stream.usage counts cdc_rows (other
// CDC events do not), and plan events version the prices.
func TestCDCUsageAndCatalogPrices(t *testing.T) {
	h := newHarness(t)
	h.run(h.newLedger(Config{}))
	now := time.Now().UTC()
	h.publishInstance(events.TypeInstanceReady, instance("i-c", "ready", now.Add(-time.Hour), node("c1", "primary", "running")))
	h.waitApplied()
	for _, rows := range []int64{40, 2} {
		ev, err := eventbus.NewEvent(events.TypeCDCStreamUsage, events.SourceCDC, "s-1", events.CDCStreamUsage{StreamID: "s-1", TenantID: "acme",
			InstanceID: "i-c", Rows: rows, From: now.Add(-time.Minute), To: now})
		if err != nil {
			t.Fatal(err)
		}
		// The cdc outbox relay may deliver an event twice, in one batch or
		// in a later one: its rows count once.
		h.publishEvents(events.TopicCDC, ev, ev)
		h.waitApplied()
		h.publishEvents(events.TopicCDC, ev)
	}
	h.publish(events.TopicCDC, events.TypeCDCStreamLagging, "s-1", now, events.CDCStreamStatus{StreamID: "s-1", InstanceID: "i-c", TenantID: "acme"})

	day := now.Truncate(24 * time.Hour).Add(-48 * time.Hour)
	plan := func(at time.Time, nodeHour, storage string) events.PlanEvent {
		return events.PlanEvent{Plan: events.Plan{ID: "mysql-s", Name: "s", CreatedAt: day.Add(10*time.Hour + 20*time.Minute), UpdatedAt: at,
			Prices: events.PlanPrices{Currency: "EUR", NodeHour: nodeHour, StorageGBHour: storage}}}
	}
	h.publish(events.TopicCatalog, events.TypePlanCreated, "mysql-s", now, plan(day.Add(10*time.Hour+20*time.Minute), "0.10", "0.0002"))
	h.publish(events.TopicCatalog, events.TypePlanUpdated, "mysql-s", now, plan(day.Add(12*time.Hour), "0.100", "0.0002"))      // same price
	h.publish(events.TopicCatalog, events.TypePlanUpdated, "mysql-s", now, plan(day.Add(14*time.Hour+time.Second), "0.12", "")) // node price up, storage unpriced
	h.publish(events.TopicCatalog, events.TypePlanDeprecated, "mysql-s", now, plan(day.Add(15*time.Hour), "0.12", ""))
	h.waitApplied()

	if got := h.total("usage_hour", meter.CDCRows, "i-c"); got != 42 {
		t.Errorf("cdc_rows %v, want 42", got)
	}
	type price struct {
		meter, from, unit string
	}
	rows, err := h.db.SQL().Query("SELECT meter, effective_from, unit_price FROM prices WHERE plan_id = 'mysql-s' AND currency = 'EUR' AND source = 'catalog' ORDER BY meter, effective_from")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []price
	for rows.Next() {
		var p price
		var at time.Time
		if err := rows.Scan(&p.meter, &at, &p.unit); err != nil {
			t.Fatal(err)
		}
		p.from = at.UTC().Format("15:04")
		got = append(got, p)
	}
	// The first price applies from the hour the plan was created in (10:20 → 10:00); a change from the next full hour.
	want := []price{{meter.NodeHours, "10:00", "0.100000000"}, {meter.NodeHours, "15:00", "0.120000000"}, {meter.StorageGBHours, "10:00", "0.000200000"}}
	if len(got) != len(want) {
		t.Fatalf("prices %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("price %d = %v, want %v", i, got[i], want[i])
		}
	}
}
