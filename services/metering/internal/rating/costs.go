package rating

import (
	"cmp"
	"context"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"time"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// CostReport is the answer to a cost query: the rows and their total in
// the billing currency.
type CostReport struct {
	Rows     []meter.CostRow
	Total    string
	Currency string
}

// costKey is one output row's identity.
type costKey struct {
	start                                time.Time
	tenant, meter, subject, plan, region string
}

// costAcc accumulates one output row.
type costAcc struct {
	quantity
	amount *big.Rat
}

// Costs rates q's usage and sums it per q.Window and the q.GroupBy
// dimensions: each hour at the price in effect at its start (a plan's own
// price first, then the "*" price; unpriced meters cost 0). Meter, Unit and
// Quantity are set only when grouped by meter; quantities of MAX, AVG and
// UNIQUE_COUNT meters are shown then (amount 0), as they are never priced.
// Amounts have 6 fraction digits, rounded half away from zero per row.
func (s *Service) Costs(ctx context.Context, q meter.Query) ([]meter.CostRow, error) {
	rep, err := s.CostReport(ctx, q)
	if err != nil {
		return nil, err
	}
	return rep.Rows, nil
}

// CostReport is Costs with the total and currency of the answer.
func (s *Service) CostReport(ctx context.Context, q meter.Query) (CostReport, error) {
	var fe fieldErrors
	switch q.Window {
	case meter.Hour, meter.Day, meter.Month:
	default:
		fe.add("window", "costs are rated per hour: use hour, day or month")
	}
	if !q.AllTenants && q.Tenant == "" {
		fe.add("tenant", "is required")
	}
	meters, err := s.meters(ctx)
	if err != nil {
		return CostReport{}, err
	}
	for _, m := range q.Meters {
		if _, ok := meters[m]; !ok {
			fe.add("meter", fmt.Sprintf("no meter %q; see GET /api/v1/meters", m))
		}
	}
	if err := fe.err("invalid cost query"); err != nil {
		return CostReport{}, err
	}
	by := func(d string) bool { return slices.Contains(q.GroupBy, d) }
	byMeter := by(meter.ByMeter)
	spec := readSpec{
		tenant: q.Tenant, all: q.AllTenants, subject: q.Instance,
		from: q.From, to: q.To, hoursOnly: q.Window == meter.Hour,
		bySubject: by(meter.ByInstance), byRegion: by(meter.ByRegion), byTenant: q.AllTenants && by(meter.ByTenant),
		byPlan: by(meter.ByPlan),
		meters: map[string]meterInfo{},
	}
	unique := spec
	unique.meters = map[string]meterInfo{}
	for slug, m := range meters {
		if len(q.Meters) > 0 && !slices.Contains(q.Meters, slug) {
			continue
		}
		switch {
		case m.priced():
			spec.meters[slug] = m
		case !byMeter:
			// Its amounts are 0 and its quantities show only per meter.
		case m.agg == meter.UniqueCount:
			unique.meters[slug] = m
		default:
			spec.meters[slug] = m
		}
	}
	prices, err := s.loadPrices(ctx)
	if err != nil {
		return CostReport{}, err
	}
	pieces, err := s.read(ctx, spec, prices)
	if err != nil {
		return CostReport{}, fmt.Errorf("costs: %w", err)
	}
	accs := map[costKey]*costAcc{}
	get := func(k costKey) *costAcc {
		a := accs[k]
		if a == nil {
			a = &costAcc{quantity: newQuantity(), amount: new(big.Rat)}
			accs[k] = a
		}
		return a
	}
	key := func(start time.Time, tenant, meterSlug, subject, plan, region string) costKey {
		k := costKey{start: q.Window.Start(start)}
		if spec.byTenant {
			k.tenant = tenant
		} else if !q.AllTenants {
			k.tenant = q.Tenant
		}
		if byMeter {
			k.meter = meterSlug
		}
		if spec.bySubject {
			k.subject = subject
		}
		if spec.byPlan {
			k.plan = plan
		}
		if spec.byRegion {
			k.region = region
		}
		return k
	}
	for _, p := range pieces {
		a := get(key(p.start, p.tenant, p.meter, p.subject, p.plan, p.region))
		a.add(p)
		if p.m.agg == meter.Sum || p.m.agg == meter.Count {
			a.amount.Add(a.amount, p.amount)
		}
	}
	if len(unique.meters) > 0 {
		rows, err := s.readUnique(ctx, q.Window, unique)
		if err != nil {
			return CostReport{}, fmt.Errorf("costs: %w", err)
		}
		for _, u := range rows {
			a := get(key(u.start, u.tenant, u.meter, u.subject, u.plan, u.region))
			a.qty.Add(a.qty, ratInt(u.count))
		}
	}
	currency := s.currency(prices)
	total := new(big.Rat)
	out := make([]meter.CostRow, 0, len(accs))
	for k, a := range accs {
		row := meter.CostRow{
			WindowStart: k.start, WindowEnd: q.Window.End(k.start),
			Tenant: k.tenant, Meter: k.meter, Instance: k.subject, Plan: k.plan, Region: k.region,
			Amount: fixed(a.amount, costDigits), Currency: currency,
		}
		if byMeter {
			m := meters[k.meter]
			row.Unit = m.unit
			qty, _ := a.value(m)
			row.Quantity, _ = qty.Float64()
		}
		r, _ := new(big.Rat).SetString(row.Amount)
		total.Add(total, r)
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := a.WindowStart.Compare(b.WindowStart); c != 0 {
			return c < 0
		}
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Meter, b.Meter),
			cmp.Compare(a.Plan, b.Plan), cmp.Compare(a.Region, b.Region)) < 0
	})
	return CostReport{Rows: out, Total: fixed(total, costDigits), Currency: currency}, nil
}
