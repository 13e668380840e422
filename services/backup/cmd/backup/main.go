// Command backup runs Canopy's backup service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"

	"github.com/canopy-platform/canopy/services/backup"
)

func main() {
	os.Exit(launch.Main(launch.Spec[backup.Config]{
		Name:     "backup",
		Defaults: backup.DefaultConfig(),
		Kafka:    func(c backup.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c backup.Config, env launch.Env) (launch.Service, error) {
			return backup.New(c, env.Deps())
		},
	}))
}
