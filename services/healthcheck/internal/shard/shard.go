// Package shard divides the targets between healthcheck replicas by Kafka
// partition ownership of the instance topic: every replica joins one
// consumer group (an eventbus.Subscriber with assignment hooks), and owns
// the instances whose events land on its partitions. For each generation it
// tells its Owner which partitions it holds, reads what the last owners
// published for their nodes from the health topic (so a hand-over
// republishes nothing), then the subscriber replays each owned partition of
// the instance topic from its start and keeps following it. Offsets are not
// committed (eventbus.Replay): the partition's history is the target list.
// Decoding, tenant checks, retries and dead-lettering are the subscriber's.
//
// It is not the probe loop and knows nothing of probes.
package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/eventbus"
)

// Owner is told what this replica owns and receives the owned partitions'
// events.
type Owner interface {
	// Owned is called at the start of every generation with the owned
	// partitions of the instance topic out of total; the owner stops
	// probing targets of other partitions (without publishing anything).
	Owned(ctx context.Context, partitions []int, total int)
	// Revoked is called when a generation ends, before this replica rejoins
	// the group: the owner stops probing the partitions' targets and
	// flushes what it decided, so the next owner reads it back.
	Revoked(ctx context.Context, partitions []int)
	// Published is called for each node's last transition found on the
	// health topic before the partitions are replayed.
	Published(nodeID, status, reason string)
	// Handle applies one event of an owned partition. A poison or
	// permanent error dead-letters it; other errors are retried.
	Handle(ctx context.Context, partition int, ev eventbus.Event) error
}

// Config configures the sharder.
type Config struct {
	Brokers []string
	// Group is the consumer group id.
	Group string
	// Topic is the instance topic; HealthTopic the transitions topic.
	Topic       string
	HealthTopic string
	// SessionTimeout is how long a silent replica keeps its partitions
	// (default 10s); HeartbeatInterval how often members heartbeat (1s).
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	// RebalanceTimeout bounds a rebalance (default 10s).
	RebalanceTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 10 * time.Second
	}
	return c
}

// Sharder runs the group membership.
type Sharder struct {
	cfg    Config
	owner  Owner
	logger *slog.Logger
	sub    *eventbus.Subscriber

	mu    sync.Mutex
	owned []int
	total int
}

// New returns a sharder; reg receives the group consumer's metrics.
func New(cfg Config, owner Owner, logger *slog.Logger, reg prometheus.Registerer) (*Sharder, error) {
	cfg = cfg.withDefaults()
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("shard: no brokers")
	case cfg.Group == "" || cfg.Topic == "" || cfg.HealthTopic == "":
		return nil, errors.New("shard: group, topic and health topic are required")
	case owner == nil || logger == nil:
		return nil, errors.New("shard: nil owner or logger")
	}
	s := &Sharder{cfg: cfg, owner: owner, logger: logger.With("component", "shard")}
	sub, err := eventbus.NewSubscriber(eventbus.SubscriberConfig{
		Brokers: cfg.Brokers, GroupID: cfg.Group, Topics: []string{cfg.Topic},
		SessionTimeout: cfg.SessionTimeout, HeartbeatInterval: cfg.HeartbeatInterval, RebalanceTimeout: cfg.RebalanceTimeout,
		StartOffset: eventbus.StartEarliest,
	}, func(ctx context.Context, ev eventbus.Event) error {
		return s.owner.Handle(ctx, ev.Partition, ev)
	}, s.logger, reg, eventbus.OnAssigned(s.assigned), eventbus.OnRevoked(s.revoked), eventbus.Replay())
	if err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	s.sub = sub
	return s, nil
}

// Owned returns the partitions this replica holds and the topic's total.
func (s *Sharder) Owned() ([]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.owned), s.total
}

// Run joins the group and follows generations until ctx ends; leaving the
// group on the way out hands the partitions to the other replicas at once.
func (s *Sharder) Run(ctx context.Context) error {
	err := s.sub.Run(ctx)
	s.owner.Owned(context.WithoutCancel(ctx), nil, 0)
	if err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	return nil
}

// assigned starts a generation: it reads what the last owners published
// before any target of the new partitions is probed, then tells the owner.
// The subscriber replays the partitions only after it returns.
func (s *Sharder) assigned(ctx context.Context, a eventbus.Assignment) {
	parts := a[s.cfg.Topic]
	total := s.partitionCount(ctx)
	s.mu.Lock()
	s.owned, s.total = parts, total
	s.mu.Unlock()
	s.logger.Info("partitions assigned", "partitions", parts, "total", total)
	if len(parts) > 0 {
		s.seed(ctx)
	}
	s.owner.Owned(ctx, parts, total)
}

// revoked ends a generation once its partitions' events are no longer
// handled: the owner stops their targets and flushes what it decided.
func (s *Sharder) revoked(ctx context.Context, a eventbus.Assignment) {
	s.owner.Revoked(ctx, a[s.cfg.Topic])
}

// partitionCount reads the instance topic's partition count.
func (s *Sharder) partitionCount(ctx context.Context) int {
	client := &kafka.Client{Addr: kafka.TCP(s.cfg.Brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.Topic}})
	if err != nil || len(md.Topics) == 0 {
		s.logger.Warn("read partition count", "err", err)
		return 0
	}
	return len(md.Topics[0].Partitions)
}

// seed reads the health topic up to its current end and reports each node's
// last transition.
func (s *Sharder) seed(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(s.cfg.Brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.HealthTopic}})
	if err != nil || len(md.Topics) == 0 || md.Topics[0].Error != nil {
		s.logger.Info("health topic not readable yet; nothing to seed", "err", err)
		return
	}
	n := 0
	for _, p := range md.Topics[0].Partitions {
		n += s.seedPartition(ctx, p.ID)
	}
	s.logger.Info("last published node states read", "transitions", n)
}

func (s *Sharder) seedPartition(ctx context.Context, p int) int {
	conn, err := kafka.DialLeader(ctx, "tcp", s.cfg.Brokers[0], s.cfg.HealthTopic, p)
	if err != nil {
		s.logger.Warn("seed: dial leader", "partition", p, "err", err)
		return 0
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil || last <= first {
		return 0
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.cfg.Brokers, Topic: s.cfg.HealthTopic, Partition: p,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return 0
	}
	n := 0
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			s.logger.Warn("seed: read", "partition", p, "err", err)
			return n
		}
		typ := header(m.Headers, eventbus.HeaderType)
		if strings.HasPrefix(typ, "health.node.") {
			var tr struct {
				NodeID string `json:"node_id"`
				Status string `json:"status"`
				Reason string `json:"reason"`
			}
			if (eventbus.Event{Data: m.Value}).Decode(&tr) == nil && tr.NodeID != "" && tr.Status != "" {
				s.owner.Published(tr.NodeID, tr.Status, tr.Reason)
				n++
			}
		}
		if m.Offset >= last-1 {
			return n
		}
	}
}

func header(hs []kafka.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
