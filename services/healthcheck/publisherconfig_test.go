package healthcheck_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/healthcheck"
)

// TestPublisherConfig: cmd/healthcheck's publisher takes the brokers and
// source the old main defaulted to, unless kafka: sets them.
func TestPublisherConfig(t *testing.T) {
	tests := []struct {
		name  string
		kafka eventbus.PublisherConfig
		want  eventbus.PublisherConfig
	}{
		{name: "defaults from brokers", want: eventbus.PublisherConfig{Brokers: []string{"b1:9092"}, Source: healthcheck.DefaultSource}},
		{name: "kafka section wins", kafka: eventbus.PublisherConfig{Brokers: []string{"k:9092"}, Source: "/x", BatchSize: 7},
			want: eventbus.PublisherConfig{Brokers: []string{"k:9092"}, Source: "/x", BatchSize: 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := healthcheck.DefaultConfig()
			cfg.Brokers = []string{"b1:9092"}
			cfg.Kafka = tc.kafka
			require.Equal(t, tc.want, cfg.PublisherConfig())
		})
	}
}
