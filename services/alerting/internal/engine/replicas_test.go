package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// A receiver stored through a standby replica's API (which tells only its
// own, waiting engine) reaches the active engine within RefreshEvery: an
// alert held without a receiver is then notified to it, once.
func TestActiveEngineSeesAStandbysReceiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newEnv(t)
	cfg := engine.Config{RefreshEvery: 200 * time.Millisecond}
	active := env.start(cfg)
	standby := env.run(env.build(cfg))

	require.NoError(t, active.Push(ctx, []*alert.Alert{firing("alertname", "Unrouted", "instance", "i-1")}))
	h := newHook(t)
	stored := time.Now()
	env.receiver("added-on-standby", "", h) // what the standby's API stores
	require.NoError(t, standby.Reload(ctx, engine.ReloadReceivers))
	require.ErrorIs(t, standby.Push(ctx, []*alert.Alert{firing("alertname", "X")}), engine.ErrStopped, "the second engine is a standby")

	m := h.message(t, "Unrouted", "firing")
	t.Logf("the active engine routed to the standby's receiver %s after it was stored (refresh every %s, group_wait %s)",
		time.Since(stored).Round(time.Millisecond), cfg.RefreshEvery, groupWait)
	require.Equal(t, "added-on-standby", m.Receiver)
	require.Equal(t, 1, h.count("Unrouted", "firing"))
}
