package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

// haltAt returns hooks that stop the saga at step (as a crash there would)
// and a channel closed the first time it happened.
func haltAt(step instance.Step) (saga.Hooks, <-chan struct{}) {
	reached := make(chan struct{})
	var once sync.Once
	return saga.Hooks{BeforeStep: func(_ context.Context, _ string, s instance.Step) error {
		if s != step {
			return nil
		}
		once.Do(func() { close(reached) })
		return errors.New("simulated crash at " + string(s))
	}}, reached
}

// TestRestartMidSaga stops provisioning at each step of a create (and of a
// delete) and starts a new process on the same database and state dir: the
// instance must end ready (or deleted), and no server process may outlive
// its instance.
func TestRestartMidSaga(t *testing.T) {
	e := newEnv(t)
	for _, step := range []instance.Step{instance.StepCreating, instance.StepReplicating, instance.StepVerifying, instance.StepDestroying} {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			s := newStack(t, e, nil)
			hooks, reached := haltAt(step)
			s.hooks = hooks
			s.start()
			c := s.as("acme")
			c.t = t
			r := c.do("POST", "/api/v1/instances", map[string]any{"name": "crashy", "plan_id": planMySQLHA})
			if r.status != http.StatusAccepted {
				t.Fatalf("order: %d %s", r.status, r.body)
			}
			id := r.json(t)["instance"].(map[string]any)["id"].(string)
			if step == instance.StepDestroying {
				c.waitState(id, readyWithin, "ready")
				if r := c.do("DELETE", "/api/v1/instances/"+id, nil); r.status != http.StatusAccepted {
					t.Fatalf("delete: %d %s", r.status, r.body)
				}
			}
			select {
			case <-reached:
			case <-time.After(readyWithin):
				t.Fatalf("saga never reached %s", step)
			}
			s.stopService()

			s.hooks = saga.Hooks{}
			s.start()
			if step == instance.StepDestroying {
				c.waitState(id, time.Minute, "deleted")
				if pids := nodePIDs(s.stateDir); len(pids) != 0 {
					t.Fatalf("processes survive the delete: %v", pids)
				}
				return
			}
			inst := c.waitState(id, readyWithin, "ready", "failed")
			if inst["state"] == "failed" {
				if pids := nodePIDs(s.stateDir); len(pids) != 0 {
					t.Fatalf("failed instance left processes: %v", pids)
				}
				return
			}
			pids := nodePIDs(s.stateDir)
			if len(pids) != 3 {
				t.Fatalf("ready with %d processes: %v", len(pids), pids)
			}
			// The instance works after the restart: bind and use it.
			br := c.do("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"})
			if br.status != http.StatusCreated {
				t.Fatalf("bind: %d %s", br.status, br.body)
			}
			checkData(t, inst, br.json(t)["credentials"].(map[string]any))
			if r := c.do("DELETE", "/api/v1/instances/"+id, nil); r.status != http.StatusAccepted {
				t.Fatalf("delete: %d %s", r.status, r.body)
			}
			c.waitState(id, time.Minute, "deleted")
			if pids := nodePIDs(s.stateDir); len(pids) != 0 {
				t.Fatalf("processes survive the delete: %v", pids)
			}
		})
	}
}

// TestOrders covers refusals and idempotency: quota, unknown plan, bad
// parameters, duplicate name, Idempotency-Key, placement refused, roles.
func TestOrders(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, func(c *Config) {
		c.Quotas = map[string]Quota{"small": {MaxInstances: 1, MaxVCPU: 2}}
	})
	s.start()
	c := s.as("small")
	c.t = t

	tests := []struct {
		name   string
		body   map[string]any
		status int
		field  string
	}{
		{"missing plan", map[string]any{"name": "a1"}, http.StatusBadRequest, "plan_id"},
		{"bad name", map[string]any{"name": "A!", "plan_id": planRedisDev}, http.StatusUnprocessableEntity, "name"},
		{"unknown plan", map[string]any{"name": "a1", "plan_id": "nope"}, http.StatusUnprocessableEntity, "plan_id"},
		{"unknown version", map[string]any{"name": "a1", "plan_id": planRedisDev, "version": "9.9"}, http.StatusUnprocessableEntity, "version"},
		{"bad parameter", map[string]any{"name": "a1", "plan_id": planRedisDev, "parameters": map[string]any{"timeout": -1}}, http.StatusUnprocessableEntity, "parameters.timeout"},
		{"unknown parameter", map[string]any{"name": "a1", "plan_id": planRedisDev, "parameters": map[string]any{"bogus": 1}}, http.StatusUnprocessableEntity, "parameters"},
		{"over vcpu quota", map[string]any{"name": "a1", "plan_id": planMySQLHA}, http.StatusUnprocessableEntity, "plan_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			r := c.do("POST", "/api/v1/instances", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			p := r.json(t)
			errs, _ := p["errors"].([]any)
			if len(errs) == 0 || errs[0].(map[string]any)["field"] != tt.field {
				t.Errorf("errors %v, want field %s", p["errors"], tt.field)
			}
			if tt.name == "over vcpu quota" && p["quota"] != "vcpu" {
				t.Errorf("quota problem does not name the quota: %s", r.body)
			}
		})
	}
	c.t = t

	// Idempotency-Key: the retry returns the same instance; another body is refused.
	body := map[string]any{"name": "cache", "plan_id": planRedisDev}
	r1 := c.do("POST", "/api/v1/instances", body, "Idempotency-Key", "k1")
	r2 := c.do("POST", "/api/v1/instances", body, "Idempotency-Key", "k1")
	if r1.status != http.StatusAccepted || r2.status != http.StatusAccepted {
		t.Fatalf("idempotent orders: %d %d %s", r1.status, r2.status, r2.body)
	}
	id := r1.json(t)["instance"].(map[string]any)["id"].(string)
	if id2 := r2.json(t)["instance"].(map[string]any)["id"]; id2 != id {
		t.Fatalf("retry created %v, first %s", id2, id)
	}
	if r := c.do("POST", "/api/v1/instances", map[string]any{"name": "cache2", "plan_id": planRedisDev}, "Idempotency-Key", "k1"); r.status != http.StatusUnprocessableEntity {
		t.Errorf("reused key with another body: %d", r.status)
	}
	// Quota of one instance: the next order is refused, naming the quota.
	r := c.do("POST", "/api/v1/instances", map[string]any{"name": "second", "plan_id": planRedisDev})
	if r.status != http.StatusUnprocessableEntity || r.json(t)["quota"] != "instances" {
		t.Errorf("over instance quota: %d %s", r.status, r.body)
	}
	c.waitState(id, readyWithin, "ready")

	// A viewer may read but not order.
	viewer := s.as("small")
	viewer.role = "tenant-viewer"
	if r := viewer.do("POST", "/api/v1/instances", body); r.status != http.StatusForbidden {
		t.Errorf("viewer order: %d", r.status)
	}
	if r := viewer.do("GET", "/api/v1/instances", nil); r.status != http.StatusOK || len(r.json(t)["items"].([]any)) != 1 {
		t.Errorf("viewer list: %d %s", r.status, r.body)
	}

	// Names are unique per tenant, not across tenants.
	big := s.as("acme")
	big.t = t
	if r := big.do("POST", "/api/v1/instances", map[string]any{"name": "cache", "plan_id": planRedisDev, "region": "nowhere"}); r.status != http.StatusAccepted {
		t.Fatalf("same name in another tenant: %d %s", r.status, r.body)
	} else {
		// The stand-in scheduler refuses region "nowhere": the create fails cleanly.
		fid := r.json(t)["instance"].(map[string]any)["id"].(string)
		inst := big.waitState(fid, time.Minute, "failed")
		if inst["reason"] == "" {
			t.Error("failed without a reason")
		}
		op := big.do("GET", "/api/v1/operations/"+r.json(t)["operation_id"].(string), nil).json(t)
		if op["state"] != "failed" || op["error"] == "" {
			t.Errorf("operation of a refused placement: %v", op)
		}
	}
	if r := big.do("POST", "/api/v1/instances", map[string]any{"name": "dup", "plan_id": planRedisDev}); r.status != http.StatusAccepted {
		t.Fatalf("order: %d", r.status)
	}
	if r := big.do("POST", "/api/v1/instances", map[string]any{"name": "dup", "plan_id": planRedisDev}); r.status != http.StatusConflict {
		t.Errorf("duplicate name: %d %s", r.status, r.body)
	}

	// PATCH: parameters apply; a plan change is refused.
	if r := c.do("PATCH", "/api/v1/instances/"+id, map[string]any{"plan_id": planRedisHA}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("plan change: %d %s", r.status, r.body)
	}
	pr := c.do("PATCH", "/api/v1/instances/"+id, map[string]any{"parameters": map[string]any{"maxmemory-policy": "allkeys-lru"}})
	if pr.status != http.StatusAccepted {
		t.Fatalf("patch: %d %s", pr.status, pr.body)
	}
	eventually(t, time.Minute, "update applied", func() error {
		op := c.do("GET", "/api/v1/operations/"+pr.json(t)["operation_id"].(string), nil).json(t)
		if op["state"] != "succeeded" {
			return fmt.Errorf("operation %v", op)
		}
		return nil
	})
	if inst := c.do("GET", "/api/v1/instances/"+id, nil).json(t); inst["state"] != "ready" || inst["parameters"].(map[string]any)["maxmemory-policy"] != "allkeys-lru" {
		t.Errorf("after patch: %v", inst)
	}
}
