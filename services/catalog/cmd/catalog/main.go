// Command catalog runs Canopy's catalog service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/services/catalog"
)

func main() {
	os.Exit(launch.Main(launch.Spec[catalog.Config]{
		Name:     "catalog",
		Defaults: catalog.DefaultConfig(),
		Kafka:    func(c catalog.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c catalog.Config, env launch.Env) (launch.Service, error) {
			return catalog.New(c, catalog.Deps{Logger: env.Logger, Registry: env.Registry, Publisher: env.Publisher})
		},
	}))
}
