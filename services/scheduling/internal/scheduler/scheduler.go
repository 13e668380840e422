// Package scheduler is the scheduling application service: it keeps the
// in-memory cluster that placement decisions run on in step with the
// database, makes decisions durable through the repository (retrying when a
// decision went stale because another replica booked the same capacity),
// re-places failed nodes, confirms and releases reservations, and reaps the
// ones provisioning never confirmed. Transports (HTTP, Kafka) call it; it
// knows neither.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// Repo is the persistence the scheduler needs (implemented by mysqlrepo).
type Repo interface {
	LoadInventory(ctx context.Context) (inventory.Inventory, map[string]map[int]string, error)
	LoadHosts(ctx context.Context, ids []string) ([]inventory.Host, map[string]map[int]string, error)
	Reserve(ctx context.Context, req placement.Request, d placement.Decision, replaced string, expiresAt time.Time) error
	RecordFailure(ctx context.Context, req placement.Request, reason string, ex *placement.Explanation) error
	GetPlacement(ctx context.Context, instanceID string) (placement.Record, error)
	Confirm(ctx context.Context, instanceID string) (placement.Record, error)
	Release(ctx context.Context, instanceID, reason string, onlyExpiredAt *time.Time) ([]placement.Assignment, error)
	Expired(ctx context.Context, now time.Time, limit int) ([]string, error)
}

// Config tunes the scheduler service.
type Config struct {
	// Placement configures the decision pipeline.
	Placement placement.Config `yaml:"placement" envPrefix:"PLACEMENT_"`
	// ReservationTTL is how long a reservation waits for provisioning to
	// confirm it before the reaper releases it.
	ReservationTTL time.Duration `yaml:"reservation_ttl" env:"RESERVATION_TTL" default:"10m"`
	// ReapInterval is how often expired reservations are looked for.
	ReapInterval time.Duration `yaml:"reap_interval" env:"REAP_INTERVAL" default:"15s"`
	// RefreshInterval is how often the whole inventory is re-read, to see
	// what other replicas booked and released.
	RefreshInterval time.Duration `yaml:"refresh_interval" env:"REFRESH_INTERVAL" default:"30s"`
	// RefreshOnRefusalAfter: a refusal re-reads the inventory and tries once
	// more when the last read is older than this.
	RefreshOnRefusalAfter time.Duration `yaml:"refresh_on_refusal_after" env:"REFRESH_ON_REFUSAL_AFTER" default:"1s"`
	// MaxAttempts bounds decide+reserve rounds when reservations go stale.
	MaxAttempts int `yaml:"max_attempts" env:"MAX_ATTEMPTS" default:"16"`
}

func (c Config) withDefaults() Config {
	if c.ReservationTTL <= 0 {
		c.ReservationTTL = 10 * time.Minute
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = 15 * time.Second
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 30 * time.Second
	}
	if c.RefreshOnRefusalAfter <= 0 {
		c.RefreshOnRefusalAfter = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 16
	}
	return c
}

// PlacementEngine places instances and keeps their reservations.
type PlacementEngine struct {
	cfg    Config
	repo   Repo
	sched  *placement.Pipeline
	logger *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	cluster  *placement.Cluster
	loadedAt time.Time
	// staleSeen is set when a reservation went stale since the last Load:
	// the cluster may be behind other replicas, so a refusal re-reads first.
	staleSeen bool
	// inflight holds what this process booked in memory and is still writing
	// to the database, so re-reads of hosts do not forget it.
	inflight map[string]inflightHost

	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
	stale     prometheus.Counter
}

type inflightHost struct {
	res   inventory.Resources
	ports map[int]string
}

// New builds a scheduler; call Load before use. reg may be nil.
func New(cfg Config, repo Repo, logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*PlacementEngine, error) {
	if repo == nil {
		return nil, errors.New("scheduler: nil repo")
	}
	if logger == nil {
		return nil, errors.New("scheduler: nil logger")
	}
	if now == nil {
		now = time.Now
	}
	cfg = cfg.withDefaults()
	ps, err := placement.New(cfg.Placement)
	if err != nil {
		return nil, err
	}
	s := &PlacementEngine{
		cfg: cfg, repo: repo, sched: ps, logger: logger, now: now,
		inflight: map[string]inflightHost{},
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canopy_scheduling_decisions_total", Help: "Placement decisions by kind and result (placed, refused, invalid, error).",
		}, []string{"kind", "result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "canopy_scheduling_decision_seconds", Help: "Time to decide a placement in memory.",
			Buckets: []float64{.00002, .00005, .0001, .0002, .0005, .001, .002, .005, .01, .05},
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canopy_scheduling_stale_reservations_total", Help: "Reservations retried because another scheduler booked the capacity first.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.decisions, s.latency, s.stale} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("scheduler metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Config returns the effective configuration.
func (s *PlacementEngine) Config() Config { return s.cfg }

// Filters lists the pipeline's filters in order.
func (s *PlacementEngine) Filters() []string { return s.sched.Filters() }

// Load (re)reads the whole inventory from the database.
func (s *PlacementEngine) Load(ctx context.Context) error {
	inv, ports, err := s.repo.LoadInventory(ctx)
	if err != nil {
		return fmt.Errorf("load inventory: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range inv.Hosts {
		if f, ok := s.inflight[inv.Hosts[i].ID]; ok {
			inv.Hosts[i].Allocated = inv.Hosts[i].Allocated.Add(f.res)
			inv.Hosts[i].Capacity = maxRes(inv.Hosts[i].Capacity, inv.Hosts[i].Allocated)
		}
	}
	c, err := placement.NewCluster(inv)
	if err != nil {
		return fmt.Errorf("load inventory: %w", err)
	}
	for host, p := range ports {
		merged := mergePorts(p, s.inflight[host].ports)
		if err := c.SetPorts(host, merged); err != nil {
			return fmt.Errorf("load inventory: %w", err)
		}
	}
	for host, f := range s.inflight {
		if _, ok := ports[host]; !ok && len(f.ports) > 0 {
			_ = c.SetPorts(host, f.ports)
		}
	}
	s.cluster = c
	s.loadedAt = s.now()
	s.staleSeen = false
	return nil
}

func maxRes(a, b inventory.Resources) inventory.Resources {
	return inventory.Resources{MilliCPU: max(a.MilliCPU, b.MilliCPU), MemoryMB: max(a.MemoryMB, b.MemoryMB), StorageGB: max(a.StorageGB, b.StorageGB)}
}

func mergePorts(a, b map[int]string) map[int]string {
	out := make(map[int]string, len(a)+len(b))
	for p, o := range a {
		out[p] = o
	}
	for p, o := range b {
		out[p] = o
	}
	return out
}

// refreshHosts re-reads hosts from the database into the cluster.
func (s *PlacementEngine) refreshHosts(ctx context.Context, ids []string) error {
	hosts, ports, err := s.repo.LoadHosts(ctx, ids)
	if err != nil {
		return fmt.Errorf("refresh hosts: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range hosts {
		f := s.inflight[h.ID]
		h.Allocated = h.Allocated.Add(f.res)
		h.Capacity = maxRes(h.Capacity, h.Allocated)
		if err := s.cluster.UpsertHost(h); err != nil {
			return fmt.Errorf("refresh host %s: %w", h.ID, err)
		}
		if err := s.cluster.SetPorts(h.ID, mergePorts(ports[h.ID], f.ports)); err != nil {
			return err
		}
	}
	return nil
}

// HostChanged puts a host written through the repository into the cluster.
func (s *PlacementEngine) HostChanged(ctx context.Context, id string) error {
	return s.refreshHosts(ctx, []string{id})
}

// Simulate decides without booking anything. It first re-reads the
// inventory when the last read is older than RefreshOnRefusalAfter: a
// simulation books nothing, so no conditional write would catch a host
// another replica cordoned or filled since, and an operator checks a
// cordon with it right after making it (on whichever replica).
func (s *PlacementEngine) Simulate(ctx context.Context, req placement.Request) (placement.Decision, error) {
	s.mu.Lock()
	old := s.cluster == nil || s.now().Sub(s.loadedAt) > s.cfg.RefreshOnRefusalAfter
	s.mu.Unlock()
	if old {
		if err := s.Load(ctx); err != nil {
			return placement.Decision{}, fmt.Errorf("simulate: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cluster == nil {
		return placement.Decision{}, errors.New("scheduler: inventory not loaded")
	}
	return s.sched.Decide(s.cluster, req)
}

// decideAndBook decides and books the decision in memory (and as in flight).
func (s *PlacementEngine) decideAndBook(req placement.Request) (placement.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cluster == nil {
		return placement.Decision{}, errors.New("scheduler: inventory not loaded")
	}
	start := time.Now()
	d, err := s.sched.Decide(s.cluster, req)
	s.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		return d, err
	}
	if err := s.cluster.Apply(req.InstanceID, d.Nodes); err != nil {
		return d, fmt.Errorf("book decision in memory: %w", err)
	}
	for _, n := range d.Nodes {
		f := s.inflight[n.HostID]
		f.res = f.res.Add(n.Resources)
		if f.ports == nil {
			f.ports = map[int]string{}
		}
		f.ports[n.Port] = req.InstanceID + "/" + n.Name
		s.inflight[n.HostID] = f
	}
	return d, nil
}

// settle ends the in-flight state of a decision; when it was not written, the
// in-memory booking is undone too.
func (s *PlacementEngine) settle(instanceID string, d placement.Decision, written bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range d.Nodes {
		f := s.inflight[n.HostID]
		f.res = f.res.Sub(n.Resources)
		delete(f.ports, n.Port)
		if f.res == (inventory.Resources{}) && len(f.ports) == 0 {
			delete(s.inflight, n.HostID)
		} else {
			s.inflight[n.HostID] = f
		}
	}
	if !written {
		s.cluster.Release(instanceID, d.Nodes)
	}
}

// Place decides and reserves a placement for a new instance. A refusal is
// recorded (and announced) and returned as *placement.RefusalError; invalid
// requests as *inventory.ValidationError, also recorded. An instance that
// already holds a placement gets that placement back.
func (s *PlacementEngine) Place(ctx context.Context, req placement.Request) (placement.Decision, error) {
	req.Kind = placement.KindNew
	return s.place(ctx, req, "")
}

// Replace re-places a failed node of a placed instance, keeping its mode's
// spread with the surviving nodes and avoiding the failed node's host.
func (s *PlacementEngine) Replace(ctx context.Context, instanceID, failedNode, requestID string) (placement.Decision, error) {
	rec, err := s.repo.GetPlacement(ctx, instanceID)
	if err != nil {
		return placement.Decision{}, err
	}
	if !rec.Status.Active() {
		return placement.Decision{}, fmt.Errorf("replace node of %s (status %s): %w", instanceID, rec.Status, placement.ErrNotPlaced)
	}
	req := rec.Request
	req.Kind, req.RequestID, req.Tenant = placement.KindReplace, requestID, rec.Tenant
	var failed *placement.Assignment
	for i, n := range rec.Nodes {
		if n.Name == failedNode {
			failed = &rec.Nodes[i]
			continue
		}
		req.Existing = append(req.Existing, placement.Placed{Name: n.Name, Role: n.Role, HostID: n.HostID})
	}
	if failed == nil {
		return placement.Decision{}, &inventory.ValidationError{Fields: []inventory.FieldError{{Field: "failed_node", Reason: fmt.Sprintf("instance %s has no node %q", instanceID, failedNode)}}}
	}
	req.Nodes = []placement.NodeSpec{{Name: failed.Name, Role: failed.Role, Resources: failed.Resources}}
	req.AvoidHosts = []string{failed.HostID}
	d, err := s.place(ctx, req, failedNode)
	if err == nil {
		s.mu.Lock()
		s.cluster.Release(instanceID, []placement.Assignment{*failed})
		s.mu.Unlock()
	}
	return d, err
}

func (s *PlacementEngine) place(ctx context.Context, req placement.Request, replaced string) (placement.Decision, error) {
	kind := string(req.Kind)
	retriedOnRefusal := false
	for attempt := 1; ; attempt++ {
		d, err := s.decideAndBook(req)
		var re *placement.RefusalError
		var ve *inventory.ValidationError
		switch {
		case errors.As(err, &re):
			s.mu.Lock()
			old := s.staleSeen || s.now().Sub(s.loadedAt) > s.cfg.RefreshOnRefusalAfter
			s.mu.Unlock()
			if !retriedOnRefusal && old {
				retriedOnRefusal = true
				if lerr := s.Load(ctx); lerr != nil {
					return d, lerr
				}
				continue
			}
			s.decisions.WithLabelValues(kind, "refused").Inc()
			ex := re.Explanation
			if ferr := s.repo.RecordFailure(ctx, req, ex.Summary, &ex); ferr != nil && !errors.Is(ferr, placement.ErrAlreadyPlaced) {
				return d, fmt.Errorf("record refusal of %s: %w", req.InstanceID, ferr)
			}
			return d, err
		case errors.As(err, &ve):
			s.decisions.WithLabelValues(kind, "invalid").Inc()
			if req.InstanceID != "" && len(req.InstanceID) <= 64 && len(req.Tenant) <= 64 && len(req.RequestID) <= 255 {
				if ferr := s.repo.RecordFailure(ctx, req, "invalid request: "+ve.Error(), nil); ferr != nil && !errors.Is(ferr, placement.ErrAlreadyPlaced) {
					return d, fmt.Errorf("record invalid request %s: %w", req.InstanceID, ferr)
				}
			}
			return d, err
		case err != nil:
			s.decisions.WithLabelValues(kind, "error").Inc()
			return d, err
		}
		err = s.repo.Reserve(ctx, req, d, replaced, s.now().Add(s.cfg.ReservationTTL))
		s.settle(req.InstanceID, d, err == nil)
		var se *placement.StaleError
		switch {
		case err == nil:
			s.decisions.WithLabelValues(kind, "placed").Inc()
			return d, nil
		case errors.As(err, &se) && attempt < s.cfg.MaxAttempts:
			s.stale.Inc()
			s.mu.Lock()
			s.staleSeen = true
			s.mu.Unlock()
			if rerr := s.refreshHosts(ctx, se.Hosts); rerr != nil {
				return d, rerr
			}
			continue
		case isRetryable(err) && attempt < s.cfg.MaxAttempts:
			continue
		case errors.Is(err, placement.ErrAlreadyPlaced):
			rec, gerr := s.repo.GetPlacement(ctx, req.InstanceID)
			if gerr != nil {
				return d, gerr
			}
			return decisionOf(rec), nil
		default:
			s.decisions.WithLabelValues(kind, "error").Inc()
			return d, fmt.Errorf("reserve %s: %w", req.InstanceID, err)
		}
	}
}

// retryable is implemented by errors the repository marks as transient.
func isRetryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

func decisionOf(rec placement.Record) placement.Decision {
	return placement.Decision{InstanceID: rec.InstanceID, Tenant: rec.Tenant, Kind: rec.Kind, Mode: rec.Mode, Nodes: rec.Nodes}
}

// Get returns the stored placement of an instance.
func (s *PlacementEngine) Get(ctx context.Context, instanceID string) (placement.Record, error) {
	return s.repo.GetPlacement(ctx, instanceID)
}

// Confirm marks an instance's reservation as confirmed by provisioning.
func (s *PlacementEngine) Confirm(ctx context.Context, instanceID string) (placement.Record, error) {
	return s.repo.Confirm(ctx, instanceID)
}

// Release frees an instance's reservation.
func (s *PlacementEngine) Release(ctx context.Context, instanceID, reason string) error {
	freed, err := s.repo.Release(ctx, instanceID, reason, nil)
	if err != nil {
		return err
	}
	s.forget(instanceID, freed)
	return nil
}

func (s *PlacementEngine) forget(instanceID string, freed []placement.Assignment) {
	if len(freed) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cluster.Release(instanceID, freed)
}

// Reap releases reservations not confirmed within the TTL and returns how
// many it released.
func (s *PlacementEngine) Reap(ctx context.Context) (int, error) {
	now := s.now().UTC()
	ids, err := s.repo.Expired(ctx, now, 500)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		freed, err := s.repo.Release(ctx, id, "reservation not confirmed within "+s.cfg.ReservationTTL.String(), &now)
		if err != nil {
			return n, fmt.Errorf("reap %s: %w", id, err)
		}
		if len(freed) > 0 {
			n++
			s.forget(id, freed)
			s.logger.Info("released unconfirmed reservation", "instance", id, "nodes", len(freed))
		}
	}
	return n, nil
}

// RunReaper reaps every ReapInterval until ctx ends.
func (s *PlacementEngine) RunReaper(ctx context.Context) error {
	return s.every(ctx, s.cfg.ReapInterval, func(ctx context.Context) error {
		_, err := s.Reap(ctx)
		return err
	}, "reap reservations")
}

// RunRefresher re-reads the inventory every RefreshInterval until ctx ends.
func (s *PlacementEngine) RunRefresher(ctx context.Context) error {
	return s.every(ctx, s.cfg.RefreshInterval, s.Load, "refresh inventory")
}

func (s *PlacementEngine) every(ctx context.Context, d time.Duration, fn func(context.Context) error, what string) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn(what+" failed", "err", err)
			}
		}
	}
}

// Reject records a request that cannot be served (malformed, unknown kind,
// nothing to replace) and announces it with a failed event.
func (s *PlacementEngine) Reject(ctx context.Context, req placement.Request, reason string) error {
	s.decisions.WithLabelValues(string(req.Kind), "invalid").Inc()
	err := s.repo.RecordFailure(ctx, req, reason, nil)
	if errors.Is(err, placement.ErrAlreadyPlaced) {
		return nil
	}
	return err
}
