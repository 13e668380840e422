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

func (s *Saga) startRollback(ctx context.Context, id, reason string) error {
	_, err := s.repo.Update(ctx, id, func(c *port.Change) error {
		if c.Instance.State != instance.StateProvisioning {
			return port.ErrNoChange
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
	_, err := s.repo.Update(ctx, in.ID, func(c *port.Change) error {
		if c.Instance.State != instance.StateProvisioning || c.Instance.Step != instance.StepRollingBack {
			return port.ErrNoChange
		}
		if err := c.Instance.MarkFailed(s.now()); err != nil {
			return err
		}
		c.Instance.Sync(c.Op, s.now())
		return s.emitInstance(c, events.TypeInstanceFailed)
	})
	if err == nil {
		s.log.Warn("instance failed", "tenant", in.Tenant, "instance", in.ID, "reason", in.Reason)
		if in.Restore != nil && in.Restore.Seed != "" {
			s.releaseSeed(ctx, in)
		}
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
