package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/retry"
)

// RelayConfig tunes a Relay; zero fields take their defaults.
type RelayConfig struct {
	// PollInterval is how often the outbox is read when nothing wakes the
	// relay earlier (default 100ms).
	PollInterval time.Duration `yaml:"poll_interval" env:"POLL_INTERVAL"`
	// BatchSize caps the rows read per round (default 256).
	BatchSize int `yaml:"batch_size" env:"BATCH_SIZE"`
	// LockName is the GET_LOCK name that elects the one active relay
	// (default "canopy_outbox_<database>").
	LockName string `yaml:"lock_name" env:"LOCK_NAME"`
	// Retention is how long sent rows are kept before being purged (default 24h).
	Retention time.Duration `yaml:"retention" env:"RETENTION"`
	// PurgeInterval is how often old sent rows are purged (default 1m).
	PurgeInterval time.Duration `yaml:"purge_interval" env:"PURGE_INTERVAL"`
	// PublishRetry is the backoff for one failing publish before the relay
	// goes back to polling (default: up to 30s, then again on the next poll).
	PublishRetry retry.Policy `yaml:"-"`
}

const (
	defaultPollInterval  = 100 * time.Millisecond
	defaultBatchSize     = 256
	defaultRetention     = 24 * time.Hour
	defaultPurgeInterval = time.Minute
	// relayLockWait is the server-side wait of one GET_LOCK attempt; the
	// standby relay loops on it, so it also bounds how late it sees ctx end.
	relayLockWait = 2 * time.Second
	purgeChunk    = 1000
)

func (c RelayConfig) withDefaults(database string) RelayConfig {
	if c.PollInterval <= 0 {
		c.PollInterval = defaultPollInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = defaultBatchSize
	}
	if c.LockName == "" {
		c.LockName = lockName("canopy_outbox_", database)
	}
	if c.Retention <= 0 {
		c.Retention = defaultRetention
	}
	if c.PurgeInterval <= 0 {
		c.PurgeInterval = defaultPurgeInterval
	}
	if c.PublishRetry == (retry.Policy{}) {
		c.PublishRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, MaxElapsed: 30 * time.Second}
	}
	return c
}

// Relay publishes the outbox of one database. Any number of relays may run
// against a database (one per service replica); they elect one active relay
// with GET_LOCK held on a dedicated connection, the others wait on the lock
// and take over when the active one stops or its connection dies.
//
// The active relay reads unsent rows in id order, publishes consecutive rows
// of the same topic in one Publish call, and marks them sent as soon as the
// publish is acked. A failing publish stops the round at that row, so nothing
// later overtakes it; the relay retries it until it succeeds.
//
// Delivery is at least once: a crash (or a lost lock connection) after a
// publish is acked but before the rows are marked sent publishes them again.
// Consumers dedupe on the event id (ce_id). Sent rows are kept for
// RelayConfig.Retention, then purged.
//
// A row that can never be published blocks the rows after it (skipping it
// would break per-key order): watch canopy_outbox_publish_errors_total and
// canopy_outbox_pending_events. Per-key order is id order, which is commit
// order for transactions that serialise on the key's row; ids of concurrent
// transactions on different keys may commit out of order, which is harmless.
type Relay struct {
	db     *DB
	pub    Publisher
	cfg    RelayConfig
	logger *slog.Logger
	wake   chan struct{}

	pending     prometheus.Gauge
	active      prometheus.Gauge
	published   *prometheus.CounterVec
	publishErrs prometheus.Counter
}

// NewRelay returns a relay for db's outbox that publishes through pub.
// logger and reg may be nil (no logs, no metrics); db and pub are checked by
// Run.
func NewRelay(db *DB, pub Publisher, cfg RelayConfig, logger *slog.Logger, reg prometheus.Registerer) *Relay {
	database := ""
	if db != nil {
		database = db.cfg.Database
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults(database)
	labels := prometheus.Labels{"database": database}
	r := &Relay{
		db:     db,
		pub:    pub,
		cfg:    cfg,
		logger: logger.With("component", "outbox-relay", "database", database),
		wake:   make(chan struct{}, 1),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "canopy_outbox_pending_events", ConstLabels: labels,
			Help: "Outbox rows not yet published, as last seen by the active relay.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "canopy_outbox_relay_active", ConstLabels: labels,
			Help: "1 while this process's relay holds the outbox lock.",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canopy_outbox_published_events_total", ConstLabels: labels,
			Help: "Outbox events published and acked, by topic.",
		}, []string{"topic"}),
		publishErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canopy_outbox_publish_errors_total", ConstLabels: labels,
			Help: "Failed outbox publish attempts.",
		}),
	}
	if reg != nil {
		r.pending = register(reg, r.pending)
		r.active = register(reg, r.active)
		r.published = register(reg, r.published)
		r.publishErrs = register(reg, r.publishErrs)
	}
	return r
}

// register registers c, or returns the collector already registered under
// the same description (a second relay on the same database and registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, err := obs.Register(reg, c)
	if err != nil {
		// Any other registration error is a programming error (bad name).
		panic(fmt.Sprintf("register outbox metric: %v", err))
	}
	return c
}

// Notify wakes the relay to read the outbox now instead of at the next poll.
// It never blocks. Commits through DB.Tx that emitted events call it for
// every relay running on the same *DB.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends, then returns nil. Database and publish errors
// are logged and retried with backoff; only a misconfigured relay returns an
// error.
func (r *Relay) Run(ctx context.Context) error {
	if r.db == nil {
		return errors.New("outbox relay: nil db")
	}
	if r.pub == nil {
		return errors.New("outbox relay: nil publisher")
	}
	unsubscribe := r.db.subscribe(r.wake)
	defer unsubscribe()
	_ = retry.Do(ctx, retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}, func(ctx context.Context) error {
		err := r.session(ctx)
		if ctx.Err() != nil {
			return retry.Permanent(ctx.Err())
		}
		r.logger.Warn("outbox relay session ended; retrying", "err", err)
		return err
	})
	return nil
}

// session takes the relay lock on a dedicated connection and relays until
// ctx ends or the connection fails. Every relay query runs on that
// connection, so a failing query also means the lock may be lost.
func (r *Relay) session(ctx context.Context) (err error) {
	conn, err := r.db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("outbox relay: connect: %w", err)
	}
	locked := false
	defer func() {
		if locked {
			if rerr := releaseLock(ctx, conn, r.cfg.LockName); rerr != nil {
				// Never hand a connection that may still hold the lock back
				// to the pool: discard it, which ends its session.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
		_ = conn.Close()
	}()

	r.logger.Debug("waiting for outbox relay lock", "lock", r.cfg.LockName)
	for !locked {
		err := getLock(ctx, conn, r.cfg.LockName, relayLockWait)
		switch {
		case err == nil:
			locked = true
		case errors.Is(err, errLockTimeout) && ctx.Err() == nil:
			// Another relay is active; keep waiting.
		default:
			return fmt.Errorf("outbox relay: %w", err)
		}
	}
	r.logger.Info("outbox relay active", "lock", r.cfg.LockName)
	r.active.Set(1)
	defer r.active.Set(0)

	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	purge := time.NewTicker(r.cfg.PurgeInterval)
	defer purge.Stop()
	for {
		more, err := r.round(ctx, conn)
		if err != nil {
			return err
		}
		if more && ctx.Err() == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-poll.C:
		case <-purge.C:
			if err := r.purge(ctx, conn); err != nil {
				return err
			}
		}
	}
}

// round publishes one batch of unsent rows. It reports whether the batch was
// full (more rows are probably waiting). A publish failure ends the round
// without an error (the same row is retried next round); a database error is
// returned.
func (r *Relay) round(ctx context.Context, conn *sql.Conn) (more bool, err error) {
	rows, err := r.unsent(ctx, conn)
	if err != nil {
		return false, err
	}
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].topic == rows[i].topic {
			j++
		}
		run := rows[i:j]
		if err := r.publish(ctx, run); err != nil {
			if ctx.Err() == nil {
				r.logger.Error("outbox publish failed; will retry from this row",
					"topic", run[0].topic, "first_id", run[0].id, "event_id", run[0].event.ID, "err", err)
			}
			return false, r.updatePending(ctx, conn)
		}
		if err := r.markSent(ctx, conn, run); err != nil {
			return false, err
		}
		r.published.WithLabelValues(run[0].topic).Add(float64(len(run)))
		i = j
	}
	if len(rows) < r.cfg.BatchSize {
		r.pending.Set(0)
		return false, nil
	}
	return true, r.updatePending(ctx, conn)
}

// unsent reads up to BatchSize unsent rows in id order.
func (r *Relay) unsent(ctx context.Context, conn *sql.Conn) ([]outboxRow, error) {
	q, err := conn.QueryContext(ctx,
		"SELECT id, topic, msg_key, event_id, headers, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?",
		r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer q.Close()
	var rows []outboxRow
	for q.Next() {
		var (
			id                  uint64
			topic, key, eventID string
			headers, payload    []byte
		)
		if err := q.Scan(&id, &topic, &key, &eventID, &headers, &payload); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		row, err := decodeRow(id, topic, key, eventID, headers, payload)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return rows, nil
}

// publish publishes one run of same-topic rows, retrying per PublishRetry.
func (r *Relay) publish(ctx context.Context, run []outboxRow) error {
	events := make([]eventbus.Event, len(run))
	for i, row := range run {
		events[i] = row.event
	}
	topic := run[0].topic
	return retry.Do(ctx, r.cfg.PublishRetry, func(ctx context.Context) error {
		err := r.pub.Publish(ctx, topic, events...)
		if err == nil {
			return nil
		}
		r.publishErrs.Inc()
		if retry.IsPermanent(err) {
			// Skipping the row would break per-key order, so even a
			// permanent failure is retried (with backoff) until an operator
			// fixes it; publish_errors_total and the logs make it visible.
			// %v drops the permanent mark so retry.Do keeps backing off.
			return fmt.Errorf("publish %d events to %s (permanent): %v", len(events), topic, err)
		}
		return fmt.Errorf("publish %d events to %s: %w", len(events), topic, err)
	})
}

// markSent marks run sent. It is not cancelled with ctx: the rows are acked,
// and marking them now is what keeps a shutdown from re-publishing them.
func (r *Relay) markSent(ctx context.Context, conn *sql.Conn, run []outboxRow) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	args := make([]any, len(run))
	for i, row := range run {
		args[i] = row.id
	}
	q := "UPDATE outbox SET sent_at = UTC_TIMESTAMP(6) WHERE id IN (?" + strings.Repeat(", ?", len(run)-1) + ")"
	if _, err := conn.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mark %d outbox rows sent (ids %d..%d): %w", len(run), run[0].id, run[len(run)-1].id, err)
	}
	return nil
}

// updatePending sets the pending gauge from a count of unsent rows.
func (r *Relay) updatePending(ctx context.Context, conn *sql.Conn) error {
	if ctx.Err() != nil {
		return nil
	}
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").Scan(&n); err != nil {
		return fmt.Errorf("count pending outbox rows: %w", err)
	}
	r.pending.Set(float64(n))
	return nil
}

// purge deletes rows sent longer than Retention ago, in chunks.
func (r *Relay) purge(ctx context.Context, conn *sql.Conn) error {
	for ctx.Err() == nil {
		res, err := conn.ExecContext(ctx,
			"DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY sent_at LIMIT ?",
			r.cfg.Retention.Microseconds(), purgeChunk)
		if err != nil {
			return fmt.Errorf("purge sent outbox rows: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("purge sent outbox rows: %w", err)
		}
		if n < purgeChunk {
			return nil
		}
	}
	return nil
}
