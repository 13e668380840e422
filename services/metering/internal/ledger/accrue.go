package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// maxAccrueStep bounds how far one accrual moves an interval, so that
// catching up after a long stop is several modest transactions rather than
// one huge one.
const maxAccrueStep = 6 * time.Hour

// accrueLoop accrues open intervals now and every AccrueEvery.
func (l *Ledger) accrueLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.AccrueEvery)
	defer t.Stop()
	for {
		for more := true; more && ctx.Err() == nil; {
			var err error
			more, err = l.accrue(ctx)
			if err != nil && ctx.Err() == nil {
				l.metrics.errors.WithLabelValues("accrue").Inc()
				l.log.ErrorContext(ctx, "accrue open intervals", slog.Any("err", err))
				more = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// accrue adds [accrued_until, now) of every open interval to the
// aggregates and moves accrued_until, in one transaction (retried on
// deadlocks); more reports that some interval was capped at maxAccrueStep.
func (l *Ledger) accrue(ctx context.Context) (more bool, err error) {
	for attempt := 1; ; attempt++ {
		more, err = l.accrueOnce(ctx)
		if err == nil || !store.Conflict(err) || attempt == maxTxAttempts {
			return more, err
		}
		if err := sleepCtx(ctx, time.Duration(attempt)*10*time.Millisecond); err != nil {
			return false, err
		}
	}
}

func (l *Ledger) accrueOnce(ctx context.Context) (more bool, err error) {
	now := l.cfg.Now().UTC().Truncate(time.Microsecond)
	err = l.tx(ctx, func(tx *sql.Tx) error {
		more = false
		rows, err := tx.QueryContext(ctx, `SELECT instance_id, node_id, started_at, accrued_until, tenant_id, plan_id, region, vcpu, memory_mb, storage_gb
			FROM node_intervals WHERE ended_at IS NULL ORDER BY instance_id, node_id, started_at FOR UPDATE`)
		if err != nil {
			return fmt.Errorf("lock open intervals: %w", err)
		}
		ivs, err := scanIntervals(rows)
		if err != nil {
			return fmt.Errorf("lock open intervals: %w", err)
		}
		w := &work{batch: meter.NewBatch(), outcomes: map[string]int{}}
		var moved []*interval
		for _, iv := range ivs {
			to := now
			if to.Sub(iv.accrued) > maxAccrueStep {
				to = iv.accrued.Add(maxAccrueStep)
				more = true
			}
			if !to.After(iv.accrued) {
				continue
			}
			w.add(meter.IntervalContributions(iv.node, iv.accrued, to, 1), l.builtin)
			iv.accrued = to
			moved = append(moved, iv)
		}
		if len(moved) == 0 {
			return nil
		}
		if err := writeIntervals(ctx, tx, moved); err != nil {
			return err
		}
		return writeAggs(ctx, tx, w.batch)
	})
	if err != nil {
		return false, fmt.Errorf("accrue: %w", err)
	}
	return more, nil
}
