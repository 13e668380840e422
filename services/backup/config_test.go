package backup_test

import (
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/backup"
)

// TestConfigValidate checks that the defaults with a secret are valid and
// that each wrong setting is reported by the name an operator sets.
func TestConfigValidate(t *testing.T) {
	valid := func() backup.Config {
		c := backup.DefaultConfig()
		c.InternalSecret = secret
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("defaults with a secret: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*backup.Config)
		want   string
	}{
		{"no secret", func(c *backup.Config) { c.InternalSecret = "" }, "internal_secret"},
		{"no brokers", func(c *backup.Config) { c.Kafka.Brokers = nil }, "kafka brokers"},
		{"no state dir", func(c *backup.Config) { c.StateDir = "" }, "state_dir"},
		{"bad provisioning url", func(c *backup.Config) { c.ProvisioningURL = "ftp://x" }, "provisioning_url"},
		{"bad window start", func(c *backup.Config) { c.WindowStart = "25:00" }, "window_start"},
		{"window longer than a day", func(c *backup.Config) { c.WindowLength = 25 * time.Hour }, "window_length"},
		{"pitr beyond dailies", func(c *backup.Config) { c.PITRDays = c.DailyKeepDays + 1 }, "pitr_days"},
		{"negative drill period", func(c *backup.Config) { c.DrillEvery = -time.Hour }, "drill_every"},
		{"zero tick", func(c *backup.Config) { c.TickEvery = 0 }, "tick_every"},
		{"no restore workers", func(c *backup.Config) { c.RestoreWorkers = 0 }, "restore_workers"},
		{"s3 without bucket", func(c *backup.Config) { c.Repository.S3Endpoint = "127.0.0.1:9000" }, "repository: s3_bucket"},
		{"secondary s3 without keys", func(c *backup.Config) {
			c.Secondary.S3Endpoint, c.Secondary.S3Bucket = "127.0.0.1:9000", "b"
		}, "secondary: s3_bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
