package rating_test

import (
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/rating"
	rt "github.com/canopy-platform/canopy/services/metering/internal/rating/ratingtest"
)

// BenchmarkCosts30Days reads 30 days of one tenant's hourly node_hours for
// 1,000 instances (720,000 hourly rows, 30,000 daily) with a price change
// in the middle of one day, as GET /api/v1/costs does: window=day, grouped
// by instance (30,000 rows out), and the month's invoice draft. It
// reports the p99 latency of each.
func BenchmarkCosts30Days(b *testing.B) {
	e := rt.New(b, rating.Config{}, rt.Date(2026, 12, 31, 12))
	from, to := rt.Date(2026, 12, 1, 0), rt.Date(2026, 12, 31, 0)
	e.Price("small", meter.NodeHours, rt.Date(2026, 11, 1, 0), "0.10")
	e.Price("small", meter.NodeHours, rt.Date(2026, 12, 15, 12), "0.12")
	e.Exec(`INSERT INTO usage_hour (tenant_id, meter, window_start, subject, plan_id, region, total, cnt)
		WITH RECURSIVE i (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 999),
		h (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM h WHERE n < 719)
		SELECT 't1', 'node_hours', ? + INTERVAL h.n HOUR, CONCAT('inst-', i.n), 'small', 'eu-1', 3600 - (i.n MOD 7), 0
		FROM i CROSS JOIN h`, from)
	e.Exec(`INSERT INTO usage_day (tenant_id, meter, window_start, subject, plan_id, region, total, cnt)
		SELECT tenant_id, meter, DATE(window_start), subject, plan_id, region, SUM(total), SUM(cnt)
		FROM usage_hour GROUP BY tenant_id, meter, DATE(window_start), subject, plan_id, region`)
	for _, c := range []struct {
		name string
		run  func(b *testing.B)
	}{
		{"window=day,group_by=instance", func(b *testing.B) {
			rows, err := e.Svc.Costs(ctx, meter.Query{Tenant: "t1", From: from, To: to, Window: meter.Day, GroupBy: []string{meter.ByInstance}})
			if err != nil || len(rows) != 30_000 {
				b.Fatalf("%d rows, %v", len(rows), err)
			}
		}},
		{"window=day", func(b *testing.B) {
			rows, err := e.Svc.Costs(ctx, meter.Query{Tenant: "t1", From: from, To: to, Window: meter.Day})
			if err != nil || len(rows) != 30 {
				b.Fatalf("%d rows, %v", len(rows), err)
			}
		}},
		{"invoice", func(b *testing.B) {
			inv, err := e.Svc.Invoice(ctx, "t1", "2026-12")
			if err != nil || len(inv.Lines) != 2000 {
				b.Fatalf("%d lines, %v", len(inv.Lines), err)
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				c.run(b)
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}
