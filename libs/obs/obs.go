// Package obs sets up what every Canopy process uses to be observed: the slog
// logger, the Prometheus registry and the OpenTelemetry tracer provider with
// W3C trace-context propagation. It does not define service metrics; each
// package registers its own on the registry it is given.
package obs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// LogConfig configures the process logger.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level" env:"LOG_LEVEL" default:"info"`
	// Format is text or json.
	Format string `yaml:"format" env:"LOG_FORMAT" default:"text"`
	// Output defaults to stderr.
	Output io.Writer `yaml:"-" env:"-"`
}

// NewLogger returns a structured logger for cfg.
func NewLogger(cfg LogConfig) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToLower(cfg.Level))); err != nil {
		lvl = slog.LevelInfo
	}
	out := cfg.Output
	if out == nil {
		out = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if strings.EqualFold(cfg.Format, "json") {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// NopLogger returns a logger that discards everything, for tests and defaults.
func NopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// NewRegistry returns a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// TraceConfig configures tracing.
type TraceConfig struct {
	// ServiceName is the OTel service.name resource attribute.
	ServiceName string `yaml:"service_name" env:"-"`
	// Exporter is "" or "none" (off), "stdout", or "otlp".
	Exporter string `yaml:"exporter" env:"TRACE_EXPORTER"`
	// OTLPEndpoint enables the OTLP exporter when set (host:port).
	OTLPEndpoint string `yaml:"otlp_endpoint" env:"OTLP_ENDPOINT"`
	// SampleRatio is the head sampling ratio in [0,1].
	SampleRatio float64 `yaml:"sample_ratio" env:"TRACE_SAMPLE_RATIO" default:"1"`
	// Output is where the stdout exporter writes; defaults to stdout.
	Output io.Writer `yaml:"-" env:"-"`
}

// SetupTracing installs the global W3C propagator and, when an exporter is
// configured, a tracer provider. The returned shutdown flushes spans.
// Propagation is installed even with tracing off, so trace context still
// crosses HTTP and Kafka from callers that do trace.
func SetupTracing(ctx context.Context, cfg TraceConfig) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if exp == nil {
		return func(context.Context) error { return nil }, nil
	}
	res := sdkresource.NewSchemaless(semconv.ServiceName(cfg.ServiceName))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	otel.SetTracerProvider(tp)
	return func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("shutdown tracer provider: %w", err)
		}
		return nil
	}, nil
}
