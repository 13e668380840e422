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
// unfinished instance. The package does not speak HTTP and does not know how
// nodes run; the driver and the engine client are ports.
package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/nettune"
	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/engineadmin"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/tunables"
)

// Repo is the persistence the saga needs; *mysqlrepo.Repo implements it.
type Repo interface {
	Create(ctx context.Context, req mysqlrepo.CreateRequest) error
	Update(ctx context.Context, id string, fn func(c *mysqlrepo.Change) error) (*instance.Instance, error)
	Get(ctx context.Context, tenant, id string) (*instance.Instance, error)
	GetAnyTenant(ctx context.Context, id string) (*instance.Instance, error)
	Operation(ctx context.Context, tenant, id string) (instance.Operation, error)
	Unfinished(ctx context.Context) ([]string, error)
	WithNodes(ctx context.Context) ([]string, error)
	CreateBinding(ctx context.Context, b instance.Binding, events []mysqlrepo.Outgoing) (instance.Binding, error)
	Binding(ctx context.Context, tenant, instanceID, id string) (instance.Binding, error)
	BindingByOSBID(ctx context.Context, tenant, instanceID, osbID string) (instance.Binding, error)
	DeleteBinding(ctx context.Context, b instance.Binding, events []mysqlrepo.Outgoing) error
	DeleteBindings(ctx context.Context, instanceID string) error
}

// Engine talks to running engines; *engineadmin.Client implements it.
type Engine interface {
	Verify(ctx context.Context, in *instance.Instance, token string) error
	Apply(ctx context.Context, in *instance.Instance, settings map[string]string) error
	CreateUser(ctx context.Context, in *instance.Instance, u instance.Credentials) error
	DropUser(ctx context.Context, in *instance.Instance, username string) error
}

var (
	_ Repo   = (*mysqlrepo.Repo)(nil)
	_ Engine = (*engineadmin.Client)(nil)
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
	return c
}

// Hooks let tests interrupt the saga.
type Hooks struct {
	// BeforeStep runs before each step's work. An error halts the saga for
	// that instance on the spot, as a crash would: nothing is rolled back
	// and the instance stays where it was until a (new) saga resumes it.
	BeforeStep func(ctx context.Context, instanceID string, step instance.Step) error
}

// Saga drives instances. Run it once; Kick it when an instance changed.
type Saga struct {
	cfg   Config
	repo  Repo
	drv   driver.Driver
	eng   Engine
	log   *slog.Logger
	now   func() time.Time
	hooks Hooks

	kicks   chan string
	sem     chan struct{}
	mu      sync.Mutex
	running map[string]bool
	again   map[string]bool
}

// New returns a saga.
func New(cfg Config, repo Repo, drv driver.Driver, eng Engine, logger *slog.Logger, now func() time.Time, hooks Hooks) (*Saga, error) {
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
		kicks: make(chan string, 4096), sem: make(chan struct{}, cfg.Concurrency),
		running: map[string]bool{}, again: map[string]bool{},
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
		s.drive(ctx, id)
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

// sweep kicks every unfinished instance.
func (s *Saga) sweep(ctx context.Context) {
	ids, err := s.repo.Unfinished(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sweep unfinished instances", "err", err)
		}
		return
	}
	for _, id := range ids {
		s.Kick(id)
	}
}

// Resume re-adopts every node recorded in the database through the driver
// (the driver contract: Adopt before anything else after a restart) and
// kicks every unfinished instance.
func (s *Saga) Resume(ctx context.Context) error {
	ids, err := s.repo.WithNodes(ctx)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	for _, id := range ids {
		if err := s.adopt(ctx, id); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Error("adopt nodes", "instance", id, "err", err)
		}
	}
	s.sweep(ctx)
	return nil
}

func (s *Saga) adopt(ctx context.Context, id string) error {
	in, err := s.repo.GetAnyTenant(ctx, id)
	if err != nil {
		return err
	}
	log := s.log.With("tenant", in.Tenant, "instance", in.ID)
	updates := map[string]instance.NodeUpdate{}
	for _, n := range in.Nodes {
		switch n.State {
		case instance.NodeCreated, instance.NodeRunning, instance.NodeStopped:
		default:
			continue // creating: the step that resumes finishes or destroys it
		}
		st, err := s.drv.Adopt(ctx, s.spec(in, &n), s.record(in, &n))
		switch {
		case errors.Is(err, driver.ErrNotFound):
			log.Error("node lost: its data is gone", "node", n.ID)
			updates[n.ID] = instance.NodeUpdate{State: instance.NodeStopped}
		case err != nil:
			return fmt.Errorf("adopt node %s: %w", n.ID, err)
		default:
			state := instance.NodeStopped
			if st.State == driver.StateRunning || st.State == driver.StateStarting {
				state = instance.NodeRunning
			}
			if n.State == instance.NodeCreated {
				state = instance.NodeCreated
			}
			updates[n.ID] = instance.NodeUpdate{State: state, PID: st.Node.PID, Address: st.Node.Address, DataDir: st.Node.DataDir}
			log.Info("node adopted", "node", n.ID, "pid", st.Node.PID, "state", string(st.State))
		}
	}
	if len(updates) == 0 {
		return nil
	}
	_, err = s.repo.Update(ctx, id, func(c *mysqlrepo.Change) error {
		for nid, u := range updates {
			if err := c.Instance.RecordNode(nid, u, s.now()); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// errHalted stops the saga for an instance without touching it.
var errHalted = errors.New("halted by test hook")

func (s *Saga) hook(ctx context.Context, in *instance.Instance, step instance.Step) error {
	if s.hooks.BeforeStep == nil {
		return nil
	}
	if err := s.hooks.BeforeStep(ctx, in.ID, step); err != nil {
		return fmt.Errorf("%w: %v", errHalted, err)
	}
	return nil
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

// step performs the next step of in; more reports whether another may
// follow, and next, when not nil, is the instance as the step committed it.
func (s *Saga) step(ctx context.Context, in *instance.Instance) (next *instance.Instance, more bool, err error) {
	now := s.now()
	switch in.State {
	case instance.StateProvisioning:
		switch in.Step {
		case instance.StepPlacing:
			if now.Sub(in.StepAt) > s.cfg.PlacementTimeout {
				return nil, true, s.startRollback(ctx, in.ID, fmt.Sprintf("no placement decision within %s", s.cfg.PlacementTimeout))
			}
			return nil, false, nil
		case instance.StepCreating, instance.StepReplicating, instance.StepVerifying:
			if now.Sub(in.CreatedAt) > s.cfg.ProvisionTimeout {
				return nil, true, s.startRollback(ctx, in.ID, fmt.Sprintf("not ready within %s (step %s)", s.cfg.ProvisionTimeout, in.Step))
			}
			if err := s.hook(ctx, in, in.Step); err != nil {
				return nil, false, err
			}
			return s.createStep(ctx, in)
		case instance.StepRollingBack:
			if err := s.hook(ctx, in, in.Step); err != nil {
				return nil, false, err
			}
			return nil, true, s.rollback(ctx, in)
		}
	case instance.StateUpdating:
		if err := s.hook(ctx, in, instance.StepApplying); err != nil {
			return nil, false, err
		}
		return nil, true, s.applyUpdate(ctx, in)
	case instance.StateDeleting:
		if err := s.hook(ctx, in, instance.StepDestroying); err != nil {
			return nil, false, err
		}
		return nil, true, s.destroy(ctx, in)
	}
	return nil, false, nil
}

// permanent reports driver errors that retrying cannot fix.
func permanent(err error) bool {
	return driver.IsSpecError(err) || errors.Is(err, driver.ErrUnsupported) || errors.Is(err, driver.ErrConflict) ||
		errors.Is(err, instance.ErrInvalid)
}

// createStep runs one create step with retries; a step that cannot succeed
// starts the rollback. The step's node results and the move to the next
// step are committed in one transaction.
func (s *Saga) createStep(ctx context.Context, in *instance.Instance) (*instance.Instance, bool, error) {
	stepCtx, cancel := context.WithTimeout(ctx, s.cfg.StepTimeout)
	defer cancel()
	policy := retry.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}
	var next instance.Step
	var nodes map[string]instance.NodeUpdate
	first := true
	err := retry.Do(stepCtx, policy, func(ctx context.Context) error {
		// in was read (or committed) just now: the first attempt uses it,
		// a retry reads the instance again.
		cur := in
		if !first {
			var err error
			if cur, err = s.repo.GetAnyTenant(ctx, in.ID); err != nil {
				return err
			}
		}
		first = false
		if cur.State != instance.StateProvisioning || cur.Step != in.Step {
			next = ""
			return nil // changed under us (a delete): the next round sees it
		}
		var stepErr error
		switch in.Step {
		case instance.StepCreating:
			nodes, stepErr = s.createNodes(ctx, cur)
			next = instance.StepReplicating
		case instance.StepReplicating:
			stepErr, next = s.replicate(ctx, cur), instance.StepVerifying
		case instance.StepVerifying:
			stepErr, next = s.eng.Verify(ctx, cur, ulid.Make().String()), instance.StepDone
		}
		if stepErr != nil && permanent(stepErr) {
			return retry.Permanent(stepErr)
		}
		return stepErr
	})
	if ctx.Err() != nil {
		return nil, false, ctx.Err()
	}
	if errors.Is(err, errHalted) {
		return nil, false, err
	}
	if err != nil {
		return nil, true, s.startRollback(ctx, in.ID, fmt.Sprintf("%s: %v", in.Step, err))
	}
	if next == "" {
		return nil, true, nil
	}
	out, err := s.repo.Update(ctx, in.ID, func(c *mysqlrepo.Change) error {
		cur := c.Instance
		if err := s.applyNodes(cur, nodes); err != nil {
			return err
		}
		if cur.State != instance.StateProvisioning || cur.Step != in.Step {
			if len(nodes) > 0 {
				return nil // keep what the driver did; the next round sees the change
			}
			return mysqlrepo.ErrNoChange
		}
		if next == instance.StepDone {
			if err := cur.MarkReady(s.now()); err != nil {
				return err
			}
			cur.Sync(c.Op, s.now())
			return s.emitInstance(c, events.TypeInstanceReady)
		}
		if err := cur.Advance(next, s.now()); err != nil {
			return err
		}
		cur.Sync(c.Op, s.now())
		return nil
	})
	if err != nil {
		return nil, true, err
	}
	if next == instance.StepDone {
		s.log.Info("instance ready", "tenant", in.Tenant, "instance", in.ID, "took", s.now().Sub(in.CreatedAt))
	}
	return out, true, nil
}

// applyNodes records node results on in, leaving destroyed nodes alone.
func (s *Saga) applyNodes(in *instance.Instance, updates map[string]instance.NodeUpdate) error {
	for nid, u := range updates {
		if n, ok := in.Node(nid); ok && n.State == instance.NodeDestroyed {
			continue
		}
		if err := in.RecordNode(nid, u, s.now()); err != nil {
			return err
		}
	}
	return nil
}

func (s *Saga) recordNodes(ctx context.Context, id string, updates map[string]instance.NodeUpdate) error {
	_, err := s.repo.Update(ctx, id, func(c *mysqlrepo.Change) error {
		for nid, u := range updates {
			if err := c.Instance.RecordNode(nid, u, s.now()); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// createNodes creates and starts every node not running yet and returns
// what to record of them, which the caller commits with the step's advance.
// Ports and settings are fixed (persisted, nodes "creating") before the
// driver is called, so a re-run after a crash asks the driver for exactly
// the same node; a node started but not yet recorded is found again by the
// driver (its pid file) on a re-run or a rollback. When a node fails, the
// nodes that did start are recorded before the error is returned.
func (s *Saga) createNodes(ctx context.Context, in *instance.Instance) (map[string]instance.NodeUpdate, error) {
	prep := map[string]instance.NodeUpdate{}
	for i := range in.Nodes {
		n := &in.Nodes[i]
		if n.State != instance.NodePending {
			continue
		}
		u := instance.NodeUpdate{State: instance.NodeCreating, Port: n.Port, Settings: n.Settings}
		if u.Port == 0 {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			u.Port = p
		}
		if u.Settings == nil {
			set, err := settings(in)
			if err != nil {
				return nil, retry.Permanent(err)
			}
			u.Settings = set
		}
		prep[n.ID] = u
		n.State, n.Port, n.Settings = u.State, u.Port, u.Settings
	}
	if len(prep) > 0 {
		if err := s.recordNodes(ctx, in.ID, prep); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	done := map[string]instance.NodeUpdate{}
	err := parallel(in.Nodes, func(n *instance.Node) error {
		if n.State == instance.NodeRunning {
			if st, err := s.drv.Status(ctx, n.ID); err == nil && st.State == driver.StateRunning {
				return nil
			}
		}
		if _, err := s.drv.Create(ctx, s.spec(in, n)); err != nil {
			return err
		}
		rec, err := s.drv.Start(ctx, n.ID)
		if err != nil {
			return err
		}
		mu.Lock()
		done[n.ID] = instance.NodeUpdate{State: instance.NodeRunning, Address: rec.Address, DataDir: rec.DataDir, PID: rec.PID}
		mu.Unlock()
		return nil
	})
	if err != nil {
		if len(done) > 0 {
			if rerr := s.recordNodes(ctx, in.ID, done); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return nil, err
	}
	return done, nil
}

// replicate configures the primary first, then every replica.
func (s *Saga) replicate(ctx context.Context, in *instance.Instance) error {
	p, ok := in.Primary()
	if !ok {
		return retry.Permanent(errors.New("no primary"))
	}
	if err := s.drv.ConfigurePrimary(ctx, p.ID, driver.PrimaryOpts{SemiSync: in.Plan.SemiSync()}); err != nil {
		return err
	}
	ep, err := endpointOf(p.Address)
	if err != nil {
		return retry.Permanent(err)
	}
	return parallelPtr(in.Replicas(), func(n *instance.Node) error {
		return s.drv.ConfigureReplica(ctx, n.ID, driver.ReplicaOpts{Primary: ep, SemiSync: semiSync(in, n)})
	})
}

func semiSync(in *instance.Instance, n *instance.Node) bool {
	// A replica across the region link stays asynchronous: waiting on it
	// would put a WAN round trip into every commit (nettune: SemiSync false).
	return in.Plan.SemiSync() && n.RegionRole != instance.RegionDR
}

func (s *Saga) startRollback(ctx context.Context, id, reason string) error {
	_, err := s.repo.Update(ctx, id, func(c *mysqlrepo.Change) error {
		if c.Instance.State != instance.StateProvisioning {
			return mysqlrepo.ErrNoChange
		}
		if err := c.Instance.StartRollback(reason, s.now()); err != nil {
			return err
		}
		c.Instance.Sync(c.Op, s.now())
		return nil
	})
	if err == nil {
		s.log.Warn("create failed; rolling back", "instance", id, "reason", reason)
	}
	return err
}

// rollback destroys every node a failed create made and marks it failed;
// the failed event tells scheduling to release the reservation.
func (s *Saga) rollback(ctx context.Context, in *instance.Instance) error {
	if err := s.destroyNodes(ctx, in); err != nil {
		return err
	}
	_, err := s.repo.Update(ctx, in.ID, func(c *mysqlrepo.Change) error {
		if c.Instance.State != instance.StateProvisioning || c.Instance.Step != instance.StepRollingBack {
			return mysqlrepo.ErrNoChange
		}
		if err := c.Instance.MarkFailed(s.now()); err != nil {
			return err
		}
		c.Instance.Sync(c.Op, s.now())
		return s.emitInstance(c, events.TypeInstanceFailed)
	})
	if err == nil {
		s.log.Warn("instance failed", "tenant", in.Tenant, "instance", in.ID, "reason", in.Reason)
	}
	return err
}

func (s *Saga) destroy(ctx context.Context, in *instance.Instance) error {
	if err := s.destroyNodes(ctx, in); err != nil {
		return err
	}
	if err := s.repo.DeleteBindings(ctx, in.ID); err != nil {
		return err
	}
	_, err := s.repo.Update(ctx, in.ID, func(c *mysqlrepo.Change) error {
		if c.Instance.State != instance.StateDeleting {
			return mysqlrepo.ErrNoChange
		}
		if err := c.Instance.MarkDeleted(s.now()); err != nil {
			return err
		}
		c.Instance.Sync(c.Op, s.now())
		return s.emitInstance(c, events.TypeInstanceDeleted)
	})
	if err == nil {
		s.log.Info("instance deleted", "tenant", in.Tenant, "instance", in.ID)
	}
	return err
}

// destroyNodes destroys every node that may exist, adopting nodes the
// driver does not know (a restart) first.
func (s *Saga) destroyNodes(ctx context.Context, in *instance.Instance) error {
	return parallel(in.Nodes, func(n *instance.Node) error {
		if n.State == instance.NodePending || n.State == instance.NodeDestroyed {
			return nil
		}
		spec := s.spec(in, n)
		if _, err := s.drv.Status(ctx, n.ID); errors.Is(err, driver.ErrNotFound) {
			if n.State == instance.NodeCreating {
				// Possibly half-created by a process that died: Create
				// finishes or clears it, so Destroy can remove it.
				if _, err := s.drv.Create(ctx, spec); err != nil && !errors.Is(err, driver.ErrConflict) {
					s.log.Warn("complete half-created node before destroying it", "instance", in.ID, "node", n.ID, "err", err)
				}
			} else if _, err := s.drv.Adopt(ctx, spec, s.record(in, n)); err != nil && !errors.Is(err, driver.ErrNotFound) {
				return fmt.Errorf("adopt node %s to destroy it: %w", n.ID, err)
			}
		}
		if err := s.drv.Destroy(ctx, n.ID); err != nil {
			return fmt.Errorf("destroy node %s: %w", n.ID, err)
		}
		return s.recordNodes(ctx, in.ID, map[string]instance.NodeUpdate{n.ID: {State: instance.NodeDestroyed}})
	})
}

func (s *Saga) applyUpdate(ctx context.Context, in *instance.Instance) error {
	set, err := parameterSettings(in.Plan.Engine, in.Parameters)
	if err == nil {
		applyCtx, cancel := context.WithTimeout(ctx, s.cfg.StepTimeout)
		err = s.eng.Apply(applyCtx, in, set)
		cancel()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	_, uerr := s.repo.Update(ctx, in.ID, func(c *mysqlrepo.Change) error {
		if c.Instance.State != instance.StateUpdating {
			return mysqlrepo.ErrNoChange
		}
		if err != nil {
			c.Op.Fail(err.Error(), s.now())
			return c.Instance.AbortUpdate(s.now())
		}
		if err := c.Instance.MarkReady(s.now()); err != nil {
			return err
		}
		c.Instance.Sync(c.Op, s.now())
		return s.emitInstance(c, events.TypeInstanceUpdated)
	})
	return uerr
}

func (s *Saga) emitInstance(c *mysqlrepo.Change, typ string) error {
	e, err := InstanceEvent(typ, c.Instance, s.now())
	if err != nil {
		return err
	}
	c.Emit(events.TopicInstances, e)
	return nil
}

// InstanceEvent builds a lifecycle event of type typ from the instance.
func InstanceEvent(typ string, in *instance.Instance, now time.Time) (eventbus.Event, error) {
	vcpu, mem, storage := in.Usage()
	p := events.Instance{
		InstanceID: in.ID, TenantID: in.Tenant, Name: in.Name, PlanID: in.Plan.ID, Engine: in.Plan.Engine,
		Version: in.Version, DeploymentMode: in.Plan.DeploymentMode, State: string(in.State), OperationID: in.OperationID,
		Reason: in.Reason, VCPU: vcpu, MemoryMB: mem, StorageGB: storage, Nodes: []events.Node{}, OccurredAt: now,
	}
	for _, n := range in.Nodes {
		p.Nodes = append(p.Nodes, events.Node{ID: n.ID, Name: n.Name, Role: string(n.Role), Region: n.Region, AZ: n.AZ, Host: n.Host, Address: n.Address, State: string(n.State)})
	}
	ep := in.Endpoints()
	p.Endpoints = events.Endpoints{Primary: ep.Primary, Replicas: ep.Replicas}
	e, err := eventbus.NewEvent(typ, events.SourceProvisioning, in.ID, p)
	if err != nil {
		return e, err
	}
	e.Tenant = in.Tenant
	e.Time = now
	return e, nil
}

// spec is the driver's spec of a node, rebuilt identically from the
// database on every call (the driver compares it on Create and Adopt).
func (s *Saga) spec(in *instance.Instance, n *instance.Node) driver.NodeSpec {
	spec := driver.NodeSpec{
		InstanceID: in.ID, NodeID: n.ID, Engine: driver.Engine(in.Plan.Engine), Version: s.driverVersion(in.Version),
		Role: driver.Role(n.Role), Port: n.Port, DataRoot: s.cfg.DataRoot, Settings: n.Settings,
		SemiSync:    semiSync(in, n),
		Admin:       driver.Credentials(in.Accounts.Admin),
		Monitor:     driver.Credentials(in.Accounts.Monitor),
		Replication: driver.Credentials(in.Accounts.Replication),
		Placement:   driver.Placement{Region: n.Region, Zone: n.AZ, Host: n.Host},
	}
	if in.Plan.Engine == instance.EngineMySQL {
		spec.Database = engineadmin.Database(in)
	} else {
		spec.MemoryLimitBytes = in.Plan.Resources.MemoryMB << 20
	}
	return spec
}

func (s *Saga) record(in *instance.Instance, n *instance.Node) driver.Node {
	return driver.Node{ID: n.ID, InstanceID: in.ID, Engine: driver.Engine(in.Plan.Engine), Role: driver.Role(n.Role),
		PID: n.PID, Port: n.Port, Address: n.Address, DataDir: n.DataDir}
}

// driverVersion maps a catalog version to what the driver runs.
func (s *Saga) driverVersion(v string) string {
	v = strings.TrimPrefix(v, "mariadb-")
	if s.cfg.ExactVersions || v == "" {
		return v
	}
	if strings.Count(v, ".") >= 1 && !strings.HasPrefix(v, "10.") && !strings.HasPrefix(v, "11.") {
		return strings.SplitN(v, ".", 2)[0]
	}
	return v
}

// settings are a new node's engine settings: the tuning profile of the
// plan's deployment mode, overridden by the tenant's parameters.
func settings(in *instance.Instance) (map[string]string, error) {
	mode, err := nettune.ParseMode(in.Plan.DeploymentMode)
	if err != nil {
		return nil, err
	}
	prof, err := nettune.Default(mode)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	switch in.Plan.Engine {
	case instance.EngineMySQL:
		for k, v := range prof.MariaDB.Server.Map() {
			// The driver manages the semi-sync switches itself.
			if strings.HasPrefix(k, "rpl_semi_sync_master_wait_point") {
				continue
			}
			out[k] = v
		}
	case instance.EngineRedis:
		for k, v := range prof.Redis.Map() {
			out[k] = v
		}
	}
	params, err := parameterSettings(in.Plan.Engine, in.Parameters)
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		out[k] = v
	}
	return out, nil
}

// parameterSettings renders plan parameters as engine settings through the
// engine's allowlist: a parameter that is not a tunable setting of the engine
// (or has a bad value) is instance.ErrInvalid and never reaches a node.
func parameterSettings(engine string, params map[string]any) (map[string]string, error) {
	out, err := tunables.Render(engine, params)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", instance.ErrInvalid, err)
	}
	return out, nil
}

// SysctlsFor is the kernel tuning recorded on every node of a mode.
func SysctlsFor(mode string) ([]instance.Setting, error) {
	m, err := nettune.ParseMode(mode)
	if err != nil {
		return nil, err
	}
	p, err := nettune.Default(m)
	if err != nil {
		return nil, err
	}
	out := make([]instance.Setting, 0, len(p.Sysctls))
	for _, st := range p.Sysctls {
		out = append(out, instance.Setting{Key: st.Key, Value: st.Value, Why: st.Why})
	}
	return out, nil
}

func endpointOf(addr string) (driver.Endpoint, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return driver.Endpoint{}, fmt.Errorf("node address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return driver.Endpoint{}, fmt.Errorf("node address %q: %w", addr, err)
	}
	return driver.Endpoint{Host: host, Port: p}, nil
}

// freePort asks the kernel for a free loopback port (placements without a
// port: inventories that give hosts no port range).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// parallel runs fn for every node at once and joins the errors.
func parallel[T any](items []T, fn func(*T) error) error {
	return parallelPtr(ptrs(items), fn)
}

func ptrs[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

func parallelPtr[T any](items []*T, fn func(*T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
