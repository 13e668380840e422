package saga

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// restoring asks the backup service how the instance's restore job stands:
// ready moves the instance on to creating with the job's seed, failed (or
// a job the backup service does not know) rolls it back, and a job still
// at work shows its phase on the operation and is asked again after
// RestorePoll. A backup service that does not answer is asked again too,
// until the restore timeout.
func (s *Saga) restoring(ctx context.Context, in *instance.Instance) (*instance.Instance, bool, error) {
	if in.Restore == nil {
		return nil, true, s.startRollback(ctx, in.ID, "restore: the instance records no restore job")
	}
	if s.restores == nil {
		return nil, true, s.startRollback(ctx, in.ID, "restore: no backup service is configured")
	}
	job, err := s.restores.Job(ctx, in.Tenant, in.Restore.ID)
	switch {
	case errors.Is(err, port.ErrNotFound):
		return nil, true, s.startRollback(ctx, in.ID, fmt.Sprintf("restore: job %s is unknown to the backup service", in.Restore.ID))
	case err != nil:
		// Logged here as a warning, not returned: the job may be fine and
		// the next poll tell; the restore timeout bounds the wait.
		s.log.Warn("ask the backup service how the restore stands; asking again", "tenant", in.Tenant, "instance", in.ID,
			"restore", in.Restore.ID, "err", err)
		s.pollLater(in.ID)
		return nil, false, nil
	}
	switch job.Status {
	case port.RestoreReady:
		if job.Seed == "" {
			return nil, true, s.startRollback(ctx, in.ID, fmt.Sprintf("restore: job %s is ready without a seed", job.ID))
		}
		out, err := s.repo.Update(ctx, in.ID, func(c *port.Change) error {
			if c.Instance.State != instance.StateProvisioning || c.Instance.Step != instance.StepRestoring {
				return port.ErrNoChange
			}
			if err := c.Instance.RestoreReady(job.Seed, s.now()); err != nil {
				return err
			}
			c.Instance.Sync(c.Op, s.now())
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		s.log.Info("restore ready; creating the nodes from its seed", "tenant", in.Tenant, "instance", in.ID,
			"restore", job.ID, "seed", job.Seed, "took", s.now().Sub(in.StepAt))
		return out, true, nil
	case port.RestoreFailed, port.RestoreDone:
		// done before any node took the seed: it is gone, so the create
		// cannot go on either.
		reason := job.Error
		if reason == "" {
			reason = "job " + job.ID + " is " + job.Status
		}
		return nil, true, s.startRollback(ctx, in.ID, "restore: "+reason)
	}
	if _, err := s.repo.Update(ctx, in.ID, func(c *port.Change) error {
		if c.Instance.State != instance.StateProvisioning || c.Instance.Step != instance.StepRestoring ||
			c.Op.ID != c.Instance.OperationID || c.Op.StepDetail == job.Phase {
			return port.ErrNoChange
		}
		c.Op.StepDetail = job.Phase
		return nil
	}); err != nil {
		return nil, false, err
	}
	s.pollLater(in.ID)
	return nil, false, nil
}

// pollLater kicks the instance again after RestorePoll. The timer needs no
// stop path: a kick never blocks, and one after Run ended is dropped.
func (s *Saga) pollLater(id string) {
	time.AfterFunc(s.cfg.RestorePoll, func() { s.Kick(id) })
}

// releaseSeed tells the backup service the instance's restore seed is no
// longer needed. Best effort: the backup service also expires seeds.
func (s *Saga) releaseSeed(ctx context.Context, in *instance.Instance) {
	if in.Restore == nil || s.restores == nil {
		return
	}
	if err := s.restores.Done(ctx, in.Tenant, in.Restore.ID); err != nil {
		s.log.Warn("tell the backup service the restore seed was taken; it expires the seed itself", "tenant", in.Tenant,
			"instance", in.ID, "restore", in.Restore.ID, "err", err)
		return
	}
	s.log.Info("restore seed released", "tenant", in.Tenant, "instance", in.ID, "restore", in.Restore.ID)
}
