package provisioning

import (
	"encoding/json"
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

// The internal engines view lists the builds the local driver runs, with
// the label and major.minor the catalog filters its listings by, and says
// that the driver reports them; without a signed identity it answers 401.
func TestEnginesView(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	want := map[string]driver.EngineVersion{}
	for _, eng := range []driver.Engine{driver.EngineMySQL, driver.EngineRedis} {
		want[string(eng)] = installedBuild(t, eng)
	}
	r := s.as("acme").do("GET", "/internal/v1/engines", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /internal/v1/engines: %d %s", r.status, r.body)
	}
	var view struct {
		Reported bool `json:"reported"`
		Items    []struct {
			Engine, Flavor, Version, Series, Label string
		} `json:"items"`
	}
	if err := json.Unmarshal(r.body, &view); err != nil {
		t.Fatal(err)
	}
	if !view.Reported || len(view.Items) != len(want) {
		t.Fatalf("engines view %s, want reported with %d builds", r.body, len(want))
	}
	for _, it := range view.Items {
		b := want[it.Engine]
		if it.Version != b.Version || it.Series != b.Series() || it.Label != b.Label() || it.Flavor != b.Flavor {
			t.Errorf("engine %s: %+v, want %s (%s)", it.Engine, it, b.Label(), b.Series())
		}
	}
	resp, err := http.Get("http://" + s.cur.Addr() + "/internal/v1/engines")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned GET /internal/v1/engines: %d, want 401", resp.StatusCode)
	}
}
