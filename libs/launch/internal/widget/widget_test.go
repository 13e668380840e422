package widget

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/store/storetest"
)

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, ...eventbus.Event) error { return nil }

// TestSkeletonRuns: the skeleton of docs/new-service.md migrates, serves,
// reports ready and stops cleanly.
func TestSkeletonRuns(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	st := storetest.NewConfig(t, t.Name())
	cfg.MySQLDSN, cfg.Database = st.DSN, st.Database
	cfg.InternalSecret = "widget-test-secret-0123456789"
	svc, err := New(cfg, launch.Deps{Logger: obs.NopLogger(), Registry: obs.NewRegistry(), Publisher: nopPublisher{}})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready within 30s")
	}
	resp, err := http.Get("http://" + svc.Addr() + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop within 30s")
	}
}
