package usage

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// aggTables is where each window level is read: a month sums its days.
var aggTables = map[meter.Level]string{
	meter.Minute: "usage_minute",
	meter.Hour:   "usage_hour",
	meter.Day:    "usage_day",
	meter.Month:  "usage_day",
}

// rollupTables is where each window level is read when the per-tenant
// rollups answer the query (see rollupQuery and rollupMeter); minutes have none.
var rollupTables = map[meter.Level]string{
	meter.Hour:  "usage_tenant_hour",
	meter.Day:   "usage_tenant_day",
	meter.Month: "usage_tenant_day",
}

// rollupQuery reports whether q can read the per-tenant rollups: they
// have no subject, so not when grouping by or filtering on an instance.
func rollupQuery(q meter.Query) bool {
	return q.Instance == "" && !slices.Contains(q.GroupBy, meter.ByInstance)
}

// rollupMeter reports whether m is read from the rollups: SUM, COUNT and
// AVG meters, whose totals and counts add up across subjects to exactly
// what the subject rows sum to. MAX meters keep reading the subject tables.
func rollupMeter(m meter.Meter) bool {
	switch m.Aggregation {
	case meter.Sum, meter.Count, meter.Avg:
		return true
	}
	return false
}

// uniqueLevels is usage_unique's level of each window; distinct values are
// kept per hour, day and month only.
var uniqueLevels = map[meter.Level]string{
	meter.Hour:  "h",
	meter.Day:   "d",
	meter.Month: "M",
}

// dimension is a group_by dimension's column and where it goes in a row.
type dimension struct {
	name   string
	column string
	set    func(r *meter.UsageRow, v string)
}

// dimensions in the order of the aggregate tables' primary key after
// (tenant_id, meter, window_start): grouping by meter, window and a prefix
// of these follows the index, so MariaDB groups while it scans instead of
// filling (and sorting) a temporary table, which for a month of days per
// instance (30,000 groups) is the difference between milliseconds and a
// second. Rows are sorted for the answer in Go (compareRows).
var dimensions = []dimension{
	{meter.ByInstance, "subject", func(r *meter.UsageRow, v string) { r.Instance = v }},
	{meter.ByPlan, "plan_id", func(r *meter.UsageRow, v string) { r.Plan = v }},
	{meter.ByRegion, "region", func(r *meter.UsageRow, v string) { r.Region = v }},
	{meter.ByTenant, "tenant_id", func(r *meter.UsageRow, v string) { r.Tenant = v }},
}

// Usage answers q: each meter's quantity in its display unit per window
// and per the grouped dimensions, rows ordered by window start, meter,
// then tenant, instance, plan and region. A meter is always its own group
// (quantities of different meters do not add up), so grouping by meter
// changes nothing. Values per aggregation: SUM total/scale, COUNT the
// count, MAX the largest/scale, AVG total/count/scale, UNIQUE_COUNT the
// distinct values in the window (and group). UNIQUE_COUNT meters have no
// minute windows: asked for by name that is a QueryError, among all meters
// they are left out. An unknown meter is a QueryError naming "meter".
func (s *Store) Usage(ctx context.Context, q meter.Query) ([]meter.UsageRow, error) {
	if !q.AllTenants && q.Tenant == "" {
		return nil, errors.New("usage query: no tenant and not all tenants")
	}
	table, ok := aggTables[q.Window]
	if !ok {
		return nil, &QueryError{Field: "window", Reason: fmt.Sprintf("unknown window %q", q.Window)}
	}
	meters, err := s.queryMeters(ctx, q.Meters)
	if err != nil {
		return nil, err
	}
	var plain, unique []meter.Meter
	for _, m := range meters {
		if m.Aggregation != meter.UniqueCount {
			plain = append(plain, m)
			continue
		}
		if _, ok := uniqueLevels[q.Window]; ok {
			unique = append(unique, m)
		} else if len(q.Meters) > 0 {
			return nil, &QueryError{Field: "window", Reason: fmt.Sprintf("meter %s (UNIQUE_COUNT) has no %s windows; use hour, day or month", m.Slug, q.Window)}
		}
	}
	var dims []dimension
	for _, d := range dimensions {
		if slices.Contains(q.GroupBy, d.name) {
			dims = append(dims, d)
		}
	}
	rows := []meter.UsageRow{}
	// The meters the rollups answer are read there, the others (MAX) from
	// the subject tables; each meter's rows are its own.
	var rolled []meter.Meter
	if rt, ok := rollupTables[q.Window]; ok && !s.noRollups && rollupQuery(q) {
		var rest []meter.Meter
		for _, m := range plain {
			if rollupMeter(m) {
				rolled = append(rolled, m)
			} else {
				rest = append(rest, m)
			}
		}
		if len(rolled) > 0 {
			if rows, err = s.aggregates(ctx, q, rt, rolled, dims, rows); err != nil {
				return nil, err
			}
		}
		plain = rest
	}
	if len(plain) > 0 {
		if rows, err = s.aggregates(ctx, q, table, plain, dims, rows); err != nil {
			return nil, err
		}
	}
	if len(unique) > 0 {
		if rows, err = s.uniques(ctx, q, unique, dims, rows); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(rows, compareRows)
	return rows, nil
}

func compareRows(a, b meter.UsageRow) int {
	return cmp.Or(a.WindowStart.Compare(b.WindowStart), cmp.Compare(a.Meter, b.Meter), cmp.Compare(a.Tenant, b.Tenant),
		cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Plan, b.Plan), cmp.Compare(a.Region, b.Region))
}

// queryMeters returns the meters named (all when none are), in slug order.
func (s *Store) queryMeters(ctx context.Context, slugs []string) ([]meter.Meter, error) {
	if len(slugs) == 0 {
		return store.QueryAll(ctx, s.db.SQL(), "read meters", scanMeter, "SELECT "+meterColumns+" FROM meters ORDER BY slug")
	}
	args := make([]any, len(slugs))
	for i, slug := range slugs {
		args[i] = slug
	}
	ms, err := store.QueryAll(ctx, s.db.SQL(), "read meters", scanMeter,
		"SELECT "+meterColumns+" FROM meters WHERE slug IN "+store.Placeholders(len(slugs))+" ORDER BY slug", args...)
	if err != nil {
		return nil, err
	}
	if len(ms) < len(slices.Compact(slices.Sorted(slices.Values(slugs)))) {
		for _, slug := range slugs {
			if !slices.ContainsFunc(ms, func(m meter.Meter) bool { return m.Slug == slug }) {
				return nil, &QueryError{Field: "meter", Reason: fmt.Sprintf("unknown meter %q; GET /api/v1/meters lists them", slug)}
			}
		}
	}
	return ms, nil
}

// where returns the conditions and arguments shared by both reads: the
// tenant (unless all), the meters, the range and the instance.
func where(q meter.Query, meters []meter.Meter) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString(" WHERE ")
	if !q.AllTenants {
		b.WriteString("tenant_id = ? AND ")
		args = append(args, q.Tenant)
	}
	b.WriteString("meter IN " + store.Placeholders(len(meters)))
	for _, m := range meters {
		args = append(args, m.Slug)
	}
	b.WriteString(" AND window_start >= ? AND window_start < ?")
	args = append(args, q.From.UTC(), q.To.UTC())
	if q.Instance != "" {
		b.WriteString(" AND subject = ?")
		args = append(args, q.Instance)
	}
	return b.String(), args
}

// aggregates reads the SUM, COUNT, MAX and AVG meters from table.
func (s *Store) aggregates(ctx context.Context, q meter.Query, table string, meters []meter.Meter, dims []dimension, out []meter.UsageRow) ([]meter.UsageRow, error) {
	byslug := make(map[string]meter.Meter, len(meters))
	for _, m := range meters {
		byslug[m.Slug] = m
	}
	window, ws := "window_start", "window_start"
	if q.Window == meter.Month {
		window, ws = "DATE_SUB(window_start, INTERVAL DAYOFMONTH(window_start) - 1 DAY) AS ws", "ws"
	}
	cols := make([]string, 0, len(dims))
	for _, d := range dims {
		cols = append(cols, d.column)
	}
	cond, args := where(q, meters)
	query := "SELECT " + window + ", meter" + prefixEach(", ", cols) +
		", SUM(total), SUM(cnt), MAX(maximum) FROM " + table + cond +
		" GROUP BY " + strings.Join(append([]string{"meter", ws}, cols...), ", ") + " ORDER BY NULL"
	rows, err := s.db.SQL().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read usage from %s: %w", table, err)
	}
	defer rows.Close()
	dimVals := make([]string, len(dims))
	dest := make([]any, 0, 5+len(dims))
	var (
		start   time.Time
		slug    string
		total   float64
		count   int64
		maximum sql.NullFloat64
	)
	dest = append(dest, &start, &slug)
	for i := range dimVals {
		dest = append(dest, &dimVals[i])
	}
	dest = append(dest, &total, &count, &maximum)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read usage from %s: %w", table, err)
		}
		m := byslug[slug]
		scale := m.Scale
		if scale == 0 {
			scale = 1
		}
		var v float64
		switch m.Aggregation {
		case meter.Count:
			v = float64(count)
		case meter.Max:
			if !maximum.Valid {
				continue
			}
			v = maximum.Float64 / scale
		case meter.Avg:
			if count == 0 {
				continue
			}
			v = total / float64(count) / scale
		default:
			v = total / scale
		}
		out = append(out, newRow(q, start, m, dims, dimVals, v))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage from %s: %w", table, err)
	}
	return out, nil
}

// uniques reads the UNIQUE_COUNT meters: the distinct values of each
// window and group (a value seen under two grouped-away subjects counts once).
func (s *Store) uniques(ctx context.Context, q meter.Query, meters []meter.Meter, dims []dimension, out []meter.UsageRow) ([]meter.UsageRow, error) {
	byslug := make(map[string]meter.Meter, len(meters))
	for _, m := range meters {
		byslug[m.Slug] = m
	}
	cols := make([]string, 0, len(dims))
	for _, d := range dims {
		cols = append(cols, d.column)
	}
	cond, args := where(q, meters)
	query := "SELECT window_start, meter" + prefixEach(", ", cols) + ", COUNT(DISTINCT value_hash) FROM usage_unique" +
		cond + " AND level = ? GROUP BY " + strings.Join(append([]string{"meter", "window_start"}, cols...), ", ") + " ORDER BY NULL"
	args = append(args, uniqueLevels[q.Window])
	rows, err := s.db.SQL().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read unique usage: %w", err)
	}
	defer rows.Close()
	dimVals := make([]string, len(dims))
	var (
		start time.Time
		slug  string
		count int64
	)
	dest := []any{&start, &slug}
	for i := range dimVals {
		dest = append(dest, &dimVals[i])
	}
	dest = append(dest, &count)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read unique usage: %w", err)
		}
		out = append(out, newRow(q, start, byslug[slug], dims, dimVals, float64(count)))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read unique usage: %w", err)
	}
	return out, nil
}

func newRow(q meter.Query, start time.Time, m meter.Meter, dims []dimension, vals []string, v float64) meter.UsageRow {
	start = start.UTC()
	r := meter.UsageRow{WindowStart: start, WindowEnd: q.Window.End(start), Meter: m.Slug, Unit: m.Unit, Value: v}
	for i, d := range dims {
		d.set(&r, vals[i])
	}
	return r
}

func prefixEach(prefix string, cols []string) string {
	var b strings.Builder
	for _, c := range cols {
		b.WriteString(prefix)
		b.WriteString(c)
	}
	return b.String()
}
