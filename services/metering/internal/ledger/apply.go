package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// maxTxAttempts bounds how often a batch's transaction is retried after a
// deadlock or lock wait timeout before the partition restarts from its
// stored offset.
const maxTxAttempts = 8

// errOffsetMoved means the stored offset is not where this consumer left
// it: another ledger applied the partition (a lock handover raced), so the
// batch must not be applied again.
var errOffsetMoved = errors.New("stored offset moved under the consumer")

// work is what one batch's transaction accumulates: the aggregates and
// rows to write, and what to do once it committed.
type work struct {
	tp       topicPartition
	batch    *meter.Batch
	late     []lateRow
	outcomes map[string]int
	// afterCommit runs once the transaction committed (cache updates).
	afterCommit []func()
}

func (w *work) count(outcome string, n int) {
	if n > 0 {
		w.outcomes[outcome] += n
	}
}

// add folds contributions into the batch with their meters' aggregation,
// dropping values a DECIMAL(38,9) column cannot take and times DATETIME
// cannot; it returns how many it dropped.
func (w *work) add(cs []meter.Contribution, aggs map[string]meter.Aggregation) int {
	dropped := 0
	for _, c := range cs {
		if !storable(c.Value) || c.At.Before(minDatetime) || c.At.After(maxDatetime) {
			dropped++
			continue
		}
		agg, ok := aggs[c.Meter]
		if !ok {
			agg = meter.Sum
		}
		c.Key = clipKey(c.Key)
		c.At = c.At.UTC()
		w.batch.Add(c, agg)
	}
	return dropped
}

// apply decodes msgs and applies them, with the partition's new offset, in
// one transaction, retried whole on deadlocks.
func (l *Ledger) apply(ctx context.Context, tp topicPartition, pos position, msgs []kafka.Message) error {
	began := time.Now()
	d := l.decode(ctx, tp, msgs)
	last := msgs[len(msgs)-1].Offset
	var w *work
	for attempt := 1; ; attempt++ {
		w = &work{tp: tp, batch: meter.NewBatch(), outcomes: map[string]int{}}
		err := l.db.Tx(ctx, func(tx *store.Tx) error {
			if err := checkOffset(ctx, tx, tp, pos); err != nil {
				return err
			}
			if err := l.applyDecoded(ctx, tx, w, d); err != nil {
				return err
			}
			if err := writeBatch(ctx, tx, w); err != nil {
				return err
			}
			return saveOffset(ctx, tx, tp, last+1, l.cfg.Now())
		})
		if err == nil {
			break
		}
		if !retryableTx(err) || attempt == maxTxAttempts || ctx.Err() != nil {
			return fmt.Errorf("apply batch %s@%d-%d: %w", tp, msgs[0].Offset, last, err)
		}
		l.log.DebugContext(ctx, "batch transaction conflicted; retrying",
			slog.String("partition", tp.String()), slog.Int("attempt", attempt), slog.Any("err", err))
		if err := sleepCtx(ctx, time.Duration(attempt)*time.Duration(5+rand.IntN(20))*time.Millisecond); err != nil {
			return err
		}
	}
	for _, f := range w.afterCommit {
		f()
	}
	w.count(outcomeSkipped, d.skipped)
	for outcome, n := range w.outcomes {
		l.metrics.events.WithLabelValues(tp.topic, outcome).Add(float64(n))
	}
	if d.undecodable > 0 {
		l.metrics.undecodable.WithLabelValues(tp.topic).Add(float64(d.undecodable))
	}
	l.metrics.batch.WithLabelValues(tp.topic).Observe(time.Since(began).Seconds())
	return nil
}

// applyDecoded runs the topic's handler.
func (l *Ledger) applyDecoded(ctx context.Context, tx *store.Tx, w *work, d *decoded) error {
	switch w.tp.topic {
	case events.TopicInstances:
		return l.applyInstances(ctx, tx, w, d.instances)
	case events.TopicSamples:
		return l.applySamples(ctx, tx, w, d.samples)
	case events.TopicCDC:
		return l.applyCDC(ctx, tx, w, d.cdc)
	case events.TopicCatalog:
		return l.applyPlans(ctx, tx, w, d.plans)
	case events.TopicUsageIngest:
		return l.applyIngest(ctx, tx, w, d.ingest)
	}
	return nil
}

// checkOffset locks the partition's offset row and makes sure it is where
// this consumer last left it.
func checkOffset(ctx context.Context, tx *store.Tx, tp topicPartition, pos position) error {
	var next int64
	err := tx.QueryRowContext(ctx,
		"SELECT next_offset FROM consumer_offsets WHERE topic = ? AND part = ? FOR UPDATE", tp.topic, tp.part).Scan(&next)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if pos.stored {
			return fmt.Errorf("%w: %s had offset %d, now none", errOffsetMoved, tp, pos.next)
		}
		return nil
	case err != nil:
		return fmt.Errorf("lock offset of %s: %w", tp, err)
	case !pos.stored || next != pos.next:
		return fmt.Errorf("%w: %s expected %d (stored %t), found %d", errOffsetMoved, tp, pos.next, pos.stored, next)
	}
	return nil
}

// saveOffset stores where the partition continues.
func saveOffset(ctx context.Context, tx *store.Tx, tp topicPartition, next int64, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO consumer_offsets (topic, part, next_offset, updated_at) VALUES (?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset), updated_at = VALUES(updated_at)`,
		tp.topic, tp.part, next, now.UTC()); err != nil {
		return fmt.Errorf("store offset %d of %s: %w", next, tp, err)
	}
	return nil
}

// retryableTx reports whether err is a transaction conflict worth retrying
// at once: a deadlock (1213) or a lock wait timeout (1205).
func retryableTx(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
