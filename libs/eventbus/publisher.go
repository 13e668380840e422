package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Brokers are the bootstrap brokers (host:port).
	Brokers []string `yaml:"brokers" env:"BROKERS"`
	// Source is the ce_source of events that set none, e.g. "/canopy/provisioning".
	Source string `yaml:"source" env:"SOURCE"`
	// BatchSize is the most records sent to one partition in one request
	// (default 100).
	BatchSize int `yaml:"batch_size" env:"BATCH_SIZE"`
	// BatchBytes caps the size of one request to a partition (default 1 MiB).
	BatchBytes int64 `yaml:"batch_bytes" env:"BATCH_BYTES"`
	// BatchTimeout is how long a partial batch waits for more records before
	// it is sent; it is the floor of a synchronous Publish's latency, paid on
	// every hop of a saga, so the default is short (1ms): enough to gather
	// concurrent publishers, while a caller's own records go out together.
	BatchTimeout time.Duration `yaml:"batch_timeout" env:"BATCH_TIMEOUT"`
	// RequiredAcks is -1 (all in-sync replicas, the default when 0) or 1
	// (leader only). Fire-and-forget is not offered: Publish reports acks.
	RequiredAcks int `yaml:"required_acks" env:"REQUIRED_ACKS"`
	// WriteTimeout bounds one produce request (default 10s).
	WriteTimeout time.Duration `yaml:"write_timeout" env:"WRITE_TIMEOUT"`
	// MaxAttempts is how often the client tries a produce request before
	// Publish fails (default 10).
	MaxAttempts int `yaml:"max_attempts" env:"MAX_ATTEMPTS"`
	// ClientID names the client to the broker (default "canopy-eventbus").
	ClientID string `yaml:"client_id" env:"CLIENT_ID"`
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = 1 << 20
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = time.Millisecond
	}
	if c.RequiredAcks == 0 {
		c.RequiredAcks = int(kafka.RequireAll)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.ClientID == "" {
		c.ClientID = "canopy-eventbus"
	}
	return c
}

// Validate reports configuration errors after defaults are applied.
func (c PublisherConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := validateBrokers(c.Brokers); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch size %d: must be positive", c.BatchSize))
	}
	if c.BatchBytes < 1 {
		errs = append(errs, fmt.Errorf("batch bytes %d: must be positive", c.BatchBytes))
	}
	if c.BatchTimeout < 0 || c.WriteTimeout < 0 {
		errs = append(errs, errors.New("batch and write timeouts must not be negative"))
	}
	if c.RequiredAcks != int(kafka.RequireAll) && c.RequiredAcks != int(kafka.RequireOne) {
		errs = append(errs, fmt.Errorf("required acks %d: must be -1 (all) or 1 (leader)", c.RequiredAcks))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d: must be positive", c.MaxAttempts))
	}
	return errors.Join(errs...)
}

func validateBrokers(brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("brokers: at least one is required")
	}
	for _, b := range brokers {
		if strings.TrimSpace(b) == "" {
			return errors.New("brokers: empty address")
		}
	}
	return nil
}

// Publisher writes events to Kafka topics. It is safe for concurrent use.
type Publisher struct {
	cfg       PublisherConfig
	logger    *slog.Logger
	writer    *kafka.Writer
	transport *kafka.Transport
	metrics   *publisherMetrics

	// Header values every record shares; kafka-go never mutates them.
	specVersion        []byte
	defaultContentType []byte
}

// NewPublisher builds a publisher; connections are opened on first use.
func NewPublisher(cfg PublisherConfig, logger *slog.Logger, reg prometheus.Registerer) (*Publisher, error) {
	if logger == nil {
		return nil, errors.New("eventbus publisher: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventbus publisher config: %w", err)
	}
	cfg = cfg.withDefaults()
	m, err := newPublisherMetrics(reg)
	if err != nil {
		return nil, err
	}
	transport := &kafka.Transport{ClientID: cfg.ClientID}
	p := &Publisher{
		cfg:       cfg,
		logger:    logger.With(slog.String("component", "eventbus.publisher")),
		transport: transport,
		metrics:   m,
		writer: &kafka.Writer{
			Addr:                   kafka.TCP(cfg.Brokers...),
			Balancer:               &kafka.Hash{},
			MaxAttempts:            cfg.MaxAttempts,
			BatchSize:              cfg.BatchSize,
			BatchBytes:             cfg.BatchBytes,
			BatchTimeout:           cfg.BatchTimeout,
			WriteTimeout:           cfg.WriteTimeout,
			RequiredAcks:           kafka.RequiredAcks(cfg.RequiredAcks),
			AllowAutoTopicCreation: true,
			Transport:              transport,
		},
		specVersion:        []byte(SpecVersion),
		defaultContentType: []byte(DefaultContentType),
	}
	return p, nil
}

// Publish writes events to topic and returns once the broker acknowledged
// all of them. Events are validated first (id, type and source are required;
// Source defaults to PublisherConfig.Source); if one is invalid nothing is
// sent. The tenant header comes from Event.Tenant or else the tenant in ctx;
// traceparent from Event.TraceParent or else the trace context in ctx (OTel
// global propagator). Time defaults to now and ContentType to JSON.
func (p *Publisher) Publish(ctx context.Context, topic string, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	msgs, err := p.encode(ctx, topic, events)
	if err != nil {
		p.metrics.errors.WithLabelValues(topic).Inc()
		return err
	}
	if err := p.writer.WriteMessages(ctx, msgs...); err != nil {
		p.metrics.errors.WithLabelValues(topic).Inc()
		return fmt.Errorf("publish %d events to %s: %w", len(events), topic, err)
	}
	p.metrics.published.WithLabelValues(topic).Add(float64(len(events)))
	return nil
}

// fixedHeaders is how many headers every record carries at most, before
// extensions and trace propagation headers.
const fixedHeaders = 9

// encode validates events and turns them into records. To keep the cost per
// record low, all records of one call share one header slice and one byte
// arena holding every key and header value.
func (p *Publisher) encode(ctx context.Context, topic string, events []Event) ([]kafka.Message, error) {
	if topic == "" {
		return nil, fmt.Errorf("publish: %w: empty topic", ErrInvalidEvent)
	}
	var ctxTenant string
	if id, ok := tenancy.FromContext(ctx); ok {
		ctxTenant = id.String()
	}
	// Trace context of the caller, injected once for the whole call.
	var trace headerCarrier
	otel.GetTextMapPropagator().Inject(ctx, &trace)

	now := time.Now().UTC()
	arenaSize, headerCount := 0, 0
	lastTenant := ""
	for i := range events {
		e := &events[i]
		ev := *e
		if ev.Source == "" {
			ev.Source = p.cfg.Source
		}
		if ev.Tenant == lastTenant {
			ev.Tenant = "" // validated already; batches usually share one tenant
		}
		if err := ev.validate(); err != nil {
			return nil, fmt.Errorf("publish to %s: %w", topic, err)
		}
		if e.Tenant != "" {
			lastTenant = e.Tenant
		}
		src := ev.Source
		arenaSize += len(e.Key) + len(e.ID) + len(e.Type) + len(src) + len(e.Subject) +
			len(e.ContentType) + len(e.Tenant) + len(ctxTenant) + len(e.TraceParent) + len(time.RFC3339Nano) + 8
		for _, v := range e.Extensions {
			arenaSize += len(v)
		}
		headerCount += fixedHeaders + len(e.Extensions) + len(trace)
	}

	arena := make([]byte, 0, arenaSize)
	bytesOf := func(s string) []byte {
		start := len(arena)
		arena = append(arena, s...)
		return arena[start:len(arena):len(arena)]
	}
	headers := make([]kafka.Header, 0, headerCount)
	msgs := make([]kafka.Message, len(events))
	for i := range events {
		e := &events[i]
		first := len(headers)
		src := e.Source
		if src == "" {
			src = p.cfg.Source
		}
		t := e.Time
		if t.IsZero() {
			t = now
		}
		start := len(arena)
		arena = t.UTC().AppendFormat(arena, time.RFC3339Nano)
		timeValue := arena[start:len(arena):len(arena)]

		headers = append(headers,
			kafka.Header{Key: HeaderSpecVersion, Value: p.specVersion},
			kafka.Header{Key: HeaderID, Value: bytesOf(e.ID)},
			kafka.Header{Key: HeaderType, Value: bytesOf(e.Type)},
			kafka.Header{Key: HeaderSource, Value: bytesOf(src)},
			kafka.Header{Key: HeaderTime, Value: timeValue},
		)
		if e.ContentType == "" {
			headers = append(headers, kafka.Header{Key: HeaderContentType, Value: p.defaultContentType})
		} else {
			headers = append(headers, kafka.Header{Key: HeaderContentType, Value: bytesOf(e.ContentType)})
		}
		if e.Subject != "" {
			headers = append(headers, kafka.Header{Key: HeaderSubject, Value: bytesOf(e.Subject)})
		}
		switch {
		case e.Tenant != "":
			headers = append(headers, kafka.Header{Key: HeaderTenant, Value: bytesOf(e.Tenant)})
		case ctxTenant != "":
			headers = append(headers, kafka.Header{Key: HeaderTenant, Value: bytesOf(ctxTenant)})
		}
		if e.TraceParent != "" {
			headers = append(headers, kafka.Header{Key: HeaderTraceParent, Value: bytesOf(e.TraceParent)})
		} else {
			headers = append(headers, trace...)
		}
		for k, v := range e.Extensions {
			headers = append(headers, kafka.Header{Key: k, Value: bytesOf(v)})
		}

		msgs[i] = kafka.Message{
			Topic:   topic,
			Value:   e.Data,
			Headers: headers[first:len(headers):len(headers)],
		}
		if e.Key != "" {
			msgs[i].Key = bytesOf(e.Key)
		}
	}
	return msgs, nil
}

// Close flushes nothing (Publish is synchronous) and releases connections.
func (p *Publisher) Close() error {
	err := p.writer.Close()
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close eventbus publisher: %w", err)
	}
	return nil
}
