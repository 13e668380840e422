package allinone_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/services/allinone"
)

func TestAllInOneStartsAndStopsCleanly(t *testing.T) {
	cfg := allinone.Config{
		StateDir:          t.TempDir(),
		EmbeddedKafkaAddr: "127.0.0.1:0",
		MySQLDSN:          "root@tcp(127.0.0.1:3306)/",
		RedisAddr:         "127.0.0.1:6379",
		GatewayAddr:       "127.0.0.1:0",
		ShutdownTimeout:   20 * time.Second,
	}
	p, err := allinone.New(cfg, allinone.Deps{Logger: obs.NopLogger()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("platform stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("platform not ready within 60s")
	}

	resp, err := http.Get("http://" + p.GatewayAddr() + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The embedded broker answers the Kafka protocol through the normal client.
	conn, err := kafka.DialContext(ctx, "tcp", p.KafkaBrokers()[0])
	require.NoError(t, err)
	_, err = conn.Brokers()
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("platform did not stop within 30s")
	}
	_, err = http.Get("http://" + p.GatewayAddr() + "/readyz")
	require.Error(t, err, "gateway still listening after shutdown")
}

func TestConfigValidation(t *testing.T) {
	_, err := allinone.New(allinone.Config{GatewayAddr: "nope"}, allinone.Deps{Logger: obs.NopLogger()})
	require.ErrorContains(t, err, "gateway_addr")
	require.ErrorContains(t, err, "state_dir")
}
