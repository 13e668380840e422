// Command provisioning runs Canopy's provisioning service on its own.
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
	"github.com/canopy-platform/canopy/services/provisioning"
)

func main() { os.Exit(run()) }

// appConfig is provisioning's config plus logging.
type appConfig struct {
	provisioning.Config `yaml:",inline"`
	Log                 obs.LogConfig `yaml:"log"`
}

func (c appConfig) Validate() error { return c.Config.Validate() }

func run() int {
	cfg := appConfig{Config: provisioning.DefaultConfig()}
	if err := config.FromArgs(&cfg, "provisioning", os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "provisioning:", err)
		return 2
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
	svc, err := provisioning.New(cfg.Config, provisioning.Deps{Logger: logger, Registry: reg, Publisher: pub})
	if err != nil {
		logger.Error("create provisioning", "err", err)
		return 1
	}
	if err := svc.Run(ctx); err != nil {
		logger.Error("provisioning stopped", "err", err)
		return 1
	}
	return 0
}
