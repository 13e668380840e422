package usage_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// TestRollupsAnswerAsSubjectTables: over random usage of two tenants
// (many instances, plans and regions, fractional totals, every kind of
// meter) every query shape answers exactly the same from the per-tenant
// rollups as from the subject tables alone.
func TestRollupsAnswerAsSubjectTables(t *testing.T) {
	s, db := newStore(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	meters := []string{meter.NodeHours, "api_calls", meter.ConnectionsMax, meter.ConnectionsAvg}
	start := ts("2026-11-29T00:00:00Z")
	var rows []agg
	seen := map[string]bool{}
	for range 300 {
		tenant := []string{"acme", "globex"}[rng.IntN(2)]
		subject := fmt.Sprintf("i%d", rng.IntN(12))
		plan, region := []string{"", "small", "large"}[rng.IntN(3)], []string{"", "eu", "us"}[rng.IntN(3)]
		m := meters[rng.IntN(len(meters))]
		hour := start.Add(time.Duration(rng.IntN(5*24)) * time.Hour)
		// Nanosecond-granular values: the rollups must add them exactly.
		total := float64(rng.Int64N(1e13)) / 1e9
		cnt := rng.Int64N(5)
		var mx any
		if m == meter.ConnectionsMax || m == meter.ConnectionsAvg {
			mx = float64(rng.Int64N(1e12)) / 1e9
		}
		for _, r := range []agg{
			{table: "usage_hour", start: hour.Format(time.DateTime)},
			{table: "usage_day", start: hour.Truncate(24 * time.Hour).Format(time.DateTime)},
		} {
			k := fmt.Sprint(r.table, tenant, m, r.start, subject, plan, region)
			if seen[k] {
				continue
			}
			seen[k] = true
			r.tenant, r.meter, r.subject, r.plan, r.region, r.total, r.cnt, r.max = tenant, m, subject, plan, region, total, cnt, mx
			rows = append(rows, r)
		}
	}
	insertAggs(t, db, rows...)

	from, to := start, start.AddDate(0, 0, 5)
	plain := s.WithoutRollups()
	groups := [][]string{nil, {meter.ByPlan}, {meter.ByRegion}, {meter.ByPlan, meter.ByRegion}, {meter.ByTenant}, {meter.ByMeter}}
	meterSets := [][]string{nil, {meter.NodeHours}, {"api_calls", meter.ConnectionsAvg}, {meter.ConnectionsMax, meter.NodeHours}, {"users", meter.ConnectionsAvg}}
	n := 0
	for _, w := range []meter.Level{meter.Hour, meter.Day, meter.Month} {
		for _, g := range groups {
			for _, ms := range meterSets {
				for _, all := range []bool{false, true} {
					q := meter.Query{Tenant: "acme", AllTenants: all, Meters: ms, From: from, To: to, Window: w, GroupBy: g}
					if all {
						q.Tenant = ""
					}
					want, err := plain.Usage(t.Context(), q)
					require.NoError(t, err)
					got, err := s.Usage(t.Context(), q)
					require.NoError(t, err)
					require.Equal(t, want, got, "query %+v", q)
					n += len(got)
				}
			}
		}
	}
	require.Greater(t, n, 1000, "the queries compared rows")

	// The rollups are what answered: without them the tenant's hours are gone.
	exec(t, db, "DELETE FROM usage_tenant_hour")
	q := meter.Query{Tenant: "acme", Meters: []string{meter.NodeHours}, From: from, To: to, Window: meter.Hour}
	got, err := s.Usage(t.Context(), q)
	require.NoError(t, err)
	require.Empty(t, got)
	want, err := plain.Usage(t.Context(), q)
	require.NoError(t, err)
	require.NotEmpty(t, want)
}
