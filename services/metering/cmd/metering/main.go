// Command metering runs Canopy's metering and chargeback service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"

	"github.com/canopy-platform/canopy/services/metering"
)

func main() {
	os.Exit(launch.Main(launch.Spec[metering.Config]{
		Name:     "metering",
		Defaults: metering.DefaultConfig(),
		Kafka:    func(c metering.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c metering.Config, env launch.Env) (launch.Service, error) {
			return metering.New(c, env.Deps())
		},
	}))
}
