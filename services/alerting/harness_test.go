package alerting_test

// The service-level harness: the alerting binary as a subprocess (so that
// a kill is a real SIGKILL), the embedded Kafka broker in the test process,
// a per-test database on the machine's MariaDB, and webhook receivers as
// test HTTP servers.

import (
	"maps"
	"os"
	"testing"

	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/svctest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// binary is the alerting command TestMain builds into a temporary PATH entry.
const binary = "canopy-alerting-svctest"

const secret = "svc-test-internal-secret-0123456789"

func TestMain(m *testing.M) { os.Exit(svctest.Main(m, "./cmd/alerting", binary)) }

// startService starts alerting on a fresh database, dropped when the test
// ends; extraEnv adds to or overrides its environment. Receivers on
// 127.0.0.1 are allowed (test servers). Ready means the engine holds its
// lock and has loaded its state.
func startService(t *testing.T, broker string, extraEnv map[string]string) *svctest.Service {
	t.Helper()
	env := map[string]string{
		"CANOPY_MYSQL_DSN":                       storetest.DSN(),
		"CANOPY_ALERTING_DATABASE":               storetest.NewConfig(t, "alerting_svc").Database,
		"CANOPY_KAFKA_BROKERS":                   broker,
		"CANOPY_INTERNAL_SECRET":                 secret,
		"CANOPY_ALERTING_ALLOW_PRIVATE_WEBHOOKS": "true",
	}
	maps.Copy(env, extraEnv)
	return svctest.Start(t, svctest.Config{Binary: binary, AddrEnv: "CANOPY_ALERTING_ADDR", Env: env,
		Secret: secret, Audience: tenancy.AudienceAlerting})
}
