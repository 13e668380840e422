package saga

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

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
		if err := s.resumeOne(ctx, id); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Error("adopt nodes", "instance", id, "err", err)
		}
	}
	s.sweep(ctx)
	return nil
}

// resumeOne adopts id's nodes. With leases, what was found is recorded
// only under the instance's lease: an instance another replica drives right
// now is adopted by the driver alone (that replica records its nodes).
func (s *Saga) resumeOne(ctx context.Context, id string) error {
	if s.leases == nil {
		return s.adopt(ctx, id, true)
	}
	l, err := s.leases.AcquireLease(ctx, id, s.owner, s.cfg.LeaseTTL)
	var held *port.LeaseHeldError
	if errors.As(err, &held) {
		return s.adopt(ctx, id, false)
	}
	if err != nil {
		return err
	}
	err = s.adopt(port.WithFence(ctx, id, l.Token), id, true)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return errors.Join(err, s.leases.ReleaseLease(rctx, l))
}

// adopt re-attaches the driver to id's recorded nodes and, with record,
// stores what it found (pid, address, running or stopped).
func (s *Saga) adopt(ctx context.Context, id string, record bool) error {
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
	if len(updates) == 0 || !record {
		return nil
	}
	_, err = s.repo.Update(ctx, id, func(c *port.Change) error {
		for nid, u := range updates {
			if err := c.Instance.RecordNode(nid, u, s.now()); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}
