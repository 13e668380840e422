// Command widget runs Canopy's widget service on its own.
package main

import (
	"os"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"

	"github.com/canopy-platform/canopy/libs/launch/internal/widget"
)

func main() {
	os.Exit(launch.Main(launch.Spec[widget.Config]{
		Name:     "widget",
		Defaults: widget.DefaultConfig(),
		Kafka:    func(c widget.Config) eventbus.PublisherConfig { return c.Kafka },
		Build: func(c widget.Config, env launch.Env) (launch.Service, error) {
			return widget.New(c, env.Deps())
		},
	}))
}
