// Package ledger is metering's consumer: it reads the lifecycle, sample,
// CDC, catalog and ingested-usage topics (one kafka-go Reader per
// partition, from offsets kept in MySQL, no consumer group) and folds every
// batch into the usage aggregates in one MySQL transaction together with
// the consumed offsets and the state the batch needs (node intervals, node
// counters, instances, ingest dedup keys, late events, prices), so a crash
// or a redelivery never counts twice and never drops. A batch gathers what
// the partitions of a topic have ready (the ingest topic's partitions are
// split between two such appliers), so rows that many partitions share are
// written once per batch. It also accrues open node intervals and sweeps
// expired minute rows and dedup keys.
//
// One ledger is active per database (a MySQL named lock); the others wait.
// It does not publish events (rating does) and does not serve queries.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// Config configures the ledger; zero durations and BatchMax take defaults.
type Config struct {
	// Brokers are the Kafka bootstrap brokers.
	Brokers []string
	// Grace is how late a sample or ingested event may arrive and still be
	// counted (default 1h).
	Grace time.Duration
	// BatchWait is how long a partition's batch keeps gathering after its
	// first message (default 200ms).
	BatchWait time.Duration
	// AccrueEvery is how often open node intervals are accrued (default 10s).
	AccrueEvery time.Duration
	// SweepEvery is how often expired minute rows and dedup keys are
	// deleted (default 10m).
	SweepEvery time.Duration
	// DedupRetention is how long ingested event ids are remembered
	// (default 35 days).
	DedupRetention time.Duration
	// MinuteRetention is how long per-minute aggregates are kept (default 48h).
	MinuteRetention time.Duration
	// BatchMax is the most messages of one partition in one transaction
	// (default 5000).
	BatchMax int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Grace, time.Hour)
	def(&c.BatchWait, 200*time.Millisecond)
	def(&c.AccrueEvery, 10*time.Second)
	def(&c.SweepEvery, 10*time.Minute)
	def(&c.DedupRetention, 35*24*time.Hour)
	def(&c.MinuteRetention, 48*time.Hour)
	if c.BatchMax == 0 {
		c.BatchMax = 5000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports configuration errors after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one is required"))
	}
	for name, d := range map[string]time.Duration{"grace": c.Grace, "batch_wait": c.BatchWait, "accrue_every": c.AccrueEvery,
		"sweep_every": c.SweepEvery, "dedup_retention": c.DedupRetention, "minute_retention": c.MinuteRetention} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", name, d))
		}
	}
	if c.BatchMax < 1 {
		errs = append(errs, fmt.Errorf("batch_max %d: must be positive", c.BatchMax))
	}
	return errors.Join(errs...)
}

// Topics are what the ledger consumes.
var topics = []string{events.TopicInstances, events.TopicSamples, events.TopicCDC, events.TopicCatalog, events.TopicUsageIngest}

// Ledger is the single-active consumer of metering's topics.
type Ledger struct {
	cfg     Config
	db      *store.DB
	log     *slog.Logger
	metrics *metrics
	cache   *instanceCache
	builtin map[string]meter.Aggregation
	meters  *meterCache
	// lock is the MySQL named lock the active ledger holds:
	// "<database>.ledger" (canopy_metering.ledger), since named locks are
	// server-wide and several metering databases may share a server.
	lock string

	// Tuning; fields rather than constants so tests and the benchmark can
	// make them short.
	discoverEvery  time.Duration // how often partitions are re-discovered
	lockRetry      time.Duration // how often a waiting ledger tries the lock
	lockCheck      time.Duration // how often the active ledger checks its lock connection
	readerMaxWait  time.Duration // broker-side wait of an idle fetch
	readerMaxBytes int           // most bytes of one fetch
	ingestAppliers int           // concurrent transactions on the ingest topic
}

// New builds a ledger; Run starts it.
func New(cfg Config, db *store.DB, log *slog.Logger, reg prometheus.Registerer) (*Ledger, error) {
	if db == nil {
		return nil, errors.New("ledger: nil db")
	}
	if log == nil {
		return nil, errors.New("ledger: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ledger config: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Ledger{
		cfg:     cfg,
		db:      db,
		log:     log.With(slog.String("component", "metering.ledger")),
		metrics: m,
		cache:   newInstanceCache(),
		builtin: builtinAggregations(),
		meters:  &meterCache{},
		lock:    db.ActiveLockName("ledger"),

		discoverEvery:  5 * time.Second,
		lockRetry:      time.Second,
		lockCheck:      time.Second,
		readerMaxWait:  500 * time.Millisecond,
		readerMaxBytes: readerMaxBytes,
		ingestAppliers: 2,
	}, nil
}

// Run waits until it holds the ledger lock, then consumes every partition
// of the topics from its stored offset, accrues open intervals and sweeps,
// until ctx ends (nil) or the lock connection is lost (it then waits for
// the lock again).
func (l *Ledger) Run(ctx context.Context) error {
	for {
		lock, err := l.db.AcquireActive(ctx, l.lock, l.lockRetry, l.log)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		l.log.InfoContext(ctx, "ledger active")
		l.active(ctx, lock)
		if err := lock.Release(ctx); err != nil {
			l.log.WarnContext(ctx, "release ledger lock", slog.Any("err", err))
		}
		if ctx.Err() != nil {
			return nil
		}
		l.log.WarnContext(ctx, "ledger lock lost; waiting to take it again")
	}
}

// active runs the consumers and loops while the lock is held.
func (l *Ledger) active(ctx context.Context, lock *store.ActiveLock) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	// What another ledger wrote while this one waited is unknown here.
	l.cache.reset()
	l.meters.reset()

	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		if err := lock.Watch(actx, l.lockCheck); err != nil {
			l.log.ErrorContext(ctx, "ledger lock lost", slog.Any("err", err))
		}
	})
	wg.Go(func() { l.accrueLoop(actx) })
	wg.Go(func() { l.sweepLoop(actx) })
	wg.Go(func() { l.discoverLoop(actx) })
	wg.Wait()
}
