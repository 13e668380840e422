package saga

import (
	"context"
	"errors"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// Leases are the per-instance saga leases that let several provisioning
// replicas share the work (docs/provisioning.md, "Several replicas"): a
// replica drives an instance only while it holds the instance's lease, and
// the saga's writes to the instance carry the lease's fencing token.
// *mysqlrepo.Repo implements it.
type Leases interface {
	AcquireLease(ctx context.Context, id, owner string, ttl time.Duration) (port.Lease, error)
	RenewLease(ctx context.Context, l port.Lease, ttl time.Duration) error
	ReleaseLease(ctx context.Context, l port.Lease) error
}

// errLeaseExpired: the holder could not renew its lease in time; by its own
// clock the lease ran out, so the database may already hand it over.
var errLeaseExpired = errors.New("saga lease expired before it could be renewed")

// WithLeases makes the saga drive an instance only under its lease, as
// owner (a replica id unique to this process). Without it the saga drives
// every instance: it must then be the only one on its database. Call it
// before Run.
func (s *Saga) WithLeases(l Leases, owner string) { s.leases, s.owner = l, owner }

// Owner is the replica id the saga holds leases as ("" without leases).
func (s *Saga) Owner() string { return s.owner }

// leased drives id under its lease: taken (or skipped when another replica
// holds it: tried again when it should have expired), renewed every
// LeaseRenew while the instance is driven, given back when the drive ends.
// The drive stops as soon as the lease is lost or could not be renewed
// before its TTL ran out on this replica's clock, which happens before the
// database hands it over (the database's expiry counts from later).
func (s *Saga) leased(ctx context.Context, id string) {
	if s.leases == nil {
		s.drive(ctx, id)
		return
	}
	began := time.Now()
	l, err := s.leases.AcquireLease(ctx, id, s.owner, s.cfg.LeaseTTL)
	var held *port.LeaseHeldError
	switch {
	case errors.As(err, &held):
		s.retryLease(id, held.Remaining)
		return
	case err != nil:
		if ctx.Err() == nil {
			s.log.Warn("acquire saga lease; retrying on the next sweep", "instance", id, "err", err)
		}
		return
	}
	s.leaseTaken(id)
	lctx, cancel := context.WithCancelCause(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		s.keepLease(lctx, cancel, l, began)
	}()
	fctx := port.WithFence(lctx, id, l.Token)
	adopted := true
	if l.Previous != s.owner {
		// Another replica (or an earlier run of this one) drove it last:
		// this driver may not know the nodes it made.
		if l.Previous != "" {
			s.log.Info("saga lease taken over", "instance", id, "from", l.Previous, "token", l.Token)
		}
		if err := s.adopt(fctx, id, true); err != nil {
			adopted = false
			if lctx.Err() == nil {
				s.log.Error("adopt nodes of a taken-over instance; retrying on the next sweep", "instance", id, "err", err)
			}
		}
	}
	if adopted {
		s.drive(fctx, id)
	}
	lost := context.Cause(lctx)
	cancel(nil)
	<-kept
	switch {
	case errors.Is(lost, port.ErrLeaseLost), errors.Is(lost, errLeaseExpired):
		s.log.Warn("saga lease lost while driving; the instance is left to its new holder", "instance", id, "token", l.Token, "err", lost)
	case ctx.Err() != nil && s.hooks.KeepLeasesOnStop:
		// A crash: the lease stays until it expires.
	default:
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := s.leases.ReleaseLease(rctx, l); err != nil {
			s.log.Warn("release saga lease; it expires by itself", "instance", id, "err", err)
		}
		rcancel()
	}
}

// keepLease renews l every LeaseRenew until ctx ends; it cancels ctx when
// the lease is lost, or when LeaseTTL passed since the start of the last
// successful renewal (began: before the request, so this replica's
// deadline comes before the database's).
func (s *Saga) keepLease(ctx context.Context, cancel context.CancelCauseFunc, l port.Lease, began time.Time) {
	tick := time.NewTicker(s.cfg.LeaseRenew)
	defer tick.Stop()
	expire := time.NewTimer(time.Until(began.Add(s.cfg.LeaseTTL)))
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			cancel(errLeaseExpired)
			return
		case <-tick.C:
		}
		at := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, s.cfg.LeaseTTL)
		err := s.leases.RenewLease(rctx, l, s.cfg.LeaseTTL)
		rcancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, port.ErrLeaseLost):
			cancel(err)
			return
		case err != nil:
			s.log.Warn("renew saga lease", "instance", l.Instance, "err", err)
		default:
			expire.Reset(time.Until(at.Add(s.cfg.LeaseTTL)))
		}
	}
}

// retryLease kicks id again when the lease another replica holds should
// have been released or expired: soon at first (a holder that just
// finished a step gives the lease back at once), backing off up to its
// remaining time. One retry per instance is pending at a time.
func (s *Saga) retryLease(id string, remaining time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leaseRetry[id] {
		return
	}
	n := s.leaseTries[id]
	s.leaseTries[id] = n + 1
	wait := min(100*time.Millisecond<<min(n, 6), remaining+10*time.Millisecond)
	s.leaseRetry[id] = true
	// No stop path needed: a kick never blocks, one after Run ended is dropped.
	time.AfterFunc(wait, func() {
		s.mu.Lock()
		delete(s.leaseRetry, id)
		s.mu.Unlock()
		s.Kick(id)
	})
}

// leaseTaken forgets id's backoff once its lease is held.
func (s *Saga) leaseTaken(id string) {
	s.mu.Lock()
	delete(s.leaseTries, id)
	s.mu.Unlock()
}
