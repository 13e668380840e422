package dispatch

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// BenchmarkPutFlush is the service benchmark's shape: alerts at 5,000/s on
// a fake clock (one Put per op, 200µs apart), each resolved 3s later,
// flushed and committed every 10ms, routed through a platform route and 50
// tenants' routes (so most alerts reach two receivers). "distinct-groups"
// gives every alert its own group, "100-groups" spreads them over 100.
// One op is one alert's share of Put (firing and resolved), Flush and
// Commit.
func BenchmarkPutFlush(b *testing.B) {
	b.Run("distinct-groups", func(b *testing.B) { benchPutFlush(b, 0) })
	b.Run("100-groups", func(b *testing.B) { benchPutFlush(b, 100) })
}

func benchPutFlush(b *testing.B, groups int) {
	const (
		tenants = 50
		step    = 200 * time.Microsecond
		life    = 15000 // ops before an alert resolves (3s)
		flushes = 50    // ops between flushes (10ms)
	)
	wait := func(r *Route) { r.GroupWait = time.Second }
	by := groupBy("alertname", "instance")
	if groups > 0 {
		by = groupBy("alertname", "cluster")
	}
	routes := []Route{rt("platform", matchers(match("tenant", "=~", ".+"), match("severity", "=~", "critical|page")), by, wait)}
	for i := range tenants {
		tn := "t" + strconv.Itoa(i)
		routes = append(routes, rt(tn, owner(tn), matchers(match("tenant", "=", tn)), by, wait))
	}
	d := New(muteSet{"Silenced": true})
	d.SetRoutes(routes, t0)
	mk := func(i int) *alert.Alert {
		ls := alert.LabelSet{
			alert.LabelAlertName: "HighLoad", alert.LabelInstance: "i-" + strconv.Itoa(i),
			alert.LabelSeverity: "critical", alert.LabelTenant: "t" + strconv.Itoa(i%tenants),
		}
		if groups > 0 {
			ls["cluster"] = "c" + strconv.Itoa(i%groups)
		}
		return &alert.Alert{Labels: ls, State: alert.StateFiring}
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for i := range b.N {
		now := t0.Add(time.Duration(i) * step)
		a := mk(i)
		a.StartsAt, a.UpdatedAt = now, now
		d.Put(now, a)
		if i >= life {
			r := mk(i - life)
			r.StartsAt, r.EndsAt, r.UpdatedAt = now.Add(-3*time.Second), now, now
			r.State = alert.StateResolved
			d.Put(now, r)
		}
		if i%flushes == 0 {
			for _, n := range d.Flush(now) {
				sent++
				d.Commit(n)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(sent)/float64(b.N), "notifications/op")
	// Live heap per group: what a long group_interval costs in memory.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/float64(max(1, len(d.groups))), "heapB/group")
	runtime.KeepAlive(d)
}
