package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/retry"
)

// Reader sizing: a fetch returns up to readerMaxBytes per partition and the
// reader keeps up to readerQueue messages decoded ahead of the batch being
// applied, so the next batch is ready when a transaction commits.
const (
	readerMaxBytes = 16 << 20
	readerQueue    = 10000
)

// topicPartition names one partition of one topic.
type topicPartition struct {
	topic string
	part  int
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.topic, tp.part) }

// discoverLoop finds the partitions of the ledger's topics, now and every
// discoverEvery (topics may be created, or grow, later), and runs one
// consumer per partition until ctx ends.
func (l *Ledger) discoverLoop(ctx context.Context) {
	transport := &kafka.Transport{ClientID: "canopy-metering-ledger"}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(l.cfg.Brokers...), Timeout: 10 * time.Second, Transport: transport}

	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[topicPartition]bool{}
	missing := map[string]bool{} // topics reported missing, to log once
	for {
		parts, absent, err := discover(ctx, client)
		switch {
		case err != nil && ctx.Err() == nil:
			l.metrics.errors.WithLabelValues("discover").Inc()
			l.log.WarnContext(ctx, "discover partitions", slog.Any("err", err))
		case err == nil:
			for _, t := range absent {
				if !missing[t] {
					missing[t] = true
					l.log.InfoContext(ctx, "topic not there yet; will look again", slog.String("topic", t))
				}
			}
		}
		for _, tp := range parts {
			if running[tp] {
				continue
			}
			running[tp] = true
			delete(missing, tp.topic)
			wg.Go(func() { l.consume(ctx, tp) })
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.discoverEvery):
		}
	}
}

// discover returns the partitions of the ledger's topics that exist, and
// the topics that do not (yet). It never creates a topic.
func discover(ctx context.Context, client *kafka.Client) ([]topicPartition, []string, error) {
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, nil, fmt.Errorf("metadata of %v: %w", topics, err)
	}
	var parts []topicPartition
	var absent []string
	for _, t := range resp.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			absent = append(absent, t.Name)
			continue
		}
		for _, p := range t.Partitions {
			parts = append(parts, topicPartition{topic: t.Name, part: p.ID})
		}
	}
	return parts, absent, nil
}

// consume applies one partition's messages batch by batch until ctx ends.
// After a failure it backs off and starts again from the stored offset with
// a fresh reader, so nothing half-applied is ever skipped.
func (l *Ledger) consume(ctx context.Context, tp topicPartition) {
	bo := retry.Policy{Initial: 200 * time.Millisecond, Max: 10 * time.Second}.NewBackOff()
	for {
		progressed, err := l.consumeFrom(ctx, tp)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		l.metrics.errors.WithLabelValues("batch").Inc()
		l.log.ErrorContext(ctx, "partition consumer failed; restarting from the stored offset",
			slog.String("topic", tp.topic), slog.Int("partition", tp.part), slog.Duration("backoff", wait), slog.Any("err", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// consumeFrom reads tp from its stored offset and applies batches until an
// error (returned) or ctx ends; progressed reports whether a batch committed.
func (l *Ledger) consumeFrom(ctx context.Context, tp topicPartition) (progressed bool, err error) {
	next, stored, err := l.storedOffset(ctx, tp)
	if err != nil {
		return false, err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       l.cfg.Brokers,
		Topic:         tp.topic,
		Partition:     tp.part,
		MinBytes:      1,
		MaxBytes:      readerMaxBytes,
		MaxWait:       l.readerMaxWait,
		QueueCapacity: readerQueue,
	})
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil && ctx.Err() == nil {
			err = fmt.Errorf("close reader %s: %w", tp, cerr)
		}
	}()
	start := next
	if !stored {
		start = kafka.FirstOffset
	}
	if err := r.SetOffset(start); err != nil {
		return false, fmt.Errorf("seek %s to %d: %w", tp, start, err)
	}
	pos := position{next: next, stored: stored}
	for {
		msgs, err := l.fetch(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return progressed, nil
			}
			return progressed, fmt.Errorf("fetch %s: %w", tp, err)
		}
		last := msgs[len(msgs)-1]
		if err := l.apply(ctx, tp, pos, msgs); err != nil {
			if ctx.Err() != nil {
				return progressed, nil
			}
			return progressed, err
		}
		progressed = true
		pos = position{next: last.Offset + 1, stored: true}
		l.metrics.setLag(tp.topic, tp.part, last.HighWaterMark-pos.next)
	}
}

// position is where a partition's next batch starts as the ledger last
// stored it (stored false: nothing stored yet).
type position struct {
	next   int64
	stored bool
}

// storedOffset returns the partition's committed next offset.
func (l *Ledger) storedOffset(ctx context.Context, tp topicPartition) (int64, bool, error) {
	var next int64
	err := l.db.SQL().QueryRowContext(ctx,
		"SELECT next_offset FROM consumer_offsets WHERE topic = ? AND part = ?", tp.topic, tp.part).Scan(&next)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read stored offset of %s: %w", tp, err)
	}
	return next, true, nil
}

// fetch waits for a message, then gathers more until BatchMax messages or
// BatchWait after the first.
func (l *Ledger) fetch(ctx context.Context, r *kafka.Reader) ([]kafka.Message, error) {
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	msgs := make([]kafka.Message, 1, min(l.cfg.BatchMax, 1024))
	msgs[0] = m
	if l.cfg.BatchMax == 1 {
		return msgs, nil
	}
	bctx, cancel := context.WithTimeout(ctx, l.cfg.BatchWait)
	defer cancel()
	for len(msgs) < l.cfg.BatchMax {
		m, err := r.FetchMessage(bctx)
		if err != nil {
			if ctx.Err() == nil && bctx.Err() != nil {
				break // the batch is as big as it gets in BatchWait
			}
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}
