package obs_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"

	"github.com/canopy-platform/canopy/libs/obs"
)

func TestLoggerLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	log := obs.NewLogger(obs.LogConfig{Level: "warn", Format: "json", Output: &buf})
	log.Info("hidden")
	log.Warn("shown", "tenant", "acme")
	require.NotContains(t, buf.String(), "hidden")
	require.Contains(t, buf.String(), `"tenant":"acme"`)
}

func TestTracingStdoutExportsSpans(t *testing.T) {
	var buf bytes.Buffer
	shutdown, err := obs.SetupTracing(context.Background(), obs.TraceConfig{ServiceName: "test", Exporter: "stdout", SampleRatio: 1, Output: &buf})
	require.NoError(t, err)
	_, span := otel.Tracer("t").Start(context.Background(), "op")
	span.End()
	require.NoError(t, shutdown(context.Background()))
	require.Contains(t, buf.String(), `"Name":"op"`)
}

func TestTracingUnknownExporter(t *testing.T) {
	_, err := obs.SetupTracing(context.Background(), obs.TraceConfig{Exporter: "carrier-pigeon"})
	require.ErrorContains(t, err, "carrier-pigeon")
}
