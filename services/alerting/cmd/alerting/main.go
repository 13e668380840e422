// Command alerting runs Canopy's alerting service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"

	"github.com/canopy-platform/canopy/services/alerting"
)

func main() {
	os.Exit(launch.Main(launch.Spec[alerting.Config]{
		Name:     "alerting",
		Defaults: alerting.DefaultConfig(),
		Kafka:    func(c alerting.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c alerting.Config, env launch.Env) (launch.Service, error) {
			return alerting.New(c, env.Deps())
		},
	}))
}
