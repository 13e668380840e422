package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Assignment is the partitions of each topic a member holds in one
// generation of its consumer group, sorted.
type Assignment map[string][]int

// SubscriberOption changes how a Subscriber follows its group: choices the
// consuming code makes, not operators.
type SubscriberOption func(*subscriberOptions)

type subscriberOptions struct {
	onAssigned func(context.Context, Assignment)
	onRevoked  func(context.Context, Assignment)
	replay     bool
}

// generations reports whether Run must follow the group generation by
// generation (kafka-go's ConsumerGroup) rather than through one group reader,
// which hides assignments.
func (o subscriberOptions) generations() bool {
	return o.onAssigned != nil || o.onRevoked != nil || o.replay
}

// OnAssigned calls fn at the start of every generation of the group with the
// partitions this member holds (possibly none), before any of their records
// is handled; ctx ends when the subscriber stops.
func OnAssigned(fn func(ctx context.Context, a Assignment)) SubscriberOption {
	return func(o *subscriberOptions) { o.onAssigned = fn }
}

// OnRevoked calls fn when a generation ends, after the handlers of its
// partitions have returned and their offsets are committed, and before the
// member rejoins or leaves the group, so the next owner starts from a clean
// hand-over. ctx is bounded by half the rebalance timeout: the member must
// rejoin in time.
func OnRevoked(fn func(ctx context.Context, a Assignment)) SubscriberOption {
	return func(o *subscriberOptions) { o.onRevoked = fn }
}

// Replay makes every generation read its partitions from their first offset
// and commit nothing: for consumers whose state is a partition's whole
// history (a target list), not a queue of work.
func Replay() SubscriberOption {
	return func(o *subscriberOptions) { o.replay = true }
}

// partitionWatchInterval is how often the group leader looks for new
// partitions of the topics.
const partitionWatchInterval = 5 * time.Second

// runGenerations follows the group one generation at a time until ctx ends:
// each generation's partitions are consumed by a reader each, between the
// OnAssigned and OnRevoked calls. Closing the group on the way out ends the
// generation (handlers stop, offsets are committed, OnRevoked runs) and
// leaves the group, which hands the partitions to the other members at once.
func (s *Subscriber) runGenerations(ctx context.Context, dlq *kafka.Writer) error {
	start := kafka.FirstOffset
	if s.cfg.StartOffset == StartLatest {
		start = kafka.LastOffset
	}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                     s.cfg.GroupID,
		Brokers:                s.cfg.Brokers,
		Topics:                 s.cfg.Topics,
		Dialer:                 s.cfg.dialer(),
		HeartbeatInterval:      s.cfg.HeartbeatInterval,
		SessionTimeout:         s.cfg.SessionTimeout,
		RebalanceTimeout:       s.cfg.RebalanceTimeout,
		JoinGroupBackoff:       s.cfg.JoinGroupBackoff,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: partitionWatchInterval,
		StartOffset:            start,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			s.logger.Debug(fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("eventbus subscriber: consumer group: %w", err)
	}
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// The group backs off before it reports a failed join; members
			// joining at once make the first attempts meet a rebalance.
			level := slog.LevelWarn
			if errors.Is(err, kafka.RebalanceInProgress) {
				level = slog.LevelDebug
			}
			s.logger.Log(ctx, level, "join group failed; retrying", slog.Any("error", err))
			continue
		}
		s.generation(ctx, gen, dlq)
	}
	if err := cg.Close(); err != nil {
		s.logger.Warn("close consumer group", slog.Any("error", err))
	}
	return nil
}

// generation announces gen's assignment and starts a consumer per assigned
// partition; the generation ends when the group rebalances or is closed.
func (s *Subscriber) generation(ctx context.Context, gen *kafka.Generation, dlq *kafka.Writer) {
	a := make(Assignment, len(gen.Assignments))
	for topic, parts := range gen.Assignments {
		ids := make([]int, 0, len(parts))
		for _, p := range parts {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		a[topic] = ids
	}
	// Registered first: the group waits for every started function before
	// it rejoins, so revocation runs after the partitions' consumers are done
	// even when the generation ends while it is still being set up.
	var busy sync.WaitGroup
	busy.Add(1)
	gen.Start(func(gctx context.Context) {
		<-gctx.Done()
		busy.Wait() // nothing is handled after the hand-over
		if s.opts.onRevoked != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RebalanceTimeout/2)
			defer cancel()
			s.opts.onRevoked(rctx, a)
		}
	})
	s.logger.InfoContext(ctx, "partitions assigned", slog.Int("generation", int(gen.ID)),
		slog.String("member", gen.MemberID), slog.Any("partitions", map[string][]int(a)))
	if s.opts.onAssigned != nil {
		s.opts.onAssigned(ctx, a)
	}
	for topic, parts := range gen.Assignments {
		for _, p := range parts {
			busy.Add(1)
			gen.Start(func(gctx context.Context) {
				defer busy.Done()
				s.consumePartition(gctx, gen, topic, p, dlq)
			})
		}
	}
	busy.Done()
}

// consumePartition handles one assigned partition until its generation ends,
// then commits what was handled (unless replaying).
func (s *Subscriber) consumePartition(ctx context.Context, gen *kafka.Generation, topic string, p kafka.PartitionAssignment, dlq *kafka.Writer) {
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   s.cfg.Brokers,
		Topic:     topic,
		Partition: p.ID,
		Dialer:    s.cfg.dialer(),
		MinBytes:  s.cfg.MinBytes,
		MaxBytes:  s.cfg.MaxBytes,
		MaxWait:   s.cfg.MaxWait,
	})
	var commit func(context.Context, ...kafka.Message) error
	offset := p.Offset
	if s.opts.replay {
		offset = kafka.FirstOffset
	} else {
		commit = func(_ context.Context, ms ...kafka.Message) error {
			offsets := map[string]map[int]int64{topic: make(map[int]int64, 1)}
			for _, m := range ms {
				offsets[topic][m.Partition] = m.Offset + 1
			}
			if err := gen.CommitOffsets(offsets); err != nil {
				return fmt.Errorf("commit %s/%d: %w", topic, p.ID, err)
			}
			return nil
		}
	}
	c := s.newConsumer(reader, dlq, commit)
	c.topicMetrics(topic)
	if err := reader.SetOffset(offset); err != nil {
		s.logger.ErrorContext(ctx, "set offset", slog.String("topic", topic), slog.Int("partition", p.ID), slog.Any("error", err))
		c.stop(ctx)
		return
	}
	c.run(ctx)
	c.stop(ctx)
}
