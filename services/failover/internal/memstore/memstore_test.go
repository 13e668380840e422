package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/failover/internal/memstore"
	"github.com/canopy-platform/canopy/services/failover/internal/storetest"
	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) topology.Store { return memstore.New(nil) })
}

func TestEvents(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	l, err := s.Acquire(ctx, "i", "a", time.Minute)
	require.NoError(t, err)
	r := topology.Recovery{ID: "r1", InstanceID: "i", Kind: topology.KindAutomatic, State: topology.StateStarted}
	require.NoError(t, s.Begin(ctx, l, r))
	r.Step = topology.StepPromoting
	require.NoError(t, s.Save(ctx, l, r))
	r.State = topology.StateCompleted
	require.NoError(t, s.Save(ctx, l, r))
	require.Error(t, s.Save(ctx, l, r), "a finished recovery is final")
	require.NoError(t, s.Rejoined(ctx, topology.Instance{ID: "i"}, "n1", "n2", false, nil))
	var types []string
	for _, e := range s.Events() {
		types = append(types, e.Type)
	}
	require.Equal(t, []string{events.TypeFailoverStarted, events.TypeFailoverCompleted, events.TypeNodeRejoined}, types)
}
