// Command failover runs Canopy's failover service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"

	"github.com/canopy-platform/canopy/services/failover"
)

func main() {
	os.Exit(launch.Main(launch.Spec[failover.Config]{
		Name:     "failover",
		Defaults: failover.DefaultConfig(),
		Kafka:    func(c failover.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c failover.Config, env launch.Env) (launch.Service, error) {
			return failover.New(c, env.Deps())
		},
	}))
}
