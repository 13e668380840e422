package rating

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// Cursor names in the cursors table.
const (
	// CursorRatedThrough is the start of the next hour to publish rated
	// events for.
	CursorRatedThrough = "rated_through"
	// CursorInvoicesClosedThrough is the start of the first month whose
	// invoices are not all closed.
	CursorInvoicesClosedThrough = "invoices_closed_through"
)

// maxHoursPerRound bounds how many hours one round rates, so that a long
// outage is caught up in steps that leave the other jobs their turn.
const maxHoursPerRound = 48

// Run runs the periodic jobs every JobsEvery until ctx ends: close the
// invoices of months past their end + grace, publish rated hours, announce
// budget thresholds. A failed job is logged and retried next round. It
// returns nil when ctx ends. Several replicas may run it at once.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.JobsEvery)
	defer t.Stop()
	for {
		_ = s.RunOnce(ctx) // logged; the next round retries
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce runs each job once, logging failures and returning them joined.
func (s *Service) RunOnce(ctx context.Context) error {
	var errs []error
	for _, job := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"close_invoices", s.closeInvoices},
		{"rate_hours", s.rateHours},
		{"budgets", s.evaluateBudgets},
	} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := job.run(ctx)
		switch {
		case err == nil:
			s.metrics.jobRuns.WithLabelValues(job.name, "ok").Inc()
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			s.metrics.jobRuns.WithLabelValues(job.name, "error").Inc()
			s.log.Error("rating job failed", "job", job.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", job.name, err))
		}
	}
	return errors.Join(errs...)
}

// ensureCursor creates a cursor at initial unless it exists, in its own
// statement: inside the locking transaction, two replicas' INSERT IGNORE
// would each hold a shared lock on the row and deadlock upgrading it.
func (s *Service) ensureCursor(ctx context.Context, name string, initial time.Time) error {
	if _, err := s.db.SQL().ExecContext(ctx, "INSERT IGNORE INTO cursors (name, at) VALUES (?, ?)", name, initial); err != nil {
		return fmt.Errorf("create cursor %s: %w", name, err)
	}
	return nil
}

// lockCursor reads a cursor (made by ensureCursor) FOR UPDATE in tx: a
// second replica waits here until this one committed and then sees the
// cursor moved.
func lockCursor(ctx context.Context, tx *store.Tx, name string) (time.Time, error) {
	var at time.Time
	if err := tx.QueryRowContext(ctx, "SELECT at FROM cursors WHERE name = ? FOR UPDATE", name).Scan(&at); err != nil {
		return time.Time{}, fmt.Errorf("lock cursor %s: %w", name, err)
	}
	return at.UTC(), nil
}

func setCursor(ctx context.Context, tx *store.Tx, name string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, "UPDATE cursors SET at = ? WHERE name = ?", at, name); err != nil {
		return fmt.Errorf("move cursor %s to %s: %w", name, at.Format(time.RFC3339), err)
	}
	return nil
}

// rateHours publishes metering.usage.rated for every hour H with
// H + 1h + grace ≤ now past the cursor: one event per tenant and SUM or
// COUNT meter with usage in H, emitted in the transaction that moves the
// cursor past H. The first run starts at the current hour (no backfill).
func (s *Service) rateHours(ctx context.Context) error {
	for range maxHoursPerRound {
		done, err := s.rateNextHour(ctx)
		if err != nil || done {
			return err
		}
	}
	return nil
}

// rateNextHour rates the hour at the cursor if it is due; done reports
// that it was not.
func (s *Service) rateNextHour(ctx context.Context) (done bool, err error) {
	now := s.Now()
	meters, err := s.meters(ctx)
	if err != nil {
		return false, err
	}
	prices, err := s.loadPrices(ctx)
	if err != nil {
		return false, err
	}
	currency := s.currency(prices)
	if err := s.ensureCursor(ctx, CursorRatedThrough, now.Truncate(time.Hour)); err != nil {
		return false, err
	}
	var hour time.Time
	emitted := 0
	err = s.db.Tx(ctx, func(tx *store.Tx) error {
		h, err := lockCursor(ctx, tx, CursorRatedThrough)
		if err != nil {
			return err
		}
		hour = h
		if h.Add(time.Hour + s.cfg.Grace).After(now) {
			done = true
			return nil
		}
		spec := readSpec{all: true, byTenant: true, hoursOnly: true, from: h, to: h.Add(time.Hour), meters: map[string]meterInfo{}}
		for slug, m := range meters {
			if m.priced() {
				spec.meters[slug] = m
			}
		}
		pieces, err := s.read(ctx, spec, prices)
		if err != nil {
			return fmt.Errorf("rate hour %s: %w", h.Format(time.RFC3339), err)
		}
		evs, err := ratedEvents(h, pieces, currency, now)
		if err != nil {
			return err
		}
		const perEmit = 500
		for i := 0; i < len(evs); i += perEmit {
			if err := tx.Emit(ctx, events.TopicUsage, evs[i:min(i+perEmit, len(evs))]...); err != nil {
				return fmt.Errorf("emit rated events of %s: %w", h.Format(time.RFC3339), err)
			}
		}
		emitted = len(evs)
		return setCursor(ctx, tx, CursorRatedThrough, h.Add(time.Hour))
	})
	if err != nil {
		return false, err
	}
	if !done {
		s.metrics.ratedEvents.Add(float64(emitted))
		s.log.Debug("hour rated", "hour", hour, "events", emitted)
	}
	return done, nil
}

// ratedEvents sums the pieces of hour h per tenant and meter (over plans,
// each at its own price) into metering.usage.rated events.
func ratedEvents(h time.Time, pieces []piece, currency string, now time.Time) ([]eventbus.Event, error) {
	type key struct{ tenant, meter string }
	type acc struct {
		qty, amount *big.Rat
		m           meterInfo
		rows        bool
	}
	accs := map[key]*acc{}
	for _, p := range pieces {
		k := key{p.tenant, p.meter}
		a := accs[k]
		if a == nil {
			a = &acc{qty: new(big.Rat), amount: new(big.Rat), m: p.m}
			accs[k] = a
		}
		a.qty.Add(a.qty, p.qty)
		a.amount.Add(a.amount, p.amount)
		a.rows = a.rows || p.total.Sign() != 0 || p.cnt != 0
	}
	keys := make([]key, 0, len(accs))
	for k, a := range accs {
		if a.rows {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].tenant != keys[j].tenant {
			return keys[i].tenant < keys[j].tenant
		}
		return keys[i].meter < keys[j].meter
	})
	out := make([]eventbus.Event, 0, len(keys))
	for _, k := range keys {
		a := accs[k]
		data, err := json.Marshal(events.UsageRated{
			TenantID: k.tenant, Meter: k.meter, Unit: a.m.unit, HourStart: h,
			Quantity: fixed(a.qty, quantityDigits), Amount: fixed(a.amount, quantityDigits), Currency: currency,
		})
		if err != nil {
			return nil, fmt.Errorf("encode rated usage of %s/%s: %w", k.tenant, k.meter, err)
		}
		out = append(out, eventbus.Event{
			// The id names the (tenant, meter, hour), so that a consumer can
			// deduplicate by it as the hour is rated exactly once.
			ID:   fmt.Sprintf("usage-rated/%s/%s/%s", k.tenant, k.meter, h.Format("2006-01-02T15Z")),
			Type: events.TypeMeteringUsageRated, Source: events.SourceMetering, Subject: k.tenant,
			Key: k.tenant, Tenant: k.tenant, Time: now, ContentType: "application/json", Data: data,
		})
	}
	return out, nil
}

// closeInvoices closes every tenant's invoice of each month whose end +
// grace has passed, from the cursor on; the cursor then moves past the
// month. The first run starts at the month of the oldest usage.
func (s *Service) closeInvoices(ctx context.Context) error {
	for {
		now := s.Now()
		month, err := s.invoiceCursor(ctx, now)
		if err != nil {
			return err
		}
		end := month.AddDate(0, 1, 0)
		if end.Add(s.cfg.Grace).After(now) {
			return nil
		}
		tenants, err := store.QueryAll(ctx, s.db.SQL(), "list tenants with usage", func(sc store.Scanner) (string, error) {
			var t string
			return t, sc.Scan(&t)
		}, "SELECT DISTINCT tenant_id FROM usage_day WHERE window_start >= ? AND window_start < ? ORDER BY tenant_id", month, end)
		if err != nil {
			return fmt.Errorf("close invoices of %s: %w", monthOf(month), err)
		}
		var errs []error
		for _, t := range tenants {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if _, err := s.closeInvoice(ctx, t, monthOf(month)); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		err = s.db.Tx(ctx, func(tx *store.Tx) error {
			at, err := lockCursor(ctx, tx, CursorInvoicesClosedThrough)
			if err != nil || !at.Equal(month) {
				return err // another replica moved it
			}
			return setCursor(ctx, tx, CursorInvoicesClosedThrough, end)
		})
		if err != nil {
			return err
		}
	}
}

// invoiceCursor returns the first month not yet closed, starting the
// cursor at the month of the oldest usage (or now's) on the first run.
func (s *Service) invoiceCursor(ctx context.Context, now time.Time) (time.Time, error) {
	var at time.Time
	err := s.db.SQL().QueryRowContext(ctx, "SELECT at FROM cursors WHERE name = ?", CursorInvoicesClosedThrough).Scan(&at)
	if err == nil {
		return at.UTC(), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("read cursor %s: %w", CursorInvoicesClosedThrough, err)
	}
	var oldest sql.NullTime
	if err := s.db.SQL().QueryRowContext(ctx, "SELECT MIN(window_start) FROM usage_day").Scan(&oldest); err != nil {
		return time.Time{}, fmt.Errorf("read oldest usage: %w", err)
	}
	initial := meter.Month.Start(now)
	if oldest.Valid && oldest.Time.Before(initial) {
		initial = meter.Month.Start(oldest.Time)
	}
	if err := s.ensureCursor(ctx, CursorInvoicesClosedThrough, initial); err != nil {
		return time.Time{}, err
	}
	if err := s.db.SQL().QueryRowContext(ctx, "SELECT at FROM cursors WHERE name = ?", CursorInvoicesClosedThrough).Scan(&at); err != nil {
		return time.Time{}, fmt.Errorf("read cursor %s: %w", CursorInvoicesClosedThrough, err)
	}
	return at.UTC(), nil
}
