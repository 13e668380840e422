// Package consumers feeds the failover watcher from Kafka. Ownership: every
// failover replica joins the failover.targets group on the instance topic
// and owns the instances whose events land on its partitions (as the health
// checker shares its targets), resyncing them from provisioning's failover
// view at every assignment. Signals: every replica also follows the health
// topic (a primary reported down triggers the analysis at once, a fenced
// node reported up triggers its rejoin) and the failover topic (a completed
// recovery or rejoin moves the roles of the instance, so every replica's
// watcher follows the new primary). It decides nothing: the watcher does.
package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Watcher is what ownership and signals are told; the watcher fits.
type Watcher interface {
	// Own starts watching an instance this replica now owns.
	Own(in topology.Instance)
	// Disown stops watching it (handed over, deleted).
	Disown(instanceID string)
	// Trigger asks for an analysis of the instance now.
	Trigger(instanceID string)
	// Update replaces a watched instance's topology (roles moved).
	Update(in topology.Instance)
}

// Source is provisioning's failover view; *provclient.Client fits.
type Source interface {
	List(ctx context.Context) ([]topology.Instance, error)
	Get(ctx context.Context, instanceID string) (topology.Instance, error)
}

// FollowGroupPrefix prefixes the per-replica consumer group of the health
// and failover topics: every replica must see every transition of the
// instances it owns, so they do not share one group.
const FollowGroupPrefix = events.GroupFailoverTargets + ".follow."

// Config configures the consumers.
type Config struct {
	Brokers []string
	// Replica names this replica (its follow group).
	Replica string
	// SessionTimeout is how long a silent replica keeps its partitions (10s).
	SessionTimeout time.Duration
}

// Consumers runs the ownership group and the follower.
type Consumers struct {
	cfg     Config
	watcher Watcher
	source  Source
	logger  *slog.Logger
	owner   *eventbus.Subscriber
	follow  *eventbus.Subscriber

	mu    sync.Mutex
	parts map[int]bool // owned partitions of the instance topic
	total int
	owned map[string]topology.Instance
	gone  map[string]bool // deleted: never owned again from a stale resync
}

// New returns the consumers; reg receives the subscribers' metrics.
func New(cfg Config, watcher Watcher, source Source, logger *slog.Logger, reg prometheus.Registerer) (*Consumers, error) {
	if len(cfg.Brokers) == 0 || cfg.Replica == "" {
		return nil, errors.New("consumers: brokers and replica are required")
	}
	if watcher == nil || source == nil || logger == nil {
		return nil, errors.New("consumers: nil watcher, source or logger")
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	c := &Consumers{cfg: cfg, watcher: watcher, source: source, logger: logger.With("component", "consumers"),
		parts: map[int]bool{}, owned: map[string]topology.Instance{}, gone: map[string]bool{}}
	var err error
	c.owner, err = eventbus.NewSubscriber(eventbus.SubscriberConfig{Brokers: cfg.Brokers, GroupID: events.GroupFailoverTargets,
		Topics: []string{events.TopicInstances}, SessionTimeout: cfg.SessionTimeout, HeartbeatInterval: time.Second,
		RebalanceTimeout: 10 * time.Second, StartOffset: eventbus.StartEarliest},
		func(ctx context.Context, ev eventbus.Event) error { return c.HandleInstance(ctx, ev.Partition, ev) },
		c.logger, reg, eventbus.OnAssigned(c.assigned), eventbus.OnRevoked(c.revoked), eventbus.Replay())
	if err != nil {
		return nil, fmt.Errorf("consumers: ownership: %w", err)
	}
	c.follow, err = eventbus.NewSubscriber(eventbus.SubscriberConfig{Brokers: cfg.Brokers, GroupID: FollowGroupPrefix + cfg.Replica,
		Topics: []string{events.TopicHealth, events.TopicFailover}, StartOffset: eventbus.StartLatest, MaxWait: 50 * time.Millisecond},
		c.HandleSignal, c.logger, reg)
	if err != nil {
		return nil, fmt.Errorf("consumers: follower: %w", err)
	}
	return c, nil
}

// RunOwnership joins the failover.targets group until ctx ends; leaving it
// hands the partitions to the other replicas at once.
func (c *Consumers) RunOwnership(ctx context.Context) error {
	err := c.owner.Run(ctx)
	c.setOwned(nil, 0)
	if err != nil {
		return fmt.Errorf("consumers: ownership: %w", err)
	}
	return nil
}

// RunFollower follows the health and failover topics until ctx ends.
func (c *Consumers) RunFollower(ctx context.Context) error {
	if err := c.follow.Run(ctx); err != nil {
		return fmt.Errorf("consumers: follower: %w", err)
	}
	return nil
}

// Owned returns the instance-topic partitions this replica owns and the total.
func (c *Consumers) Owned() ([]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.parts)), c.total
}

// Instance returns an owned instance.
func (c *Consumers) Instance(id string) (topology.Instance, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.owned[id]
	return in, ok
}

// PartitionOf returns the partition of the instance topic the eventbus
// publisher (kafka-go's Hash balancer) puts instanceID on.
func PartitionOf(instanceID string, total int) int {
	if total <= 0 {
		return 0
	}
	parts := make([]int, total)
	for i := range parts {
		parts[i] = i
	}
	return (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(instanceID)}, parts...)
}

func (c *Consumers) assigned(ctx context.Context, a eventbus.Assignment) {
	parts := a[events.TopicInstances]
	total := c.partitionCount(ctx)
	c.setOwned(parts, total)
	c.logger.Info("partitions assigned", "partitions", parts, "total", total)
	if len(parts) > 0 {
		if err := c.Resync(ctx); err != nil && ctx.Err() == nil {
			c.logger.Warn("resync from provisioning failed; relying on events", "err", err)
		}
	}
}

func (c *Consumers) revoked(_ context.Context, a eventbus.Assignment) {
	c.logger.Info("partitions revoked", "partitions", a[events.TopicInstances])
	c.setOwned(nil, 0)
}

// setOwned records the owned partitions and disowns the instances of the others.
func (c *Consumers) setOwned(parts []int, total int) {
	c.mu.Lock()
	c.parts, c.total = map[int]bool{}, total
	for _, p := range parts {
		c.parts[p] = true
	}
	var drop []string
	for id := range c.owned {
		if !c.parts[PartitionOf(id, total)] || total == 0 {
			drop = append(drop, id)
			delete(c.owned, id)
		}
	}
	c.mu.Unlock()
	for _, id := range drop {
		c.watcher.Disown(id)
	}
}

func (c *Consumers) owns(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total > 0 && c.parts[PartitionOf(id, c.total)]
}

// partitionCount reads the instance topic's partition count.
func (c *Consumers) partitionCount(ctx context.Context) int {
	client := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{events.TopicInstances}})
	if err != nil || len(md.Topics) == 0 {
		c.logger.Warn("read partition count", "err", err)
		return 0
	}
	return len(md.Topics[0].Partitions)
}

// Resync owns every watchable instance of the owned partitions as
// provisioning reports it, and disowns owned ones it no longer reports.
func (c *Consumers) Resync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := c.source.List(ctx)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	seen := map[string]bool{}
	n := 0
	for _, in := range list {
		if !c.owns(in.ID) {
			continue
		}
		seen[in.ID] = true
		if c.own(in) {
			n++
		}
	}
	c.mu.Lock()
	var drop []string
	for id := range c.owned {
		if !seen[id] {
			drop = append(drop, id)
			delete(c.owned, id)
		}
	}
	c.mu.Unlock()
	for _, id := range drop {
		c.watcher.Disown(id)
	}
	c.logger.Info("resynced instances from provisioning", "listed", len(list), "owned", n, "dropped", len(drop))
	return nil
}

// watchable: an instance failover acts on has a primary and a replica.
func watchable(in topology.Instance) bool {
	_, ok := in.Primary()
	return ok && len(in.Nodes) > 1
}

// own starts or refreshes watching in; it reports whether in is watched.
func (c *Consumers) own(in topology.Instance) bool {
	c.mu.Lock()
	_, had := c.owned[in.ID]
	gone := c.gone[in.ID]
	ok := watchable(in) && !gone
	if ok {
		c.owned[in.ID] = in
	} else {
		delete(c.owned, in.ID)
	}
	c.mu.Unlock()
	switch {
	case ok && had:
		c.watcher.Update(in)
	case ok:
		c.logger.Info("instance owned", "instance_id", in.ID, "tenant", in.Tenant, "engine", in.Engine)
		c.watcher.Own(in)
	case had:
		c.watcher.Disown(in.ID)
	}
	return ok
}

// HandleInstance applies one provisioning.instance.* event of partition p.
func (c *Consumers) HandleInstance(ctx context.Context, _ int, ev eventbus.Event) error {
	if !events.IsInstanceEvent(ev.Type) {
		return nil
	}
	var inst events.Instance
	if err := ev.Decode(&inst); err != nil {
		return eventbus.Poison(err)
	}
	if inst.InstanceID == "" {
		return eventbus.Poison(fmt.Errorf("event %s: no instance_id", ev.ID))
	}
	if inst.TenantID != "" {
		if err := eventbus.CheckTenant(ev, inst.TenantID, "payload"); err != nil {
			return err
		}
	}
	if !c.owns(inst.InstanceID) {
		return nil
	}
	switch ev.Type {
	case events.TypeInstanceDeleting, events.TypeInstanceDeleted:
		c.mu.Lock()
		_, had := c.owned[inst.InstanceID]
		delete(c.owned, inst.InstanceID)
		c.gone[inst.InstanceID] = true
		c.mu.Unlock()
		if had {
			c.logger.Info("instance no longer watched", "instance_id", inst.InstanceID, "tenant", inst.TenantID, "event", ev.Type)
			c.watcher.Disown(inst.InstanceID)
		}
		return nil
	case events.TypeInstanceReady, events.TypeInstanceUpdated:
	default:
		return nil
	}
	in, err := c.source.Get(ctx, inst.InstanceID)
	if errors.Is(err, topology.ErrNotFound) {
		return nil
	}
	if err != nil {
		// Not the event's fault; the next resync picks the instance up.
		c.logger.Warn("instance not readable at provisioning; waiting for the next resync", "instance_id", inst.InstanceID,
			"tenant", inst.TenantID, "err", err)
		return nil
	}
	if err := eventbus.CheckTenant(ev, in.Tenant, "provisioning's instance"); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.gone, in.ID)
	c.mu.Unlock()
	c.own(in)
	return nil
}

// HandleSignal applies one health or failover event to an owned instance.
func (c *Consumers) HandleSignal(_ context.Context, ev eventbus.Event) error {
	switch ev.Type {
	case events.TypeNodeDown, events.TypeNodeUp:
		var tr events.NodeTransition
		if err := ev.Decode(&tr); err != nil {
			return eventbus.Poison(err)
		}
		in, ok := c.Instance(tr.InstanceID)
		if !ok {
			return nil
		}
		n, ok := in.Node(tr.NodeID)
		if !ok {
			return nil
		}
		// A primary that went down is analysed now rather than at the next
		// tick; a fenced node that came back is rejoined now.
		if (ev.Type == events.TypeNodeDown && n.Role == topology.RolePrimary) ||
			(ev.Type == events.TypeNodeUp && n.Role == topology.RoleFenced) {
			c.logger.Info("health transition triggers analysis", "instance_id", in.ID, "tenant", in.Tenant, "node_id", n.ID,
				"event", ev.Type)
			c.watcher.Trigger(in.ID)
		}
	case events.TypeFailoverCompleted:
		var r events.Recovery
		if err := ev.Decode(&r); err != nil {
			return eventbus.Poison(err)
		}
		c.move(r.InstanceID, func(n *topology.Node) {
			if role, ok := r.Roles[n.ID]; ok {
				n.Role = topology.Role(role)
			}
		})
	case events.TypeNodeRejoined:
		var j events.NodeRejoined
		if err := ev.Decode(&j); err != nil {
			return eventbus.Poison(err)
		}
		c.move(j.InstanceID, func(n *topology.Node) {
			if n.ID == j.NodeID {
				n.Role = topology.RoleReplica
			}
		})
	}
	return nil
}

// move applies a role change to an owned instance and tells the watcher.
func (c *Consumers) move(instanceID string, change func(n *topology.Node)) {
	c.mu.Lock()
	in, ok := c.owned[instanceID]
	if ok {
		in.Nodes = slices.Clone(in.Nodes)
		for i := range in.Nodes {
			change(&in.Nodes[i])
		}
		c.owned[instanceID] = in
	}
	c.mu.Unlock()
	if ok {
		c.logger.Info("roles moved", "instance_id", in.ID, "tenant", in.Tenant)
		c.watcher.Update(in)
	}
}
