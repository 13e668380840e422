package ledger

import (
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// accruedPast waits until the accrual moved the instance's open intervals
// at least to t, so the next event really takes accrued usage back.
func (h *harness) accruedPast(instanceID string, t time.Time) {
	h.t.Helper()
	eventually(h.t, 30*time.Second, "accrual of "+instanceID, func() bool {
		return h.count("SELECT COUNT(*) FROM node_intervals WHERE instance_id = ? AND ended_at IS NULL AND accrued_until > ?", instanceID, t) > 0
	})
}

// hourTotals returns node_hours per hour of one instance, in seconds.
func (h *harness) hourTotals(instanceID string) map[time.Time]float64 {
	h.t.Helper()
	rows, err := h.db.SQL().Query("SELECT window_start, SUM(total) FROM usage_hour WHERE meter = ? AND subject = ? GROUP BY window_start", meter.NodeHours, instanceID)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	out := map[time.Time]float64{}
	for rows.Next() {
		var at time.Time
		var v float64
		if err := rows.Scan(&at, &v); err != nil {
			h.t.Fatal(err)
		}
		if v != 0 {
			out[at.UTC()] = v
		}
	}
	return out
}

// TestNodeHoursExact publishes lifecycle events for instances that live
// 90 s, that fail over, that are deleted mid-hour, and whose node fails;
// the accrual runs in between (so usage is accrued and taken back), and
// usage_hour holds exactly the billed node-seconds.
func TestNodeHoursExact(t *testing.T) {
	h := newHarness(t)
	l := h.newLedger(Config{AccrueEvery: 20 * time.Millisecond})
	h.run(l)

	// Well in the past, so the accrual (on the real clock) runs far past
	// every deletion before the deletion is applied.
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)

	// 90 seconds, starting mid-minute.
	t0 := base.Add(12*time.Minute + 17*time.Second + 250*time.Millisecond)
	h.publishInstance(events.TypeInstanceReady, instance("i-90s", "ready", t0, node("i-90s-1", "primary", "running")))
	h.waitApplied()
	h.accruedPast("i-90s", t0.Add(5*time.Minute))
	h.publishInstance(events.TypeInstanceDeleted, instance("i-90s", "deleted", t0.Add(90*time.Second)))

	// Two nodes, a failover swaps the roles at +10 min, deleted at +30 min.
	f0 := base.Add(5 * time.Minute)
	h.publishInstance(events.TypeInstanceReady, instance("i-fo", "ready", f0,
		node("i-fo-1", "primary", "running"), node("i-fo-2", "replica", "running")))
	h.waitApplied()
	h.accruedPast("i-fo", f0.Add(40*time.Minute))
	swapped := instance("i-fo", "ready", f0.Add(10*time.Minute), node("i-fo-2", "primary", "running"), node("i-fo-1", "replica", "running"))
	swapped.FailoverToken = 1
	h.publishInstance(events.TypeInstanceUpdated, swapped)
	h.publishInstance(events.TypeInstanceDeleted, instance("i-fo", "deleted", f0.Add(30*time.Minute)))

	// Ready at :40 of one hour, deleted at :25 of the next.
	m0 := base.Add(40 * time.Minute)
	h.publishInstance(events.TypeInstanceReady, instance("i-mid", "ready", m0, node("i-mid-1", "primary", "running")))
	h.waitApplied()
	h.accruedPast("i-mid", m0.Add(time.Hour))
	h.publishInstance(events.TypeInstanceDeleting, instance("i-mid", "deleting", m0.Add(44*time.Minute), node("i-mid-1", "primary", "running")))
	h.publishInstance(events.TypeInstanceDeleted, instance("i-mid", "deleted", m0.Add(45*time.Minute)))

	// A replica fails after 20 min; the primary goes on until deletion at 60 min.
	n0 := base.Add(time.Minute)
	h.publishInstance(events.TypeInstanceReady, instance("i-fail", "ready", n0,
		node("i-fail-1", "primary", "running"), node("i-fail-2", "replica", "running")))
	h.publishInstance(events.TypeInstanceUpdated, instance("i-fail", "ready", n0.Add(20*time.Minute),
		node("i-fail-1", "primary", "running"), node("i-fail-2", "replica", "failed")))
	h.publishInstance(events.TypeInstanceDeleted, instance("i-fail", "deleted", n0.Add(60*time.Minute)))

	// The relay sends a copy of i-90s's ready again after its deletion: a
	// stale event that must not reopen billing.
	h.publishInstance(events.TypeInstanceReady, instance("i-90s", "ready", t0, node("i-90s-1", "primary", "running")))
	h.waitApplied()

	const ms = 0.001
	check := func(id string, want float64) {
		t.Helper()
		if got := h.total("usage_hour", meter.NodeHours, id); !near(got, want, ms) {
			t.Errorf("%s: node_hours %.6f s, want %.3f s", id, got, want)
		}
		if got := h.total("usage_day", meter.NodeHours, id); !near(got, want, ms) {
			t.Errorf("%s: daily node_hours %.6f s, want %.3f s", id, got, want)
		}
		if got := h.total("usage_minute", meter.NodeHours, id); !near(got, want, ms) {
			t.Errorf("%s: per-minute node_hours %.6f s, want %.3f s", id, got, want)
		}
	}
	check("i-90s", 90)
	check("i-fo", 2*1800)
	check("i-mid", 45*60)
	check("i-fail", 20*60+60*60)
	if got := h.total("usage_hour", meter.VCPUHours, "i-90s"); !near(got, 2*90, ms) {
		t.Errorf("vcpu_hours %.6f, want 180 vCPU-seconds", got)
	}
	if got := h.total("usage_hour", meter.MemoryGBHours, "i-90s"); !near(got, 4096*90, ms) {
		t.Errorf("memory_gb_hours %.6f, want %d MB-seconds", got, 4096*90)
	}
	if got := h.total("usage_hour", meter.StorageGBHours, "i-fo"); !near(got, 50*3600, ms) {
		t.Errorf("storage_gb_hours %.6f, want %d GB-seconds", got, 50*3600)
	}
	// Mid-hour deletion: 20 min in the first hour, 25 in the next.
	mid := h.hourTotals("i-mid")
	if len(mid) != 2 || !near(mid[base], 20*60, ms) || !near(mid[base.Add(time.Hour)], 25*60, ms) {
		t.Errorf("i-mid per hour %v, want 1200 s at %s and 1500 s at %s", mid, base, base.Add(time.Hour))
	}
	if n := h.count("SELECT COUNT(*) FROM node_intervals WHERE ended_at IS NULL"); n != 0 {
		t.Errorf("%d intervals still open after every instance was deleted", n)
	}
	var state string
	var deleted *time.Time
	if err := h.db.SQL().QueryRow("SELECT state, deleted_at FROM instances WHERE instance_id = 'i-90s'").Scan(&state, &deleted); err != nil {
		t.Fatal(err)
	}
	if state != "deleted" || deleted == nil || !deleted.Equal(t0.Add(90*time.Second)) {
		t.Errorf("i-90s row: state %q deleted_at %v", state, deleted)
	}
	h.checkRollups()
}

// TestResizeReopensIntervals: an update that changes the plan's size closes
// the nodes' intervals and opens new ones at the new size.
func TestResizeReopensIntervals(t *testing.T) {
	h := newHarness(t)
	h.run(h.newLedger(Config{}))
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	in := instance("i-rs", "ready", t0, node("i-rs-1", "primary", "running"))
	h.publishInstance(events.TypeInstanceReady, in)
	in.OccurredAt, in.State, in.VCPU = t0.Add(10*time.Minute), "updated", 4
	in.State = "ready"
	h.publishInstance(events.TypeInstanceUpdated, in)
	h.publishInstance(events.TypeInstanceDeleted, instance("i-rs", "deleted", t0.Add(30*time.Minute)))
	h.waitApplied()
	if got := h.total("usage_hour", meter.NodeHours, "i-rs"); !near(got, 1800, 0.001) {
		t.Errorf("node_hours %.6f, want 1800 s", got)
	}
	if got := h.total("usage_hour", meter.VCPUHours, "i-rs"); !near(got, 2*600+4*1200, 0.001) {
		t.Errorf("vcpu_hours %.6f, want %d vCPU-seconds", got, 2*600+4*1200)
	}
	if n := h.count("SELECT COUNT(*) FROM node_intervals WHERE instance_id = 'i-rs'"); n != 2 {
		t.Errorf("%d intervals, want 2 (before and after the resize)", n)
	}
}
