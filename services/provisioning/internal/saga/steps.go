package saga

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

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
		case instance.StepRestoring:
			if now.Sub(in.StepAt) > s.cfg.RestoreTimeout {
				return nil, true, s.startRollback(ctx, in.ID, fmt.Sprintf("restore: not ready within %s", s.cfg.RestoreTimeout))
			}
			if err := s.hook(ctx, in, in.Step); err != nil {
				return nil, false, err
			}
			return s.restoring(ctx, in)
		case instance.StepCreating, instance.StepReplicating, instance.StepVerifying:
			if now.Sub(in.CreateStartedAt()) > s.cfg.ProvisionTimeout {
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
	var next instance.Step
	var nodes map[string]instance.NodeUpdate
	var running string // the server build, read once the nodes verify
	first := true
	err := retry.Do(stepCtx, s.stepRetry, func(ctx context.Context) error {
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
			next = instance.StepDone
			if stepErr = s.eng.Verify(ctx, cur, ulid.Make().String()); stepErr == nil {
				// What the instance shows as its version is what the
				// engine says it runs, not what was ordered.
				running, stepErr = s.eng.ServerVersion(ctx, cur)
			}
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
	out, err := s.repo.Update(ctx, in.ID, func(c *port.Change) error {
		cur := c.Instance
		if err := s.applyNodes(cur, nodes); err != nil {
			return err
		}
		if cur.State != instance.StateProvisioning || cur.Step != in.Step {
			if len(nodes) > 0 {
				return nil // keep what the driver did; the next round sees the change
			}
			return port.ErrNoChange
		}
		if next == instance.StepDone {
			if err := cur.MarkReady(s.now()); err != nil {
				return err
			}
			cur.EngineVersion = running
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
	if in.Step == instance.StepCreating && out != nil && out.Step != instance.StepCreating {
		// Every node holds its copy of the seed now.
		s.releaseSeed(ctx, in)
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
	_, err := s.repo.Update(ctx, id, func(c *port.Change) error {
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
	_, uerr := s.repo.Update(ctx, in.ID, func(c *port.Change) error {
		if c.Instance.State != instance.StateUpdating {
			return port.ErrNoChange
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

func (s *Saga) destroy(ctx context.Context, in *instance.Instance) error {
	if err := s.destroyNodes(ctx, in); err != nil {
		return err
	}
	if err := s.repo.DeleteBindings(ctx, in.ID); err != nil {
		return err
	}
	_, err := s.repo.Update(ctx, in.ID, func(c *port.Change) error {
		if c.Instance.State != instance.StateDeleting {
			return port.ErrNoChange
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
