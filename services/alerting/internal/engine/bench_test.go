package engine_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// BenchmarkPushToWebhook pushes b.N alerts from concurrent pushers (10
// alerts per push, each alert its own group, as distinct instances are)
// and waits until every one reached the webhook: it reports alerts/s and
// the process CPU per alert (engine, MariaDB client, webhook receiver; not
// the HTTP API).
func BenchmarkPushToWebhook(b *testing.B) {
	for _, groups := range []string{"per-alert", "per-100"} {
		b.Run(groups, func(b *testing.B) { benchPush(b, groups == "per-alert") })
	}
}

func benchPush(b *testing.B, groupPerAlert bool) {
	env := newEnv(b)
	h := newHook(b)
	h.countOnly = true
	// Groups of one alert: production-like intervals, groups are not
	// re-examined during the run. Groups of 100: alerts joining a group
	// after its first notification go out at the next group_interval.
	interval := 5 * time.Minute
	if !groupPerAlert {
		interval = time.Second
	}
	_, err := env.st.CreateReceiver(context.Background(), alertstore.Receiver{
		Name: "bench", URL: h.srv.URL, GroupWait: groupWait, GroupInterval: interval,
		RepeatInterval: 4 * time.Hour, SendResolved: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	e := env.start(engine.Config{})

	const pushers, per = 64, 10
	var next atomic.Int64
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := next.Add(per) - per
				if first >= int64(b.N) {
					return
				}
				as := make([]*alert.Alert, 0, per)
				for i := first; i < first+per && i < int64(b.N); i++ {
					inst := fmt.Sprintf("i-%d", i)
					if !groupPerAlert {
						inst = fmt.Sprintf("i-%d", i/100)
					}
					as = append(as, firing("alertname", "Bench", "instance", inst, "seq", fmt.Sprint(i)))
				}
				if err := e.Push(context.Background(), as); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	pushed := time.Since(start)
	end := time.Now().Add(2 * time.Minute)
	for h.alerts.Load() < int64(b.N) && time.Now().Before(end) {
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime)-syscall.TimevalToNsec(ru0.Utime)) +
		time.Duration(syscall.TimevalToNsec(ru1.Stime)-syscall.TimevalToNsec(ru0.Stime))
	if h.alerts.Load() < int64(b.N) {
		b.Fatalf("delivered %d of %d alerts", h.alerts.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/pushed.Seconds(), "pushed/s")
	b.ReportMetric(float64(b.N)/took.Seconds(), "delivered/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/alert")
}
