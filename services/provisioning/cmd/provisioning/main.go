// Command provisioning runs Canopy's provisioning service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/services/provisioning"
)

func main() {
	os.Exit(launch.Main(launch.Spec[provisioning.Config]{
		Name:     "provisioning",
		Defaults: provisioning.DefaultConfig(),
		Kafka:    func(c provisioning.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c provisioning.Config, env launch.Env) (launch.Service, error) {
			return provisioning.New(c, provisioning.Deps{Logger: env.Logger, Registry: env.Registry, Publisher: env.Publisher})
		},
	}))
}
