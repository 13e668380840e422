package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
)

const (
	// activeLockRole names the single-active lock on the cdc database
	// (store.DB.ActiveLockName): its holder runs every stream, sync job and
	// the intake.
	activeLockRole = "cdc.active"
	// activeLockRetry is a standby's wait between tries for the lock (each
	// try also waits up to a second on the server): with a dead holder's
	// session gone, a standby takes over within about two seconds.
	activeLockRetry = time.Second
	// activeLockCheck is how often the holder checks that its session
	// still holds the lock. It bounds the time a holder that lost its
	// database session (and so the lock) may still be publishing while a
	// standby already resumed from the stored checkpoints: duplicates then,
	// never a gap.
	activeLockCheck = 2 * time.Second
)

// errLockLost ends the service when its active lock was lost (its session
// died): the runners were stopped at once, and a restarted process waits
// as a standby.
var errLockLost = errors.New("cdc lost its active lock")

// runActive makes this replica the one that runs the streams' pipeline, the
// sync jobs and the intake on the cdc database, or a standby waiting for
// that: two replicas each reading a stream's binlog would publish every
// change twice and race on its checkpoint, and two intakes would split the
// failover events between them. It waits for the database's active lock,
// runs the three until ctx ends or the lock is lost, and returns nil when
// ctx ends.
func (s *Service) runActive(ctx context.Context, db *store.DB) error {
	log := s.Logger()
	lock, err := db.AcquireActive(ctx, db.ActiveLockName(activeLockRole), activeLockRetry, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("acquire the active lock: %w", err)
	}
	defer func() {
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			log.Warn("release the active lock", slog.Any("err", err))
		}
	}()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		if err := lock.Watch(runCtx, activeLockCheck); err != nil {
			log.Error("active lock lost; stopping every stream", slog.Any("err", err))
		}
		cancel()
	}()

	s.active.Store(true)
	defer s.active.Store(false)
	log.Info("cdc active: running the streams and sync jobs")
	err = launch.Together(
		func(ctx context.Context) error {
			defer s.sink.Close()
			return s.manager.Run(ctx)
		},
		s.sync.Run,
		s.intake.Run,
	)(runCtx)
	cancel()
	<-lost
	switch {
	case err != nil:
		return err
	case ctx.Err() == nil:
		return errLockLost
	}
	return nil
}

// activeReady is the "active" readiness check: a standby is not ready, so
// the gateway sends the API (whose stream and job changes wake the local
// runners, and whose verifications run beside them) to the active replica
// only.
func (s *Service) activeReady() launch.ReadyCheck {
	return launch.ReadyCheck{Name: "active", Check: func(context.Context) error {
		if !s.active.Load() {
			return errors.New("standby: another cdc replica holds the active lock")
		}
		return nil
	}}
}
