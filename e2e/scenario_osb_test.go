package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestScenarioOpenServiceBroker plays an OSB platform (Cloud Foundry, the
// Kubernetes service catalog) through the gateway's /v2: a platform-admin
// issues a broker credential bound to a tenant; the "platform" reads the
// catalog, provisions a multi-az Redis asynchronously, polls last_operation,
// binds, uses the credentials, unbinds, deprovisions; the tenant sees the
// instance through /api/v1 meanwhile, and nothing is left afterwards.
func TestScenarioOpenServiceBroker(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	start := time.Now()
	before := admin.allocation()
	tenantID := "osb-" + randHex(3)
	tenant := p.newTenant(t, tenantID, "tenant-admin")

	var cred struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	admin.must("POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "cf-" + tenantID, "tenant": tenantID}, http.StatusCreated, &cred)
	osb := &osbClient{t: t, base: p.URL, user: cred.Username, password: cred.Password}

	// The catalog: the redis service and its multi-az plan.
	var cat struct {
		Services []struct {
			ID    string `json:"id"`
			Name  string `json:"name"`
			Plans []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"plans"`
		} `json:"services"`
	}
	osb.must("GET", "/v2/catalog", nil, http.StatusOK, &cat)
	var serviceID, planID string
	for _, s := range cat.Services {
		for _, pl := range s.Plans {
			if s.Name == "redis" && pl.Name == "redis-ha-multi-az" {
				serviceID, planID = s.ID, pl.ID
			}
		}
	}
	if serviceID == "" {
		t.Fatalf("no redis service with the redis-ha-multi-az plan in /v2/catalog: %+v", cat)
	}
	ids := url.Values{"service_id": {serviceID}, "plan_id": {planID}}

	// Provision, asynchronously.
	instanceID := "cf-" + randHex(8)
	var prov struct {
		Operation string `json:"operation"`
	}
	osb.must("PUT", "/v2/service_instances/"+instanceID+"?accepts_incomplete=true", map[string]any{
		"service_id": serviceID, "plan_id": planID, "organization_guid": "org-" + tenantID, "space_guid": "space-1",
		"context": map[string]any{"platform": "cloudfoundry", "organization_guid": "org-" + tenantID, "space_guid": "space-1"},
	}, http.StatusAccepted, &prov)
	var inst instance
	registered := false
	waitLastOperation(t, osb, "/v2/service_instances/"+instanceID+"/last_operation?"+ids.Encode()+"&operation="+url.QueryEscape(prov.Operation), func() {
		// The tenant sees the order as its own instance through /api/v1.
		if registered {
			return
		}
		var list struct{ Items []instance }
		if tenant.call("GET", "/api/v1/instances", nil, http.StatusOK, &list) == nil && len(list.Items) == 1 {
			inst = list.Items[0]
			registered = true
			id := inst.ID
			t.Cleanup(func() { bestEffortDelete(t, admin, id) })
		}
	})
	if !registered {
		t.Fatal("the instance provisioned through OSB is not listed by its tenant through /api/v1")
	}
	tenant.must("GET", "/api/v1/instances/"+inst.ID, nil, http.StatusOK, &inst)
	checkTopology(t, inst, "redis")
	t.Logf("OSB provision → succeeded  %.2fs", time.Since(start).Seconds())

	// Bind, and use the credentials.
	bindingID := "app-" + randHex(6)
	var bound struct {
		Credentials struct {
			Host     string `json:"host"`
			Port     int    `json:"port"`
			Username string `json:"username"`
			Password string `json:"password"`
			URI      string `json:"uri"`
			// The router's endpoints, as REST bindings carry them.
			Endpoints routerEndpoints `json:"endpoints"`
		} `json:"credentials"`
	}
	osb.must("PUT", "/v2/service_instances/"+instanceID+"/service_bindings/"+bindingID, map[string]any{
		"service_id": serviceID, "plan_id": planID, "bind_resource": map[string]any{"app_guid": "app-1"},
	}, http.StatusCreated, &bound)
	var b binding
	b.Credentials.Host, b.Credentials.Port = bound.Credentials.Host, bound.Credentials.Port
	b.Credentials.Username, b.Credentials.Password, b.Credentials.URI = bound.Credentials.Username, bound.Credentials.Password, bound.Credentials.URI
	b.Credentials.Endpoints = bound.Credentials.Endpoints
	checkRedisData(t, inst, b)

	// Unbind: the credentials stop working.
	osb.must("DELETE", "/v2/service_instances/"+instanceID+"/service_bindings/"+bindingID+"?"+ids.Encode(), nil, http.StatusOK, nil)
	waitFor(t, "the unbound OSB credentials to be refused by the primary", replicaTimeout, func() (bool, string) {
		rdb := redis.NewClient(&redis.Options{Addr: inst.Endpoints.Primary, Username: b.Credentials.Username, Password: b.Credentials.Password, MaxRetries: -1})
		defer rdb.Close()
		err := rdb.Ping(context.Background()).Err()
		return err != nil, fmt.Sprintf("PING: %v", err)
	})

	// Deprovision, asynchronously; then it is gone.
	var deprov struct {
		Operation string `json:"operation"`
	}
	osb.must("DELETE", "/v2/service_instances/"+instanceID+"?accepts_incomplete=true&"+ids.Encode(), nil, http.StatusAccepted, &deprov)
	waitLastOperation(t, osb, "/v2/service_instances/"+instanceID+"/last_operation?"+ids.Encode()+"&operation="+url.QueryEscape(deprov.Operation), nil)
	osb.must("DELETE", "/v2/service_instances/"+instanceID+"?accepts_incomplete=true&"+ids.Encode(), nil, http.StatusGone, nil)
	checkNothingLeft(t, p, tenant, admin, before, []instance{inst})
	t.Logf("scenario total %.2fs", time.Since(start).Seconds())
}

// waitLastOperation polls an OSB last_operation until `succeeded` (a
// deprovision may also answer 410 once the instance is gone); `failed` fails
// the test. each runs on every poll.
func waitLastOperation(t *testing.T, osb *osbClient, path string, each func()) {
	t.Helper()
	waitFor(t, "OSB "+path+" to succeed", readyTimeout, func() (bool, string) {
		if each != nil {
			each()
		}
		status, body, err := osb.do("GET", path, nil)
		if err != nil {
			return false, err.Error()
		}
		if status == http.StatusGone {
			return true, ""
		}
		var op struct {
			State       string `json:"state"`
			Description string `json:"description"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &op) != nil {
			return false, fmt.Sprintf("%d %.300s", status, body)
		}
		if op.State == "failed" {
			t.Fatalf("OSB operation failed: %s", op.Description)
		}
		return op.State == "succeeded", op.State + ": " + op.Description
	})
}

// osbClient calls /v2 with a broker credential, as an OSB platform does.
type osbClient struct {
	t                    *testing.T
	base, user, password string
}

func (c *osbClient) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("X-Broker-API-Version", "2.17")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// must fails the test unless the answer has status want; it decodes the
// body into out when out is not nil.
func (c *osbClient) must(method, path string, body any, want int, out any) {
	c.t.Helper()
	status, b, err := c.do(method, path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if status != want {
		c.t.Fatalf("%s %s: want %d, got %d: %.500s", method, path, want, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode: %v (%.300s)", method, path, err, b)
		}
	}
}
