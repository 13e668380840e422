package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/retry"
)

// Reader sizing: a fetch returns up to readerMaxBytes per partition and the
// reader keeps up to readerQueue messages decoded ahead of the batch being
// applied, so the next batch is ready when a transaction commits.
const (
	readerMaxBytes = 4 << 20
	readerQueue    = 10000
)

// discoverLoop finds the partitions of the ledger's topics, now and every
// discoverEvery (topics may be created, or grow, later), and runs their
// appliers until ctx ends: one per topic, and ingestAppliers for the
// ingest topic (each over its share of the partitions), whose volume is
// the one that needs more than one database connection at work.
func (l *Ledger) discoverLoop(ctx context.Context) {
	transport := &kafka.Transport{ClientID: "canopy-metering-ledger"}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(l.cfg.Brokers...), Timeout: 10 * time.Second, Transport: transport}

	var wg sync.WaitGroup
	defer wg.Wait()
	type applier struct {
		topic string
		group int
	}
	known := map[applier][]int{}        // partitions each applier was given
	updates := map[applier]chan []int{} // to each applier
	missing := map[string]bool{}        // topics reported missing, to log once
	for {
		parts, err := discover(ctx, client)
		if err != nil && ctx.Err() == nil {
			l.metrics.errors.WithLabelValues("discover").Inc()
			l.log.WarnContext(ctx, "discover partitions", slog.Any("err", err))
		}
		for _, topic := range topics {
			ps, ok := parts[topic]
			if err != nil {
				continue
			}
			if !ok {
				if !missing[topic] {
					missing[topic] = true
					l.log.InfoContext(ctx, "topic not there yet; will look again", slog.String("topic", topic))
				}
				continue
			}
			groups := 1
			if topic == events.TopicUsageIngest {
				groups = l.ingestAppliers
			}
			for g := range groups {
				// By partition number, so a partition stays with its applier when the topic grows.
				var mine []int
				for _, p := range ps {
					if p%groups == g {
						mine = append(mine, p)
					}
				}
				a := applier{topic: topic, group: g}
				switch {
				case len(mine) == 0:
				case updates[a] == nil:
					ch := make(chan []int, 1)
					updates[a], known[a] = ch, mine
					wg.Go(func() { l.consumeTopic(ctx, topic, mine, ch) })
				case !slices.Equal(known[a], mine):
					known[a] = mine
					select { // replace an update the applier has not taken yet
					case <-updates[a]:
					default:
					}
					updates[a] <- mine
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.discoverEvery):
		}
	}
}

// discover returns the sorted partitions of the ledger's topics that exist.
// It never creates a topic.
func discover(ctx context.Context, client *kafka.Client) (map[string][]int, error) {
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", strings.Join(topics, ", "), err)
	}
	out := map[string][]int{}
	for _, t := range resp.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			continue
		}
		ps := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ps = append(ps, p.ID)
		}
		slices.Sort(ps)
		out[t.Name] = ps
	}
	return out, nil
}

// consumeTopic applies a topic's messages until ctx ends: one reader per
// partition feeds chunks to one applier, which folds what the partitions
// have ready into one transaction (so rows many partitions share are
// written once per batch, not contended by a transaction per partition).
// After a failure it backs off and starts every reader again from the
// stored offsets, so nothing half-applied is ever skipped. A new partition
// set (from discovery) restarts the readers between two batches.
func (l *Ledger) consumeTopic(ctx context.Context, topic string, parts []int, updates <-chan []int) {
	bo := retry.Policy{Initial: 200 * time.Millisecond, Max: 10 * time.Second}.NewBackOff()
	for {
		next, progressed, err := l.runReaders(ctx, topic, parts, updates)
		if ctx.Err() != nil {
			return
		}
		if next != nil {
			parts = next
			continue
		}
		if progressed {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		l.metrics.errors.WithLabelValues("batch").Inc()
		l.log.ErrorContext(ctx, "topic consumer failed; restarting from the stored offsets",
			slog.String("topic", topic), slog.Duration("backoff", wait), slog.Any("err", err))
		if sleepCtx(ctx, wait) != nil {
			return
		}
	}
}

// chunk is consecutive messages of one partition, decoded (and, for
// ingested events, turned into contributions) by the partition's reader
// goroutine while the applier is busy with an earlier batch.
type chunk struct {
	part int
	last int64 // offset of the last message
	hwm  int64 // the partition's high-water mark when read
	d    *decoded
}

// runReaders reads parts from their stored offsets and applies batches
// until ctx ends, an error (returned), or a new partition set (returned as
// next). progressed reports whether a batch committed.
func (l *Ledger) runReaders(ctx context.Context, topic string, parts []int, updates <-chan []int) (next []int, progressed bool, err error) {
	pos, err := l.prepareOffsets(ctx, topic, parts)
	if err != nil {
		return nil, false, err
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	chunks := make(chan chunk, len(parts))
	failed := make(chan error, len(parts))
	// Partitions share the batch, so each brings at most its share.
	perChunk := max(1, l.cfg.BatchMax/len(parts))
	for _, p := range parts {
		wg.Go(func() { l.readPartition(rctx, topic, p, pos[p], perChunk, chunks, failed) })
	}
	for {
		var first chunk
		select {
		case <-ctx.Done():
			return nil, progressed, nil
		case next := <-updates:
			return next, progressed, nil
		case err := <-failed:
			return nil, progressed, err
		case first = <-chunks:
		}
		batch := []chunk{first}
		n := first.d.messages
	gather:
		for n < l.cfg.BatchMax {
			select {
			case c := <-chunks:
				batch = append(batch, c)
				n += c.d.messages
			default:
				break gather
			}
		}
		if err := l.apply(ctx, topic, pos, batch); err != nil {
			if ctx.Err() != nil {
				return nil, progressed, nil
			}
			return nil, progressed, err
		}
		progressed = true
		for _, c := range batch {
			pos[c.part] = c.last + 1
			l.metrics.setLag(topic, c.part, c.hwm-pos[c.part])
		}
	}
}

// readPartition reads one partition from offset and hands its messages on
// in chunks of at most max, until ctx ends or the reader fails.
func (l *Ledger) readPartition(ctx context.Context, topic string, part int, offset int64, max int, out chan<- chunk, failed chan<- error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       l.cfg.Brokers,
		Topic:         topic,
		Partition:     part,
		MinBytes:      1,
		MaxBytes:      l.readerMaxBytes,
		MaxWait:       l.readerMaxWait,
		QueueCapacity: readerQueue,
	})
	defer r.Close()
	fail := func(err error) {
		select {
		case failed <- fmt.Errorf("read %s/%d: %w", topic, part, err):
		case <-ctx.Done():
		}
	}
	if err := r.SetOffset(offset); err != nil {
		fail(fmt.Errorf("seek to %d: %w", offset, err))
		return
	}
	for {
		msgs, err := l.fetch(ctx, r, max)
		if err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
		last := msgs[len(msgs)-1]
		c := chunk{part: part, last: last.Offset, hwm: last.HighWaterMark, d: &decoded{messages: len(msgs)}}
		l.decode(ctx, topic, part, msgs, c.d)
		if err := l.prepareIngest(ctx, c.d.ingest); err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
	}
}

// fetch waits for a message, then gathers more until max messages or
// BatchWait after the first.
func (l *Ledger) fetch(ctx context.Context, r *kafka.Reader, max int) ([]kafka.Message, error) {
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	msgs := make([]kafka.Message, 1, min(max, 1024))
	msgs[0] = m
	if max == 1 {
		return msgs, nil
	}
	bctx, cancel := context.WithTimeout(ctx, l.cfg.BatchWait)
	defer cancel()
	for len(msgs) < max {
		m, err := r.FetchMessage(bctx)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				break // the chunk is as big as it gets in BatchWait
			}
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// prepareOffsets makes sure every partition has an offset row (0, the
// start, for a new one: the reader skips to the first offset the broker
// still has) and returns the stored offsets. Rows that exist before any
// batch runs mean a batch's locking read never takes gap locks.
func (l *Ledger) prepareOffsets(ctx context.Context, topic string, parts []int) (map[int]int64, error) {
	var sb strings.Builder
	sb.WriteString("INSERT IGNORE INTO consumer_offsets (topic, part, next_offset, updated_at) VALUES ")
	args := make([]any, 0, len(parts)*3)
	now := l.cfg.Now().UTC()
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,0,?)")
		args = append(args, topic, p, now)
	}
	if _, err := l.db.SQL().ExecContext(ctx, sb.String(), args...); err != nil {
		return nil, fmt.Errorf("create offset rows of %s: %w", topic, err)
	}
	rows, err := l.db.SQL().QueryContext(ctx, "SELECT part, next_offset FROM consumer_offsets WHERE topic = ?", topic)
	if err != nil {
		return nil, fmt.Errorf("read offsets of %s: %w", topic, err)
	}
	defer rows.Close()
	pos := map[int]int64{}
	for rows.Next() {
		var p int
		var next int64
		if err := rows.Scan(&p, &next); err != nil {
			return nil, fmt.Errorf("read offsets of %s: %w", topic, err)
		}
		pos[p] = next
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read offsets of %s: %w", topic, err)
	}
	return pos, nil
}
