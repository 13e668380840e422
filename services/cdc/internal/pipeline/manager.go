// Package pipeline runs the CDC streams: one runner per active stream reads
// the instance's binlog (after an initial snapshot when asked), writes each
// batch to Kafka and stores the batch's checkpoint only after Kafka
// acknowledged it, reconnects to a surviving node from that checkpoint when
// its source fails or the topology changes, and reports lag and health.
// The Manager owns the runners and reconciles them with the streams'
// stored state. Storage, Kafka and provisioning are behind the small
// interfaces below; it does no HTTP and no SQL of its own beyond polling a
// source's binlog position.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/kicks"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodepool"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

// Repo stores the streams; mysqlstore implements it.
type Repo interface {
	Get(ctx context.Context, id string) (stream.Stream, error)
	// Active returns every stream not deleted yet (deleting included).
	Active(ctx context.Context) ([]stream.Stream, error)
	// SaveCheckpoint stores cp and the state, and adds rows (the data
	// rows cp covers that no stored checkpoint did) to the stream's
	// unreported usage in the same write.
	SaveCheckpoint(ctx context.Context, id string, cp change.Checkpoint, state stream.State, rows int64) error
	// EmitUsage writes cdc.stream.usage with the stream's unreported rows
	// to the outbox and zeroes them, in one transaction; ok is false when
	// there were none.
	EmitUsage(ctx context.Context, id string) (u events.CDCStreamUsage, ok bool, err error)
	SetStatus(ctx context.Context, id string, st stream.Status) error
	RecordDDL(ctx context.Context, streamID string, d capture.DDL) error
	Publish(ctx context.Context, ev eventbus.Event) error
	Delete(ctx context.Context, id string) error
}

// Nodes is provisioning's view of an instance; *provview.Client fits.
type Nodes interface {
	Instance(ctx context.Context, id string) (provview.Instance, error)
}

// Sink writes messages and returns once Kafka acknowledged them all;
// *sink.Sink fits.
type Sink interface {
	Write(ctx context.Context, msgs []change.Message) error
}

// PositionFunc returns the source's @@gtid_binlog_pos: how far its binlog
// goes, for lag_events and "caught up".
type PositionFunc func(ctx context.Context, src capture.Source) (string, error)

// CaptureFunc is capture.Run; SnapshotFunc is snapshot.Run (replaceable in
// tests).
type (
	CaptureFunc  func(ctx context.Context, cfg capture.Config, out chan<- change.Batch) error
	SnapshotFunc func(ctx context.Context, cfg snapshot.Config, resume *snapshot.Progress, out chan<- change.Batch) (snapshot.Progress, error)
)

// EventSource is the ce_source of the cdc.stream.* events.
const EventSource = "/canopy/cdc"

// Config tunes the runners; zero values take the defaults.
type Config struct {
	// StatusInterval is how often a runner polls its source's position and
	// stores its status (default 1s).
	StatusInterval time.Duration `yaml:"status_interval" env:"STATUS_INTERVAL"`
	// LagThreshold is the lag past which a stream is lagging (default 30s).
	LagThreshold time.Duration `yaml:"lag_threshold" env:"LAG_THRESHOLD"`
	// LagFor is how long the lag must stay past the threshold before
	// cdc.stream.lagging is published (default 30s).
	LagFor time.Duration `yaml:"lag_for" env:"LAG_FOR"`
	// ResyncInterval is how often the runners are reconciled with every
	// stored stream, repairing a missed Kick (default 30s).
	ResyncInterval time.Duration `yaml:"resync_interval" env:"RESYNC_INTERVAL"`
	// RetryInitial and RetryMax bound the backoff between reconnects
	// (defaults 100ms and 2s).
	RetryInitial time.Duration `yaml:"retry_initial" env:"RETRY_INITIAL"`
	RetryMax     time.Duration `yaml:"retry_max" env:"RETRY_MAX"`
	// StallAfter is how long a replica being read may stay still while the
	// primary's binlog moves on before the stream leaves it (default 10s).
	StallAfter time.Duration `yaml:"stall_after" env:"STALL_AFTER"`
	// MaxBatch is the most messages in one capture batch (default 1000).
	MaxBatch int `yaml:"max_batch" env:"MAX_BATCH"`
	// ChunkSize is the rows per snapshot chunk (default 1000).
	ChunkSize int `yaml:"chunk_size" env:"CHUNK_SIZE"`
	// UsageEvery is the least time between two cdc.stream.usage events of
	// a running stream (default 1m); a stopping runner reports at once.
	UsageEvery time.Duration `yaml:"usage_every" env:"USAGE_EVERY"`
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.StatusInterval, time.Second)
	def(&c.LagThreshold, 30*time.Second)
	def(&c.LagFor, 30*time.Second)
	def(&c.StallAfter, 10*time.Second)
	def(&c.ResyncInterval, 30*time.Second)
	def(&c.RetryInitial, 100*time.Millisecond)
	def(&c.RetryMax, 2*time.Second)
	def(&c.UsageEvery, time.Minute)
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 1000
	}
	return c
}

// Option replaces a part of the Manager (tests).
type Option func(*Manager)

// WithCapture replaces capture.Run.
func WithCapture(fn CaptureFunc) Option { return func(m *Manager) { m.capture = fn } }

// WithSnapshot replaces snapshot.Run.
func WithSnapshot(fn SnapshotFunc) Option { return func(m *Manager) { m.snapshot = fn } }

// WithPosition replaces the poll of a source's @@gtid_binlog_pos.
func WithPosition(fn PositionFunc) Option { return func(m *Manager) { m.position = fn } }

// Manager runs one runner per active stream.
type Manager struct {
	cfg      Config
	repo     Repo
	nodes    Nodes
	sink     Sink
	logger   *slog.Logger
	metrics  *Metrics
	capture  CaptureFunc
	snapshot SnapshotFunc
	position PositionFunc
	pos      *nodepool.Pool

	mu      sync.Mutex
	ctx     context.Context // the service's lifetime, set by Run
	runners map[string]*runner
	gone    map[string]bool // deleted instances: their streams never start again
	kicks   *kicks.Queue
	wg      sync.WaitGroup // runners
}

// New returns a manager; reg receives the canopy_cdc_* metrics.
func New(cfg Config, repo Repo, nodes Nodes, sink Sink, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Manager, error) {
	if repo == nil || nodes == nil || sink == nil || logger == nil {
		return nil, errors.New("pipeline: nil repo, nodes, sink or logger")
	}
	metrics, err := NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	m := &Manager{cfg: cfg.withDefaults(), repo: repo, nodes: nodes, sink: sink, logger: logger.With("component", "pipeline"),
		metrics: metrics, capture: capture.Run, snapshot: snapshot.Run, pos: nodepool.New(1),
		runners: make(map[string]*runner), gone: make(map[string]bool), kicks: kicks.New()}
	m.position = m.pos.Position
	for _, o := range opts {
		o(m)
	}
	return m, nil
}

// Run starts the runners of the active streams and reconciles them on each
// Kick and every ResyncInterval until ctx ends; then it stops them all and
// returns nil.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return errors.New("pipeline: manager already ran")
	}
	m.ctx = ctx
	m.mu.Unlock()
	defer func() {
		m.stopAll()
		m.pos.Close()
	}()
	m.kicks.Loop(ctx, m.cfg.ResyncInterval, m.resync, m.reconcileID, m.logger, "streams")
	return nil
}

// Kick makes the manager re-read the stream and start, stop or restart
// its runner to match its stored state (deleting: stop, then delete). It
// does not block; it may be called before Run.
func (m *Manager) Kick(streamID string) {
	m.kicks.Kick(streamID)
}

// InstanceChanged tells the runners of an instance that its topology
// changed (failover, node added or removed): each re-reads the nodes and
// reconnects now if its preferred source is another node. It does not
// block.
func (m *Manager) InstanceChanged(instanceID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runners {
		if r.instance == instanceID {
			r.poke()
		}
	}
}

// InstanceDeleted stops the streams of a deleted instance and deletes
// them; they never start again in this process. Their topics stay in
// Kafka.
func (m *Manager) InstanceDeleted(ctx context.Context, instanceID string) error {
	m.mu.Lock()
	m.gone[instanceID] = true
	m.mu.Unlock()
	all, err := m.repo.Active(ctx)
	if err != nil {
		return fmt.Errorf("pipeline: streams of deleted instance %s: %w", instanceID, err)
	}
	var errs []error
	for _, s := range all {
		if s.Instance != instanceID {
			continue
		}
		m.stop(s.ID)
		if err := m.repo.Delete(ctx, s.ID); err != nil {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", s.ID, err))
			continue
		}
		m.metrics.forget(s.ID)
		m.logger.Info("stream deleted with its instance", "stream_id", s.ID, "instance_id", instanceID, "tenant", s.Tenant)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pipeline: streams of deleted instance %s: %w", instanceID, err)
	}
	return nil
}

// resync reconciles every stored stream and stops runners of streams that
// are gone.
func (m *Manager) resync(ctx context.Context) error {
	all, err := m.repo.Active(ctx)
	if err != nil {
		return fmt.Errorf("list active streams: %w", err)
	}
	seen := make(map[string]bool, len(all))
	for _, s := range all {
		seen[s.ID] = true
		m.reconcile(ctx, s)
	}
	m.mu.Lock()
	var orphans []string
	for id := range m.runners {
		if !seen[id] {
			orphans = append(orphans, id)
		}
	}
	m.mu.Unlock()
	for _, id := range orphans {
		m.stop(id)
		m.metrics.forget(id)
	}
	return nil
}

func (m *Manager) reconcileID(ctx context.Context, id string) {
	s, err := m.repo.Get(ctx, id)
	if err != nil {
		// Deleted meanwhile, or the store is down: the resync settles it.
		m.logger.Warn("read kicked stream failed", "stream_id", id, "err", err)
		return
	}
	m.reconcile(ctx, s)
}

// reconcile makes the stream's runner match its stored state.
func (m *Manager) reconcile(ctx context.Context, s stream.Stream) {
	switch s.State {
	case stream.StateDeleting:
		m.stop(s.ID)
		if err := m.repo.Delete(ctx, s.ID); err != nil {
			m.logger.Warn("delete stream failed; retrying at the next resync", "stream_id", s.ID, "err", err)
			return
		}
		m.metrics.forget(s.ID)
		m.logger.Info("stream deleted", "stream_id", s.ID, "instance_id", s.Instance, "tenant", s.Tenant)
	case stream.StateSnapshotting, stream.StateStreaming:
		m.mu.Lock()
		r := m.runners[s.ID]
		same := r != nil && !r.finished() && r.currentState() == s.State
		m.mu.Unlock()
		if same {
			return
		}
		// A changed state (resnapshot, resume) or a runner that ended:
		// start over from what is stored.
		m.stop(s.ID)
		m.start(s)
	default: // paused, failed
		m.stop(s.ID)
		m.metrics.setState(s.ID, s.State)
	}
}

func (m *Manager) start(s stream.Stream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil || m.ctx.Err() != nil || m.gone[s.Instance] {
		return
	}
	r := newRunner(m, s)
	m.runners[s.ID] = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.run()
	}()
}

// stop stops a stream's runner, if any, and waits until it ended.
func (m *Manager) stop(id string) {
	m.mu.Lock()
	r := m.runners[id]
	delete(m.runners, id)
	m.mu.Unlock()
	if r != nil {
		r.stop()
	}
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	rs := make([]*runner, 0, len(m.runners))
	for id, r := range m.runners {
		rs = append(rs, r)
		delete(m.runners, id)
	}
	m.mu.Unlock()
	for _, r := range rs {
		r.cancel()
	}
	m.wg.Wait()
}
