// Package shard divides the targets between healthcheck replicas by Kafka
// partition ownership of the instance topic: every replica joins one
// consumer group (kafka-go's ConsumerGroup, whose Generation carries the
// assignment), and owns the instances whose events land on its partitions.
// For each generation it tells its Owner which partitions it holds, reads
// what the last owners published for their nodes from the health topic (so
// a hand-over republishes nothing), then replays each owned partition of
// the instance topic from its start and keeps following it. Offsets are not
// committed: the partition's history is the target list. Messages that
// cannot be understood go to <topic>.dlq with the standard headers.
//
// It is not the probe loop and knows nothing of probes.
package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/libs/tenancy"
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

	mu    sync.Mutex
	owned []int
	total int
}

// New returns a sharder.
func New(cfg Config, owner Owner, logger *slog.Logger) (*Sharder, error) {
	cfg = cfg.withDefaults()
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("shard: no brokers")
	case cfg.Group == "" || cfg.Topic == "" || cfg.HealthTopic == "":
		return nil, errors.New("shard: group, topic and health topic are required")
	case owner == nil || logger == nil:
		return nil, errors.New("shard: nil owner or logger")
	}
	return &Sharder{cfg: cfg, owner: owner, logger: logger.With("component", "shard")}, nil
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
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: s.cfg.Group, Brokers: s.cfg.Brokers, Topics: []string{s.cfg.Topic},
		HeartbeatInterval: s.cfg.HeartbeatInterval, SessionTimeout: s.cfg.SessionTimeout,
		RebalanceTimeout: s.cfg.RebalanceTimeout, JoinGroupBackoff: time.Second,
		WatchPartitionChanges: true, PartitionWatchInterval: 5 * time.Second,
		StartOffset: kafka.FirstOffset,
		Logger:      nil, ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) { s.logger.Debug(fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("shard: consumer group: %w", err)
	}
	defer cg.Close()
	dlq := &kafka.Writer{Addr: kafka.TCP(s.cfg.Brokers...), Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll, AllowAutoTopicCreation: true}
	defer dlq.Close()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				s.owner.Owned(context.WithoutCancel(ctx), nil, 0)
				return nil
			}
			s.logger.Warn("join group failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		var parts []int
		for _, a := range gen.Assignments[s.cfg.Topic] {
			parts = append(parts, a.ID)
		}
		slices.Sort(parts)
		// Registered first: the group waits for every started function
		// before it rejoins, so the partitions are handed over cleanly
		// (targets stopped, transitions flushed) even when the generation
		// ends while it is still being set up.
		var busy sync.WaitGroup // setup and followers of this generation
		busy.Add(1)
		gen.Start(func(gctx context.Context) {
			<-gctx.Done()
			busy.Wait() // nothing may add targets after the hand-over
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RebalanceTimeout/2)
			defer cancel()
			s.owner.Revoked(rctx, parts)
		})
		total := s.partitionCount(ctx)
		s.mu.Lock()
		s.owned, s.total = parts, total
		s.mu.Unlock()
		s.logger.Info("partitions assigned", "generation", gen.ID, "member", gen.MemberID, "partitions", parts, "total", total)
		if len(parts) > 0 {
			s.seed(ctx) // before any target of the new partitions is probed
		}
		s.owner.Owned(ctx, parts, total)
		for _, p := range parts {
			busy.Add(1)
			gen.Start(func(gctx context.Context) {
				defer busy.Done()
				s.follow(gctx, p, dlq)
			})
		}
		busy.Done()

	}
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

// follow replays partition p of the instance topic from its start and keeps
// reading until the generation ends.
func (s *Sharder) follow(ctx context.Context, p int, dlq *kafka.Writer) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.cfg.Brokers, Topic: s.cfg.Topic, Partition: p,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		s.logger.Error("set offset", "partition", p, "err", err)
		return
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("read instance events", "partition", p, "err", err)
			}
			return
		}
		ev, err := decode(&m)
		if err == nil {
			hctx := ctx
			if ev.Tenant != "" {
				id, perr := tenancy.Parse(ev.Tenant)
				if perr != nil {
					err = eventbus.Poison(fmt.Errorf("tenant header: %w", perr))
				} else {
					hctx = tenancy.WithTenant(ctx, id)
				}
			}
			if err == nil {
				err = retry.Do(hctx, retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, MaxTries: 5},
					func(ctx context.Context) error {
						herr := s.owner.Handle(ctx, p, ev)
						if herr != nil && eventbus.ClassOf(herr) != eventbus.ClassRetryable {
							return retry.Permanent(herr)
						}
						return herr
					})
			}
		}
		if err != nil && ctx.Err() == nil {
			s.deadLetter(ctx, dlq, &m, err)
		}
	}
}

func (s *Sharder) deadLetter(ctx context.Context, w *kafka.Writer, m *kafka.Message, cause error) {
	class := eventbus.ClassOf(cause).String()
	if class == "retryable" {
		class = "retries_exhausted"
	}
	reason := cause.Error()
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	headers := append(slices.Clone(m.Headers),
		kafka.Header{Key: eventbus.HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: eventbus.HeaderDLQClass, Value: []byte(class)},
		kafka.Header{Key: eventbus.HeaderDLQTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: eventbus.HeaderDLQPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: eventbus.HeaderDLQOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))})
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.WriteMessages(dctx, kafka.Message{Topic: m.Topic + ".dlq", Key: m.Key, Value: m.Value, Headers: headers}); err != nil {
		s.logger.Error("dead-letter failed; event skipped", "partition", m.Partition, "offset", m.Offset, "err", err)
		return
	}
	s.logger.Warn("event dead-lettered", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "class", class, "reason", reason)
}

func header(hs []kafka.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// decode reads the CloudEvents binary-mode attributes the healthcheck needs.
func decode(m *kafka.Message) (eventbus.Event, error) {
	ev := eventbus.Event{
		ID: header(m.Headers, eventbus.HeaderID), Type: header(m.Headers, eventbus.HeaderType),
		Source: header(m.Headers, eventbus.HeaderSource), Subject: header(m.Headers, eventbus.HeaderSubject),
		Tenant: header(m.Headers, eventbus.HeaderTenant), Key: string(m.Key), Data: m.Value,
		ContentType: header(m.Headers, eventbus.HeaderContentType),
		Topic:       m.Topic, Partition: m.Partition, Offset: m.Offset,
	}
	if ev.ID == "" || ev.Type == "" {
		return ev, eventbus.Poison(errors.New("missing ce_id or ce_type header"))
	}
	if t := header(m.Headers, eventbus.HeaderTime); t != "" {
		if ts, err := time.Parse(time.RFC3339Nano, t); err == nil {
			ev.Time = ts
		}
	}
	return ev, nil
}
