// Command gateway runs Canopy's API gateway as its own process.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/services/gateway"
)

func main() {
	os.Exit(launch.Main(launch.Spec[gateway.Config]{
		Name:     "gateway",
		Defaults: gateway.Defaults(),
		Build: func(c gateway.Config, env launch.Env) (launch.Service, error) {
			return gateway.NewProcess(c, gateway.Deps{Logger: env.Logger, Registry: env.Registry, Stdout: os.Stdout})
		},
	}))
}
