package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// priceSourceCatalog marks prices rows that come from catalog plan events.
const priceSourceCatalog = "catalog"

// applyPlans versions the plans' prices: a plan event whose node-hour or
// storage GB-hour price differs from the version in effect at the plan's
// change (rounded up to the hour) adds a version from that hour on. An
// admin's price at the very same hour is left as the admin set it.
func (l *Ledger) applyPlans(ctx context.Context, tx *sql.Tx, w *work, recs []planRec) error {
	for _, r := range recs {
		p := r.p
		if p.ID == "" {
			w.count(outcomeSkipped, 1)
			continue
		}
		changed := p.UpdatedAt
		if r.typ == events.TypePlanCreated || changed.IsZero() {
			changed = p.CreatedAt
		}
		at := eventTime(changed, l.cfg.Now())
		for _, mp := range []struct{ meter, price string }{
			{meter.NodeHours, p.Prices.NodeHour}, {meter.StorageGBHours, p.Prices.StorageGBHour},
		} {
			if err := l.versionPrice(ctx, tx, clip(p.ID, 64), mp.meter, mp.price, p.Prices.Currency, at); err != nil {
				return err
			}
		}
		w.count(outcomeCounted, 1)
	}
	return nil
}

// versionPrice adds (or, at the same hour, corrects) the catalog's price of
// a plan's meter, unless that price is in effect then. A change applies
// from the hour after at (usage already under way keeps its price); a
// plan's first price applies from the hour at falls in, so that a plan is
// never unpriced for its first hour (no usage of it can be older).
func (l *Ledger) versionPrice(ctx context.Context, tx *sql.Tx, plan, meterSlug, price, currency string, at time.Time) error {
	from := ceilHour(at)
	var versions int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM prices WHERE plan_id = ? AND meter = ?", plan, meterSlug).Scan(&versions); err != nil {
		return fmt.Errorf("count prices of %s/%s: %w", plan, meterSlug, err)
	}
	if versions == 0 {
		from = at.UTC().Truncate(time.Hour)
	}
	price = strings.TrimSpace(price)
	if price == "" {
		return nil // unpriced
	}
	want, ok := new(big.Rat).SetString(price)
	if !ok || want.Sign() < 0 || want.Cmp(maxPrice) >= 0 || len(currency) != 3 {
		l.log.WarnContext(ctx, "ignoring a plan price that is not a decimal amount in a 3-letter currency",
			slog.String("plan", plan), slog.String("meter", meterSlug), slog.String("price", price), slog.String("currency", currency))
		return nil
	}
	currency = strings.ToUpper(currency)
	var (
		effFrom      time.Time
		unit, curr   string
		source       string
		haveInEffect = true
	)
	err := tx.QueryRowContext(ctx, `SELECT effective_from, unit_price, currency, source FROM prices
		WHERE plan_id = ? AND meter = ? AND effective_from <= ? ORDER BY effective_from DESC LIMIT 1 FOR UPDATE`,
		plan, meterSlug, from).Scan(&effFrom, &unit, &curr, &source)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		haveInEffect = false
	case err != nil:
		return fmt.Errorf("read price of %s/%s: %w", plan, meterSlug, err)
	}
	if haveInEffect {
		have, _ := new(big.Rat).SetString(unit)
		if have != nil && have.Cmp(want) == 0 && curr == currency {
			return nil
		}
		if effFrom.Equal(from) && source != priceSourceCatalog {
			return nil // an admin priced this very hour (the upsert below would keep it too)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO prices (plan_id, meter, effective_from, currency, unit_price, source, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE
		currency = IF(source = 'catalog', VALUES(currency), currency),
		unit_price = IF(source = 'catalog', VALUES(unit_price), unit_price),
		created_at = IF(source = 'catalog', VALUES(created_at), created_at)`,
		plan, meterSlug, from, currency, want.FloatString(9), priceSourceCatalog, l.cfg.Now().UTC()); err != nil {
		return fmt.Errorf("version price of %s/%s from %s: %w", plan, meterSlug, from.Format(time.RFC3339), err)
	}
	return nil
}

// maxPrice bounds what prices.unit_price (DECIMAL(20,9)) holds.
var maxPrice = new(big.Rat).SetInt64(100_000_000_000)

// ceilHour rounds t up to the hour.
func ceilHour(t time.Time) time.Time {
	h := t.UTC().Truncate(time.Hour)
	if h.Before(t) {
		h = h.Add(time.Hour)
	}
	return h
}
