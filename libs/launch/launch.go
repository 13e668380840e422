// Package launch is what a Canopy service binary's main does: read the
// service's config (flags, YAML, env) together with logging and tracing
// settings, set up the logger, metrics registry, tracer and event publisher,
// run the service until SIGINT/SIGTERM, and turn the outcome into an exit
// code; and what a service's Run is: a Lifecycle of ordered stages, started
// in order and stopped in reverse within a bound. It holds no service logic;
// each service still builds itself in its own package (docs/new-service.md).
package launch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/config"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/obs"
)

// Service is what a command runs until its context ends.
type Service interface {
	Run(ctx context.Context) error
}

// Env is what launch provides to a service's build function.
type Env struct {
	Logger    *slog.Logger
	Registry  *prometheus.Registry
	Publisher *eventbus.Publisher
}

// Spec describes one service binary.
type Spec[C any] struct {
	// Name is the binary's name, used in messages and as the trace service name.
	Name string
	// Defaults is the service's default config; files and env override it.
	Defaults C
	// Kafka returns the publisher config from the loaded config; nil means
	// the service publishes nothing and gets no publisher.
	Kafka func(C) eventbus.PublisherConfig
	// Build constructs the service.
	Build func(C, Env) (Service, error)
}

// file is a service's config plus the settings every binary shares.
type file[C any] struct {
	Service C               `yaml:",inline"`
	Log     obs.LogConfig   `yaml:"log"`
	Trace   obs.TraceConfig `yaml:"trace"`
}

// Validate validates the service's part.
func (f *file[C]) Validate() error {
	if v, ok := any(&f.Service).(config.Validator); ok {
		return v.Validate()
	}
	if v, ok := any(f.Service).(config.Validator); ok {
		return v.Validate()
	}
	return nil
}

// Main runs the service described by s with the process's arguments and
// returns the exit code: 0 after a clean stop, 1 on a failure, 2 on bad
// configuration.
func Main[C any](s Spec[C]) int {
	return run(s, os.Args[1:], os.Stderr)
}

func run[C any](s Spec[C], args []string, stderr io.Writer) int {
	cfg := &file[C]{Service: s.Defaults}
	if err := config.FromArgs(cfg, s.Name, args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
		return 2
	}
	logger := obs.NewLogger(cfg.Log)
	reg := obs.NewRegistry()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cfg.Trace.ServiceName == "" {
		cfg.Trace.ServiceName = s.Name
	}
	shutdownTracing, err := obs.SetupTracing(ctx, cfg.Trace)
	if err != nil {
		logger.Error("set up tracing", "err", err)
		return 2
	}
	defer func() {
		if err := shutdownTracing(context.WithoutCancel(ctx)); err != nil {
			logger.Warn("flush traces", "err", err)
		}
	}()

	env := Env{Logger: logger, Registry: reg}
	if s.Kafka != nil {
		pub, err := eventbus.NewPublisher(s.Kafka(cfg.Service), logger, reg)
		if err != nil {
			logger.Error("create event publisher", "err", err)
			return 1
		}
		defer func() {
			if err := pub.Close(); err != nil {
				logger.Warn("close event publisher", "err", err)
			}
		}()
		env.Publisher = pub
	}
	svc, err := s.Build(cfg.Service, env)
	if err != nil {
		logger.Error("build service", "err", err)
		return 1
	}
	if err := svc.Run(ctx); err != nil {
		logger.Error("service stopped with an error", "err", err)
		return 1
	}
	return 0
}
