package rating

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// Invoice states.
const (
	StateDraft  = "draft"
	StateClosed = "closed"
)

// Invoice is a tenant's bill for one month: a draft until the month's end
// plus grace, then closed (stored, immutable).
type Invoice struct {
	TenantID    string        `json:"tenant_id"`
	Month       string        `json:"month"`
	State       string        `json:"state"`
	Currency    string        `json:"currency"`
	PeriodStart time.Time     `json:"period_start"`
	PeriodEnd   time.Time     `json:"period_end"`
	ClosesAt    time.Time     `json:"closes_at"`
	Lines       []InvoiceLine `json:"lines"`
	// Total is the sum of the lines' (rounded) amounts.
	Total    string     `json:"total"`
	ClosedAt *time.Time `json:"closed_at,omitempty"`
}

// InvoiceLine is an instance's (or an ingested subject's) usage of one
// meter at one unit price version. An unpriced meter's line has unit price
// 0 from the period start.
type InvoiceLine struct {
	InstanceID   string `json:"instance_id"`
	InstanceName string `json:"instance_name"`
	PlanID       string `json:"plan_id"`
	Meter        string `json:"meter"`
	Unit         string `json:"unit"`
	// Quantity in Unit with 9 fraction digits.
	Quantity  string    `json:"quantity"`
	UnitPrice string    `json:"unit_price"`
	PriceFrom time.Time `json:"price_from"`
	// Amount is quantity × unit price rounded half away from zero to cents
	// (from the exact quantity, so that rounding happens once per line).
	Amount string `json:"amount"`
}

// lineKey is one invoice line's identity.
type lineKey struct {
	subject, plan, meter string
	priceFrom            time.Time // zero: unpriced
	pricePlan            string
}

type lineAcc struct {
	quantity
	unit *big.Rat
	m    meterInfo
}

// Invoice returns tenant's invoice for month ("2026-12"): the stored one
// once closed, else a draft computed now. A month past its end + grace that
// the closing job has not reached yet is closed here first, so that no one
// ever sees a draft of a month that can no longer change.
func (s *Service) Invoice(ctx context.Context, tenant, month string) (Invoice, error) {
	start, end, err := monthBounds(month)
	if err != nil {
		return Invoice{}, err
	}
	if tenant == "" {
		return Invoice{}, &ValidationError{Detail: "invalid invoice query", Fields: []FieldError{{Field: "tenant", Reason: "is required"}}}
	}
	inv, err := s.closedInvoice(ctx, tenant, month)
	if err == nil {
		return inv, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Invoice{}, err
	}
	inv, err = s.draft(ctx, tenant, start, end)
	if err != nil {
		return Invoice{}, err
	}
	if s.Now().Before(inv.ClosesAt) {
		return inv, nil
	}
	if len(inv.Lines) == 0 {
		// Nothing was used and nothing can be any more: the month is closed
		// with nothing to bill, and no row is stored for it (any month a
		// caller names would otherwise leave one).
		inv.State = StateClosed
		return inv, nil
	}
	if _, err := s.closeInvoice(ctx, tenant, month); err != nil {
		return Invoice{}, err
	}
	return s.closedInvoice(ctx, tenant, month)
}

// draft computes tenant's invoice for [start, end) from the usage now.
func (s *Service) draft(ctx context.Context, tenant string, start, end time.Time) (Invoice, error) {
	month := monthOf(start)
	meters, err := s.meters(ctx)
	if err != nil {
		return Invoice{}, err
	}
	prices, err := s.loadPrices(ctx)
	if err != nil {
		return Invoice{}, err
	}
	spec := readSpec{tenant: tenant, from: start, to: end, bySubject: true, byPlan: true, meters: map[string]meterInfo{}}
	unique := spec
	unique.meters = map[string]meterInfo{}
	for slug, m := range meters {
		if m.agg == meter.UniqueCount {
			unique.meters[slug] = m
		} else {
			spec.meters[slug] = m
		}
	}
	pieces, err := s.read(ctx, spec, prices)
	if err != nil {
		return Invoice{}, fmt.Errorf("invoice %s %s: %w", tenant, month, err)
	}
	accs := map[lineKey]*lineAcc{}
	get := func(k lineKey, m meterInfo) *lineAcc {
		a := accs[k]
		if a == nil {
			a = &lineAcc{quantity: newQuantity(), unit: new(big.Rat), m: m}
			accs[k] = a
		}
		return a
	}
	for _, p := range pieces {
		k := lineKey{subject: p.subject, plan: p.plan, meter: p.meter}
		if p.price != nil {
			k.priceFrom, k.pricePlan = p.price.from, p.price.plan
		}
		a := get(k, p.m)
		a.add(p)
		if p.price != nil && (p.m.agg == meter.Sum || p.m.agg == meter.Count) {
			a.unit = p.price.unit
		}
	}
	uniq, err := s.readUnique(ctx, meter.Month, unique)
	if err != nil {
		return Invoice{}, fmt.Errorf("invoice %s %s: %w", tenant, month, err)
	}
	for _, u := range uniq {
		a := get(lineKey{subject: u.subject, plan: u.plan, meter: u.meter}, meters[u.meter])
		a.qty.Add(a.qty, ratInt(u.count))
	}
	names, err := s.instanceNames(ctx, tenant)
	if err != nil {
		return Invoice{}, err
	}
	inv := Invoice{
		TenantID: tenant, Month: month, State: StateDraft, Currency: s.currency(prices),
		PeriodStart: start, PeriodEnd: end, ClosesAt: end.Add(s.cfg.Grace), Lines: []InvoiceLine{},
	}
	total := new(big.Rat)
	for k, a := range accs {
		qty, ok := a.value(a.m)
		if !ok {
			continue
		}
		amount := round(mul(qty, a.unit), centDigits)
		if qty.Sign() == 0 && amount.Sign() == 0 {
			continue // usage taken back to nothing bills nothing
		}
		from := k.priceFrom
		if from.IsZero() {
			from = start
		}
		inv.Lines = append(inv.Lines, InvoiceLine{
			InstanceID: k.subject, InstanceName: names[k.subject], PlanID: k.plan, Meter: k.meter, Unit: a.m.unit,
			Quantity: fixed(qty, quantityDigits), UnitPrice: trimmed(a.unit), PriceFrom: from,
			Amount: fixed(amount, centDigits),
		})
		total.Add(total, amount)
	}
	sortLines(inv.Lines)
	inv.Total = fixed(total, centDigits)
	return inv, nil
}

func sortLines(lines []InvoiceLine) {
	slices.SortFunc(lines, func(a, b InvoiceLine) int {
		return cmp.Or(cmp.Compare(a.InstanceID, b.InstanceID), cmp.Compare(a.Meter, b.Meter),
			a.PriceFrom.Compare(b.PriceFrom), cmp.Compare(a.PlanID, b.PlanID))
	})
}

// instanceNames maps the tenant's instance ids to their names.
func (s *Service) instanceNames(ctx context.Context, tenant string) (map[string]string, error) {
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT instance_id, name FROM instances WHERE tenant_id = ?", tenant)
	if err != nil {
		return nil, fmt.Errorf("read instance names of %s: %w", tenant, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("read instance names of %s: %w", tenant, err)
		}
		out[id] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read instance names of %s: %w", tenant, err)
	}
	return out, nil
}

// closedInvoice reads a closed invoice; ErrNotFound while it is open.
func (s *Service) closedInvoice(ctx context.Context, tenant, month string) (Invoice, error) {
	start, end, err := monthBounds(month)
	if err != nil {
		return Invoice{}, err
	}
	inv := Invoice{TenantID: tenant, Month: month, State: StateClosed, PeriodStart: start, PeriodEnd: end,
		ClosesAt: end.Add(s.cfg.Grace), Lines: []InvoiceLine{}}
	var total string
	var closedAt time.Time
	err = s.db.SQL().QueryRowContext(ctx, "SELECT currency, total, closed_at FROM invoices WHERE tenant_id = ? AND month = ?",
		tenant, month).Scan(&inv.Currency, &total, &closedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Invoice{}, fmt.Errorf("invoice %s %s: %w", tenant, month, ErrNotFound)
	}
	if err != nil {
		return Invoice{}, fmt.Errorf("read invoice %s %s: %w", tenant, month, err)
	}
	closedAt = closedAt.UTC()
	inv.ClosedAt = &closedAt
	inv.Total = total
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT instance_id, instance_name, plan_id, meter, unit, quantity, unit_price, price_from, amount
		FROM invoice_lines WHERE tenant_id = ? AND month = ? ORDER BY line_no`, tenant, month)
	if err != nil {
		return Invoice{}, fmt.Errorf("read invoice lines %s %s: %w", tenant, month, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l InvoiceLine
		var unit string
		if err := rows.Scan(&l.InstanceID, &l.InstanceName, &l.PlanID, &l.Meter, &l.Unit, &l.Quantity, &unit, &l.PriceFrom, &l.Amount); err != nil {
			return Invoice{}, fmt.Errorf("read invoice lines %s %s: %w", tenant, month, err)
		}
		r, err := ratFromDB(unit)
		if err != nil {
			return Invoice{}, fmt.Errorf("read invoice lines %s %s: %w", tenant, month, err)
		}
		l.UnitPrice = trimmed(r)
		l.PriceFrom = l.PriceFrom.UTC()
		inv.Lines = append(inv.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return Invoice{}, fmt.Errorf("read invoice lines %s %s: %w", tenant, month, err)
	}
	return inv, nil
}

// closeInvoice stores tenant's invoice for month as it stands now and
// reports whether this call closed it. Closing twice (two replicas, or the
// job and a GET) is harmless: the first INSERT wins, the other sees its row
// (InnoDB makes the second INSERT IGNORE wait for the first to commit) and
// writes nothing.
func (s *Service) closeInvoice(ctx context.Context, tenant, month string) (bool, error) {
	start, end, err := monthBounds(month)
	if err != nil {
		return false, err
	}
	inv, err := s.draft(ctx, tenant, start, end)
	if err != nil {
		return false, err
	}
	closed := false
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, "INSERT IGNORE INTO invoices (tenant_id, month, currency, total, closed_at) VALUES (?, ?, ?, ?, ?)",
			tenant, month, inv.Currency, inv.Total, s.Now())
		if err != nil {
			return fmt.Errorf("close invoice %s %s: %w", tenant, month, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // closed already
		}
		closed = true
		const perInsert = 200
		for i := 0; i < len(inv.Lines); i += perInsert {
			chunk := inv.Lines[i:min(i+perInsert, len(inv.Lines))]
			var sb strings.Builder
			sb.WriteString(`INSERT INTO invoice_lines (tenant_id, month, line_no, instance_id, instance_name, plan_id, meter, unit,
				quantity, unit_price, price_from, amount) VALUES `)
			args := make([]any, 0, 12*len(chunk))
			for j, l := range chunk {
				if j > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
				unit, _ := parseDecimal(l.UnitPrice)
				args = append(args, tenant, month, i+j+1, l.InstanceID, l.InstanceName, l.PlanID, l.Meter, l.Unit,
					l.Quantity, unit.FloatString(quantityDigits), l.PriceFrom, l.Amount)
			}
			if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
				return fmt.Errorf("close invoice %s %s: write lines: %w", tenant, month, err)
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if closed {
		s.metrics.invoicesClosed.Inc()
		s.log.Info("invoice closed", "tenant", tenant, "month", month, "total", inv.Total, "lines", len(inv.Lines))
	}
	return closed, nil
}
