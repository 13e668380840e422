package gateway_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/gateway"
)

// TestProcessOwnsItsConnections: the gateway's own binary opens the database
// and Redis its Config names, runs, and stops cleanly.
func TestProcessOwnsItsConnections(t *testing.T) {
	cfg := gateway.Defaults()
	cfg.Addr, cfg.InternalAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.StateDir = t.TempDir()
	cfg.InternalSecret = testSecret
	cfg.RateLimitPrefix = randomPrefix()
	cfg.Store = storetest.NewConfig(t, t.Name())
	deps := gateway.Deps{Logger: obs.NopLogger(), Registry: obs.NewRegistry()}

	_, err := gateway.NewProcess(cfg, gateway.Deps{Logger: deps.Logger, Registry: deps.Registry, DB: storetest.NewDB(t, "other")})
	require.Error(t, err, "a process opens its own database")

	p, err := gateway.NewProcess(cfg, deps)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// The bootstrap admin key is written once the database is migrated.
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			t.Fatalf("process stopped: %v", err)
		default:
		}
		_, err := os.Stat(filepath.Join(cfg.StateDir, "admin-key"))
		return err == nil
	}, 30*time.Second, 20*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("process did not stop")
	}
}
