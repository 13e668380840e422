package provisioning

import (
	"net/http"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// An order for a version the plan lists but no host runs (MySQL 8.0 on a
// MariaDB machine, Redis 6.2), through the API and through OSB, is refused
// at once with 422 on the version field naming what is available; nothing
// is created.
func TestOrderUnavailableVersion(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	c := s.as("acme")
	mysqlBuild, redisBuild := installedBuild(t, driver.EngineMySQL), installedBuild(t, driver.EngineRedis)
	cases := []struct {
		name, plan, version string
		available           driver.EngineVersion
	}{
		{"mysql-8", planMySQLDev, "8.0", mysqlBuild},
		{"mysql-8-4", planMySQLDev, "8.4", mysqlBuild},
		{"redis-6", planRedisDev, "6.2", redisBuild},
		{"redis-7-4", planRedisDev, "7.4.99", redisBuild},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			r := c.do("POST", "/api/v1/instances", map[string]any{"name": tc.name, "plan_id": tc.plan, "version": tc.version})
			if r.status != http.StatusUnprocessableEntity || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("order %s: %d %s, want a 422 problem", tc.version, r.status, r.body)
			}
			p := r.json(t)
			errs, _ := p["errors"].([]any)
			if len(errs) != 1 {
				t.Fatalf("problem %s, want one field error", r.body)
			}
			fe := errs[0].(map[string]any)
			want := tc.available.Series() + " (" + tc.available.Label() + ")"
			if fe["field"] != "version" || !strings.Contains(fe["reason"].(string), want) || !strings.Contains(p["detail"].(string), want) {
				t.Fatalf("problem %s, want the version field naming %s", r.body, want)
			}
		})
	}
	if list := c.do("GET", "/api/v1/instances", nil).json(t); len(list["items"].([]any)) != 0 {
		t.Fatalf("refused orders left instances: %v", list)
	}
}
