package dispatch

import (
	"strconv"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// BenchmarkPutFlush is the service benchmark's shape: alerts in distinct
// groups at 5,000/s on a fake clock (one Put per op, 200µs apart), each
// resolved a second later, flushed and committed every 10ms, routed
// through a platform route and 50 tenants' routes. One op is one alert's
// share of Put, Flush and Commit.
func BenchmarkPutFlush(b *testing.B) {
	const (
		tenants = 50
		step    = 200 * time.Microsecond
		life    = 15000 // ops before an alert resolves (3s)
		flushes = 50    // ops between flushes (10ms)
	)
	routes := []Route{rt("platform", matchers(match("tenant", "=~", ".+"), match("severity", "=~", "critical|page")),
		groupBy("alertname", "instance"), func(r *Route) { r.GroupWait = time.Second })}
	for i := range tenants {
		tn := "t" + strconv.Itoa(i)
		routes = append(routes, rt(tn, owner(tn), matchers(match("tenant", "=", tn)), groupBy("alertname", "instance"),
			func(r *Route) { r.GroupWait = time.Second }))
	}
	d := New(muteSet{"Silenced": true})
	d.SetRoutes(routes, t0)
	mk := func(i int) *alert.Alert {
		return &alert.Alert{Labels: alert.LabelSet{
			alert.LabelAlertName: "HighLoad", alert.LabelInstance: "i-" + strconv.Itoa(i),
			alert.LabelSeverity: "critical", alert.LabelTenant: "t" + strconv.Itoa(i%tenants),
		}, State: alert.StateFiring}
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
			r.StartsAt, r.EndsAt, r.UpdatedAt = now.Add(-time.Second), now, now
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
	b.ReportMetric(float64(sent)/float64(b.N), "notifications/op")
	b.Logf("groups %d alerts %d heap %d log %d", len(d.groups), len(d.alerts), d.due.Len(), len(d.log.entries))
}
