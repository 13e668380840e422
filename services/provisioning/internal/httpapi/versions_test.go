package httpapi

import (
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/provisioning/internal/catalogclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// The builds of the development machine: MariaDB 10.11.19, Redis 7.0.15.
var devBuilds = []driver.EngineVersion{
	{Engine: driver.EngineMySQL, Flavor: "mariadb", Version: "10.11.19"},
	{Engine: driver.EngineRedis, Flavor: "redis", Version: "7.0.15"},
}

func TestChooseVersion(t *testing.T) {
	mysqlPlan := catalogclient.Plan{Name: "mysql-dev", Engine: "mysql", Versions: []string{"8.0", "10.11", "8.4"}, DefaultVersion: "8.0"}
	legacyMySQL := catalogclient.Plan{Name: "mysql-old", Engine: "mysql", Versions: []string{"mariadb-10.11", "8.0"}, DefaultVersion: "mariadb-10.11"}
	redisPlan := catalogclient.Plan{Name: "redis-dev", Engine: "redis", Versions: []string{"7.0", "7.2", "7.4"}, DefaultVersion: "7.0"}
	redisOld := catalogclient.Plan{Name: "redis-old", Engine: "redis", Versions: []string{"7.2", "7.4"}, DefaultVersion: "7.2"}
	tests := []struct {
		name    string
		plan    catalogclient.Plan
		version string
		avail   []driver.EngineVersion
		want    string
		refused string // text the 422's reason must hold; "" = accepted
	}{
		{"default unavailable falls back to an available one", mysqlPlan, "", devBuilds, "10.11", ""},
		{"available by name", mysqlPlan, "10.11", devBuilds, "10.11", ""},
		{"patch version orders its series", mysqlPlan, "10.11.19", devBuilds, "10.11", ""},
		{"mysql 8.0 not installed", mysqlPlan, "8.0", devBuilds, "", "10.11 (mariadb-10.11.19)"},
		{"legacy name still orders", legacyMySQL, "mariadb-10.11", devBuilds, "mariadb-10.11", ""},
		{"series orders a legacy name", legacyMySQL, "10.11", devBuilds, "mariadb-10.11", ""},
		{"redis default", redisPlan, "", devBuilds, "7.0", ""},
		{"redis 7.4 not installed", redisPlan, "7.4", devBuilds, "", "7.0 (redis-7.0.15)"},
		{"no version of the plan runs", redisOld, "", devBuilds, "", "no version of this plan can run"},
		{"engine mismatch", catalogclient.Plan{Engine: "redis", Versions: []string{"10.11"}, DefaultVersion: "10.11"}, "10.11", devBuilds, "", "no version"},
		{"driver silent: plan trusted", redisOld, "7.4", nil, "7.4", ""},
		{"driver silent: unknown still refused", redisOld, "6.2", nil, "", "7.2, 7.4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, prob := chooseVersion(tc.plan, tc.version, tc.avail)
			if tc.refused == "" {
				if prob != nil || got != tc.want {
					t.Fatalf("chooseVersion = %q, %v; want %q", got, prob, tc.want)
				}
				return
			}
			if prob == nil {
				t.Fatalf("chooseVersion = %q, want a refusal", got)
			}
			if prob.Status != 422 || prob.Type != ProblemVersionUnavailable || len(prob.Errors) != 1 || prob.Errors[0].Field != "version" ||
				!strings.Contains(prob.Errors[0].Reason, tc.refused) {
				t.Fatalf("problem = %+v, want 422 on version naming %q", prob, tc.refused)
			}
		})
	}
}
