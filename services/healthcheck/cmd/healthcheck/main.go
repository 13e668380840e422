// Command healthcheck runs Canopy's health checker on its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/canopy-platform/canopy/libs/config"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/services/healthcheck"
)

func main() { os.Exit(run()) }

// appConfig is the healthcheck's config plus logging and the publisher.
type appConfig struct {
	healthcheck.Config `yaml:",inline"`
	Kafka              eventbus.PublisherConfig `yaml:"kafka" envPrefix:"KAFKA_"`
	Log                obs.LogConfig            `yaml:"log"`
}

func (c appConfig) Validate() error { return c.Config.Validate() }

func run() int {
	cfg := appConfig{Config: healthcheck.DefaultConfig()}
	if err := config.FromArgs(&cfg, "healthcheck", os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 2
	}
	if len(cfg.Kafka.Brokers) == 0 {
		cfg.Kafka.Brokers = cfg.Brokers
	}
	if cfg.Kafka.Source == "" {
		cfg.Kafka.Source = "/canopy/healthcheck"
	}
	logger := obs.NewLogger(cfg.Log)
	reg := obs.NewRegistry()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	pub, err := eventbus.NewPublisher(cfg.Kafka, logger, reg)
	if err != nil {
		logger.Error("create event publisher", "err", err)
		return 1
	}
	defer func() {
		if err := pub.Close(); err != nil {
			logger.Warn("close event publisher", "err", err)
		}
	}()
	svc, err := healthcheck.New(cfg.Config, healthcheck.Deps{Logger: logger, Registry: reg, Publisher: pub})
	if err != nil {
		logger.Error("create healthcheck", "err", err)
		return 1
	}
	if err := svc.Run(ctx); err != nil {
		logger.Error("healthcheck stopped", "err", err)
		return 1
	}
	return 0
}
