// Package intake turns what provisioning says about instances into probe
// targets: provisioning.instance.* events of the partitions this replica
// owns, and a resync from provisioning's internal API on every assignment
// and periodically, so a missed event or an empty topic is not fatal. It
// adds, updates and removes targets on the monitor; it decides nothing about
// health. An event whose tenant header differs from its payload's tenant or
// from the instance's tenant as provisioning reports it is poison
// (dead-lettered) and never touches a target.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/provclient"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

// Targets is where targets go; *monitor.Monitor fits.
type Targets interface {
	Upsert(t target.Target) error
	RemoveWhere(match func(target.Target) bool) int
	SeedPublished(nodeID, status, reason string)
	Flush(ctx context.Context) error
}

// Source is provisioning's internal API; *provclient.Client fits.
type Source interface {
	List(ctx context.Context) ([]provclient.Instance, error)
	Get(ctx context.Context, instanceID string) (provclient.Instance, error)
}

// Intake applies instance events and resyncs.
type Intake struct {
	targets Targets
	source  Source
	policy  target.Policy
	logger  *slog.Logger

	mu      sync.Mutex
	owned   map[int]bool // nil: every partition (no sharding)
	total   int
	creds   map[string]provclient.Instance // instance id → last known from the API
	deleted map[string]bool
}

// New returns an intake; source may be nil (no resync, events only with the
// credentials of the static fallback in policy-less dev setups).
func New(targets Targets, source Source, policy target.Policy, logger *slog.Logger) (*Intake, error) {
	if targets == nil || logger == nil {
		return nil, errors.New("intake: nil targets or logger")
	}
	policy = policy.WithDefaults()
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("intake: policy: %w", err)
	}
	return &Intake{targets: targets, source: source, policy: policy, logger: logger,
		creds: map[string]provclient.Instance{}, deleted: map[string]bool{}}, nil
}

// PartitionOf returns the partition of the instance topic that kafka-go's
// Hash balancer (the eventbus publisher's) puts instanceID on.
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

func (in *Intake) owns(p int) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.owned == nil || in.owned[p]
}

// Owned records the partitions this replica owns, drops the targets of the
// others and resyncs the owned ones from provisioning.
func (in *Intake) Owned(ctx context.Context, partitions []int, total int) {
	in.mu.Lock()
	in.owned = make(map[int]bool, len(partitions))
	for _, p := range partitions {
		in.owned[p] = true
	}
	in.total = total
	owned := in.owned
	in.mu.Unlock()
	n := in.targets.RemoveWhere(func(t target.Target) bool { return !owned[t.Partition] })
	if n > 0 {
		in.logger.Info("targets handed over to other replicas", "targets", n)
	}
	if len(partitions) > 0 && ctx.Err() == nil {
		if err := in.Resync(ctx); err != nil {
			in.logger.Warn("resync from provisioning failed; relying on events", "err", err)
		}
	}
}

// Revoked stops probing the partitions' targets and waits until their
// transitions are published.
func (in *Intake) Revoked(ctx context.Context, partitions []int) {
	in.mu.Lock()
	in.owned = map[int]bool{}
	in.mu.Unlock()
	lost := map[int]bool{}
	for _, p := range partitions {
		lost[p] = true
	}
	n := in.targets.RemoveWhere(func(t target.Target) bool { return lost[t.Partition] })
	if err := in.targets.Flush(ctx); err != nil {
		in.logger.Warn("transitions not flushed before hand-over", "err", err)
	}
	in.logger.Info("partitions revoked", "partitions", partitions, "targets", n)
}

// Published forwards a node's last published transition.
func (in *Intake) Published(nodeID, status, reason string) {
	in.targets.SeedPublished(nodeID, status, reason)
}

// Resync upserts every ready instance of the owned partitions from
// provisioning's API.
func (in *Intake) Resync(ctx context.Context) error {
	if in.source == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := in.source.List(ctx)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	in.mu.Lock()
	total := in.total
	in.mu.Unlock()
	n := 0
	for _, inst := range list {
		p := PartitionOf(inst.InstanceID, total)
		if !in.owns(p) {
			continue
		}
		in.mu.Lock()
		in.creds[inst.InstanceID] = inst
		gone := in.deleted[inst.InstanceID]
		in.mu.Unlock()
		if gone || !probed(inst.State) {
			continue
		}
		nodes := make([]events.Node, 0, len(inst.Nodes))
		for _, nd := range inst.Nodes {
			nodes = append(nodes, events.Node{ID: nd.ID, Role: nd.Role, Address: nd.Address, State: nd.State})
		}
		n += in.apply(p, inst.InstanceID, inst.TenantID, inst.Engine, nodes, inst)
	}
	in.logger.Info("resynced targets from provisioning", "instances", len(list), "targets", n)
	return nil
}

// probed reports whether an instance in state is watched.
func probed(state string) bool {
	switch state {
	case "ready", "updating", "updated":
		return true
	}
	return false
}

// Handle applies one instance event of partition p.
func (in *Intake) Handle(ctx context.Context, p int, ev eventbus.Event) error {
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
	if inst.TenantID == "" {
		inst.TenantID = ev.Tenant
	} else if err := eventbus.CheckTenant(ev, inst.TenantID, "payload"); err != nil {
		return err
	}
	if !in.owns(p) {
		return nil
	}
	in.mu.Lock()
	known, ok := in.creds[inst.InstanceID]
	in.mu.Unlock()
	if ok {
		if err := eventbus.CheckTenant(ev, known.TenantID, "provisioning's instance"); err != nil {
			return err
		}
	}
	switch ev.Type {
	case events.TypeInstanceDeleting, events.TypeInstanceDeleted, events.TypeInstanceFailed:
		in.mu.Lock()
		in.deleted[inst.InstanceID] = ev.Type != events.TypeInstanceFailed
		delete(in.creds, inst.InstanceID)
		in.mu.Unlock()
		n := in.targets.RemoveWhere(func(t target.Target) bool { return t.InstanceID == inst.InstanceID })
		in.logger.Info("instance no longer watched", "instance_id", inst.InstanceID, "tenant", inst.TenantID, "event", ev.Type, "targets", n)
		return nil
	case events.TypeInstanceReady, events.TypeInstanceUpdated:
	default:
		return nil
	}
	cred, err := in.credentials(ctx, inst.InstanceID)
	if err != nil {
		// Not the event's fault: the periodic resync picks it up.
		in.mu.Lock()
		delete(in.deleted, inst.InstanceID)
		in.mu.Unlock()
		in.logger.Warn("no monitor credentials yet; instance waits for the next resync",
			"instance_id", inst.InstanceID, "tenant", inst.TenantID, "err", err)
		return nil
	}
	// Provisioning's answer is the stored instance: its tenant decides.
	if err := eventbus.CheckTenant(ev, cred.TenantID, "provisioning's instance"); err != nil {
		return err
	}
	in.mu.Lock()
	delete(in.deleted, inst.InstanceID)
	in.mu.Unlock()
	in.apply(p, inst.InstanceID, inst.TenantID, inst.Engine, inst.Nodes, cred)
	return nil
}

func (in *Intake) credentials(ctx context.Context, instanceID string) (provclient.Instance, error) {
	in.mu.Lock()
	c, ok := in.creds[instanceID]
	in.mu.Unlock()
	if ok {
		return c, nil
	}
	if in.source == nil {
		return provclient.Instance{}, errors.New("no provisioning source configured")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := in.source.Get(ctx, instanceID)
	if err != nil {
		return c, err
	}
	in.mu.Lock()
	in.creds[instanceID] = c
	in.mu.Unlock()
	return c, nil
}

func engineOf(e string) target.Engine {
	switch e {
	case "mysql", "mariadb":
		return target.EngineMySQL
	case "redis":
		return target.EngineRedis
	}
	return target.EngineTCP
}

func roleOf(r string) target.Role {
	switch r {
	case "primary":
		return target.RolePrimary
	case "replica", "dr-replica":
		return target.RoleReplica
	}
	return ""
}

// apply upserts the instance's nodes and removes those it no longer has.
func (in *Intake) apply(p int, instanceID, tenant, engine string, nodes []events.Node, cred provclient.Instance) int {
	keep := map[string]bool{}
	n := 0
	for _, nd := range nodes {
		switch nd.State {
		case "stopped", "deleted", "destroyed", "failed":
			continue
		}
		t := target.Target{NodeID: nd.ID, InstanceID: instanceID, Tenant: tenant, Engine: engineOf(engine),
			Role: roleOf(nd.Role), Address: nd.Address, SemiSync: cred.SemiSync, Partition: p, Policy: in.policy,
			Monitor: target.Credentials{Username: cred.Monitor.Username, Password: cred.Monitor.Password}}
		if err := in.targets.Upsert(t); err != nil {
			in.logger.Warn("target rejected", "instance_id", instanceID, "tenant", tenant, "node_id", nd.ID, "err", err)
			continue
		}
		keep[nd.ID] = true
		n++
	}
	in.targets.RemoveWhere(func(t target.Target) bool { return t.InstanceID == instanceID && !keep[t.NodeID] })
	return n
}
