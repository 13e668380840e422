package alerting_test

import (
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/config"
	"github.com/canopy-platform/canopy/services/alerting"
)

// TestConfigValidate: the defaults (with a secret) are valid, and each
// broken setting is named in the error.
func TestConfigValidate(t *testing.T) {
	valid := func() alerting.Config {
		c := alerting.DefaultConfig()
		c.InternalSecret = "0123456789abcdef0123"
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	lists := valid()
	lists.FailoverURL, lists.ProvisioningURL = "http://127.0.0.1:8086, http://127.0.0.1:8186", "http://127.0.0.1:8084,http://127.0.0.1:8184"
	if err := lists.Validate(); err != nil {
		t.Fatalf("replica lists: %v", err)
	}
	tests := []struct {
		name string
		edit func(*alerting.Config)
		want string
	}{
		{"no secret", func(c *alerting.Config) { c.InternalSecret = "" }, "internal_secret"},
		{"bad addr", func(c *alerting.Config) { c.Addr = "8089" }, "addr"},
		{"no brokers", func(c *alerting.Config) { c.Kafka.Brokers = nil }, "kafka brokers"},
		{"no database", func(c *alerting.Config) { c.Database = "" }, "database"},
		{"external url without scheme", func(c *alerting.Config) { c.ExternalURL = "127.0.0.1:8080" }, "external_url"},
		{"failover url not http", func(c *alerting.Config) { c.FailoverURL = "ftp://failover" }, "failover_url"},
		{"provisioning url empty", func(c *alerting.Config) { c.ProvisioningURL = "" }, "provisioning_url"},
		{"provisioning replica list with a bad entry", func(c *alerting.Config) {
			c.ProvisioningURL = "http://127.0.0.1:8084,127.0.0.1:8184"
		}, `provisioning_url: entry 2 of "http://127.0.0.1:8084,127.0.0.1:8184": unusable base URL: "127.0.0.1:8184"`},
		{"no delivery workers", func(c *alerting.Config) { c.DeliveryWorkers = 0 }, "delivery_workers"},
		{"no attempts", func(c *alerting.Config) { c.MaxAttempts = 0 }, "max_attempts"},
		{"negative truncation", func(c *alerting.Config) { c.MaxAlertsPerMessage = -1 }, "max_alerts_per_message"},
		{"zero dead_after", func(c *alerting.Config) { c.DeadAfter = 0 }, "dead_after"},
		{"zero stale_after", func(c *alerting.Config) { c.StaleAfter = 0 }, "stale_after"},
		{"zero remediation window", func(c *alerting.Config) { c.RemediationWindow = 0 }, "remediation_window"},
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

// TestConfigLoadMatchesDefaults: the default tags the binary loads and
// DefaultConfig, which the all-in-one starts from, agree; private webhook
// targets are refused unless switched on, and the environment switches
// them on.
func TestConfigLoadMatchesDefaults(t *testing.T) {
	var loaded alerting.Config
	if err := config.Load(&loaded, config.Options{Environ: []string{"CANOPY_INTERNAL_SECRET=0123456789abcdef0123",
		"CANOPY_KAFKA_BROKERS=127.0.0.1:9092", "CANOPY_KAFKA_SOURCE=" + alerting.DefaultSource}}); err != nil {
		t.Fatalf("load: %v", err)
	}
	want := alerting.DefaultConfig()
	want.InternalSecret = "0123456789abcdef0123"
	if loaded.Addr != want.Addr || loaded.Database != want.Database || loaded.ExternalURL != want.ExternalURL ||
		loaded.DeliveryWorkers != want.DeliveryWorkers || loaded.MaxAttempts != want.MaxAttempts ||
		loaded.DeadAfter != want.DeadAfter || loaded.StaleAfter != want.StaleAfter ||
		loaded.ResolvedRetention != want.ResolvedRetention || loaded.WebhookTimeout != want.WebhookTimeout ||
		loaded.FailoverURL != want.FailoverURL || loaded.ProvisioningURL != want.ProvisioningURL ||
		loaded.RemediationMaxPerInstance != want.RemediationMaxPerInstance ||
		loaded.RemediationWindow != want.RemediationWindow || loaded.EnsureTopics != want.EnsureTopics ||
		loaded.AllowPrivateWebhooks != want.AllowPrivateWebhooks {
		t.Fatalf("loaded defaults %+v differ from DefaultConfig %+v", loaded, want)
	}
	if loaded.AllowPrivateWebhooks {
		t.Fatal("private webhook targets allowed by default")
	}
	if want.DeadAfter != time.Hour || want.ResolvedRetention != 24*time.Hour {
		t.Fatalf("DefaultConfig timers %v %v, want the documented 1h and 24h", want.DeadAfter, want.ResolvedRetention)
	}
	var dev alerting.Config
	if err := config.Load(&dev, config.Options{Environ: []string{"CANOPY_INTERNAL_SECRET=0123456789abcdef0123",
		"CANOPY_KAFKA_BROKERS=127.0.0.1:9092", "CANOPY_ALERTING_ALLOW_PRIVATE_WEBHOOKS=true"}}); err != nil {
		t.Fatalf("load: %v", err)
	}
	if !dev.AllowPrivateWebhooks {
		t.Fatal("CANOPY_ALERTING_ALLOW_PRIVATE_WEBHOOKS=true did not allow private targets")
	}
}
