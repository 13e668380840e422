// Command router runs Canopy's data-plane router on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/launch"

	"github.com/canopy-platform/canopy/services/router"
)

func main() {
	os.Exit(launch.Main(launch.Spec[router.Config]{
		Name:     "router",
		Defaults: router.DefaultConfig(),
		// The router publishes nothing: no Kafka publisher.
		Build: func(c router.Config, env launch.Env) (launch.Service, error) {
			return router.New(c, env.Deps())
		},
	}))
}
