package obs

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func newExporter(ctx context.Context, cfg TraceConfig) (sdktrace.SpanExporter, error) {
	switch {
	case cfg.OTLPEndpoint != "" && (cfg.Exporter == "" || cfg.Exporter == "otlp"):
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(cfg.OTLPEndpoint), otlptracehttp.WithInsecure())
		if err != nil {
			return nil, fmt.Errorf("create otlp exporter for %s: %w", cfg.OTLPEndpoint, err)
		}
		return exp, nil
	case cfg.Exporter == "stdout":
		out := cfg.Output
		if out == nil {
			out = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(out))
		if err != nil {
			return nil, fmt.Errorf("create stdout exporter: %w", err)
		}
		return exp, nil
	case cfg.Exporter == "" || cfg.Exporter == "none":
		return nil, nil
	default:
		return nil, fmt.Errorf("unknown trace exporter %q (want none, stdout or otlp)", cfg.Exporter)
	}
}
