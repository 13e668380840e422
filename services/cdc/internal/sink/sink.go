// Package sink writes a stream's messages to Kafka and returns only once the
// broker acknowledged all of them (acks from all in-sync replicas), which is
// what lets the pipeline store a checkpoint after a write. It creates the
// stream's topics before their first record, so a topic's partition count
// and replication come from our configuration, not the broker's
// auto-creation defaults. It knows nothing of streams, envelopes or
// checkpoints.
package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// Options tunes the sink; zero values take the defaults.
type Options struct {
	// Partitions of a topic the sink creates (default 1: one partition keeps
	// a table's total commit order, which Debezium users expect; keys keep
	// their order with more partitions too).
	Partitions int `yaml:"partitions" env:"PARTITIONS"`
	// ReplicationFactor of a topic the sink creates (0: the broker's default).
	ReplicationFactor int `yaml:"replication_factor" env:"REPLICATION_FACTOR"`
	// BatchSize is the most records of one partition in one produce request
	// (default 1000, a capture batch), so a batch goes out at once instead
	// of waiting for BatchTimeout.
	BatchSize int `yaml:"batch_size" env:"BATCH_SIZE"`
	// BatchBytes caps one produce request to a partition (default 1 MiB,
	// Kafka's default message.max.bytes).
	BatchBytes int64 `yaml:"batch_bytes" env:"BATCH_BYTES"`
	// BatchTimeout is how long a partial batch waits for more records
	// (default 1ms): Write hands over all its records at once, so waiting
	// longer only adds latency.
	BatchTimeout time.Duration `yaml:"batch_timeout" env:"BATCH_TIMEOUT"`
	// WriteTimeout bounds one produce request (default 10s).
	WriteTimeout time.Duration `yaml:"write_timeout" env:"WRITE_TIMEOUT"`
	// MaxAttempts is how often a produce request is tried before Write
	// fails (default 10).
	MaxAttempts int `yaml:"max_attempts" env:"MAX_ATTEMPTS"`
	// ClientID names the client to the broker (default "canopy-cdc").
	ClientID string `yaml:"client_id" env:"CLIENT_ID"`
}

func (o Options) withDefaults() Options {
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 1 << 20
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.ClientID == "" {
		o.ClientID = "canopy-cdc"
	}
	return o
}

// Sink writes messages to Kafka. It is safe for concurrent use by every
// stream's runner.
type Sink struct {
	brokers   []string
	opts      Options
	transport *kafka.Transport
	writer    *kafka.Writer

	mu      sync.Mutex
	created map[string]bool // topics known to exist
}

// New returns a sink writing to brokers; connections open on first use.
func New(brokers []string, opts Options) *Sink {
	opts = opts.withDefaults()
	transport := &kafka.Transport{ClientID: opts.ClientID}
	return &Sink{
		brokers:   brokers,
		opts:      opts,
		transport: transport,
		created:   make(map[string]bool),
		writer: &kafka.Writer{
			Addr: kafka.TCP(brokers...),
			// Same key, same partition: a row's changes stay in commit
			// order. Murmur2 is the Java client's partitioner, so Kafka
			// Streams or ksqlDB see our topics co-partitioned with theirs;
			// Consistent sends null keys (tables without a primary key) to
			// one partition, so their changes keep their order too.
			Balancer:     kafka.Murmur2Balancer{Consistent: true},
			MaxAttempts:  opts.MaxAttempts,
			BatchSize:    opts.BatchSize,
			BatchBytes:   opts.BatchBytes,
			BatchTimeout: opts.BatchTimeout,
			WriteTimeout: opts.WriteTimeout,
			RequiredAcks: kafka.RequireAll,
			// Topics are created by ensureTopics with our partitions; the
			// broker's auto-creation only covers a topic deleted under us.
			AllowAutoTopicCreation: true,
			Transport:              transport,
		},
	}
}

// Write writes msgs in order and returns once the broker acknowledged every
// one of them; on error some may have been written (the caller retries from
// its last checkpoint: at-least-once). A nil Value is written as a
// tombstone (null value).
func (s *Sink) Write(ctx context.Context, msgs []change.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.ensureTopics(ctx, msgs); err != nil {
		return err
	}
	out := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		out[i] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
	}
	if err := s.writer.WriteMessages(ctx, out...); err != nil {
		return fmt.Errorf("sink: write %d messages (first topic %s): %w", len(msgs), msgs[0].Topic, firstError(err))
	}
	return nil
}

// firstError reduces kafka-go's per-message WriteErrors to its first
// failure, so logs and last_error stay readable.
func firstError(err error) error {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				return fmt.Errorf("%d of %d failed, first: %w", we.Count(), len(we), e)
			}
		}
	}
	return err
}

// ensureTopics creates the topics of msgs not created yet by this sink.
// A topic that exists already is fine; its settings are left as they are.
func (s *Sink) ensureTopics(ctx context.Context, msgs []change.Message) error {
	var missing []eventbus.TopicSpec
	s.mu.Lock()
	seen := make(map[string]bool)
	for _, m := range msgs {
		if m.Topic == "" {
			s.mu.Unlock()
			return errors.New("sink: message without topic")
		}
		if s.created[m.Topic] || seen[m.Topic] {
			continue
		}
		seen[m.Topic] = true
		missing = append(missing, eventbus.TopicSpec{Name: m.Topic, Partitions: s.opts.Partitions,
			ReplicationFactor: s.opts.ReplicationFactor})
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	if err := eventbus.EnsureTopics(ctx, s.brokers, missing...); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	s.mu.Lock()
	for _, t := range missing {
		s.created[t.Name] = true
	}
	s.mu.Unlock()
	return nil
}

// Close releases the connections; Write is synchronous, so nothing is
// pending.
func (s *Sink) Close() error {
	err := s.writer.Close()
	s.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("sink: close: %w", err)
	}
	return nil
}
