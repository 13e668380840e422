package provisioning

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// TestOSB runs an OSB platform's flow as the catalog forwards it: async
// provision, poll, bind, unbind, deprovision, 410.
func TestOSB(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	c := s.as("acme")
	v := []string{"X-Broker-API-Version", "2.17"}
	const iid = "5a0e5f0c-8a4e-4a45-9d62-6e5c1d1f0a01"
	const bid = "b2c7a3f4-1111-4a45-9d62-6e5c1d1f0a02"
	base := "/v2/service_instances/" + iid
	prov := map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev, "organization_guid": "org", "space_guid": "space", "context": map[string]any{"platform": "cloudfoundry"}}

	if r := c.do("PUT", base, prov, v...); r.status != http.StatusUnprocessableEntity || r.json(t)["error"] != "AsyncRequired" {
		t.Fatalf("sync provision: %d %s", r.status, r.body)
	}
	op := c.osbProvision(t, base, prov)
	if r := c.do("PUT", base+"?accepts_incomplete=true", prov, v...); r.status != http.StatusAccepted && r.status != http.StatusOK {
		t.Errorf("repeat while provisioning: %d", r.status)
	}
	other := map[string]any{"service_id": serviceRedis, "plan_id": planRedisHA, "organization_guid": "org", "space_guid": "space"}
	if r := c.do("PUT", base+"?accepts_incomplete=true", other, v...); r.status != http.StatusConflict {
		t.Errorf("same id other plan: %d %s", r.status, r.body)
	}
	c.osbAwaitOperation(t, base, op, "succeeded", readyWithin)
	if r := c.do("PUT", base+"?accepts_incomplete=true", prov, v...); r.status != http.StatusOK {
		t.Errorf("identical repeat: %d", r.status)
	}
	if r := c.do("GET", base, nil, v...); r.status != http.StatusOK || r.json(t)["plan_id"] != planRedisDev {
		t.Errorf("fetch instance: %d %s", r.status, r.body)
	}
	if r := s.as("globex").do("GET", base, nil, v...); r.status != http.StatusNotFound {
		t.Errorf("other tenant fetch: %d", r.status)
	}

	bind := map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev}
	br := c.do("PUT", base+"/service_bindings/"+bid, bind, v...)
	if br.status != http.StatusCreated {
		t.Fatalf("bind: %d %s", br.status, br.body)
	}
	creds := br.json(t)["credentials"].(map[string]any)
	inst := c.do("GET", "/api/v1/instances?limit=10", nil).json(t)["items"].([]any)[0].(map[string]any)
	checkData(t, inst, creds)
	if r := c.do("PUT", base+"/service_bindings/"+bid, bind, v...); r.status != http.StatusOK {
		t.Errorf("repeat bind: %d", r.status)
	}
	if r := c.do("GET", base+"/service_bindings/"+bid, nil, v...); r.status != http.StatusOK {
		t.Errorf("fetch binding: %d", r.status)
	}
	if r := c.do("DELETE", base+"/service_bindings/"+bid+"?service_id="+serviceRedis+"&plan_id="+planRedisDev, nil, v...); r.status != http.StatusOK {
		t.Fatalf("unbind: %d %s", r.status, r.body)
	}
	loginFails(t, inst, creds)
	if r := c.do("DELETE", base+"/service_bindings/"+bid+"?service_id="+serviceRedis+"&plan_id="+planRedisDev, nil, v...); r.status != http.StatusGone {
		t.Errorf("second unbind: %d", r.status)
	}

	if r := c.do("DELETE", base+"?service_id="+serviceRedis+"&plan_id="+planRedisDev, nil, v...); r.status != http.StatusUnprocessableEntity {
		t.Errorf("sync deprovision: %d", r.status)
	}
	c.osbDeprovision(t, base, "service_id="+serviceRedis+"&plan_id="+planRedisDev)
	if r := c.do("DELETE", base+"?accepts_incomplete=true&service_id="+serviceRedis+"&plan_id="+planRedisDev, nil, v...); r.status != http.StatusGone {
		t.Errorf("deprovision again: %d", r.status)
	}
	if pids := nodePIDs(s.stateDir); len(pids) != 0 {
		t.Errorf("processes after deprovision: %v", pids)
	}
}

// osbProvision asks for base's instance asynchronously with body and
// returns the operation OSB's 202 names.
func (c *client) osbProvision(t *testing.T, base string, body map[string]any) string {
	t.Helper()
	r := c.do("PUT", base+"?accepts_incomplete=true", body, "X-Broker-API-Version", "2.17")
	if r.status != http.StatusAccepted {
		t.Fatalf("provision: %d %s", r.status, r.body)
	}
	op, _ := r.json(t)["operation"].(string)
	if op == "" {
		t.Fatalf("provision: no operation in %s", r.body)
	}
	return op
}

// osbAwaitOperation waits until base's last_operation op is in state.
func (c *client) osbAwaitOperation(t *testing.T, base, op, state string, within time.Duration) {
	t.Helper()
	eventually(t, within, "last_operation "+state, func() error {
		if r := c.do("GET", base+"/last_operation?operation="+op, nil, "X-Broker-API-Version", "2.17"); r.json(t)["state"] != state {
			return errString(string(r.body))
		}
		return nil
	})
}

// osbDeprovision deprovisions base's instance asynchronously (ids: its
// service_id and plan_id query) and waits until its last_operation is 410.
func (c *client) osbDeprovision(t *testing.T, base, ids string) {
	t.Helper()
	v := []string{"X-Broker-API-Version", "2.17"}
	r := c.do("DELETE", base+"?accepts_incomplete=true&"+ids, nil, v...)
	if r.status != http.StatusAccepted {
		t.Fatalf("deprovision: %d %s", r.status, r.body)
	}
	op, _ := r.json(t)["operation"].(string)
	eventually(t, time.Minute, "last_operation 410", func() error {
		if r := c.do("GET", base+"/last_operation?operation="+op, nil, v...); r.status != http.StatusGone {
			return errString(string(r.body))
		}
		return nil
	})
}

type errString string

func (e errString) Error() string { return string(e) }

// osbCall is one OSB request of a conformance case.
type osbCall struct {
	method, path string
	body         map[string]any
}

// osbCase is one rule of docs/osb.md's conformance table: the call, the
// status OSB 2.17 requires, and (for errors) a word the description must
// contain.
type osbCase struct {
	name   string
	call   osbCall
	status int
	desc   string
}

func (c *client) osbCases(t *testing.T, cases []osbCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.call.method, tc.call.path, tc.call.body, "X-Broker-API-Version", "2.17")
			if r.status != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.call.method, tc.call.path, r.status, r.body, tc.status)
			}
			if r.status >= 400 && r.status != http.StatusGone {
				body := r.json(t)
				if body["error"] == "" || body["description"] == "" {
					t.Fatalf("not an OSB error body: %s", r.body)
				}
				if d, _ := body["description"].(string); !strings.Contains(d, tc.desc) {
					t.Fatalf("description %q does not mention %q", d, tc.desc)
				}
			}
		})
	}
}

// without returns m without the named keys.
func without(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// with returns m with k set to v.
func with(m map[string]any, k string, v any) map[string]any {
	out := without(m)
	out[k] = v
	return out
}

// TestOSBConformance checks the OSB 2.17 rules of docs/osb.md one by one
// against one single-node Redis instance: required fields, ids that do not
// match the instance, repeats with other attributes, 410 for what is gone,
// and ids that differ only in case.
func TestOSBConformance(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	c := s.as("acme")
	v := []string{"X-Broker-API-Version", "2.17"}
	const iid = "c0ffee00-8a4e-4a45-9d62-6e5c1d1f0a01"
	const bid = "b1d00000-1111-4a45-9d62-6e5c1d1f0a02"
	base := "/v2/service_instances/" + iid
	ids := func(service, plan string) string {
		return url.Values{"service_id": {service}, "plan_id": {plan}}.Encode()
	}
	own := ids(serviceRedis, planRedisDev)
	prov := map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev, "organization_guid": "org", "space_guid": "space",
		"context": map[string]any{"platform": "cloudfoundry"}, "parameters": map[string]any{"timeout": 0}}
	bind := map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev, "bind_resource": map[string]any{"app_guid": "app-1"}}
	instanceExists := func(t *testing.T, path string, want int) {
		t.Helper()
		if r := c.do("GET", path+"/last_operation", nil, v...); r.status != want {
			t.Fatalf("last_operation of %s: %d %s, want %d", path, r.status, r.body, want)
		}
	}

	t.Run("before provisioning", func(t *testing.T) {
		const missing = "/v2/service_instances/never-provisioned"
		c.osbCases(t, []osbCase{
			{"provision without service_id", osbCall{"PUT", missing + "?accepts_incomplete=true", without(prov, "service_id")}, 400, "service_id"},
			{"provision without plan_id", osbCall{"PUT", missing + "?accepts_incomplete=true", without(prov, "plan_id")}, 400, "plan_id"},
			{"provision without organization_guid", osbCall{"PUT", missing + "?accepts_incomplete=true", without(prov, "organization_guid")}, 400, "organization_guid"},
			{"provision without space_guid", osbCall{"PUT", missing + "?accepts_incomplete=true", without(prov, "space_guid")}, 400, "space_guid"},
			{"provision with empty space_guid", osbCall{"PUT", missing + "?accepts_incomplete=true", with(prov, "space_guid", "")}, 400, "space_guid"},
			{"update without service_id", osbCall{"PATCH", missing + "?accepts_incomplete=true", map[string]any{"parameters": map[string]any{}}}, 400, "service_id"},
			{"deprovision without service_id", osbCall{"DELETE", missing + "?accepts_incomplete=true&plan_id=" + planRedisDev, nil}, 400, "service_id"},
			{"deprovision without plan_id", osbCall{"DELETE", missing + "?accepts_incomplete=true&service_id=" + serviceRedis, nil}, 400, "plan_id"},
			{"deprovision of a never provisioned instance", osbCall{"DELETE", missing + "?accepts_incomplete=true&" + own, nil}, 410, ""},
			{"deprovision of a never provisioned instance, synchronous", osbCall{"DELETE", missing + "?" + own, nil}, 410, ""},
			{"bind without service_id", osbCall{"PUT", missing + "/service_bindings/b", without(bind, "service_id")}, 400, "service_id"},
			{"bind without plan_id", osbCall{"PUT", missing + "/service_bindings/b", without(bind, "plan_id")}, 400, "plan_id"},
			{"unbind without service_id", osbCall{"DELETE", missing + "/service_bindings/b?plan_id=" + planRedisDev, nil}, 400, "service_id"},
			{"unbind without plan_id", osbCall{"DELETE", missing + "/service_bindings/b?service_id=" + serviceRedis, nil}, 400, "plan_id"},
			{"unbind of a never made binding", osbCall{"DELETE", missing + "/service_bindings/b?" + own, nil}, 410, ""},
		})
		instanceExists(t, missing, http.StatusNotFound)
	})

	op := c.osbProvision(t, base, prov)
	t.Run("while provisioning", func(t *testing.T) {
		c.osbCases(t, []osbCase{
			{"same id, another service's service_id", osbCall{"PUT", base + "?accepts_incomplete=true", with(prov, "service_id", serviceMySQL)}, 409, "service_id"},
			{"same id, unknown service_id", osbCall{"PUT", base + "?accepts_incomplete=true", with(prov, "service_id", "no-such-service")}, 409, "service_id"},
			{"same id, other plan", osbCall{"PUT", base + "?accepts_incomplete=true", with(prov, "plan_id", planRedisHA)}, 409, "plan_id"},
		})
	})
	c.osbAwaitOperation(t, base, op, "succeeded", readyWithin)

	t.Run("instance", func(t *testing.T) {
		c.osbCases(t, []osbCase{
			{"identical repeat without accepts_incomplete", osbCall{"PUT", base, prov}, 200, ""},
			{"identical repeat with accepts_incomplete", osbCall{"PUT", base + "?accepts_incomplete=true", prov}, 200, ""},
			{"repeat with other parameters without accepts_incomplete", osbCall{"PUT", base, with(prov, "parameters", map[string]any{"timeout": 7})}, 409, "parameters"},
			{"repeat with another service_id without accepts_incomplete", osbCall{"PUT", base, with(prov, "service_id", serviceMySQL)}, 409, "service_id"},
			{"update without service_id", osbCall{"PATCH", base + "?accepts_incomplete=true", map[string]any{"parameters": map[string]any{"timeout": 9}}}, 400, "service_id"},
			{"update with another service_id", osbCall{"PATCH", base + "?accepts_incomplete=true", map[string]any{"service_id": serviceMySQL, "parameters": map[string]any{"timeout": 9}}}, 400, "service_id"},
			{"update with another plan_id (plan_updateable is false)", osbCall{"PATCH", base + "?accepts_incomplete=true", map[string]any{"service_id": serviceRedis,
				"plan_id": planRedisHA, "parameters": map[string]any{"timeout": 9}}}, 422, "plan"},
			{"update with wrong previous plan_id", osbCall{"PATCH", base + "?accepts_incomplete=true", map[string]any{"service_id": serviceRedis,
				"previous_values": map[string]any{"plan_id": planRedisHA}, "parameters": map[string]any{"timeout": 9}}}, 400, "plan_id"},
			{"fetch with another plan_id", osbCall{"GET", base + "?" + ids(serviceRedis, planRedisHA), nil}, 400, "plan_id"},
			{"last_operation with another service_id", osbCall{"GET", base + "/last_operation?" + ids(serviceMySQL, planRedisDev), nil}, 400, "service_id"},
			{"last_operation with its own ids", osbCall{"GET", base + "/last_operation?" + own, nil}, 200, ""},
			{"deprovision without plan_id", osbCall{"DELETE", base + "?accepts_incomplete=true&service_id=" + serviceRedis, nil}, 400, "plan_id"},
			{"deprovision with another service's ids", osbCall{"DELETE", base + "?accepts_incomplete=true&" + ids(serviceMySQL, planMySQLDev), nil}, 400, "service_id"},
			{"deprovision with another plan", osbCall{"DELETE", base + "?accepts_incomplete=true&" + ids(serviceRedis, planRedisHA), nil}, 400, "plan_id"},
		})
		// None of the refused calls changed or deleted anything.
		r := c.do("GET", base, nil, v...)
		if r.status != http.StatusOK {
			t.Fatalf("instance after refused calls: %d %s", r.status, r.body)
		}
		if got := r.json(t); got["parameters"].(map[string]any)["timeout"] != 0.0 || got["metadata"].(map[string]any)["attributes"].(map[string]any)["state"] != "ready" {
			t.Fatalf("instance changed by refused calls: %s", r.body)
		}
	})

	bpath := base + "/service_bindings/" + bid
	t.Run("binding", func(t *testing.T) {
		c.osbCases(t, []osbCase{
			{"bind with another plan_id", osbCall{"PUT", bpath, with(bind, "plan_id", planRedisHA)}, 400, "plan_id"},
			{"bind with another service_id", osbCall{"PUT", bpath, with(bind, "service_id", serviceMySQL)}, 400, "service_id"},
			{"nothing was bound", osbCall{"GET", bpath, nil}, 404, "binding"},
			{"last_operation of an unknown binding", osbCall{"GET", bpath + "/last_operation", nil}, 404, "binding"},
			{"bind", osbCall{"PUT", bpath, bind}, 201, ""},
			{"identical repeat", osbCall{"PUT", bpath, bind}, 200, ""},
			{"repeat with the deprecated top-level app_guid", osbCall{"PUT", bpath, with(without(bind, "bind_resource"), "app_guid", "app-1")}, 200, ""},
			{"repeat with another app_guid", osbCall{"PUT", bpath, with(bind, "bind_resource", map[string]any{"app_guid": "app-2"})}, 409, "app_guid"},
			{"repeat with other parameters", osbCall{"PUT", bpath, with(bind, "parameters", map[string]any{"role": "ro"})}, 409, "parameters"},
			{"last_operation", osbCall{"GET", bpath + "/last_operation?" + own, nil}, 200, ""},
			{"unbind without plan_id", osbCall{"DELETE", bpath + "?service_id=" + serviceRedis, nil}, 400, "plan_id"},
			{"unbind with another plan_id", osbCall{"DELETE", bpath + "?" + ids(serviceRedis, planRedisHA), nil}, 400, "plan_id"},
			{"still bound", osbCall{"GET", bpath, nil}, 200, ""},
			{"unbind", osbCall{"DELETE", bpath + "?" + own, nil}, 200, ""},
			{"last_operation of an unbound binding", osbCall{"GET", bpath + "/last_operation", nil}, 410, ""},
			{"unbind again", osbCall{"DELETE", bpath + "?" + own, nil}, 410, ""},
		})
	})

	t.Run("binding name taken through the Canopy API", func(t *testing.T) {
		canopyID := c.do("GET", base, nil, v...).json(t)["metadata"].(map[string]any)["labels"].(map[string]any)["canopy_instance_id"].(string)
		if r := c.do("POST", "/api/v1/instances/"+canopyID+"/bindings", map[string]any{"name": "osb-taken"}); r.status != http.StatusCreated {
			t.Fatalf("canopy binding: %d %s", r.status, r.body)
		}
		c.osbCases(t, []osbCase{
			{"bind an id whose name is taken", osbCall{"PUT", base + "/service_bindings/taken", bind}, 409, "osb-taken"},
			{"nothing was bound", osbCall{"GET", base + "/service_bindings/taken", nil}, 404, "binding"},
		})
	})

	t.Run("ids compare exactly", func(t *testing.T) {
		upper := base + "/service_bindings/CASE-" + bid
		lower := base + "/service_bindings/case-" + bid
		ru := c.do("PUT", upper, bind, v...)
		rl := c.do("PUT", lower, bind, v...)
		if ru.status != http.StatusCreated || rl.status != http.StatusCreated {
			t.Fatalf("bindings CASE-… and case-…: %d %s / %d %s, want two 201", ru.status, ru.body, rl.status, rl.body)
		}
		if cu, cl := ru.json(t)["credentials"].(map[string]any), rl.json(t)["credentials"].(map[string]any); cu["username"] == cl["username"] {
			t.Fatalf("bindings differing in case share user %v", cu["username"])
		}
		upperInstance := "/v2/service_instances/" + strings.ToUpper(iid)
		r := c.do("PUT", upperInstance+"?accepts_incomplete=true", prov, v...)
		if r.status != http.StatusAccepted {
			t.Fatalf("instance %s next to %s: %d %s, want 202 (a new instance)", strings.ToUpper(iid), iid, r.status, r.body)
		}
		if r := c.do("DELETE", upperInstance+"?accepts_incomplete=true&"+own, nil, v...); r.status != http.StatusAccepted {
			t.Fatalf("deprovision %s: %d %s", strings.ToUpper(iid), r.status, r.body)
		}
		if r := c.do("GET", base, nil, v...); r.status != http.StatusOK {
			t.Fatalf("deprovisioning %s touched %s: %d %s", strings.ToUpper(iid), iid, r.status, r.body)
		}
	})

	c.osbDeprovision(t, base, own)
	t.Run("after deprovisioning", func(t *testing.T) {
		c.osbCases(t, []osbCase{
			{"deprovision again", osbCall{"DELETE", base + "?accepts_incomplete=true&" + own, nil}, 410, ""},
			{"deprovision again, synchronous", osbCall{"DELETE", base + "?" + own, nil}, 410, ""},
		})
	})
}

// TestOSBRepeatWhileProvisioning holds an instance in provisioning (the
// saga halts before creating nodes) and checks the OSB answers that only
// an unfinished instance gets.
func TestOSBRepeatWhileProvisioning(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	hooks, reached := haltAt(instance.StepCreating)
	s.hooks = hooks
	s.start()
	c := s.as("acme")
	const base = "/v2/service_instances/held-in-provisioning"
	prov := map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev, "organization_guid": "org", "space_guid": "space"}
	op := c.osbProvision(t, base, prov)
	select {
	case <-reached:
	case <-time.After(readyWithin):
		t.Fatal("saga never reached creating")
	}
	c.osbCases(t, []osbCase{
		{"identical repeat without accepts_incomplete", osbCall{"PUT", base, prov}, 422, "accepts_incomplete"},
		{"repeat with other parameters", osbCall{"PUT", base + "?accepts_incomplete=true", with(prov, "parameters", map[string]any{"timeout": 3})}, 409, "parameters"},
		{"fetch while provisioning", osbCall{"GET", base, nil}, 404, "provisioned"},
		{"deprovision with another plan", osbCall{"DELETE", base + "?accepts_incomplete=true&service_id=" + serviceRedis + "&plan_id=" + planRedisHA, nil}, 400, "plan_id"},
		{"deprovision without accepts_incomplete", osbCall{"DELETE", base + "?service_id=" + serviceRedis + "&plan_id=" + planRedisDev, nil}, 422, "accepts_incomplete"},
	})
	r := c.do("PUT", base+"?accepts_incomplete=true", prov, "X-Broker-API-Version", "2.17")
	if r.status != http.StatusAccepted || r.json(t)["operation"] != op {
		t.Fatalf("identical repeat: %d %s, want 202 with operation %s", r.status, r.body, op)
	}
	r = c.do("GET", base+"/last_operation?operation="+op, nil, "X-Broker-API-Version", "2.17")
	if r.status != http.StatusOK || r.json(t)["state"] != "in progress" {
		t.Fatalf("last_operation: %d %s", r.status, r.body)
	}
}

// TestOSBUpdateParametersFailClosed: an OSB update checks parameters like
// the /api/v1 PATCH does: against the plan's schema and the engine's
// allowlist (400 naming the setting), and without the catalog's answer
// nothing changes (503 with an OSB error body).
func TestOSBUpdateParametersFailClosed(t *testing.T) {
	e := newEnv(t)
	catalogURL, down := catalogOutage(t, e.catalogURL)
	s := newStack(t, e, func(c *Config) { c.CatalogURL = catalogURL })
	s.start()
	c := s.as("acme")
	v := []string{"X-Broker-API-Version", "2.17"}
	const base = "/v2/service_instances/lax-update"
	// planRedisLax's schema accepts anything: only the allowlist stands
	// between a parameter and the engine.
	prov := map[string]any{"service_id": serviceRedis, "plan_id": planRedisLax, "organization_guid": "org", "space_guid": "space",
		"parameters": map[string]any{"timeout": 30}}
	op := c.osbProvision(t, base, prov)
	c.osbAwaitOperation(t, base, op, "succeeded", readyWithin)
	update := func(params map[string]any) map[string]any {
		return map[string]any{"service_id": serviceRedis, "parameters": params}
	}
	c.osbCases(t, []osbCase{
		{"setting outside the allowlist", osbCall{"PATCH", base + "?accepts_incomplete=true", update(map[string]any{"dir": "/etc"})}, 400, "parameters.dir"},
		{"value the allowlist refuses", osbCall{"PATCH", base + "?accepts_incomplete=true", update(map[string]any{"hz": 100000})}, 400, "parameters.hz"},
	})

	down.Store(true)
	r := c.do("PATCH", base+"?accepts_incomplete=true", update(map[string]any{"timeout": 60}), v...)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("update without the catalog: %d %s (Retry-After %q), want 503 with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}
	if body := r.json(t); body["error"] == "BadRequest" || body["description"] == "" {
		t.Errorf("update without the catalog: not a fitting OSB error body: %s", r.body)
	}
	down.Store(false)

	r = c.do("GET", base, nil, v...)
	if r.status != http.StatusOK {
		t.Fatalf("fetch: %d %s", r.status, r.body)
	}
	got := r.json(t)
	if params := got["parameters"].(map[string]any); len(params) != 1 || params["timeout"] != 30.0 {
		t.Errorf("parameters changed by refused updates: %v", params)
	}
	if st := got["metadata"].(map[string]any)["attributes"].(map[string]any)["state"]; st != "ready" {
		t.Errorf("state after refused updates: %v", st)
	}
}

// TestOSBRepeatOfFailedProvision: an identical provision PUT for an
// instance whose provisioning failed is refused with 409 pointing at the
// failure (200 would say it is fully provisioned), and changes nothing.
func TestOSBRepeatOfFailedProvision(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	c := s.as(tenantNoRoom)
	v := []string{"X-Broker-API-Version", "2.17"}
	const base = "/v2/service_instances/no-room"
	prov := map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev, "organization_guid": "org", "space_guid": "space"}
	op := c.osbProvision(t, base, prov)
	c.osbAwaitOperation(t, base, op, "failed", time.Minute)
	c.osbCases(t, []osbCase{
		{"identical repeat with accepts_incomplete", osbCall{"PUT", base + "?accepts_incomplete=true", prov}, 409, "failed"},
		{"identical repeat without accepts_incomplete", osbCall{"PUT", base, prov}, 409, "last_operation"},
	})
	if r := c.do("GET", base+"/last_operation", nil, v...); r.status != http.StatusOK || r.json(t)["state"] != "failed" {
		t.Errorf("last_operation after the repeats: %d %s", r.status, r.body)
	}
	if list := c.do("GET", "/api/v1/instances", nil).json(t); len(list["items"].([]any)) != 1 {
		t.Errorf("instances after the repeats: %v", list["items"])
	}
	// Nor can it be updated, and no retry will change that: not a ConcurrencyError.
	update := map[string]any{"service_id": serviceRedis, "parameters": map[string]any{"timeout": 9}}
	if r := c.do("PATCH", base+"?accepts_incomplete=true", update, v...); r.status != http.StatusUnprocessableEntity || r.json(t)["error"] != "InstanceFailed" {
		t.Errorf("update of the failed instance: %d %s, want 422 InstanceFailed", r.status, r.body)
	}
	if r := c.do("PUT", base+"/service_bindings/b1", map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev}, v...); r.status != http.StatusUnprocessableEntity || r.json(t)["error"] != "InstanceFailed" {
		t.Errorf("bind to the failed instance: %d %s, want 422 InstanceFailed", r.status, r.body)
	}
	// The way out the description names: deprovision the failed instance.
	own := "service_id=" + serviceRedis + "&plan_id=" + planRedisDev
	c.osbDeprovision(t, base, own)
	if r := c.do("PATCH", base+"?accepts_incomplete=true", update, v...); r.status != http.StatusNotFound {
		t.Errorf("update of the deprovisioned instance: %d %s, want 404", r.status, r.body)
	}
}

// TestOSBFetch checks the fetch semantics that instances_retrievable and
// bindings_retrievable promise (the catalog advertises both): GET of an
// instance answers service_id, plan_id and parameters, 404 for an unknown
// one, 422 ConcurrencyError while it is being updated (the saga halts
// before applying); GET of a binding answers its credentials, 404 for an
// unknown one. 404 while provisioning: TestOSBRepeatWhileProvisioning.
func TestOSBFetch(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	hooks, reached := haltAt(instance.StepApplying)
	s.hooks = hooks
	s.start()
	c := s.as("acme")
	v := []string{"X-Broker-API-Version", "2.17"}
	const base = "/v2/service_instances/fetched"
	prov := map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev, "organization_guid": "org", "space_guid": "space",
		"parameters": map[string]any{"timeout": 5}}
	op := c.osbProvision(t, base, prov)
	c.osbAwaitOperation(t, base, op, "succeeded", readyWithin)
	r := c.do("GET", base, nil, v...)
	if got := r.json(t); r.status != http.StatusOK || got["service_id"] != serviceRedis || got["plan_id"] != planRedisDev ||
		got["parameters"].(map[string]any)["timeout"] != 5.0 {
		t.Errorf("fetch instance: %d %s", r.status, r.body)
	}
	bind := map[string]any{"service_id": serviceRedis, "plan_id": planRedisDev}
	if r := c.do("PUT", base+"/service_bindings/fb", bind, v...); r.status != http.StatusCreated {
		t.Fatalf("bind: %d %s", r.status, r.body)
	}
	r = c.do("GET", base+"/service_bindings/fb", nil, v...)
	if creds, _ := r.json(t)["credentials"].(map[string]any); r.status != http.StatusOK || creds["uri"] == nil {
		t.Errorf("fetch binding: %d %s", r.status, r.body)
	}
	c.osbCases(t, []osbCase{
		{"unknown instance", osbCall{"GET", "/v2/service_instances/never-provisioned", nil}, 404, "instance"},
		{"unknown binding", osbCall{"GET", base + "/service_bindings/never-bound", nil}, 404, "binding"},
		{"binding of an unknown instance", osbCall{"GET", "/v2/service_instances/never-provisioned/service_bindings/fb", nil}, 404, "binding"},
	})

	if r := c.do("PATCH", base+"?accepts_incomplete=true", map[string]any{"service_id": serviceRedis, "parameters": map[string]any{"timeout": 9}}, v...); r.status != http.StatusAccepted {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	select {
	case <-reached:
	case <-time.After(readyWithin):
		t.Fatal("saga never reached applying")
	}
	r = c.do("GET", base, nil, v...)
	if r.status != http.StatusUnprocessableEntity || r.json(t)["error"] != "ConcurrencyError" {
		t.Errorf("fetch while updating: %d %s, want 422 ConcurrencyError", r.status, r.body)
	}
	if r := c.do("GET", base+"/service_bindings/fb", nil, v...); r.status != http.StatusOK {
		t.Errorf("fetch binding while the instance is updated: %d %s", r.status, r.body)
	}
}
