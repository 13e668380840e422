package obs_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

func TestRegisterSharesTheSeriesOfAnEqualCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "shared_total", Help: "h"}
	first, err := obs.Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := obs.Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second.Inc()
	if got := testutil.ToFloat64(first); got != 1 {
		t.Fatalf("the second registration counts apart: first = %v", got)
	}
	if _, err := obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "shared_total", Help: "other"})); err == nil {
		t.Fatal("a different collector under a taken name registered")
	}
	if c, err := obs.Register[prometheus.Counter](nil, prometheus.NewCounter(opts)); err != nil || c == nil {
		t.Fatalf("nil registry: %v", err)
	}
}
