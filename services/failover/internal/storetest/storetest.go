// Package storetest is the conformance suite every topology.Store must
// pass (memstore, mysqlstore): leases with fencing tokens, the recovery
// record's lifecycle and its look-ups. It is imported by tests only.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Run runs the suite; newStore returns an empty (or at least
// instance-id-disjoint) store per subtest and registers its cleanup on t.
func Run(t *testing.T, newStore func(t *testing.T) topology.Store) {
	t.Helper()
	ctx := context.Background()
	id := func(prefix string) string { return prefix + "-" + ulid.Make().String() }
	rec := func(instanceID string) topology.Recovery {
		return topology.Recovery{
			ID: ulid.Make().String(), InstanceID: instanceID, Tenant: "t1", Engine: topology.EngineMySQL,
			Kind: topology.KindAutomatic, Problem: "DeadPrimary", State: topology.StateStarted, Step: topology.StepDetected,
			OldPrimary: "n1", DetectedAt: time.Now().UTC().Truncate(time.Millisecond),
		}
	}

	t.Run("AcquireRenewHeld", func(t *testing.T) {
		s := newStore(t)
		in := id("inst")
		l1, err := s.Acquire(ctx, in, "a", time.Minute)
		require.NoError(t, err)
		require.Positive(t, l1.Token)
		require.Equal(t, "a", l1.Holder)
		require.Equal(t, in, l1.InstanceID)

		l2, err := s.Acquire(ctx, in, "a", time.Minute)
		require.NoError(t, err, "renewing one's own lease")
		require.Equal(t, l1.Token, l2.Token, "renewal keeps the token")
		require.False(t, l2.Expires.Before(l1.Expires))

		_, err = s.Acquire(ctx, in, "b", time.Minute)
		require.ErrorIs(t, err, topology.ErrLeaseHeld)

		other, err := s.Acquire(ctx, id("inst"), "b", time.Minute)
		require.NoError(t, err, "leases are per instance")
		require.Positive(t, other.Token)
	})

	t.Run("ExpiryIncrementsToken", func(t *testing.T) {
		s := newStore(t)
		in := id("inst")
		l1, err := s.Acquire(ctx, in, "a", 200*time.Millisecond)
		require.NoError(t, err)
		var l2 topology.Lease
		require.Eventually(t, func() bool {
			l2, err = s.Acquire(ctx, in, "b", time.Minute)
			return err == nil
		}, 10*time.Second, 20*time.Millisecond, "the expired lease is taken over")
		require.Greater(t, l2.Token, l1.Token)
		require.Equal(t, "b", l2.Holder)

		// The superseded holder is fenced out of every write.
		r := rec(in)
		require.ErrorIs(t, s.Begin(ctx, l1, r), topology.ErrFenced)
		require.NoError(t, s.Begin(ctx, l2, r))
		r.Step = topology.StepPromoting
		require.ErrorIs(t, s.Save(ctx, l1, r), topology.ErrFenced)
		require.NoError(t, s.Save(ctx, l2, r))

		// The old holder re-acquiring while b holds it fails.
		_, err = s.Acquire(ctx, in, "a", time.Minute)
		require.ErrorIs(t, err, topology.ErrLeaseHeld)
	})

	t.Run("ReleaseLetsAnotherIn", func(t *testing.T) {
		s := newStore(t)
		in := id("inst")
		l1, err := s.Acquire(ctx, in, "a", time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, l1))
		l2, err := s.Acquire(ctx, in, "b", time.Minute)
		require.NoError(t, err)
		require.Greater(t, l2.Token, l1.Token)
		// Releasing a superseded lease does not free the current one.
		require.NoError(t, s.Release(ctx, l1))
		_, err = s.Acquire(ctx, in, "c", time.Minute)
		require.ErrorIs(t, err, topology.ErrLeaseHeld)
		require.ErrorIs(t, s.Begin(ctx, l1, rec(in)), topology.ErrFenced)
	})

	t.Run("RecoveryLifecycle", func(t *testing.T) {
		s := newStore(t)
		in := id("inst")
		_, err := s.Open(ctx, in)
		require.ErrorIs(t, err, topology.ErrNotFound)
		_, err = s.LastAutomatic(ctx, in)
		require.ErrorIs(t, err, topology.ErrNotFound)
		_, err = s.Get(ctx, in, "nope")
		require.ErrorIs(t, err, topology.ErrNotFound)
		require.ErrorIs(t, s.Acknowledge(ctx, in, "nope"), topology.ErrNotFound)

		l, err := s.Acquire(ctx, in, "a", time.Minute)
		require.NoError(t, err)
		r := rec(in)
		require.NoError(t, s.Begin(ctx, l, r))

		open, err := s.Open(ctx, in)
		require.NoError(t, err)
		require.Equal(t, r.ID, open.ID)
		require.Equal(t, topology.StateStarted, open.State)
		require.Equal(t, l.Token, open.Token)
		require.Equal(t, "a", open.Holder)

		r.Step, r.Candidate, r.CandidateAddress = topology.StepPromoting, "n2", "h:2"
		require.NoError(t, s.Save(ctx, l, r))
		got, err := s.Get(ctx, in, r.ID)
		require.NoError(t, err)
		require.Equal(t, topology.StepPromoting, got.Step)
		require.Equal(t, "n2", got.Candidate)

		// Not completed yet: no hold-off source.
		_, err = s.LastAutomatic(ctx, in)
		require.ErrorIs(t, err, topology.ErrNotFound)

		now := time.Now().UTC().Truncate(time.Millisecond)
		r.State, r.Step, r.PromotedAt, r.CompletedAt = topology.StateCompleted, topology.StepDone, &now, &now
		r.Roles = map[string]topology.Role{"n1": topology.RoleFenced, "n2": topology.RolePrimary}
		r.RTOMS, r.DetectionMS, r.PromotionMS = 900, 300, 100
		r.LostTransactions = []string{"0-1-5"}
		require.NoError(t, s.Save(ctx, l, r))

		_, err = s.Open(ctx, in)
		require.ErrorIs(t, err, topology.ErrNotFound, "completed is not open")
		last, err := s.LastAutomatic(ctx, in)
		require.NoError(t, err)
		require.Equal(t, r.ID, last.ID)
		require.Equal(t, topology.StateCompleted, last.State)
		require.Equal(t, topology.RolePrimary, last.Roles["n2"])
		require.Equal(t, int64(900), last.RTOMS)
		require.Equal(t, []string{"0-1-5"}, last.LostTransactions)
		require.NotNil(t, last.CompletedAt)
		require.True(t, last.CompletedAt.Equal(now))
		require.False(t, last.Acknowledged)

		require.NoError(t, s.Acknowledge(ctx, in, r.ID))
		last, err = s.LastAutomatic(ctx, in)
		require.NoError(t, err)
		require.True(t, last.Acknowledged)

		// A later failed recovery and a completed switchover do not count
		// for the automatic hold-off.
		f := rec(in)
		require.NoError(t, s.Begin(ctx, l, f))
		f.State, f.Reason = topology.StateFailed, "no candidate"
		require.NoError(t, s.Save(ctx, l, f))
		sw := rec(in)
		sw.Kind = topology.KindSwitchover
		require.NoError(t, s.Begin(ctx, l, sw))
		later := now.Add(time.Second)
		sw.State, sw.CompletedAt = topology.StateCompleted, &later
		require.NoError(t, s.Save(ctx, l, sw))
		last, err = s.LastAutomatic(ctx, in)
		require.NoError(t, err)
		require.Equal(t, r.ID, last.ID)
		gotF, err := s.Get(ctx, in, f.ID)
		require.NoError(t, err)
		require.Equal(t, topology.StateFailed, gotF.State)
		require.Equal(t, "no candidate", gotF.Reason)
	})

	t.Run("OpenSurvivesTakeover", func(t *testing.T) {
		s := newStore(t)
		in := id("inst")
		l1, err := s.Acquire(ctx, in, "a", 150*time.Millisecond)
		require.NoError(t, err)
		r := rec(in)
		require.NoError(t, s.Begin(ctx, l1, r))
		// a "crashes"; b takes over once the lease expires and finishes it.
		var l2 topology.Lease
		require.Eventually(t, func() bool {
			l2, err = s.Acquire(ctx, in, "b", time.Minute)
			return err == nil
		}, 10*time.Second, 20*time.Millisecond)
		open, err := s.Open(ctx, in)
		require.NoError(t, err)
		require.Equal(t, r.ID, open.ID)
		open.State, open.Reason = topology.StateFailed, "rolled back"
		require.NoError(t, s.Save(ctx, l2, open))
		got, err := s.Get(ctx, in, r.ID)
		require.NoError(t, err)
		require.Equal(t, l2.Token, got.Token, "the record carries the token of its last writer")
	})

	t.Run("Rejoined", func(t *testing.T) {
		s := newStore(t)
		in := topology.Instance{ID: id("inst"), Tenant: "t1", Engine: topology.EngineRedis}
		require.NoError(t, s.Rejoined(ctx, in, "n1", "n2", false, []string{"offset 10..20"}))
	})

	t.Run("ContextCancelled", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.Acquire(cctx, id("inst"), "a", time.Minute)
		require.Error(t, err, "a cancelled context takes no lease")
	})
}
