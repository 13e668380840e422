package rating

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"time"
)

// WildcardPlan prices a meter for every plan that has no price of its own.
const WildcardPlan = "*"

// Price is one version of a meter's unit price for a plan (or every plan,
// "*"): in effect from EffectiveFrom until the next version.
type Price struct {
	PlanID        string     `json:"plan_id"`
	Meter         string     `json:"meter"`
	EffectiveFrom time.Time  `json:"effective_from"`
	EffectiveTo   *time.Time `json:"effective_to,omitempty"`
	Currency      string     `json:"currency"`
	// UnitPrice is per display unit of the meter, a decimal string.
	UnitPrice string `json:"unit_price"`
	// Source is "catalog" (from the catalog's plans) or "admin".
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
}

// PriceInput is what an admin sets: EffectiveFrom is RFC 3339 text so that
// a malformed time is a field error like the others.
type PriceInput struct {
	PlanID        string
	Meter         string
	EffectiveFrom string
	Currency      string
	UnitPrice     string
}

// version is one price version as rating applies it.
type version struct {
	plan     string // the price's plan: a plan id or "*"
	from     time.Time
	currency string
	unit     *big.Rat
}

type planMeter struct{ plan, meter string }

// priceIndex is every price version by (plan, meter), oldest first. The
// prices table is small (plans × meters × changes), so it is read whole.
type priceIndex struct {
	byKey      map[planMeter][]*version
	currencies map[string]bool
}

func (s *Service) loadPrices(ctx context.Context) (*priceIndex, error) {
	rows, err := s.db.SQL().QueryContext(ctx,
		"SELECT plan_id, meter, effective_from, currency, unit_price FROM prices ORDER BY plan_id, meter, effective_from")
	if err != nil {
		return nil, fmt.Errorf("read prices: %w", err)
	}
	defer rows.Close()
	idx := &priceIndex{byKey: map[planMeter][]*version{}, currencies: map[string]bool{}}
	for rows.Next() {
		var v version
		var m, unit string
		if err := rows.Scan(&v.plan, &m, &v.from, &v.currency, &unit); err != nil {
			return nil, fmt.Errorf("read prices: %w", err)
		}
		if v.unit, err = ratFromDB(unit); err != nil {
			return nil, fmt.Errorf("read price %s/%s: %w", v.plan, m, err)
		}
		v.from = v.from.UTC()
		k := planMeter{v.plan, m}
		idx.byKey[k] = append(idx.byKey[k], &v)
		idx.currencies[v.currency] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read prices: %w", err)
	}
	return idx, nil
}

// in returns the version of vs in effect at t, or nil.
func in(vs []*version, t time.Time) *version {
	i := sort.Search(len(vs), func(i int) bool { return vs[i].from.After(t) })
	if i == 0 {
		return nil
	}
	return vs[i-1]
}

// at returns the price of meter for plan in effect at t: the plan's own
// version if one is in effect, else the "*" version, else nil (unpriced).
func (p *priceIndex) at(plan, meterSlug string, t time.Time) *version {
	if plan != WildcardPlan {
		if v := in(p.byKey[planMeter{plan, meterSlug}], t); v != nil {
			return v
		}
	}
	return in(p.byKey[planMeter{WildcardPlan, meterSlug}], t)
}

// changePoints returns the times in (start, end) at which the price of
// meter for plan in effect changes, in order: a daily aggregate spanning
// one cannot be priced as one piece.
func (p *priceIndex) changePoints(plan, meterSlug string, start, end time.Time) []time.Time {
	var cands []time.Time
	for _, k := range []planMeter{{plan, meterSlug}, {WildcardPlan, meterSlug}} {
		for _, v := range p.byKey[k] {
			if v.from.After(start) && v.from.Before(end) {
				cands = append(cands, v.from)
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, time.Time.Compare)
	var out []time.Time
	cur := p.at(plan, meterSlug, start)
	for _, t := range cands {
		if v := p.at(plan, meterSlug, t); v != cur {
			out = append(out, t)
			cur = v
		}
	}
	return out
}

// currency is the billing currency: the one all prices are in, or the
// default while there are none. Amounts of different meters add up, so
// SetPrice keeps prices in one currency; catalog prices in another are
// logged rather than converted.
func (s *Service) currency(p *priceIndex) string {
	if len(p.currencies) == 1 {
		for c := range p.currencies {
			return c
		}
	}
	if len(p.currencies) > 1 {
		s.log.Warn("prices are in several currencies; amounts are added as if they were one", "default", s.cfg.DefaultCurrency)
	}
	return s.cfg.DefaultCurrency
}

// ListPrices returns the price versions, optionally of one plan and/or one
// meter, each with the start of the next version of its (plan, meter).
func (s *Service) ListPrices(ctx context.Context, plan, meterSlug string) ([]Price, error) {
	q := "SELECT plan_id, meter, effective_from, currency, unit_price, source, created_at FROM prices WHERE 1=1"
	var args []any
	if plan != "" {
		q += " AND plan_id = ?"
		args = append(args, plan)
	}
	if meterSlug != "" {
		q += " AND meter = ?"
		args = append(args, meterSlug)
	}
	q += " ORDER BY plan_id, meter, effective_from"
	rows, err := s.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list prices: %w", err)
	}
	defer rows.Close()
	out := []Price{}
	for rows.Next() {
		var p Price
		var unit string
		if err := rows.Scan(&p.PlanID, &p.Meter, &p.EffectiveFrom, &p.Currency, &unit, &p.Source, &p.CreatedAt); err != nil {
			return nil, fmt.Errorf("list prices: %w", err)
		}
		r, err := ratFromDB(unit)
		if err != nil {
			return nil, fmt.Errorf("list prices: %w", err)
		}
		p.UnitPrice = trimmed(r)
		p.EffectiveFrom, p.CreatedAt = p.EffectiveFrom.UTC(), p.CreatedAt.UTC()
		if n := len(out); n > 0 && out[n-1].PlanID == p.PlanID && out[n-1].Meter == p.Meter {
			to := p.EffectiveFrom
			out[n-1].EffectiveTo = &to
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list prices: %w", err)
	}
	return out, nil
}

// openFrom returns the earliest time a price may take effect: the start of
// the first month that is not closed (a month closes at its end + grace,
// and no month with a closed invoice is open).
func (s *Service) openFrom(ctx context.Context) (time.Time, error) {
	now := s.Now()
	floor := monthStart(now.Add(-s.cfg.Grace))
	var last string
	err := s.db.SQL().QueryRowContext(ctx, "SELECT COALESCE(MAX(month), '') FROM invoices").Scan(&last)
	if err != nil {
		return time.Time{}, fmt.Errorf("read last closed month: %w", err)
	}
	if last != "" {
		if _, end, err := monthBounds(last); err == nil && end.After(floor) {
			floor = end
		}
	}
	return floor, nil
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// SetPrice adds (or, for the same plan, meter and effective hour,
// replaces) a price version set by a platform-admin. The meter must exist;
// plan_id is a plan id or "*"; the currency that of the other prices; the
// unit price a decimal ≥ 0 with at most 9 fraction digits; effective_from
// an hour boundary not inside a closed month, so closed invoices never
// disagree with the prices.
func (s *Service) SetPrice(ctx context.Context, in PriceInput) (Price, error) {
	var fe fieldErrors
	meters, err := s.meters(ctx)
	if err != nil {
		return Price{}, err
	}
	switch m, ok := meters[in.Meter]; {
	case in.Meter == "":
		fe.add("meter", "is required")
	case !ok:
		fe.add("meter", fmt.Sprintf("no meter %q; see GET /api/v1/meters", in.Meter))
	case !m.priced():
		fe.add("meter", fmt.Sprintf("meter %q aggregates with %s, which is not priced (only SUM and COUNT meters are)", in.Meter, m.agg))
	}
	switch {
	case in.PlanID == "":
		fe.add("plan_id", `is required: a plan id, or "*" for every plan without its own price`)
	case len(in.PlanID) > 64:
		fe.add("plan_id", "must be at most 64 characters")
	}
	prices, err := s.loadPrices(ctx)
	if err != nil {
		return Price{}, err
	}
	switch {
	case !currencyCode.MatchString(in.Currency):
		fe.add("currency", "must be a 3-letter ISO 4217 code in capitals (USD)")
	case len(prices.currencies) > 0 && !prices.currencies[in.Currency]:
		fe.add("currency", fmt.Sprintf("must be %s, the currency of the other prices", s.currency(prices)))
	}
	unit, ok := parseDecimal(in.UnitPrice)
	switch {
	case !ok:
		fe.add("unit_price", "must be a decimal number ≥ 0 (0.125)")
	case round(unit, quantityDigits).Cmp(unit) != 0:
		fe.add("unit_price", "must have at most 9 fraction digits")
	case unit.Cmp(ratInt(100_000_000_000)) >= 0:
		fe.add("unit_price", "must be below 100000000000")
	}
	from, err := time.Parse(time.RFC3339Nano, in.EffectiveFrom)
	if err != nil {
		fe.add("effective_from", "must be an RFC 3339 time (2026-12-01T00:00:00Z)")
	} else {
		from = from.UTC()
		floor, err := s.openFrom(ctx)
		if err != nil {
			return Price{}, err
		}
		switch {
		case !from.Equal(from.Truncate(time.Hour)):
			fe.add("effective_from", "must be on an hour boundary (minutes and seconds 0)")
		case from.Before(floor):
			fe.add("effective_from", fmt.Sprintf("must not be inside a closed month: %s or later", floor.Format(time.RFC3339)))
		}
	}
	if err := fe.err("invalid price"); err != nil {
		return Price{}, err
	}
	now := s.Now()
	_, err = s.db.SQL().ExecContext(ctx, `INSERT INTO prices (plan_id, meter, effective_from, currency, unit_price, source, created_at)
		VALUES (?, ?, ?, ?, ?, 'admin', ?)
		ON DUPLICATE KEY UPDATE currency = VALUES(currency), unit_price = VALUES(unit_price), source = 'admin', created_at = VALUES(created_at)`,
		in.PlanID, in.Meter, from, in.Currency, unit.FloatString(quantityDigits), now)
	if err != nil {
		return Price{}, fmt.Errorf("set price %s/%s from %s: %w", in.PlanID, in.Meter, from.Format(time.RFC3339), err)
	}
	list, err := s.ListPrices(ctx, in.PlanID, in.Meter)
	if err != nil {
		return Price{}, err
	}
	for _, p := range list {
		if p.EffectiveFrom.Equal(from) {
			return p, nil
		}
	}
	return Price{}, fmt.Errorf("set price %s/%s: not found after writing it", in.PlanID, in.Meter)
}
