// Package syncrun runs the sync jobs. Per job, one goroutine per direction
// (source → target; for a two-way job also target → source) reads the
// binlog of the direction's source instance in decoded mode, after an
// initial load of the tables for the forward direction, and applies it to
// the other instance through an applier that keeps the direction's
// watermark in the target itself, in the same transaction as the changes:
// every (re)start resumes from what the target holds, so a change is never
// applied twice nor skipped. It follows failovers (re-picks the source node
// and the target primary after a connection failure), reports status every
// second, fails a job on what no retry fixes, drops the watermarks of a
// deleted job, settles manual conflicts and runs verifications.
//
// The Manager owns every goroutine and reconciles them with the jobs'
// stored state. It writes no rows itself (appliers, caches and the
// verifier do) and knows nothing of HTTP.
package syncrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/cdc/internal/kicks"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// Repo stores the jobs, their conflicts and verifications; mysqlstore
// implements it.
type Repo interface {
	// ActiveJobs returns every job not deleted yet (deleting included).
	ActiveJobs(ctx context.Context) ([]syncjob.Job, error)
	// GetJob returns a job; tenant "" means any tenant.
	GetJob(ctx context.Context, tenant, id string) (syncjob.Job, error)
	SetJobState(ctx context.Context, id string, state syncjob.State, lastError string) error
	SaveJobStatus(ctx context.Context, id string, st syncjob.Status) error
	// DeleteJob removes the job with its conflicts and verifications.
	DeleteJob(ctx context.Context, id string) error
	// CreateVerification stores a new verification (state running).
	CreateVerification(ctx context.Context, v syncjob.Verification) error
	// FinishVerification stores a verification's outcome (done or failed).
	FinishVerification(ctx context.Context, v syncjob.Verification) error
	ResolveConflict(ctx context.Context, cid string, use syncjob.Resolution) error
	syncjob.Conflicts
}

// Nodes is provisioning's view of an instance; *provview.Client fits.
type Nodes interface {
	Instance(ctx context.Context, id string) (provview.Instance, error)
}

// ErrNotRunning is wrapped when a job's direction is needed but does not
// run (paused, failed, not started).
var ErrNotRunning = errors.New("sync job not running")

// Config tunes the Manager; zero values take the defaults.
type Config struct {
	// StatusInterval is how often a job's status is measured and stored
	// (default 1s).
	StatusInterval time.Duration `yaml:"status_interval" env:"SYNC_STATUS_INTERVAL"`
	// ResyncInterval is how often every stored job is reconciled, repairing
	// a missed Kick (default 30s).
	ResyncInterval time.Duration `yaml:"resync_interval" env:"SYNC_RESYNC_INTERVAL"`
	// RetryInitial and RetryMax bound the backoff between reconnects
	// (defaults 100ms and 5s).
	RetryInitial time.Duration `yaml:"retry_initial" env:"SYNC_RETRY_INITIAL"`
	RetryMax     time.Duration `yaml:"retry_max" env:"SYNC_RETRY_MAX"`
	// MaxBatch is the most messages in one capture batch (default 1000).
	MaxBatch int `yaml:"max_batch" env:"SYNC_MAX_BATCH"`
	// ApplyRows is how many queued rows are coalesced into one target
	// transaction (default 5000).
	ApplyRows int `yaml:"apply_rows" env:"SYNC_APPLY_ROWS"`
	// ChunkSize is the rows per initial-load chunk (default 1000).
	ChunkSize int `yaml:"chunk_size" env:"SYNC_CHUNK_SIZE"`
	// SettleTimeout bounds a verification's wait for the job to catch up
	// to a source position (default 5m).
	SettleTimeout time.Duration `yaml:"settle_timeout" env:"SYNC_SETTLE_TIMEOUT"`
	// OwnGrace is how long Settle waits for the watermark to pass a source
	// position ending on the job's own transaction before counting it as
	// covered (default 2s).
	OwnGrace time.Duration `yaml:"own_grace" env:"SYNC_OWN_GRACE"`
	// StallAfter is how long a replica being read may stand still while
	// the primary's binlog moves on (its replication broke) before the
	// direction reads another node (default 10s).
	StallAfter time.Duration `yaml:"stall_after" env:"SYNC_STALL_AFTER"`
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.StatusInterval, time.Second)
	def(&c.ResyncInterval, 30*time.Second)
	def(&c.RetryInitial, 100*time.Millisecond)
	def(&c.RetryMax, 5*time.Second)
	def(&c.SettleTimeout, 5*time.Minute)
	def(&c.OwnGrace, 2*time.Second)
	def(&c.StallAfter, 10*time.Second)
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.ApplyRows <= 0 {
		c.ApplyRows = 5000
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 1000
	}
	return c
}

// Manager runs one runner per active sync job.
type Manager struct {
	cfg     Config
	repo    Repo
	nodes   Nodes
	logger  *slog.Logger
	metrics *metrics
	dbs     *nodeDBs

	capture   CaptureFunc
	load      LoadFunc
	openMySQL OpenMySQLFunc
	openRedis OpenRedisFunc
	verify    VerifyFunc
	position  PositionFunc
	tables    TablesFunc
	schema    SchemaFunc
	newID     func() string

	mu        sync.Mutex
	ctx       context.Context // the service's lifetime, set by Run
	runners   map[string]*jobRunner
	verifying map[string]int // job id → verifications running
	kicks     *kicks.Queue
	wg        sync.WaitGroup
}

// New returns a Manager; reg receives the canopy_cdc_sync_* metrics.
func New(cfg Config, repo Repo, nodes Nodes, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Manager, error) {
	if repo == nil || nodes == nil || log == nil {
		return nil, errors.New("syncrun: nil repo, nodes or logger")
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("syncrun: %w", err)
	}
	dbs := newNodeDBs()
	m := &Manager{cfg: cfg.withDefaults(), repo: repo, nodes: nodes, logger: log.With("component", "syncrun"),
		metrics: met, dbs: dbs,
		capture: defaultCapture, load: defaultLoad, openMySQL: defaultOpenMySQL, openRedis: defaultOpenRedis,
		verify: defaultVerify, position: dbs.position, tables: dbs.tables, schema: dbs.schema,
		newID:   func() string { return ulid.Make().String() },
		runners: make(map[string]*jobRunner), verifying: make(map[string]int), kicks: kicks.New()}
	for _, o := range opts {
		o(m)
	}
	return m, nil
}

// Run starts the runners of the active jobs and reconciles them on each
// Kick and every ResyncInterval until ctx ends; then it stops every runner
// and verification and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return errors.New("syncrun: manager already ran")
	}
	m.ctx = ctx
	m.mu.Unlock()
	defer m.dbs.close()
	defer m.stopAll()
	m.kicks.Loop(ctx, m.cfg.ResyncInterval, m.resync, m.reconcileID, m.logger, "sync jobs")
	return nil
}

// Kick makes the Manager re-read the job and start, stop or restart its
// runner to match its stored state (deleting: stop, drop the watermarks,
// delete). It does not block; it may be called before Run.
func (m *Manager) Kick(id string) {
	m.kicks.Kick(id)
}

// InstanceChanged tells the directions reading or writing an instance that
// its topology changed (failover, node added or removed): each reconnects
// at once to the preferred source node and the current primary instead of
// waiting for its connection to fail. It does not block.
func (m *Manager) InstanceChanged(instanceID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runners {
		for _, d := range r.dirs {
			if d.from == instanceID || d.to == instanceID {
				d.poke()
			}
		}
	}
}

func (m *Manager) resync(ctx context.Context) error {
	all, err := m.repo.ActiveJobs(ctx)
	if err != nil {
		return fmt.Errorf("list active sync jobs: %w", err)
	}
	seen := make(map[string]bool, len(all))
	for _, j := range all {
		seen[j.ID] = true
		m.reconcile(ctx, j)
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
	j, err := m.repo.GetJob(ctx, "", id)
	if errors.Is(err, syncjob.ErrNotFound) {
		m.stop(id)
		m.metrics.forget(id)
		return
	}
	if err != nil {
		m.logger.Warn("read kicked sync job failed; the resync settles it", "job_id", id, "err", err)
		return
	}
	m.reconcile(ctx, j)
}

// reconcile makes the job's runner match its stored state.
func (m *Manager) reconcile(ctx context.Context, j syncjob.Job) {
	log := m.logger.With("job_id", j.ID, "tenant", j.Tenant)
	switch {
	case j.State == syncjob.StateDeleting:
		m.stop(j.ID)
		if err := m.dropWatermarks(ctx, j); err != nil {
			log.Warn("drop watermarks of deleted job failed; retrying at the next resync", "err", err)
			return
		}
		if err := m.repo.DeleteJob(ctx, j.ID); err != nil {
			log.Warn("delete sync job failed; retrying at the next resync", "err", err)
			return
		}
		m.metrics.forget(j.ID)
		log.Info("sync job deleted")
	case j.State.Running():
		m.mu.Lock()
		r := m.runners[j.ID]
		alive := r != nil && !r.finished()
		m.mu.Unlock()
		if alive {
			return
		}
		m.stop(j.ID)
		m.start(j)
	default: // paused, failed
		m.stop(j.ID)
		m.metrics.setState(j.ID, j.State)
	}
}

func (m *Manager) start(j syncjob.Job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil || m.ctx.Err() != nil {
		return
	}
	r := newJobRunner(m, j)
	m.runners[j.ID] = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.run()
	}()
}

// stop stops a job's runner, if any, and waits until it ended.
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
	rs := make([]*jobRunner, 0, len(m.runners))
	for id, r := range m.runners {
		rs = append(rs, r)
		delete(m.runners, id)
	}
	m.mu.Unlock()
	for _, r := range rs {
		r.cancel()
	}
	// Verifications run on Run's context: it is done, so they end too.
	m.wg.Wait()
}

// runner returns the job's live runner, if any.
func (m *Manager) runner(id string) *jobRunner {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.runners[id]
	if r == nil || r.finished() {
		return nil
	}
	return r
}

// dropWatermarks removes every direction's watermark from its target. A
// target instance provisioning no longer knows has nothing left to drop.
func (m *Manager) dropWatermarks(ctx context.Context, j syncjob.Job) error {
	var errs []error
	for _, d := range directionsOf(j) {
		tgt, err := m.openDirection(ctx, j, d)
		if errors.Is(err, provview.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := tgt.Drop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drop watermark %s → %s: %w", d.from, d.to, err))
		}
		_ = tgt.Close()
	}
	return errors.Join(errs...)
}
