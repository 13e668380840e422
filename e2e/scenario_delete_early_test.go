package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestScenarioDeleteWhileCreating deletes instances before they are ready —
// right after the order (the placement may not even be decided) and while
// the saga is creating or replicating the nodes — and checks that the
// deletes win and leave nothing: no process, port, data directory,
// reservation or health target.
func TestScenarioDeleteWhileCreating(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	start := time.Now()
	before := admin.allocation()
	tenant := p.newTenant(t, "early-"+randHex(3), "tenant-admin")

	cases := []struct {
		name, plan string
		// afterPlacing: delete once the saga is past `placing`; otherwise at once.
		afterPlacing bool
	}{
		{"mysql-at-once", "mysql-ha-multi-az", false},
		{"mysql-creating", "mysql-ha-multi-az", true},
		{"redis-at-once", "redis-ha-multi-az", false},
		{"redis-creating", "redis-ha-multi-az", true},
	}
	type order struct {
		create, del string
		seenStep    string
	}
	orders := map[string]*order{}
	var insts []instance
	for _, tc := range cases {
		var acc instanceAccepted
		tenant.must("POST", "/api/v1/instances", map[string]any{"name": tc.name, "plan_id": tenant.planID(tc.plan)}, http.StatusAccepted, &acc)
		id := acc.Instance.ID
		t.Cleanup(func() { bestEffortDelete(t, admin, id) })
		o := &order{create: acc.OperationID, seenStep: acc.Instance.Step}
		if tc.afterPlacing {
			waitFor(t, tc.name+": the saga to leave `placing`", readyTimeout, func() (bool, string) {
				var inst instance
				if err := tenant.call("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst); err != nil {
					return false, err.Error()
				}
				o.seenStep = inst.State + "/" + inst.Step
				if inst.State == "failed" {
					t.Fatalf("%s failed before the delete: %s", tc.name, inst.Reason)
				}
				return inst.State != "provisioning" || inst.Step != "placing", o.seenStep
			})
		}
		var del instanceAccepted
		tenant.must("DELETE", "/api/v1/instances/"+id, nil, http.StatusAccepted, &del)
		o.del = del.OperationID
		orders[id] = o
		t.Logf("%-15s deleted at %s", tc.name, o.seenStep)
	}

	for id, o := range orders {
		waitOperation(t, tenant, o.del, deleteTimeout)
		// The create ends too: superseded (failed) or, when it won the race, succeeded.
		waitFor(t, "the create operation of "+id+" to end", deleteTimeout, func() (bool, string) {
			var op operation
			if err := tenant.call("GET", "/api/v1/operations/"+o.create, nil, http.StatusOK, &op); err != nil {
				return false, err.Error()
			}
			return op.State != "in_progress", fmt.Sprintf("%s, step %q", op.State, op.Step)
		})
		var inst instance
		tenant.must("GET", "/api/v1/instances/"+id, nil, http.StatusOK, &inst)
		if inst.State != "deleted" {
			t.Errorf("instance %s after its delete succeeded: state %q", id, inst.State)
		}
		insts = append(insts, inst)
	}
	checkNothingLeft(t, p, tenant, admin, before, insts)
	t.Logf("scenario total %.2fs", time.Since(start).Seconds())
}
