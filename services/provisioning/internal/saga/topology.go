package saga

import (
	"context"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// ErrTopologyTenant: a failover event names another tenant than the stored
// instance's; the consumer treats it as poison.
var ErrTopologyTenant = errors.New("failover event tenant does not match the instance")

// OnFailoverCompleted moves the instance's node roles and endpoints to a
// completed failover's outcome and emits provisioning.instance.updated in
// the same transaction, so the health checker (and every other reader of
// canopy.instances.v1) follows the new primary. The change runs on the
// locked row, so it serialises with the saga's own changes: a concurrent
// update or delete step commits against the roles as they are then, never a
// copy read before (docs/provisioning.md, "Failover"). Redelivered and older outcomes,
// and outcomes for instances being deleted, change nothing.
func (s *Saga) OnFailoverCompleted(ctx context.Context, r events.Recovery) error {
	var applied bool
	out, err := s.repo.Update(ctx, r.InstanceID, func(c *port.Change) error {
		if r.TenantID != "" && c.Instance.Tenant != r.TenantID {
			return fmt.Errorf("%w: event %s, instance %s", ErrTopologyTenant, r.TenantID, c.Instance.Tenant)
		}
		changed, err := c.Instance.ApplyFailover(r.FencingToken, r.RecoveryID, r.Roles, s.now())
		if err != nil {
			return err
		}
		if !changed {
			return port.ErrNoChange
		}
		applied = true
		return s.emitInstance(c, events.TypeInstanceUpdated)
	})
	if errors.Is(err, port.ErrNotFound) {
		s.log.Warn("failover completed for an unknown instance; ignored", "instance", r.InstanceID, "tenant", r.TenantID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("apply failover %s of instance %s: %w", r.RecoveryID, r.InstanceID, err)
	}
	log := s.log.With("tenant", r.TenantID, "instance", r.InstanceID, "recovery", r.RecoveryID, "fencing_token", r.FencingToken)
	if !applied {
		log.Info("failover outcome not applied: already applied, older, or the instance no longer follows failovers")
		return nil
	}
	p, _ := out.Primary()
	log.Info("failover applied to the instance's roles", "old_primary", r.OldPrimary, "new_primary", p.ID, "endpoint", p.Address)
	s.recordRoles(ctx, out)
	return nil
}

// roleRecorder is a driver that keeps each node's role for its next start
// (the local driver: a restarted Redis replica follows its primary).
type roleRecorder interface {
	Assign(ctx context.Context, nodeID string, role driver.Role, source *driver.Endpoint) error
}

// recordRoles tells the driver the roles the failover service assigned on
// the engines. Best effort: the database is the record, and a node that
// restarts with a stale role still comes up read-only.
func (s *Saga) recordRoles(ctx context.Context, in *instance.Instance) {
	rr, ok := s.drv.(roleRecorder)
	if !ok {
		return
	}
	var source *driver.Endpoint
	if p, ok := in.Primary(); ok {
		if ep, err := endpointOf(p.Address); err == nil {
			source = &ep
		}
	}
	for _, n := range in.Nodes {
		role, src := driver.Role(n.Role), source
		switch {
		case n.Role == instance.RolePrimary:
			src = nil
		case n.Fenced:
			src = nil // the failover service decides how it rejoins
		}
		if err := rr.Assign(ctx, n.ID, role, src); err != nil && !errors.Is(err, driver.ErrNotFound) {
			s.log.Warn("record a node's role with the driver", "tenant", in.Tenant, "instance", in.ID, "node", n.ID, "err", err)
		}
	}
}

// OnNodeRejoined marks a fenced former primary a replica again (and lists
// it among the replica endpoints), emitting provisioning.instance.updated.
// A stale report (the node is the primary by now, or it names another
// primary than the current one) changes nothing.
func (s *Saga) OnNodeRejoined(ctx context.Context, r events.NodeRejoined) error {
	var applied bool
	out, err := s.repo.Update(ctx, r.InstanceID, func(c *port.Change) error {
		if r.TenantID != "" && c.Instance.Tenant != r.TenantID {
			return fmt.Errorf("%w: event %s, instance %s", ErrTopologyTenant, r.TenantID, c.Instance.Tenant)
		}
		if !c.Instance.Rejoined(r.NodeID, r.Primary, s.now()) {
			return port.ErrNoChange
		}
		applied = true
		return s.emitInstance(c, events.TypeInstanceUpdated)
	})
	if errors.Is(err, port.ErrNotFound) {
		s.log.Warn("node rejoined for an unknown instance; ignored", "instance", r.InstanceID, "node", r.NodeID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("record rejoin of node %s of instance %s: %w", r.NodeID, r.InstanceID, err)
	}
	s.log.Info("node rejoin recorded", "tenant", r.TenantID, "instance", r.InstanceID, "node", r.NodeID, "primary", r.Primary, "rebuilt", r.Rebuilt, "applied", applied)
	if applied {
		s.recordRoles(ctx, out)
	}
	return nil
}

// IsTopologyPoison reports errors of a failover event that no retry can
// fix (an outcome naming unknown nodes, another tenant).
func IsTopologyPoison(err error) bool {
	return errors.Is(err, instance.ErrInvalid) || errors.Is(err, ErrTopologyTenant)
}
