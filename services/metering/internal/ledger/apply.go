package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

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
	topic    string
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

// apply applies a batch (decoded chunks of one topic's partitions),
// with the partitions' new offsets, in one transaction, retried whole on
// deadlocks. pos is where each partition stands as this consumer stored it.
func (l *Ledger) apply(ctx context.Context, topic string, pos map[int]int64, batch []chunk) error {
	began := time.Now()
	d := &decoded{}
	next := map[int]int64{}
	for _, c := range batch {
		d.merge(c.d)
		next[c.part] = c.last + 1
	}
	var w *work
	for attempt := 1; ; attempt++ {
		w = &work{topic: topic, batch: meter.NewBatch(), outcomes: map[string]int{}}
		err := l.tx(ctx, func(tx *sql.Tx) error {
			if err := checkOffsets(ctx, tx, topic, pos, next); err != nil {
				return err
			}
			if err := l.applyDecoded(ctx, tx, w, d); err != nil {
				return err
			}
			if err := writeBatch(ctx, tx, w); err != nil {
				return err
			}
			return saveOffsets(ctx, tx, topic, next, l.cfg.Now())
		})
		if err == nil {
			break
		}
		if !store.Conflict(err) || attempt == maxTxAttempts || ctx.Err() != nil {
			return fmt.Errorf("apply batch of %s %v: %w", topic, next, err)
		}
		l.log.DebugContext(ctx, "batch transaction conflicted; retrying",
			slog.String("topic", topic), slog.Int("attempt", attempt), slog.Any("err", err))
		if err := sleepCtx(ctx, time.Duration(attempt)*time.Duration(5+rand.IntN(20))*time.Millisecond); err != nil {
			return err
		}
	}
	for _, f := range w.afterCommit {
		f()
	}
	w.count(outcomeSkipped, d.skipped)
	for outcome, n := range w.outcomes {
		l.metrics.events.WithLabelValues(topic, outcome).Add(float64(n))
	}
	if d.undecodable > 0 {
		l.metrics.undecodable.WithLabelValues(topic).Add(float64(d.undecodable))
	}
	l.metrics.batch.WithLabelValues(topic).Observe(time.Since(began).Seconds())
	l.log.DebugContext(ctx, "batch applied", slog.String("topic", topic), slog.Int("messages", d.messages),
		slog.Int("rows", w.batch.Len()), slog.Duration("took", time.Since(began)))
	return nil
}

// tx runs fn in a READ COMMITTED transaction: every read that decides
// anything locks its rows, and without repeatable-read gap locks the
// batches of different topics and the accrual rarely wait on each other.
func (l *Ledger) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := l.db.SQL().BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// applyDecoded runs the topic's handler.
func (l *Ledger) applyDecoded(ctx context.Context, tx *sql.Tx, w *work, d *decoded) error {
	switch w.topic {
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

// checkOffsets locks the batch's partitions' offset rows and makes sure
// each is where this consumer last left it.
func checkOffsets(ctx context.Context, tx *sql.Tx, topic string, pos, next map[int]int64) error {
	args := []any{topic}
	for p := range next {
		args = append(args, p)
	}
	rows, err := tx.QueryContext(ctx, "SELECT part, next_offset FROM consumer_offsets WHERE topic = ? AND part IN "+
		store.Placeholders(len(next))+" FOR UPDATE", args...)
	if err != nil {
		return fmt.Errorf("lock offsets of %s: %w", topic, err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var p int
		var stored int64
		if err := rows.Scan(&p, &stored); err != nil {
			return fmt.Errorf("lock offsets of %s: %w", topic, err)
		}
		if want, ok := pos[p]; !ok || stored != want {
			return fmt.Errorf("%w: %s/%d expected %d, found %d", errOffsetMoved, topic, p, want, stored)
		}
		seen++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock offsets of %s: %w", topic, err)
	}
	if seen != len(next) {
		return fmt.Errorf("%w: %s: offset rows missing", errOffsetMoved, topic)
	}
	return nil
}

// saveOffsets stores where the partitions continue.
func saveOffsets(ctx context.Context, tx *sql.Tx, topic string, next map[int]int64, now time.Time) error {
	var sb strings.Builder
	sb.WriteString("INSERT INTO consumer_offsets (topic, part, next_offset, updated_at) VALUES ")
	args := make([]any, 0, len(next)*4)
	i := 0
	for p, off := range next {
		if i > 0 {
			sb.WriteByte(',')
		}
		i++
		sb.WriteString("(?,?,?,?)")
		args = append(args, topic, p, off, now.UTC())
	}
	sb.WriteString(" ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset), updated_at = VALUES(updated_at)")
	if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("store offsets %v of %s: %w", next, topic, err)
	}
	return nil
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
