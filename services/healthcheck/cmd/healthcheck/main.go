// Command healthcheck runs Canopy's health checker on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/services/healthcheck"
)

func main() {
	os.Exit(launch.Main(launch.Spec[healthcheck.Config]{
		Name:     "healthcheck",
		Defaults: healthcheck.DefaultConfig(),
		Kafka:    func(c healthcheck.Config) eventbus.PublisherConfig { return c.PublisherConfig() },
		Build: func(c healthcheck.Config, env launch.Env) (launch.Service, error) {
			return healthcheck.New(c, healthcheck.Deps{Logger: env.Logger, Registry: env.Registry, Publisher: env.Publisher})
		},
	}))
}
