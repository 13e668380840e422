// Package intake fills the router's table from Kafka and from provisioning.
// Every router replica serves every instance, so each follows the instance,
// failover and health topics in a consumer group of its own (no partition
// is shared with another replica), starting at the latest offsets, and
// resyncs the whole table from provisioning's router view whenever its
// group is assigned (at start, after a rebalance) and periodically: a
// replica that missed events converges without anyone's help. It decides
// nothing; the table holds the state and the proxy acts on it.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/router/internal/provview"
	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// GroupPrefix prefixes each replica's consumer group.
const GroupPrefix = "router.follow."

// Source is provisioning's router view; *provview.Client fits.
type Source interface {
	List(ctx context.Context) ([]table.Instance, error)
	Get(ctx context.Context, instanceID string) (table.Instance, error)
}

// Config configures the intake.
type Config struct {
	Brokers []string
	// Replica names this replica (its consumer group).
	Replica string
	// ResyncInterval is how often the whole table is re-read (default 1m).
	ResyncInterval time.Duration
	// MaxWait bounds how long a fetch waits on an idle partition: the
	// delay between a recovery's event and the switch (default 50ms).
	MaxWait time.Duration
}

// Intake runs the consumer group and the resyncs.
type Intake struct {
	cfg    Config
	tbl    *table.Table
	source Source
	logger *slog.Logger
	sub    *eventbus.Subscriber

	mu     sync.Mutex
	synced chan struct{} // closed after the first successful resync
	once   sync.Once
	resync chan struct{}
}

// New returns the intake; reg receives the subscriber's metrics.
func New(cfg Config, tbl *table.Table, source Source, logger *slog.Logger, reg prometheus.Registerer) (*Intake, error) {
	if len(cfg.Brokers) == 0 || cfg.Replica == "" {
		return nil, errors.New("intake: brokers and replica are required")
	}
	if tbl == nil || source == nil || logger == nil {
		return nil, errors.New("intake: nil table, source or logger")
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = time.Minute
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 50 * time.Millisecond
	}
	in := &Intake{cfg: cfg, tbl: tbl, source: source, logger: logger.With("component", "intake"),
		synced: make(chan struct{}), resync: make(chan struct{}, 1)}
	var err error
	in.sub, err = eventbus.NewSubscriber(eventbus.SubscriberConfig{Brokers: cfg.Brokers, GroupID: GroupPrefix + cfg.Replica,
		Topics: []string{events.TopicInstances, events.TopicFailover, events.TopicHealth}, StartOffset: eventbus.StartLatest,
		MaxWait: cfg.MaxWait}, in.Handle, in.logger, reg, eventbus.OnAssigned(in.assigned))
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	return in, nil
}

// Synced is closed once the table was read from provisioning in full: the
// router serves what it knows before, but is not ready.
func (in *Intake) Synced() <-chan struct{} { return in.synced }

// Run consumes and resyncs until ctx ends.
func (in *Intake) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- in.sub.Run(ctx) }()
	t := time.NewTicker(in.cfg.ResyncInterval)
	defer t.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	for {
		select {
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("intake: %w", err)
			}
			return nil
		case <-t.C:
		case <-in.resync:
		case <-retry.C:
		}
		if err := in.Resync(ctx); err != nil && ctx.Err() == nil {
			in.logger.Warn("resync from provisioning failed; retrying", "err", err)
			retry.Reset(2 * time.Second)
		}
	}
}

// assigned asks for a resync once the group holds its partitions, so
// nothing published between the read and the join is missed.
func (in *Intake) assigned(context.Context, eventbus.Assignment) {
	select {
	case in.resync <- struct{}{}:
	default:
	}
}

// Resync reads every served instance from provisioning into the table and
// forgets the ones it no longer serves.
func (in *Intake) Resync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := in.source.List(ctx)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	seen := make(map[string]bool, len(list))
	for _, i := range list {
		seen[i.ID] = true
		in.tbl.Apply(i)
	}
	dropped := in.tbl.Retain(seen)
	in.once.Do(func() { close(in.synced) })
	in.logger.Debug("resynced from provisioning", "instances", len(list), "dropped", dropped)
	return nil
}

// Handle applies one event to the table.
func (in *Intake) Handle(ctx context.Context, ev eventbus.Event) error {
	switch {
	case ev.Type == events.TypeInstanceDeleted:
		var i events.Instance
		if err := ev.Decode(&i); err != nil || i.InstanceID == "" {
			return eventbus.Poison(fmt.Errorf("event %s: instance deleted without instance_id: %v", ev.ID, err))
		}
		in.tbl.Remove(i.InstanceID)
		return nil
	case events.IsInstanceEvent(ev.Type):
		var i lifecycle
		if err := ev.Decode(&i); err != nil || i.InstanceID == "" {
			return eventbus.Poison(fmt.Errorf("event %s: instance event without instance_id: %v", ev.ID, err))
		}
		in.applyEvent(i)
		in.refresh(ctx, i.InstanceID)
		return nil
	case ev.Type == events.TypeBindingCreated || ev.Type == events.TypeBindingDeleted:
		var b events.Binding
		if err := ev.Decode(&b); err != nil || b.InstanceID == "" {
			return eventbus.Poison(fmt.Errorf("event %s: binding event without instance_id: %v", ev.ID, err))
		}
		in.refresh(ctx, b.InstanceID)
		return nil
	case ev.Type == events.TypeFailoverStarted || ev.Type == events.TypeFailoverCompleted || ev.Type == events.TypeFailoverFailed:
		var r events.Recovery
		if err := ev.Decode(&r); err != nil || r.InstanceID == "" {
			return eventbus.Poison(fmt.Errorf("event %s: recovery without instance_id: %v", ev.ID, err))
		}
		switch ev.Type {
		case events.TypeFailoverStarted:
			in.tbl.Switching(r.InstanceID, r.FencingToken)
		case events.TypeFailoverCompleted:
			in.tbl.Promoted(r.InstanceID, r.FencingToken, r.Roles)
			in.logger.Info("primary moved", "instance_id", r.InstanceID, "tenant", r.TenantID, "new_primary", r.NewPrimary,
				"address", r.NewPrimaryAddress, "kind", r.Kind)
		default:
			in.tbl.RecoveryEnded(r.InstanceID, r.FencingToken)
		}
		return nil
	case ev.Type == events.TypeNodeRejoined:
		var r events.NodeRejoined
		if err := ev.Decode(&r); err != nil || r.InstanceID == "" {
			return eventbus.Poison(fmt.Errorf("event %s: rejoin without instance_id: %v", ev.ID, err))
		}
		in.refresh(ctx, r.InstanceID)
		return nil
	case ev.Type == events.TypeNodeDown || ev.Type == events.TypeNodeUp:
		var t events.NodeTransition
		if err := ev.Decode(&t); err != nil || t.InstanceID == "" || t.NodeID == "" {
			return eventbus.Poison(fmt.Errorf("event %s: transition without instance_id or node_id: %v", ev.ID, err))
		}
		in.tbl.NodeHealth(t.InstanceID, t.NodeID, ev.Type == events.TypeNodeDown)
		return nil
	default:
		return nil
	}
}

// lifecycle is a provisioning.instance.* payload with the router's fields.
type lifecycle struct {
	events.Instance
	FailoverToken int64 `json:"failover_token"`
	Router        struct {
		RW string `json:"rw"`
		RO string `json:"ro"`
	} `json:"endpoints"`
}

// applyEvent takes what a lifecycle event carries (nodes, roles, ports,
// failover token); the bindings stay those the table holds until the
// refresh or the next resync.
func (in *Intake) applyEvent(e lifecycle) {
	cur, known := in.tbl.Get(e.InstanceID)
	next := table.Instance{ID: e.InstanceID, Tenant: e.TenantID, Name: e.Name, Engine: table.Engine(e.Engine), State: e.State,
		RWPort: portOf(e.Router.RW), ROPort: portOf(e.Router.RO), FailoverToken: e.FailoverToken}
	if known {
		next.Bindings = cur.Bindings
	}
	if next.RWPort == 0 && !known {
		return // not served by the router (no ports allocated)
	}
	for _, n := range e.Nodes {
		if n.Address == "" {
			continue
		}
		next.Nodes = append(next.Nodes, table.Node{ID: n.ID, Address: n.Address, Role: table.Role(n.Role)})
	}
	in.tbl.Apply(next)
}

// refresh re-reads one instance; a failure leaves the table as the event
// left it (the next resync repairs it).
func (in *Intake) refresh(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	i, err := in.source.Get(ctx, id)
	switch {
	case errors.Is(err, provview.ErrNotFound):
		in.tbl.Remove(id)
	case err != nil:
		in.logger.Warn("refresh instance from provisioning failed; the next resync repairs it", "instance_id", id, "err", err)
	default:
		in.tbl.Apply(i)
	}
}

func portOf(hostport string) int {
	if hostport == "" {
		return 0
	}
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
