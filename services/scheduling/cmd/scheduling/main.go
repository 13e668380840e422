// Command scheduling runs Canopy's scheduling service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/services/scheduling"
)

func main() {
	os.Exit(launch.Main(launch.Spec[scheduling.Config]{
		Name:     "scheduling",
		Defaults: scheduling.DefaultConfig(),
		Kafka:    func(c scheduling.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c scheduling.Config, env launch.Env) (launch.Service, error) {
			return scheduling.New(c, scheduling.Deps{Logger: env.Logger, Registry: env.Registry, Publisher: env.Publisher})
		},
	}))
}
