package instance

import (
	"errors"
	"slices"
	"testing"
)

// roles returns the instance's roles as the failover service names them.
func roles(in *Instance) map[string]string {
	out := map[string]string{}
	for _, n := range in.Nodes {
		switch {
		case n.Fenced:
			out[n.ID] = FailoverFenced
		default:
			out[n.ID] = string(n.Role)
		}
	}
	return out
}

func TestApplyFailover(t *testing.T) {
	promoteN1 := map[string]string{"i1-n0": FailoverFenced, "i1-n1": FailoverPrimary, "i1-n2": FailoverReplica}
	tests := []struct {
		name     string
		prepare  func(in *Instance)
		token    int64
		recovery string
		roles    map[string]string
		changed  bool
		invalid  bool
		want     map[string]string
	}{
		{name: "promotes and fences", token: 1, recovery: "r1", roles: promoteN1, changed: true,
			want: map[string]string{"i1-n0": FailoverFenced, "i1-n1": FailoverPrimary, "i1-n2": FailoverReplica}},
		{name: "an unnamed old primary is fenced", token: 1, recovery: "r1", roles: map[string]string{"i1-n2": FailoverPrimary}, changed: true,
			want: map[string]string{"i1-n0": FailoverFenced, "i1-n1": FailoverReplica, "i1-n2": FailoverPrimary}},
		{name: "redelivery is ignored", prepare: func(in *Instance) { in.Failover = AppliedFailover{Token: 1, Recovery: "r1"} },
			token: 1, recovery: "r1", roles: promoteN1, want: map[string]string{"i1-n0": "primary", "i1-n1": "replica", "i1-n2": "replica"}},
		{name: "an older token is ignored", prepare: func(in *Instance) { in.Failover = AppliedFailover{Token: 5, Recovery: "r5"} },
			token: 4, recovery: "r4", roles: promoteN1, want: map[string]string{"i1-n0": "primary", "i1-n1": "replica", "i1-n2": "replica"}},
		{name: "a later recovery under the same lease applies", prepare: func(in *Instance) { in.Failover = AppliedFailover{Token: 5, Recovery: "r5"} },
			token: 5, recovery: "r6", roles: promoteN1, changed: true, want: map[string]string{"i1-n0": FailoverFenced, "i1-n1": FailoverPrimary, "i1-n2": FailoverReplica}},
		{name: "deleting instance is left alone", prepare: func(in *Instance) { in.State = StateDeleting },
			token: 1, recovery: "r1", roles: promoteN1, want: map[string]string{"i1-n0": "primary", "i1-n1": "replica", "i1-n2": "replica"}},
		{name: "deleted instance is left alone", prepare: func(in *Instance) { in.State = StateDeleted },
			token: 1, recovery: "r1", roles: promoteN1, want: map[string]string{"i1-n0": "primary", "i1-n1": "replica", "i1-n2": "replica"}},
		{name: "updating instance follows", prepare: func(in *Instance) { in.State = StateUpdating },
			token: 1, recovery: "r1", roles: promoteN1, changed: true, want: map[string]string{"i1-n0": FailoverFenced, "i1-n1": FailoverPrimary, "i1-n2": FailoverReplica}},
		{name: "unknown node", token: 1, recovery: "r1", roles: map[string]string{"other-n0": FailoverPrimary}, invalid: true},
		{name: "two primaries", token: 1, recovery: "r1", roles: map[string]string{"i1-n0": FailoverPrimary, "i1-n1": FailoverPrimary}, invalid: true},
		{name: "no primary", token: 1, recovery: "r1", roles: map[string]string{"i1-n0": FailoverFenced}, invalid: true},
		{name: "unknown role", token: 1, recovery: "r1", roles: map[string]string{"i1-n1": "leader"}, invalid: true},
		{name: "no token", token: 0, recovery: "r1", roles: promoteN1, invalid: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ready(t)
			if tc.prepare != nil {
				tc.prepare(in)
			}
			before := in.Failover
			changed, err := in.ApplyFailover(tc.token, tc.recovery, tc.roles, t0)
			if tc.invalid {
				if !errors.Is(err, ErrInvalid) || changed {
					t.Fatalf("ApplyFailover = %v, %v; want ErrInvalid", changed, err)
				}
				return
			}
			if err != nil || changed != tc.changed {
				t.Fatalf("ApplyFailover = %v, %v; want changed %v", changed, err, tc.changed)
			}
			got := roles(in)
			for id, want := range tc.want {
				if got[id] != want {
					t.Errorf("node %s: role %s, want %s", id, got[id], want)
				}
			}
			if changed && (in.Failover.Token != tc.token || in.Failover.Recovery != tc.recovery) {
				t.Errorf("applied failover %+v, want token %d recovery %s", in.Failover, tc.token, tc.recovery)
			}
			if !changed && in.Failover != before {
				t.Errorf("applied failover moved to %+v without a change", in.Failover)
			}
		})
	}
}

// The endpoints follow the new primary; a fenced node is no replica
// endpoint until it rejoined.
func TestFailoverEndpointsAndRejoin(t *testing.T) {
	in := ready(t)
	addr := map[string]string{}
	for _, n := range in.Nodes {
		addr[n.ID] = n.Address
	}
	if _, err := in.ApplyFailover(1, "r1", map[string]string{"i1-n0": FailoverFenced, "i1-n1": FailoverPrimary, "i1-n2": FailoverReplica}, t0); err != nil {
		t.Fatal(err)
	}
	ep := in.Endpoints()
	if ep.Primary != addr["i1-n1"] || !slices.Equal(ep.Replicas, []string{addr["i1-n2"]}) {
		t.Fatalf("endpoints after failover = %+v", ep)
	}
	if in.Rejoined("i1-n0", "i1-n2", t0) {
		t.Fatal("rejoin naming a primary that is not the current one applied")
	}
	if in.Rejoined("i1-n1", "", t0) {
		t.Fatal("rejoin of the current primary applied")
	}
	if in.Rejoined("i1-n9", "", t0) {
		t.Fatal("rejoin of an unknown node applied")
	}
	if !in.Rejoined("i1-n0", "i1-n1", t0) {
		t.Fatal("rejoin of the fenced node not applied")
	}
	if in.Rejoined("i1-n0", "i1-n1", t0) {
		t.Fatal("repeated rejoin reported a change")
	}
	ep = in.Endpoints()
	if ep.Primary != addr["i1-n1"] || !slices.Equal(ep.Replicas, []string{addr["i1-n0"], addr["i1-n2"]}) {
		t.Fatalf("endpoints after rejoin = %+v", ep)
	}
	in.State = StateDeleting
	in.Nodes[2].Fenced = true
	if in.Rejoined("i1-n2", "", t0) {
		t.Fatal("rejoin applied to a deleting instance")
	}
}

func TestPromotionRuleDefaultsToNeutral(t *testing.T) {
	if got := (Node{}).PromotionRule(); got != PromoteNeutral {
		t.Errorf("PromotionRule() = %q, want neutral", got)
	}
	if got := (Node{Promotion: PromoteNever}).PromotionRule(); got != PromoteNever {
		t.Errorf("PromotionRule() = %q, want never", got)
	}
}
