package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// sweepChunk is the most rows one DELETE removes, so that a sweep never
// holds many locks or a long transaction.
const sweepChunk = 10000

// sweepLoop deletes expired minute aggregates and ingest dedup keys now and
// every SweepEvery.
func (l *Ledger) sweepLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.SweepEvery)
	defer t.Stop()
	for {
		if err := l.sweep(ctx); err != nil && ctx.Err() == nil {
			l.metrics.errors.WithLabelValues("sweep").Inc()
			l.log.ErrorContext(ctx, "sweep expired rows", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep deletes usage_minute rows older than MinuteRetention and
// ingest_dedup keys older than DedupRetention, in chunks.
func (l *Ledger) sweep(ctx context.Context) error {
	now := l.cfg.Now().UTC()
	minuteCut := now.Add(-l.cfg.MinuteRetention).Truncate(time.Minute)
	// Per meter, so each DELETE walks the (meter, window_start) index.
	rows, err := l.db.SQL().QueryContext(ctx, "SELECT DISTINCT meter FROM usage_minute")
	if err != nil {
		return fmt.Errorf("list metered meters: %w", err)
	}
	var meters []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return fmt.Errorf("list metered meters: %w", err)
		}
		meters = append(meters, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list metered meters: %w", err)
	}
	for _, m := range meters {
		if err := l.deleteChunks(ctx, "usage_minute of "+m,
			"DELETE FROM usage_minute WHERE meter = ? AND window_start < ? LIMIT ?", m, minuteCut); err != nil {
			return err
		}
	}
	return l.deleteChunks(ctx, "ingest_dedup",
		"DELETE FROM ingest_dedup WHERE received_at < ? LIMIT ?", now.Add(-l.cfg.DedupRetention))
}

// deleteChunks runs a DELETE … LIMIT ? (args then the chunk size) until it
// deletes less than a chunk.
func (l *Ledger) deleteChunks(ctx context.Context, what, q string, args ...any) error {
	args = append(args, sweepChunk)
	total := int64(0)
	for {
		res, err := l.db.SQL().ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("sweep %s: %w", what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sweep %s: %w", what, err)
		}
		total += n
		if n < sweepChunk {
			if total > 0 {
				l.log.DebugContext(ctx, "swept expired rows", slog.String("what", what), slog.Int64("rows", total))
			}
			return nil
		}
	}
}
