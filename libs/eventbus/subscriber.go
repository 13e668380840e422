package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
)

// Handler processes one event. A nil error commits it; an error is retryable
// unless marked with Permanent or Poison. ctx carries the event's tenant
// (tenancy.FromContext) and trace context, and ends when the subscriber stops
// or, with assignment hooks or Replay, when the partition is revoked.
type Handler func(ctx context.Context, e Event) error

// Start offsets for a group that has no committed offset yet.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Brokers are the bootstrap brokers (host:port).
	Brokers []string `yaml:"brokers" env:"BROKERS"`
	// GroupID is the consumer group; use the service's constant group name.
	GroupID string `yaml:"group_id" env:"GROUP_ID"`
	// Topics are the topics to consume.
	Topics []string `yaml:"topics" env:"TOPICS"`
	// Retry is the backoff between handler attempts and between dead-letter
	// writes (default Initial 100ms, Max 5s). Its MaxTries is ignored:
	// MaxAttempts bounds handler attempts.
	Retry retry.Policy `yaml:"retry"`
	// MaxAttempts is how often a retryable failure is tried before the
	// message is dead-lettered (default 5).
	MaxAttempts int `yaml:"max_attempts" env:"MAX_ATTEMPTS"`
	// DLQSuffix is appended to a topic's name to name its dead-letter topic
	// (default ".dlq").
	DLQSuffix string `yaml:"dlq_suffix" env:"DLQ_SUFFIX"`
	// StartOffset is where a group without a committed offset starts:
	// "earliest" (default) or "latest".
	StartOffset string `yaml:"start_offset" env:"START_OFFSET"`
	// MinBytes is the least data a fetch waits for (default 1: deliver at once).
	MinBytes int `yaml:"min_bytes" env:"MIN_BYTES"`
	// MaxBytes caps one fetch response (default 1 MiB).
	MaxBytes int `yaml:"max_bytes" env:"MAX_BYTES"`
	// MaxWait is how long the broker holds a fetch on an idle partition
	// (default 250ms).
	MaxWait time.Duration `yaml:"max_wait" env:"MAX_WAIT"`
	// SessionTimeout is how long the group coordinator keeps a silent member
	// (default 10s; real Kafka accepts 6s to 5m by default).
	SessionTimeout time.Duration `yaml:"session_timeout" env:"SESSION_TIMEOUT"`
	// HeartbeatInterval is how often members heartbeat and so how quickly
	// they learn of a rebalance (default 1s).
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" env:"HEARTBEAT_INTERVAL"`
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance (default 10s).
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout" env:"REBALANCE_TIMEOUT"`
	// JoinGroupBackoff is the wait before rejoining after a failed join
	// (default 1s).
	JoinGroupBackoff time.Duration `yaml:"join_group_backoff" env:"JOIN_GROUP_BACKOFF"`
	// CommitBatch is how many handled records may wait for one offset commit
	// (default 100).
	CommitBatch int `yaml:"commit_batch" env:"COMMIT_BATCH"`
	// CommitMaxDelay is how long a handled record may wait for its offset
	// commit (default 100ms).
	CommitMaxDelay time.Duration `yaml:"commit_max_delay" env:"COMMIT_MAX_DELAY"`
	// ShutdownTimeout bounds the final commit when Run stops (default 5s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT"`
	// ClientID names the client to the broker (default "canopy-eventbus").
	ClientID string `yaml:"client_id" env:"CLIENT_ID"`
}

func (c SubscriberConfig) withDefaults() SubscriberConfig {
	if c.Retry.Initial == 0 {
		c.Retry.Initial = 100 * time.Millisecond
	}
	if c.Retry.Max == 0 {
		c.Retry.Max = 5 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.DLQSuffix == "" {
		c.DLQSuffix = ".dlq"
	}
	if c.StartOffset == "" {
		c.StartOffset = StartEarliest
	}
	if c.MinBytes == 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 20
	}
	if c.MaxWait == 0 {
		c.MaxWait = 250 * time.Millisecond
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 10 * time.Second
	}
	if c.JoinGroupBackoff == 0 {
		c.JoinGroupBackoff = time.Second
	}
	if c.CommitBatch == 0 {
		c.CommitBatch = 100
	}
	if c.CommitMaxDelay == 0 {
		c.CommitMaxDelay = 100 * time.Millisecond
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.ClientID == "" {
		c.ClientID = "canopy-eventbus"
	}
	return c
}

// Validate reports configuration errors after defaults are applied.
func (c SubscriberConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := validateBrokers(c.Brokers); err != nil {
		errs = append(errs, err)
	}
	if c.GroupID == "" {
		errs = append(errs, errors.New("group id is required"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("topics: at least one is required"))
	}
	for _, t := range c.Topics {
		if t == "" {
			errs = append(errs, errors.New("topics: empty name"))
		}
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d: must be positive", c.MaxAttempts))
	}
	if c.StartOffset != StartEarliest && c.StartOffset != StartLatest {
		errs = append(errs, fmt.Errorf("start offset %q: must be %q or %q", c.StartOffset, StartEarliest, StartLatest))
	}
	if c.CommitBatch < 1 {
		errs = append(errs, fmt.Errorf("commit batch %d: must be positive", c.CommitBatch))
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		errs = append(errs, fmt.Errorf("heartbeat interval %s must be below session timeout %s", c.HeartbeatInterval, c.SessionTimeout))
	}
	if c.CommitMaxDelay < 0 || c.ShutdownTimeout < 0 || c.MaxWait < 0 || c.RebalanceTimeout < 0 || c.JoinGroupBackoff < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if len(errs) == 0 {
		// kafka.NewReader panics on what this rejects.
		rc := c.readerConfig()
		if err := rc.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c SubscriberConfig) readerConfig() kafka.ReaderConfig {
	start := kafka.FirstOffset
	if c.StartOffset == StartLatest {
		start = kafka.LastOffset
	}
	return kafka.ReaderConfig{
		Brokers:           c.Brokers,
		GroupID:           c.GroupID,
		GroupTopics:       c.Topics,
		Dialer:            c.dialer(),
		MinBytes:          c.MinBytes,
		MaxBytes:          c.MaxBytes,
		MaxWait:           c.MaxWait,
		HeartbeatInterval: c.HeartbeatInterval,
		SessionTimeout:    c.SessionTimeout,
		RebalanceTimeout:  c.RebalanceTimeout,
		JoinGroupBackoff:  c.JoinGroupBackoff,
		StartOffset:       start,
		// Commits are synchronous and explicit: only handled records are
		// committed, and Run knows when a commit is durable.
		CommitInterval:        0,
		WatchPartitionChanges: true,
	}
}

func (c SubscriberConfig) dialer() *kafka.Dialer {
	return &kafka.Dialer{ClientID: c.ClientID, Timeout: 10 * time.Second, DualStack: true}
}

// Subscriber consumes events of a consumer group and hands them to a Handler.
type Subscriber struct {
	cfg     SubscriberConfig
	opts    subscriberOptions
	handler Handler
	logger  *slog.Logger
	metrics *subscriberMetrics
	running atomic.Bool
}

// NewSubscriber builds a subscriber; it connects when Run is called.
func NewSubscriber(cfg SubscriberConfig, h Handler, logger *slog.Logger, reg prometheus.Registerer, opts ...SubscriberOption) (*Subscriber, error) {
	if h == nil {
		return nil, errors.New("eventbus subscriber: nil handler")
	}
	if logger == nil {
		return nil, errors.New("eventbus subscriber: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventbus subscriber config: %w", err)
	}
	cfg = cfg.withDefaults()
	m, err := newSubscriberMetrics(reg)
	if err != nil {
		return nil, err
	}
	var o subscriberOptions
	for _, opt := range opts {
		opt(&o)
	}
	return &Subscriber{
		cfg:     cfg,
		opts:    o,
		handler: h,
		logger: logger.With(slog.String("component", "eventbus.subscriber"),
			slog.String("group", cfg.GroupID)),
		metrics: m,
	}, nil
}

// ErrRunning is returned by Run when the subscriber is already running.
var ErrRunning = errors.New("eventbus subscriber already running")

// Run joins the group and consumes until ctx ends. It then abandons the
// in-flight handler (its ctx is cancelled and the record is not committed),
// commits what was handled, leaves the group and returns nil (an error only
// when the group cannot be set up at all).
func (s *Subscriber) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	transport := &kafka.Transport{ClientID: s.cfg.ClientID}
	dlq := &kafka.Writer{
		Addr:                   kafka.TCP(s.cfg.Brokers...),
		Balancer:               &kafka.Hash{},
		BatchTimeout:           time.Millisecond,
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		Transport:              transport,
	}
	s.logger.InfoContext(ctx, "subscriber started", slog.Any("topics", s.cfg.Topics))
	var err error
	if s.opts.generations() {
		err = s.runGenerations(ctx, dlq)
	} else {
		reader := kafka.NewReader(s.cfg.readerConfig())
		c := s.newConsumer(reader, dlq, reader.CommitMessages)
		for _, t := range s.cfg.Topics {
			c.topicMetrics(t)
		}
		c.run(ctx)
		c.stop(ctx)
	}
	if cerr := dlq.Close(); cerr != nil {
		s.logger.Warn("close dead-letter writer", slog.Any("error", cerr))
	}
	transport.CloseIdleConnections()
	s.logger.Info("subscriber stopped")
	return err
}

// newConsumer returns the state of one fetch loop over reader; commit makes
// handled offsets durable (nil: nothing is committed).
func (s *Subscriber) newConsumer(reader *kafka.Reader, dlq *kafka.Writer, commit func(context.Context, ...kafka.Message) error) *consumer {
	return &consumer{
		s:      s,
		reader: reader,
		dlq:    dlq,
		commit: commit,
		topics: make(map[string]*topicMetrics, len(s.cfg.Topics)),
		lag:    make(map[topicPartition]prometheus.Gauge),
	}
}

// stop commits what was handled, bounded by ShutdownTimeout, and closes the
// reader.
func (c *consumer) stop(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.cfg.ShutdownTimeout)
	c.flush(sctx)
	cancel()
	if err := c.reader.Close(); err != nil {
		c.s.logger.Warn("close reader", slog.Any("error", err))
	}
}

type topicPartition struct {
	topic     string
	partition int
}

type topicMetrics struct {
	consumed prometheus.Counter
	handled  prometheus.Counter
}

// consumer is the state of one Run.
type consumer struct {
	s      *Subscriber
	reader *kafka.Reader
	dlq    *kafka.Writer
	commit func(context.Context, ...kafka.Message) error // nil: offsets are not committed

	// pending holds, per partition, the last record handled since the last
	// commit (only topic, partition, offset and high watermark).
	pending     []kafka.Message
	pendingN    int
	commitBy    context.Context // ends CommitMaxDelay after the first pending record
	cancelTimer context.CancelFunc

	// The last tenant seen and the run context carrying it: consecutive
	// records of one tenant skip re-validating it and share the context.
	lastTenant    string
	lastTenantCtx context.Context
	topics        map[string]*topicMetrics
	lag           map[topicPartition]prometheus.Gauge
}

func (c *consumer) topicMetrics(topic string) *topicMetrics {
	if tm, ok := c.topics[topic]; ok {
		return tm
	}
	m, group := c.s.metrics, c.s.cfg.GroupID
	tm := &topicMetrics{
		consumed: m.consumed.WithLabelValues(group, topic),
		handled:  m.handled.WithLabelValues(group, topic),
	}
	c.topics[topic] = tm
	return tm
}

// run is the fetch-handle-commit loop; it returns when ctx ends.
func (c *consumer) run(ctx context.Context) {
	for {
		fetchCtx := ctx
		if c.pendingN > 0 {
			fetchCtx = c.commitBy
		}
		m, err := c.reader.FetchMessage(fetchCtx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if c.pendingN > 0 && fetchCtx.Err() != nil {
				c.flush(ctx) // idle: commit what waits
				continue
			}
			if m, err = c.refetch(ctx, err); err != nil {
				return
			}
		}
		c.topicMetrics(m.Topic).consumed.Inc()
		if !c.process(ctx, &m) {
			return // stopping; m stays uncommitted and is redelivered
		}
		if c.commit == nil {
			continue
		}
		c.markHandled(ctx, &m)
		if c.pendingN >= c.s.cfg.CommitBatch || c.commitBy.Err() != nil {
			c.flush(ctx)
		}
	}
}

// refetch retries fetching after an unexpected reader error, with backoff,
// until it succeeds or ctx ends.
func (c *consumer) refetch(ctx context.Context, first error) (kafka.Message, error) {
	c.s.logger.WarnContext(ctx, "fetch failed", slog.Any("error", first))
	var m kafka.Message
	err := retry.Do(ctx, c.backoff(), func(ctx context.Context) error {
		if first != nil {
			err := first
			first = nil
			return err // the failure already seen: wait a backoff first
		}
		var err error
		if m, err = c.reader.FetchMessage(ctx); err != nil && ctx.Err() == nil {
			c.s.logger.WarnContext(ctx, "fetch failed", slog.Any("error", err))
		}
		return err
	})
	return m, err
}

// backoff is the configured policy without attempt limits, for operations
// that must eventually succeed (fetching, dead-lettering).
func (c *consumer) backoff() retry.Policy {
	p := c.s.cfg.Retry
	p.MaxTries, p.MaxElapsed = 0, 0
	return p
}

// process handles one record: decode, call the handler with retries, or
// dead-letter it. It reports false when ctx ended before the record was
// done with; the record must then not be committed.
func (c *consumer) process(ctx context.Context, m *kafka.Message) bool {
	ev, err := decodeEvent(m)
	hctx := ctx
	if err == nil && ev.Tenant != "" {
		if ev.Tenant != c.lastTenant {
			if id, perr := tenancy.Parse(ev.Tenant); perr != nil {
				err = Poison(fmt.Errorf("tenant header: %w", perr))
			} else {
				c.lastTenant, c.lastTenantCtx = ev.Tenant, tenancy.WithTenant(ctx, id)
			}
		}
		hctx = c.lastTenantCtx
	}
	if err != nil {
		return c.deadLetter(ctx, m, ClassPoison.String(), &ev, err)
	}

	hctx = otel.GetTextMapPropagator().Extract(hctx, (*headerCarrier)(&m.Headers))

	err = c.call(hctx, &ev)
	if err == nil {
		c.topicMetrics(m.Topic).handled.Inc()
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	class := ClassOf(err)
	if class == ClassRetryable && c.s.cfg.MaxAttempts > 1 {
		err = c.retry(ctx, hctx, &ev, err)
		if err == nil {
			c.topicMetrics(m.Topic).handled.Inc()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		class = ClassOf(err)
	}
	dlqClass := class.String()
	if class == ClassRetryable {
		dlqClass = "retries_exhausted"
	}
	return c.deadLetter(ctx, m, dlqClass, &ev, err)
}

// call runs the handler once, turning a panic into a permanent failure.
func (c *consumer) call(ctx context.Context, ev *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.s.logger.ErrorContext(ctx, "handler panicked",
				slog.String("event_id", ev.ID), slog.String("event_type", ev.Type),
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			err = Permanent(fmt.Errorf("handler panic: %v", r))
		}
	}()
	err = c.s.handler(ctx, *ev)
	if err != nil {
		c.s.metrics.failed.WithLabelValues(c.s.cfg.GroupID, ev.Topic, ClassOf(err).String()).Inc()
	}
	return err
}

// retry re-runs the handler after the first retryable failure, with backoff,
// until it succeeds, fails non-retryably, or MaxAttempts are used up.
func (c *consumer) retry(ctx, hctx context.Context, ev *Event, first error) error {
	p := c.s.cfg.Retry
	p.MaxTries = c.s.cfg.MaxAttempts
	attempt := 1
	c.s.logger.DebugContext(ctx, "handler failed, will retry", slog.String("event_id", ev.ID),
		slog.Int("attempt", attempt), slog.Any("error", first))
	return retry.Do(ctx, p, func(context.Context) error {
		if first != nil {
			err := first
			first = nil
			return err // attempt 1 already ran: the next one waits a backoff
		}
		attempt++
		err := c.call(hctx, ev)
		if err == nil {
			return nil
		}
		if ClassOf(err) != ClassRetryable {
			return retry.Permanent(err)
		}
		c.s.logger.DebugContext(ctx, "handler failed, will retry", slog.String("event_id", ev.ID),
			slog.Int("attempt", attempt), slog.Any("error", err))
		return err
	})
}

// maxReasonLen caps the dlq_reason header.
const maxReasonLen = 1024

// deadLetter copies the record to its topic's dead-letter topic with the
// reason in headers, retrying until the write succeeds or ctx ends. It
// reports whether the record was dead-lettered (and may be committed).
func (c *consumer) deadLetter(ctx context.Context, m *kafka.Message, class string, ev *Event, cause error) bool {
	reason := cause.Error()
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	headers := make([]kafka.Header, 0, len(m.Headers)+5)
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "dlq_") { // re-dead-lettering replaces the previous reason
			headers = append(headers, h)
		}
	}
	headers = append(headers,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderDLQClass, Value: []byte(class)},
		kafka.Header{Key: HeaderDLQTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	dlqTopic := m.Topic + c.s.cfg.DLQSuffix
	msg := kafka.Message{Topic: dlqTopic, Key: m.Key, Value: m.Value, Headers: headers}
	err := retry.Do(ctx, c.backoff(), func(ctx context.Context) error {
		err := c.dlq.WriteMessages(ctx, msg)
		if err != nil && ctx.Err() == nil {
			c.s.logger.WarnContext(ctx, "dead-letter write failed", slog.String("dlq_topic", dlqTopic), slog.Any("error", err))
		}
		return err
	})
	if err != nil {
		return false
	}
	c.s.metrics.dlq.WithLabelValues(c.s.cfg.GroupID, m.Topic, class).Inc()
	c.s.logger.WarnContext(ctx, "event dead-lettered",
		slog.String("topic", m.Topic), slog.Int("partition", m.Partition), slog.Int64("offset", m.Offset),
		slog.String("event_id", ev.ID), slog.String("event_type", ev.Type),
		slog.String("class", class), slog.String("reason", reason), slog.String("dlq_topic", dlqTopic))
	return true
}

// markHandled records m as the newest handled record of its partition.
func (c *consumer) markHandled(ctx context.Context, m *kafka.Message) {
	c.pendingN++
	if c.pendingN == 1 {
		c.commitBy, c.cancelTimer = context.WithTimeout(ctx, c.s.cfg.CommitMaxDelay)
	}
	for i := range c.pending {
		p := &c.pending[i]
		if p.Partition == m.Partition && p.Topic == m.Topic {
			p.Offset, p.HighWaterMark = m.Offset, m.HighWaterMark
			return
		}
	}
	c.pending = append(c.pending, kafka.Message{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, HighWaterMark: m.HighWaterMark,
	})
}

// flush commits the offsets of the handled records. A failed commit is
// logged and dropped: those records are redelivered (at-least-once).
func (c *consumer) flush(ctx context.Context) {
	if c.cancelTimer != nil {
		c.cancelTimer()
		c.cancelTimer = nil
	}
	if c.pendingN == 0 {
		return
	}
	if err := c.commit(ctx, c.pending...); err != nil {
		c.s.logger.WarnContext(ctx, "offset commit failed; handled records may be redelivered",
			slog.Int("records", c.pendingN), slog.Any("error", err))
	} else {
		for i := range c.pending {
			p := &c.pending[i]
			tp := topicPartition{p.Topic, p.Partition}
			g, ok := c.lag[tp]
			if !ok {
				g = c.s.metrics.lag.WithLabelValues(c.s.cfg.GroupID, p.Topic, strconv.Itoa(p.Partition))
				c.lag[tp] = g
			}
			if lag := p.HighWaterMark - p.Offset - 1; lag >= 0 {
				g.Set(float64(lag))
			}
		}
	}
	c.pending = c.pending[:0]
	c.pendingN = 0
}
