package metering_test

import (
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/metering"
)

// TestConfigValidate: the defaults (with a secret) are valid, and each
// broken setting is named in the error.
func TestConfigValidate(t *testing.T) {
	valid := func() metering.Config {
		c := metering.DefaultConfig()
		c.InternalSecret = "0123456789abcdef0123"
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name string
		edit func(*metering.Config)
		want string
	}{
		{"no secret", func(c *metering.Config) { c.InternalSecret = "" }, "internal_secret"},
		{"bad addr", func(c *metering.Config) { c.Addr = "8088" }, "addr"},
		{"no brokers", func(c *metering.Config) { c.Kafka.Brokers = nil }, "kafka brokers"},
		{"zero grace", func(c *metering.Config) { c.Grace = 0 }, "grace"},
		{"zero jobs interval", func(c *metering.Config) { c.JobsEvery = 0 }, "jobs_every"},
		{"zero batch", func(c *metering.Config) { c.BatchMax = 0 }, "batch_max"},
		{"dedup shorter than grace", func(c *metering.Config) { c.DedupRetention = 30 * time.Minute }, "dedup_retention"},
		{"minute retention too short", func(c *metering.Config) { c.MinuteRetention = time.Minute }, "minute_retention"},
		{"lower-case currency", func(c *metering.Config) { c.DefaultCurrency = "usd" }, "default_currency"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
