package rating

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
)

// Budget kinds: what a threshold was reached by.
const (
	KindActual   = "actual"
	KindForecast = "forecast"
)

// DefaultThresholds are the percentages announced when a budget names none.
var DefaultThresholds = []int{80, 100}

// BudgetInput is a tenant's monthly budget as set.
type BudgetInput struct {
	// Amount is a decimal > 0 with at most 2 fraction digits.
	Amount string
	// Currency defaults to the billing currency and must be it.
	Currency string
	// Thresholds are percentages of Amount (1..1000, at most 10); nil means
	// DefaultThresholds.
	Thresholds []int
}

// Budget is a tenant's monthly budget and where the current month stands.
type Budget struct {
	TenantID   string `json:"tenant_id"`
	Amount     string `json:"amount"`
	Currency   string `json:"currency"`
	Thresholds []int  `json:"thresholds"`
	// Month is the current month; Actual its cost so far, Forecast that
	// cost extrapolated linearly to the month's end.
	Month     string     `json:"month"`
	Actual    string     `json:"actual"`
	Forecast  string     `json:"forecast"`
	Crossings []Crossing `json:"crossings"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Crossing is a threshold announced this month.
type Crossing struct {
	Kind      string    `json:"kind"`
	Threshold int       `json:"threshold_percent"`
	Amount    string    `json:"amount"`
	CrossedAt time.Time `json:"crossed_at"`
}

// budgetRow is a budgets row.
type budgetRow struct {
	amount     *big.Rat
	currency   string
	thresholds []int
	updatedAt  time.Time
}

func formatThresholds(ts []int) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.Itoa(t)
	}
	return strings.Join(parts, ",")
}

func parseThresholds(s string) []int {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// SetBudget sets tenant's monthly budget. Changing the amount, currency or
// thresholds forgets this month's announcements, so the new budget's
// thresholds are announced when reached (at once if they already are).
func (s *Service) SetBudget(ctx context.Context, tenant string, in BudgetInput) (Budget, error) {
	prices, err := s.loadPrices(ctx)
	if err != nil {
		return Budget{}, err
	}
	billing := s.currency(prices)
	var fe fieldErrors
	amount, ok := parseDecimal(in.Amount)
	switch {
	case !ok:
		fe.add("amount", "must be a decimal number > 0 (250.00)")
	case amount.Sign() <= 0:
		fe.add("amount", "must be greater than 0")
	case round(amount, centDigits).Cmp(amount) != 0:
		fe.add("amount", "must have at most 2 fraction digits")
	case amount.Cmp(ratInt(1_000_000_000_000_000)) >= 0:
		fe.add("amount", "must be below 1000000000000000")
	}
	if in.Currency == "" {
		in.Currency = billing
	}
	switch {
	case !currencyCode.MatchString(in.Currency):
		fe.add("currency", "must be a 3-letter ISO 4217 code in capitals (USD)")
	case in.Currency != billing:
		fe.add("currency", fmt.Sprintf("must be %s, the currency of the prices", billing))
	}
	ts := in.Thresholds
	if ts == nil {
		ts = DefaultThresholds
	}
	ts = slices.Clone(ts)
	slices.Sort(ts)
	switch {
	case len(ts) == 0:
		fe.add("thresholds", "must name at least one percentage (default [80, 100])")
	case len(ts) > 10:
		fe.add("thresholds", "must name at most 10 percentages")
	case ts[0] < 1 || ts[len(ts)-1] > 1000:
		fe.add("thresholds", "percentages must be between 1 and 1000")
	case len(slices.Compact(slices.Clone(ts))) != len(ts):
		fe.add("thresholds", "percentages must not repeat")
	}
	if err := fe.err("invalid budget"); err != nil {
		return Budget{}, err
	}
	now := s.Now()
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		old, err := lockBudget(ctx, tx, tenant)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		changed := err != nil || old.amount.Cmp(amount) != 0 || old.currency != in.Currency || !slices.Equal(old.thresholds, ts)
		if !changed {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO budgets (tenant_id, amount, currency, thresholds, updated_at) VALUES (?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE amount = VALUES(amount), currency = VALUES(currency), thresholds = VALUES(thresholds), updated_at = VALUES(updated_at)`,
			tenant, amount.FloatString(centDigits), in.Currency, formatThresholds(ts), now); err != nil {
			return fmt.Errorf("set budget of %s: %w", tenant, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM budget_crossings WHERE tenant_id = ? AND month = ?", tenant, monthOf(now)); err != nil {
			return fmt.Errorf("set budget of %s: forget crossings: %w", tenant, err)
		}
		return nil
	})
	if err != nil {
		return Budget{}, err
	}
	return s.GetBudget(ctx, tenant)
}

// lockBudget reads tenant's budget FOR UPDATE in tx; ErrNotFound if none.
func lockBudget(ctx context.Context, tx *store.Tx, tenant string) (budgetRow, error) {
	var b budgetRow
	var amount, ts string
	err := tx.QueryRowContext(ctx, "SELECT amount, currency, thresholds, updated_at FROM budgets WHERE tenant_id = ? FOR UPDATE", tenant).
		Scan(&amount, &b.currency, &ts, &b.updatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("budget of %s: %w", tenant, ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("read budget of %s: %w", tenant, err)
	}
	if b.amount, err = ratFromDB(amount); err != nil {
		return b, fmt.Errorf("read budget of %s: %w", tenant, err)
	}
	b.thresholds = parseThresholds(ts)
	return b, nil
}

// GetBudget returns tenant's budget with the current month's actual cost,
// forecast and announced thresholds; ErrNotFound when it has none.
func (s *Service) GetBudget(ctx context.Context, tenant string) (Budget, error) {
	var amount, ts string
	b := Budget{TenantID: tenant, Crossings: []Crossing{}}
	err := s.db.SQL().QueryRowContext(ctx, "SELECT amount, currency, thresholds, updated_at FROM budgets WHERE tenant_id = ?", tenant).
		Scan(&amount, &b.Currency, &ts, &b.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Budget{}, fmt.Errorf("budget of %s: %w", tenant, ErrNotFound)
	}
	if err != nil {
		return Budget{}, fmt.Errorf("read budget of %s: %w", tenant, err)
	}
	b.Amount, b.Thresholds, b.UpdatedAt = amount, parseThresholds(ts), b.UpdatedAt.UTC()
	now := s.Now()
	b.Month = monthOf(now)
	actual, forecast, err := s.monthToDate(ctx, tenant, now)
	if err != nil {
		return Budget{}, err
	}
	b.Actual, b.Forecast = fixed(actual, centDigits), fixed(forecast, centDigits)
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT kind, threshold, amount, crossed_at FROM budget_crossings
		WHERE tenant_id = ? AND month = ? ORDER BY crossed_at, kind, threshold`, tenant, b.Month)
	if err != nil {
		return Budget{}, fmt.Errorf("read budget crossings of %s: %w", tenant, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c Crossing
		if err := rows.Scan(&c.Kind, &c.Threshold, &c.Amount, &c.CrossedAt); err != nil {
			return Budget{}, fmt.Errorf("read budget crossings of %s: %w", tenant, err)
		}
		c.CrossedAt = c.CrossedAt.UTC()
		b.Crossings = append(b.Crossings, c)
	}
	if err := rows.Err(); err != nil {
		return Budget{}, fmt.Errorf("read budget crossings of %s: %w", tenant, err)
	}
	return b, nil
}

// DeleteBudget removes tenant's budget and its announcements; ErrNotFound
// when it had none.
func (s *Service) DeleteBudget(ctx context.Context, tenant string) error {
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM budgets WHERE tenant_id = ?", tenant)
		if err != nil {
			return fmt.Errorf("delete budget of %s: %w", tenant, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete budget of %s: %w", tenant, err)
		} else if n == 0 {
			return fmt.Errorf("budget of %s: %w", tenant, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM budget_crossings WHERE tenant_id = ?", tenant); err != nil {
			return fmt.Errorf("delete budget crossings of %s: %w", tenant, err)
		}
		return nil
	})
}

// monthToDate returns tenant's exact cost of now's month so far and its
// linear forecast: actual × month length / time elapsed.
func (s *Service) monthToDate(ctx context.Context, tenant string, now time.Time) (actual, forecast *big.Rat, err error) {
	start := monthStart(now)
	end := start.AddDate(0, 1, 0)
	meters, err := s.meters(ctx)
	if err != nil {
		return nil, nil, err
	}
	spec := readSpec{tenant: tenant, from: start, to: end, meters: map[string]meterInfo{}}
	for slug, m := range meters {
		if m.priced() {
			spec.meters[slug] = m
		}
	}
	prices, err := s.loadPrices(ctx)
	if err != nil {
		return nil, nil, err
	}
	pieces, err := s.read(ctx, spec, prices)
	if err != nil {
		return nil, nil, fmt.Errorf("month-to-date cost of %s: %w", tenant, err)
	}
	actual = new(big.Rat)
	for _, p := range pieces {
		actual.Add(actual, p.amount)
	}
	elapsed := now.Sub(start)
	if elapsed <= 0 {
		return actual, new(big.Rat).Set(actual), nil
	}
	forecast = quo(mul(actual, ratInt(int64(end.Sub(start)))), ratInt(int64(elapsed)))
	return actual, forecast, nil
}

// evaluateBudgets announces every threshold reached by a budget this month
// that is not announced yet, once per (tenant, month, kind, threshold): the
// budget_crossings row and the outbox event commit together, and the
// crossing's primary key makes a second replica's INSERT IGNORE a no-op.
func (s *Service) evaluateBudgets(ctx context.Context) error {
	tenants, err := store.QueryAll(ctx, s.db.SQL(), "list budgets", func(sc store.Scanner) (string, error) {
		var t string
		return t, sc.Scan(&t)
	}, "SELECT tenant_id FROM budgets ORDER BY tenant_id")
	if err != nil {
		return err
	}
	var errs []error
	for _, tenant := range tenants {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.evaluateBudget(ctx, tenant); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) evaluateBudget(ctx context.Context, tenant string) error {
	now := s.Now()
	month := monthOf(now)
	actual, forecast, err := s.monthToDate(ctx, tenant, now)
	if err != nil {
		return err
	}
	emitted := 0
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		b, err := lockBudget(ctx, tx, tenant)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		for _, kind := range []struct {
			name  string
			value *big.Rat
		}{{KindActual, actual}, {KindForecast, forecast}} {
			for _, t := range b.thresholds {
				limit := quo(mul(b.amount, ratInt(int64(t))), ratInt(100))
				if kind.value.Cmp(limit) < 0 {
					continue
				}
				res, err := tx.ExecContext(ctx, `INSERT IGNORE INTO budget_crossings (tenant_id, month, kind, threshold, amount, crossed_at)
					VALUES (?, ?, ?, ?, ?, ?)`, tenant, month, kind.name, t, fixed(kind.value, centDigits), now)
				if err != nil {
					return fmt.Errorf("record budget crossing %s %s %s %d%%: %w", tenant, month, kind.name, t, err)
				}
				if n, err := res.RowsAffected(); err != nil || n == 0 {
					if err != nil {
						return fmt.Errorf("record budget crossing %s %s %s %d%%: %w", tenant, month, kind.name, t, err)
					}
					continue // announced before
				}
				data, err := json.Marshal(events.BudgetThreshold{
					TenantID: tenant, Month: month, Kind: kind.name, ThresholdPercent: t,
					Budget: b.amount.FloatString(centDigits), Actual: fixed(actual, centDigits), Forecast: fixed(forecast, centDigits),
					Currency: b.currency, OccurredAt: now,
				})
				if err != nil {
					return fmt.Errorf("encode budget threshold of %s: %w", tenant, err)
				}
				if err := tx.Emit(ctx, events.TopicUsage, eventbus.Event{
					Type: events.TypeMeteringBudgetThreshold, Source: events.SourceMetering, Subject: tenant,
					Key: tenant, Tenant: tenant, Time: now, ContentType: "application/json", Data: data,
				}); err != nil {
					return fmt.Errorf("emit budget threshold of %s: %w", tenant, err)
				}
				emitted++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if emitted > 0 {
		s.metrics.budgetCrossings.Add(float64(emitted))
		s.log.Info("budget thresholds reached", "tenant", tenant, "month", month, "announced", emitted,
			"actual", fixed(actual, centDigits), "forecast", fixed(forecast, centDigits))
	}
	return nil
}
