package metering_test

// The service-level harness: the metering binary as a subprocess (so that
// a kill is a real SIGKILL), the embedded Kafka broker in the test process
// and a per-test database on the machine's MariaDB.

import (
	"maps"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/svctest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// binary is the metering command TestMain builds into a temporary PATH entry.
const binary = "canopy-metering-svctest"

const secret = "svc-test-internal-secret-0123456789"

func TestMain(m *testing.M) { os.Exit(svctest.Main(m, "./cmd/metering", binary)) }

// service is the metering binary, restartable on its database.
type service struct{ *svctest.Service }

// startService starts metering on a fresh database, dropped when the test
// ends; extraEnv adds to or overrides its environment.
func startService(t *testing.T, broker string, extraEnv map[string]string) *service {
	t.Helper()
	env := map[string]string{
		"CANOPY_MYSQL_DSN":         storetest.DSN(),
		"CANOPY_METERING_DATABASE": storetest.NewConfig(t, "metering_svc").Database,
		"CANOPY_KAFKA_BROKERS":     broker,
		"CANOPY_INTERNAL_SECRET":   secret,
	}
	maps.Copy(env, extraEnv)
	return &service{svctest.Start(t, svctest.Config{Binary: binary, AddrEnv: "CANOPY_METERING_ADDR", Env: env,
		Secret: secret, Audience: tenancy.AudienceMetering})}
}

// usageRow is a row of GET /api/v1/usage.
type usageRow struct {
	WindowStart time.Time `json:"window_start"`
	Meter       string    `json:"meter"`
	Instance    string    `json:"instance_id"`
	Value       float64   `json:"value"`
}

// usage returns a usage query's rows.
func (s *service) usage(p tenancy.Principal, query string) ([]usageRow, error) {
	var out struct {
		Data []usageRow `json:"data"`
	}
	err := s.Call(p, http.MethodGet, "/api/v1/usage?"+query, nil, &out)
	return out.Data, err
}
