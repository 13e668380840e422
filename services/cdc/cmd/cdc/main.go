// Command cdc runs Canopy's change data capture service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"

	"github.com/canopy-platform/canopy/services/cdc"
)

func main() {
	os.Exit(launch.Main(launch.Spec[cdc.Config]{
		Name:     "cdc",
		Defaults: cdc.DefaultConfig(),
		Kafka:    func(c cdc.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c cdc.Config, env launch.Env) (launch.Service, error) {
			return cdc.New(c, env.Deps())
		},
	}))
}
