package provisioning

import (
	"net/http"
	"testing"
	"time"
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
	r := c.do("PUT", base+"?accepts_incomplete=true", prov, v...)
	if r.status != http.StatusAccepted || r.json(t)["operation"] == "" {
		t.Fatalf("provision: %d %s", r.status, r.body)
	}
	op := r.json(t)["operation"].(string)
	if r := c.do("PUT", base+"?accepts_incomplete=true", prov, v...); r.status != http.StatusAccepted && r.status != http.StatusOK {
		t.Errorf("repeat while provisioning: %d", r.status)
	}
	other := map[string]any{"service_id": serviceRedis, "plan_id": planRedisHA, "organization_guid": "org", "space_guid": "space"}
	if r := c.do("PUT", base+"?accepts_incomplete=true", other, v...); r.status != http.StatusConflict {
		t.Errorf("same id other plan: %d %s", r.status, r.body)
	}
	eventually(t, readyWithin, "last_operation succeeded", func() error {
		r := c.do("GET", base+"/last_operation?operation="+op, nil, v...)
		if r.json(t)["state"] != "succeeded" {
			return errString(string(r.body))
		}
		return nil
	})
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
	if r := c.do("DELETE", base+"/service_bindings/"+bid, nil, v...); r.status != http.StatusGone {
		t.Errorf("second unbind: %d", r.status)
	}

	if r := c.do("DELETE", base+"?service_id="+serviceRedis+"&plan_id="+planRedisDev, nil, v...); r.status != http.StatusUnprocessableEntity {
		t.Errorf("sync deprovision: %d", r.status)
	}
	dr := c.do("DELETE", base+"?accepts_incomplete=true&service_id="+serviceRedis+"&plan_id="+planRedisDev, nil, v...)
	if dr.status != http.StatusAccepted {
		t.Fatalf("deprovision: %d %s", dr.status, dr.body)
	}
	dop := dr.json(t)["operation"].(string)
	eventually(t, time.Minute, "last_operation 410", func() error {
		r := c.do("GET", base+"/last_operation?operation="+dop, nil, v...)
		if r.status != http.StatusGone {
			return errString(string(r.body))
		}
		return nil
	})
	if r := c.do("DELETE", base+"?accepts_incomplete=true&service_id="+serviceRedis+"&plan_id="+planRedisDev, nil, v...); r.status != http.StatusGone {
		t.Errorf("deprovision again: %d", r.status)
	}
	if pids := nodePIDs(s.stateDir); len(pids) != 0 {
		t.Errorf("processes after deprovision: %v", pids)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
