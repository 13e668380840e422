package rating

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// readSpec says which usage to read and which dimensions to keep apart.
// Rows are always kept apart by window, meter and plan (the price depends
// on them); subject, region and tenant only when asked, so that SQL sums
// what the answer would sum anyway.
type readSpec struct {
	tenant string // the tenant, unless all
	all    bool
	meters map[string]meterInfo
	// subject keeps one subject (instance id) when set.
	subject  string
	from, to time.Time
	// hoursOnly reads usage_hour for the whole range (hourly windows);
	// otherwise whole days come from usage_day where the price holds all day.
	hoursOnly                     bool
	bySubject, byRegion, byTenant bool
	byPlan                        bool // for UNIQUE_COUNT reads only
}

// piece is one aggregate row (an hour or a day) under one price version.
type piece struct {
	level                                meter.Level
	start                                time.Time
	tenant, meter, subject, plan, region string
	total                                *big.Rat
	cnt                                  int64
	max                                  *big.Rat // nil when no MAX was stored
	m                                    meterInfo
	// Rated (SUM and COUNT meters): qty in display units, the price version
	// (nil: unpriced) and amount = qty × unit price, exact.
	qty    *big.Rat
	price  *version
	amount *big.Rat
}

// window restricts a read to [from, to), and to one (meter, plan) when
// meter is set.
type window struct {
	from, to    time.Time
	meter, plan string
}

// read returns the usage of spec, rated. Reading a month for a tenant with
// many instances stays cheap: whole days come from usage_day (24 times
// fewer rows) unless a price of the row's (plan, meter) changes inside that
// day; such days, and partial days at the edges, come from usage_hour.
func (s *Service) read(ctx context.Context, spec readSpec, prices *priceIndex) ([]piece, error) {
	from := spec.from.UTC().Truncate(time.Hour)
	to := spec.to.UTC()
	if t := to.Truncate(time.Hour); t.Before(to) {
		to = t.Add(time.Hour)
	}
	if len(spec.meters) == 0 || !from.Before(to) {
		return nil, nil
	}
	const perQuery = 100
	var pieces []piece
	var hourly []window
	dayFrom := meter.Day.Start(from)
	if dayFrom.Before(from) {
		dayFrom = dayFrom.AddDate(0, 0, 1)
	}
	dayTo := meter.Day.Start(to)
	if spec.hoursOnly || !dayFrom.Before(dayTo) {
		hourly = append(hourly, window{from: from, to: to})
	} else {
		if from.Before(dayFrom) {
			hourly = append(hourly, window{from: from, to: dayFrom})
		}
		if dayTo.Before(to) {
			hourly = append(hourly, window{from: dayTo, to: to})
		}
		days, err := s.query(ctx, "usage_day", meter.Day, spec, []window{{from: dayFrom, to: dayTo}}, false)
		if err != nil {
			return nil, err
		}
		// A day whose price changes inside it is read from the hours, summed
		// in SQL per span of constant price: a few rows per subject instead
		// of 24.
		spans := map[[2]time.Time][]window{}
		seen := map[window]bool{}
		for _, d := range days {
			end := d.start.AddDate(0, 0, 1)
			var points []time.Time
			if d.m.priced() {
				points = prices.changePoints(d.plan, d.meter, d.start, end)
			}
			if len(points) == 0 {
				pieces = append(pieces, d)
				continue
			}
			if w := (window{from: d.start, to: end, meter: d.meter, plan: d.plan}); !seen[w] {
				seen[w] = true
				bounds := append(append([]time.Time{d.start}, points...), end)
				for i := 0; i+1 < len(bounds); i++ {
					k := [2]time.Time{bounds[i], bounds[i+1]}
					spans[k] = append(spans[k], window{from: k[0], to: k[1], meter: d.meter, plan: d.plan})
				}
			}
		}
		for _, ws := range spans {
			for len(ws) > 0 {
				n := min(len(ws), perQuery)
				got, err := s.query(ctx, "usage_hour", meter.Hour, spec, ws[:n], true)
				if err != nil {
					return nil, err
				}
				pieces = append(pieces, got...)
				ws = ws[n:]
			}
		}
	}
	for len(hourly) > 0 {
		n := min(len(hourly), perQuery)
		hours, err := s.query(ctx, "usage_hour", meter.Hour, spec, hourly[:n], false)
		if err != nil {
			return nil, err
		}
		pieces = append(pieces, hours...)
		hourly = hourly[n:]
	}
	for i := range pieces {
		rate(&pieces[i], prices)
	}
	return pieces, nil
}

// rate prices p with the version in effect at its start (for a day piece
// the version holds all day, which read made sure of).
func rate(p *piece, prices *priceIndex) {
	p.amount = new(big.Rat)
	if !p.m.priced() {
		return
	}
	base := p.total
	if p.m.agg == meter.Count {
		base = ratInt(p.cnt)
	}
	p.qty = quo(base, p.m.scale)
	if v := prices.at(p.plan, p.meter, p.start); v != nil {
		p.price = v
		p.amount = mul(p.qty, v.unit)
	}
}

// query reads one aggregate table for spec within the windows. collapse
// sums each group over the windows' hours, the piece starting at the first
// hour with usage (the windows' price must hold throughout).
func (s *Service) query(ctx context.Context, table string, level meter.Level, spec readSpec, windows []window, collapse bool) ([]piece, error) {
	var sb strings.Builder
	var args []any
	// Group in primary-key order (tenant_id, meter, window_start, subject,
	// plan_id, region) so that MariaDB aggregates while it scans the range
	// instead of through a temporary table (which spills to disk at a few
	// ten thousand groups); when every key column is kept, rows are
	// returned as they are.
	var group []string
	if spec.byTenant {
		group = append(group, "tenant_id")
	}
	group = append(group, "meter")
	start := "window_start"
	if collapse {
		start = "MIN(window_start)"
	} else {
		group = append(group, "window_start")
	}
	if spec.bySubject {
		group = append(group, "subject")
	}
	group = append(group, "plan_id")
	if spec.byRegion {
		group = append(group, "region")
	}
	whole := !collapse && spec.bySubject && spec.byRegion && (spec.byTenant || !spec.all)
	col := func(on bool, c string) string {
		if on {
			return c
		}
		return "''"
	}
	sb.WriteString("SELECT " + start + ", meter, plan_id, " + col(spec.bySubject, "subject") + ", " + col(spec.byRegion, "region") + ", " +
		col(spec.byTenant, "tenant_id") + ", ")
	if whole {
		sb.WriteString("total, cnt, maximum")
	} else {
		sb.WriteString("SUM(total), SUM(cnt), MAX(maximum)")
	}
	sb.WriteString(" FROM " + table + " WHERE ")
	if !spec.all {
		sb.WriteString("tenant_id = ? AND ")
		args = append(args, spec.tenant)
	}
	sb.WriteString("meter IN (")
	first := true
	for slug := range spec.meters {
		if !first {
			sb.WriteString(", ")
		}
		first = false
		sb.WriteString("?")
		args = append(args, slug)
	}
	sb.WriteString(") ")
	if spec.subject != "" {
		sb.WriteString("AND subject = ? ")
		args = append(args, spec.subject)
	}
	sb.WriteString("AND (")
	for i, w := range windows {
		if i > 0 {
			sb.WriteString(" OR ")
		}
		sb.WriteString("(window_start >= ? AND window_start < ?")
		args = append(args, w.from, w.to)
		if w.meter != "" {
			sb.WriteString(" AND meter = ? AND plan_id = ?")
			args = append(args, w.meter, w.plan)
		}
		sb.WriteString(")")
	}
	sb.WriteString(")")
	if !whole {
		sb.WriteString(" GROUP BY " + strings.Join(group, ", "))
	}
	rows, err := s.db.SQL().QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var out []piece
	for rows.Next() {
		p := piece{level: level, tenant: spec.tenant}
		var total string
		var maxv sql.NullString
		var tenant string
		if err := rows.Scan(&p.start, &p.meter, &p.plan, &p.subject, &p.region, &tenant, &total, &p.cnt, &maxv); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		if spec.byTenant {
			p.tenant = tenant
		}
		p.start = p.start.UTC()
		p.m = spec.meters[p.meter]
		if p.total, err = ratFromDB(total); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		if maxv.Valid {
			if p.max, err = ratFromDB(maxv.String); err != nil {
				return nil, fmt.Errorf("read %s: %w", table, err)
			}
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return out, nil
}

// uniqueRow is the distinct-value count of a UNIQUE_COUNT meter in one
// window for the grouped dimensions.
type uniqueRow struct {
	start                                time.Time
	tenant, meter, subject, plan, region string
	count                                int64
}

// uniqueLevels maps a window to usage_unique's level codes.
var uniqueLevels = map[meter.Level]string{meter.Hour: "h", meter.Day: "d", meter.Month: "M"}

// readUnique counts the distinct values of spec's meters per window of
// level (the counts cannot be added up, so each window has its own rows).
func (s *Service) readUnique(ctx context.Context, level meter.Level, spec readSpec) ([]uniqueRow, error) {
	if len(spec.meters) == 0 {
		return nil, nil
	}
	var sb strings.Builder
	args := []any{uniqueLevels[level]}
	sb.WriteString("SELECT window_start, meter, ")
	group := []string{"window_start", "meter"}
	for _, d := range []struct {
		on  bool
		col string
	}{{spec.bySubject, "subject"}, {spec.byPlan, "plan_id"}, {spec.byRegion, "region"}, {spec.byTenant, "tenant_id"}} {
		if d.on {
			sb.WriteString(d.col + ", ")
			group = append(group, d.col)
		} else {
			sb.WriteString("'', ")
		}
	}
	sb.WriteString("COUNT(DISTINCT value_hash) FROM usage_unique WHERE level = ? AND ")
	if !spec.all {
		sb.WriteString("tenant_id = ? AND ")
		args = append(args, spec.tenant)
	}
	sb.WriteString("meter IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(spec.meters)), ", ") + ") ")
	for slug := range spec.meters {
		args = append(args, slug)
	}
	if spec.subject != "" {
		sb.WriteString("AND subject = ? ")
		args = append(args, spec.subject)
	}
	sb.WriteString("AND window_start >= ? AND window_start < ? GROUP BY " + strings.Join(group, ", "))
	args = append(args, level.Start(spec.from), spec.to)
	rows, err := s.db.SQL().QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("read usage_unique: %w", err)
	}
	defer rows.Close()
	var out []uniqueRow
	for rows.Next() {
		u := uniqueRow{tenant: spec.tenant}
		var tenant string
		if err := rows.Scan(&u.start, &u.meter, &u.subject, &u.plan, &u.region, &tenant, &u.count); err != nil {
			return nil, fmt.Errorf("read usage_unique: %w", err)
		}
		if spec.byTenant {
			u.tenant = tenant
		}
		u.start = u.start.UTC()
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage_unique: %w", err)
	}
	return out, nil
}

// quantity folds pieces of one meter into its quantity as the meter's
// aggregation says: SUM and COUNT add up, MAX keeps the largest, AVG keeps
// total and count (UNIQUE_COUNT counts are added to qty by the caller).
type quantity struct {
	qty      *big.Rat // SUM, COUNT: sum; MAX: max; UNIQUE: count
	avgTotal *big.Rat
	avgCnt   int64
}

func newQuantity() quantity { return quantity{qty: new(big.Rat), avgTotal: new(big.Rat)} }

// add folds p in.
func (q *quantity) add(p piece) {
	switch p.m.agg {
	case meter.Sum, meter.Count:
		q.qty.Add(q.qty, p.qty)
	case meter.Max:
		if p.max != nil {
			if v := quo(p.max, p.m.scale); v.Cmp(q.qty) > 0 {
				q.qty = v
			}
		}
	case meter.Avg:
		q.avgTotal.Add(q.avgTotal, p.total)
		q.avgCnt += p.cnt
	}
}

// value is the quantity in m's display unit; false for an AVG meter
// without observations.
func (q *quantity) value(m meterInfo) (*big.Rat, bool) {
	if m.agg != meter.Avg {
		return q.qty, true
	}
	if q.avgCnt == 0 {
		return q.qty, false
	}
	return quo(quo(q.avgTotal, ratInt(q.avgCnt)), m.scale), true
}
