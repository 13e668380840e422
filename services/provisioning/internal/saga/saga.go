// Package saga is provisioning's workflow: it drives every instance from
// its persisted state through the steps of its current operation — request
// a placement from scheduling over Kafka, create and start each node through
// the driver, configure replication (primary first, then replicas), verify
// (a write on the primary read on every replica), ready — and rolls a failed
// create back (destroy what was created, report failed so scheduling frees
// the reservation). Deletes and parameter updates run the same way.
//
// State and events change together through the repository's outbox. Steps
// are idempotent and re-run from the database after a crash: on start the
// resumer re-adopts every recorded node through the driver and kicks every
// unfinished instance. The package does not speak HTTP, SQL or Kafka and
// does not know how nodes run: the repository, the engine admin and the
// clock are its ports (ports.go, over the contract types of internal/port),
// the driver is driver.Driver; services/provisioning wires the adapters.
//
// Files: saga.go the loop (kicks, workers, drive); steps.go the create,
// update and delete steps; rollback.go; resume.go (adopt, sweep);
// settings.go and nodespec.go what a node is created with; sysctls.go;
// commands.go what the HTTP edge and the consumers call.
package saga

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// Config tunes the saga.
type Config struct {
	// DataRoot is the absolute directory under which the local driver keeps
	// nodes (<DataRoot>/nodes/<node id>).
	DataRoot string `yaml:"data_root"`
	// PlacementTimeout bounds the wait for scheduling's decision.
	PlacementTimeout time.Duration `yaml:"placement_timeout" env:"PLACEMENT_TIMEOUT" default:"2m"`
	// ProvisionTimeout bounds a whole create; past it the create rolls back.
	ProvisionTimeout time.Duration `yaml:"provision_timeout" env:"PROVISION_TIMEOUT" default:"10m"`
	// StepTimeout bounds one step's retries.
	StepTimeout time.Duration `yaml:"step_timeout" env:"STEP_TIMEOUT" default:"3m"`
	// SweepInterval is how often unfinished instances are looked at again
	// (timeouts, retries after errors).
	SweepInterval time.Duration `yaml:"sweep_interval" env:"SWEEP_INTERVAL" default:"5s"`
	// Concurrency bounds instances worked on at once.
	Concurrency int `yaml:"concurrency" env:"CONCURRENCY" default:"8"`
	// ExactVersions passes the ordered engine version to the driver as is;
	// otherwise only its major version ("7.2" → "7"), so a development
	// machine with another minor can run every plan. MariaDB versions
	// ("mariadb-10.11") always pass their full version.
	ExactVersions bool `yaml:"exact_versions" env:"EXACT_VERSIONS"`
	// RestoreTimeout bounds the wait in the restoring step for the backup
	// service's restore job (an instance ordered with restore_from); past
	// it the create rolls back. The provision timeout counts from the end
	// of the restore.
	RestoreTimeout time.Duration `yaml:"restore_timeout" env:"RESTORE_TIMEOUT" default:"1h"`
	// RestorePoll is how often a restore job is asked how it stands.
	RestorePoll time.Duration `yaml:"restore_poll" env:"RESTORE_POLL" default:"1s"`
	// LeaseTTL is how long a replica's lease on an instance lasts without
	// renewal: a dead replica's instances are taken over after at most
	// this (docs/provisioning.md, "Several replicas").
	LeaseTTL time.Duration `yaml:"lease_ttl" env:"LEASE_TTL" default:"5s"`
	// LeaseRenew is how often a held lease is renewed; below LeaseTTL
	// (a third of it when not).
	LeaseRenew time.Duration `yaml:"lease_renew" env:"LEASE_RENEW" default:"1s"`
}

func (c Config) withDefaults() Config {
	if c.PlacementTimeout <= 0 {
		c.PlacementTimeout = 2 * time.Minute
	}
	if c.ProvisionTimeout <= 0 {
		c.ProvisionTimeout = 10 * time.Minute
	}
	if c.StepTimeout <= 0 {
		c.StepTimeout = 3 * time.Minute
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 5 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.RestoreTimeout <= 0 {
		c.RestoreTimeout = time.Hour
	}
	if c.RestorePoll <= 0 {
		c.RestorePoll = time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.LeaseRenew <= 0 {
		c.LeaseRenew = time.Second
	}
	if c.LeaseRenew >= c.LeaseTTL {
		c.LeaseRenew = c.LeaseTTL / 3
	}
	return c
}

// Saga drives instances. Run it once; Kick it when an instance changed.
type Saga struct {
	cfg   Config
	repo  Repository
	drv   driver.Driver
	eng   EngineAdmin
	log   *slog.Logger
	now   func() time.Time
	hooks Hooks
	// stepRetry paces a create step's retries within cfg.StepTimeout.
	stepRetry retry.Policy
	// router is where instances' stable endpoints are (WithRouter); the
	// zero value allocates no ports.
	router instance.Router
	// restores is the backup service's restore jobs (WithRestores); nil:
	// an instance waiting in restoring is rolled back.
	restores Restores
	// leases share the instances with other replicas (WithLeases); nil:
	// this saga drives every instance. owner is this replica's id.
	leases Leases
	owner  string

	kicks   chan string
	sem     chan struct{}
	mu      sync.Mutex
	running map[string]bool
	again   map[string]bool
	// leaseRetry: a retry of a lease another replica holds is pending;
	// leaseTries counts the retries since the lease was last held.
	leaseRetry map[string]bool
	leaseTries map[string]int
}

// New returns a saga.
func New(cfg Config, repo Repository, drv driver.Driver, eng EngineAdmin, logger *slog.Logger, now Clock, hooks Hooks) (*Saga, error) {
	switch {
	case repo == nil, drv == nil, eng == nil:
		return nil, errors.New("saga: nil repo, driver or engine")
	case logger == nil:
		return nil, errors.New("saga: nil logger")
	case cfg.DataRoot == "":
		return nil, errors.New("saga: data root required")
	}
	if now == nil {
		now = time.Now
	}
	cfg = cfg.withDefaults()
	return &Saga{
		cfg: cfg, repo: repo, drv: drv, eng: eng, log: logger, now: func() time.Time { return now().UTC().Truncate(time.Microsecond) }, hooks: hooks,
		stepRetry: retry.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2},
		kicks:     make(chan string, 4096), sem: make(chan struct{}, cfg.Concurrency),
		running: map[string]bool{}, again: map[string]bool{},
		leaseRetry: map[string]bool{}, leaseTries: map[string]int{},
	}, nil
}

// Kick asks the saga to look at an instance soon. It never blocks; a kick
// lost to a full queue is made up by the next sweep.
func (s *Saga) Kick(id string) {
	select {
	case s.kicks <- id:
	default:
	}
}

// Run adopts the recorded nodes, then drives instances until ctx ends and
// every worker has stopped.
func (s *Saga) Run(ctx context.Context) error {
	if err := s.Resume(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while resuming: the next start resumes again
		}
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(s.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.sweep(ctx)
		case id := <-s.kicks:
			s.mu.Lock()
			if s.running[id] {
				s.again[id] = true
				s.mu.Unlock()
				continue
			}
			s.running[id] = true
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.work(ctx, id)
			}()
		}
	}
}

func (s *Saga) work(ctx context.Context, id string) {
	for {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			s.mu.Lock()
			delete(s.running, id)
			delete(s.again, id)
			s.mu.Unlock()
			return
		}
		s.leased(ctx, id)
		<-s.sem
		s.mu.Lock()
		if s.again[id] && ctx.Err() == nil {
			delete(s.again, id)
			s.mu.Unlock()
			continue
		}
		delete(s.running, id)
		delete(s.again, id)
		s.mu.Unlock()
		return
	}
}

// drive runs steps of one instance until it is terminal, waits for an
// event, fails in a way the next sweep retries, or ctx ends. A step that
// advanced the instance hands on what it committed, so the next step starts
// without reading the instance again.
func (s *Saga) drive(ctx context.Context, id string) {
	var in *instance.Instance
	for ctx.Err() == nil {
		if in == nil {
			var err error
			if in, err = s.repo.GetAnyTenant(ctx, id); err != nil {
				if ctx.Err() == nil {
					s.log.Error("load instance", "instance", id, "err", err)
				}
				return
			}
		}
		next, more, err := s.step(ctx, in)
		if err != nil {
			if ctx.Err() == nil {
				log := s.log.With("tenant", in.Tenant, "instance", in.ID, "state", string(in.State), "step", string(in.Step))
				if errors.Is(err, errHalted) {
					log.Warn("saga halted", "err", err)
				} else {
					log.Error("saga step failed; retrying on the next sweep", "err", err)
				}
			}
			return
		}
		if !more {
			return
		}
		in = next
	}
}

// WithRouter makes new orders take a router port pair from r.Ports and the
// instance events name the router's endpoints at r.Host, when r is enabled.
// Call it before Run.
func (s *Saga) WithRouter(r instance.Router) { s.router = r }

// WithRestores gives the saga the backup service's restore jobs, which
// instances ordered with restore_from wait for. Call it before Run.
func (s *Saga) WithRestores(r Restores) { s.restores = r }

// routerPorts is the range orders allocate from: none without a router.
func (s *Saga) routerPorts() instance.PortRange {
	if !s.router.Enabled() {
		return instance.PortRange{}
	}
	return s.router.Ports
}
