// Package ingest publishes the usage CloudEvents the API accepted to
// events.TopicUsageIngest, where the ledger counts them. It does not
// validate or deduplicate: the API validated them and the ledger
// deduplicates by (source, id), so a client retrying a batch that was
// partly written counts each event once.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// ErrTooLarge: an event is larger than a record may be; retrying will not help.
var ErrTooLarge = errors.New("usage event too large for the topic")

// Config configures a Publisher.
type Config struct {
	// Brokers are the bootstrap brokers (host:port).
	Brokers []string
	// WriteTimeout bounds one produce request (default 10s).
	WriteTimeout time.Duration
	// MaxAttempts is how often a produce request is tried before Publish
	// fails (default 3: the client is waiting and will retry on a 503).
	MaxAttempts int
}

func (c Config) withDefaults() Config {
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	return c
}

// Publisher writes usage events to events.TopicUsageIngest. It is safe for
// concurrent use.
type Publisher struct {
	writer *kafka.Writer
}

// New returns a publisher; connections open on first use.
func New(cfg Config) (*Publisher, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("ingest publisher: no brokers")
	}
	if cfg.WriteTimeout < 0 || cfg.MaxAttempts < 1 {
		return nil, errors.New("ingest publisher: negative write timeout or max attempts below 1")
	}
	return &Publisher{writer: &kafka.Writer{
		Addr:  kafka.TCP(cfg.Brokers...),
		Topic: events.TopicUsageIngest,
		// Every copy of an event (same source and id) lands in one
		// partition, so the ledger sees a duplicate after its original.
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		MaxAttempts:  cfg.MaxAttempts,
		WriteTimeout: cfg.WriteTimeout,
		// A request's events go out together; the default 1 s would be
		// every request's latency.
		BatchTimeout: time.Millisecond,
		BatchSize:    1000,
	}}, nil
}

// Key is an event's record key: source NUL id.
func Key(e meter.Event) []byte {
	k := make([]byte, 0, len(e.Source)+1+len(e.ID))
	k = append(k, e.Source...)
	k = append(k, 0)
	return append(k, e.ID...)
}

// Publish writes evs, each keyed by source NUL id with the JSON event as
// value and at (the time the API received them) as the record time, from
// which the ledger judges lateness. It returns once the broker
// acknowledged every record; on an error some may have been written.
func (p *Publisher) Publish(ctx context.Context, evs []meter.Event, at time.Time) error {
	if len(evs) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(evs))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// HTML escaping would grow data with < > & past what the API's body
	// limit let in.
	enc.SetEscapeHTML(false)
	for i, e := range evs {
		buf.Reset()
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("encode usage event %s/%s: %w", e.Source, e.ID, err)
		}
		v := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
		msgs[i] = kafka.Message{Key: Key(e), Value: bytes.Clone(v), Time: at}
	}
	if err := p.writer.WriteMessages(ctx, msgs...); err != nil {
		var tooLarge kafka.MessageTooLargeError
		if errors.As(err, &tooLarge) {
			err = fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return fmt.Errorf("publish %d usage events to %s: %w", len(evs), events.TopicUsageIngest, err)
	}
	return nil
}

// Close releases the writer's connections.
func (p *Publisher) Close() error {
	if err := p.writer.Close(); err != nil {
		return fmt.Errorf("close ingest publisher: %w", err)
	}
	return nil
}
