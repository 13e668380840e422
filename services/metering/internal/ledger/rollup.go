package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// rollupTables are the per-tenant rollups (no subject) of the hour and day
// aggregates, written after the subject tables in this order by every
// transaction: their rows are the most shared (every partition writing a
// tenant's usage adds to them), so they are locked last and in one order.
var rollupTables = []struct {
	level meter.Level
	table string
}{{meter.Hour, "usage_tenant_hour"}, {meter.Day, "usage_tenant_day"}}

// rollupKey is one rollup row's identity: a window's key without the subject.
type rollupKey struct {
	tenant, meter, plan, region string
	start                       time.Time
}

// rollupAgg is what a batch adds to one rollup row. total is kept as the
// exact sum of the decimals the subject rows receive (each window's total
// formatted to 9 places), so the rollup equals the sum of its subject rows
// to the last digit, as the usage queries that read either must agree.
type rollupAgg struct {
	total  fixed9
	count  int64
	max    float64
	hasMax bool
}

// writeRollups adds the batch's hour and day aggregates, folded per
// (tenant, meter, window, plan, region), to usage_tenant_hour and
// usage_tenant_day: a batch of a thousand instances' windows adds a
// handful of rows.
func writeRollups(ctx context.Context, tx *sql.Tx, b *meter.Batch) error {
	if len(b.Aggs) == 0 {
		return nil
	}
	byLevel := map[meter.Level]map[rollupKey]*rollupAgg{}
	var num []byte
	for win, a := range b.Aggs {
		if win.Level != meter.Hour && win.Level != meter.Day {
			continue
		}
		m := byLevel[win.Level]
		if m == nil {
			m = map[rollupKey]*rollupAgg{}
			byLevel[win.Level] = m
		}
		k := rollupKey{tenant: win.Tenant, meter: win.Meter, plan: win.Plan, region: win.Region, start: win.Start}
		r := m[k]
		if r == nil {
			r = &rollupAgg{}
			m[k] = r
		}
		num = strconv.AppendFloat(num[:0], a.Total, 'f', 9, 64)
		r.total.add(num)
		r.count += a.Count
		// Formatting to 9 places keeps order, so the largest float gives
		// the largest stored decimal.
		if a.HasMax && (!r.hasMax || a.Max > r.max) {
			r.max, r.hasMax = a.Max, true
		}
	}
	var q []byte
	for _, lt := range rollupTables {
		m := byLevel[lt.level]
		keys := make([]rollupKey, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, c rollupKey) int {
			return cmp.Or(cmp.Compare(a.tenant, c.tenant), cmp.Compare(a.meter, c.meter), a.start.Compare(c.start),
				cmp.Compare(a.plan, c.plan), cmp.Compare(a.region, c.region))
		})
		for chunk := range slices.Chunk(keys, maxRows) {
			q = append(q[:0], "INSERT INTO "...)
			q = append(q, lt.table...)
			q = append(q, " (tenant_id, meter, window_start, plan_id, region, total, cnt, maximum) VALUES "...)
			for i, k := range chunk {
				if i > 0 {
					q = append(q, ',')
				}
				r := m[k]
				q = appendAggKey(q, meter.Key{Tenant: k.tenant, Meter: k.meter, Plan: k.plan, Region: k.region}, k.start, false)
				q = r.total.appendTo(q)
				q = appendAggTail(q, r.count, r.max, r.hasMax)
			}
			q = append(q, aggUpsert...)
			if _, err := tx.ExecContext(ctx, string(q)); err != nil {
				return fmt.Errorf("add %d rows to %s: %w", len(chunk), lt.table, err)
			}
		}
	}
	return nil
}

// fixed9 is an exact sum of decimals with 9 fractional digits, in
// billionths: an int64 while it fits, a big.Int beyond.
type fixed9 struct {
	small int64
	big   *big.Int
}

// add adds the decimal s ("-123.456789000", as strconv.AppendFloat(…,
// 'f', 9, …) writes it).
func (f *fixed9) add(s []byte) {
	digits := make([]byte, 0, len(s))
	for _, c := range s {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	if f.big == nil {
		if v, err := strconv.ParseInt(string(digits), 10, 64); err == nil {
			if sum, ok := addInt64(f.small, v); ok {
				f.small = sum
				return
			}
		}
		f.big = big.NewInt(f.small)
	}
	v, ok := new(big.Int).SetString(string(digits), 10)
	if !ok {
		panic(fmt.Sprintf("fixed9: not a decimal: %q", s)) // AppendFloat writes only decimals
	}
	f.big.Add(f.big, v)
}

// addInt64 returns a+b and whether it did not overflow.
func addInt64(a, b int64) (int64, bool) {
	s, _ := bits.Add64(uint64(a), uint64(b), 0)
	sum := int64(s)
	// Overflow: both operands have one sign and the sum the other.
	return sum, !((a >= 0) == (b >= 0) && (sum >= 0) != (a >= 0))
}

// appendTo appends f as a decimal literal with 9 fractional digits.
func (f *fixed9) appendTo(b []byte) []byte {
	var s string
	if f.big != nil {
		s = f.big.String()
	} else {
		s = strconv.FormatInt(f.small, 10)
	}
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
		b = append(b, '-')
	}
	if len(s) < 10 {
		s = strings.Repeat("0", 10-len(s)) + s
	}
	b = append(b, s[:len(s)-9]...)
	b = append(b, '.')
	return append(b, s[len(s)-9:]...)
}
