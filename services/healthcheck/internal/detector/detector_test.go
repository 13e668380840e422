package detector_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/detector"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

func ptr[T any](v T) *T { return &v }

func TestJudge(t *testing.T) {
	replica := detector.Expectation{Engine: target.EngineMySQL, Role: target.RoleReplica, MaxLag: 30 * time.Second}
	primary := detector.Expectation{Engine: target.EngineMySQL, Role: target.RolePrimary, SemiSync: true}
	healthyRepl := &probe.Replication{Configured: true, IORunning: true, SQLRunning: true, LagSeconds: 0}
	cases := []struct {
		name   string
		expect detector.Expectation
		res    probe.Result
		status detector.Status
		reason string
	}{
		{"failed probe is down with its reason", replica, probe.Result{Reason: probe.ReasonRefused, Detail: "x"}, detector.StatusDown, "refused"},
		{"healthy replica", replica, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RoleReplica, ReadOnly: ptr(true), Replication: healthyRepl}}, detector.StatusUp, ""},
		{"replica claiming primary", replica, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RolePrimary, ReadOnly: ptr(false)}}, detector.StatusDegraded, detector.ReasonRoleMismatch},
		{"primary claiming replica", primary, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RoleReplica, Replication: healthyRepl}}, detector.StatusDegraded, detector.ReasonRoleMismatch},
		{"sql thread stopped", replica, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RoleReplica, ReadOnly: ptr(true),
			Replication: &probe.Replication{Configured: true, IORunning: true, SQLRunning: false, LagSeconds: -1}}}, detector.StatusDegraded, detector.ReasonReplicationStopped},
		{"writable replica", replica, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RoleReplica, ReadOnly: ptr(false), Replication: healthyRepl}}, detector.StatusDegraded, detector.ReasonNotReadOnly},
		{"stopped beats writable", replica, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RoleReplica, ReadOnly: ptr(false),
			Replication: &probe.Replication{Configured: true}}}, detector.StatusDegraded, detector.ReasonReplicationStopped},
		{"lagging replica", replica, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RoleReplica, ReadOnly: ptr(true),
			Replication: &probe.Replication{Configured: true, IORunning: true, SQLRunning: true, LagSeconds: 31}}}, detector.StatusDegraded, detector.ReasonReplicaLagHigh},
		{"lag at the limit is fine", replica, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RoleReplica, ReadOnly: ptr(true),
			Replication: &probe.Replication{Configured: true, IORunning: true, SQLRunning: true, LagSeconds: 30}}}, detector.StatusUp, ""},
		{"semi-sync fell back", primary, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RolePrimary, ReadOnly: ptr(false), SemiSync: ptr(false)}}, detector.StatusDegraded, detector.ReasonSemiSyncOff},
		{"semi-sync on", primary, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RolePrimary, ReadOnly: ptr(false), SemiSync: ptr(true)}}, detector.StatusUp, ""},
		{"no expectation, anything goes", detector.Expectation{}, probe.Result{OK: true, Observation: probe.Observation{Role: probe.RolePrimary}}, detector.StatusUp, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := detector.Judge(detector.Rules(), tc.expect, tc.res)
			require.Equal(t, tc.status, v.Status)
			require.Equal(t, tc.reason, v.Reason)
			if tc.status != detector.StatusUp {
				require.NotEmpty(t, v.Evidence)
			}
		})
	}
}

func TestMachine(t *testing.T) {
	up := detector.Verdict{Status: detector.StatusUp}
	down := func(r string) detector.Verdict { return detector.Verdict{Status: detector.StatusDown, Reason: r} }
	deg := func(r string) detector.Verdict { return detector.Verdict{Status: detector.StatusDegraded, Reason: r} }
	type step struct {
		v    detector.Verdict
		want string // "" no transition, else "from>to:reason"
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"unknown to up after rise", []step{{up, ""}, {up, "unknown>up:"}, {up, ""}}},
		{"unknown to down after fall", []step{{down("refused"), ""}, {down("refused"), ""}, {down("timeout"), "unknown>down:timeout"}}},
		{"up to down after fall, not before", []step{{up, ""}, {up, "unknown>up:"}, {down("refused"), ""}, {down("refused"), ""}, {down("refused"), "up>down:refused"}}},
		{"a success resets the fall count", []step{{up, ""}, {up, "unknown>up:"}, {down("timeout"), ""}, {down("timeout"), ""}, {up, ""}, {down("timeout"), ""}, {down("timeout"), ""}, {down("timeout"), "up>down:timeout"}}},
		{"down reason changes silently", []step{{down("refused"), ""}, {down("refused"), ""}, {down("refused"), "unknown>down:refused"}, {down("timeout"), ""}, {down("timeout"), ""}, {down("timeout"), ""}}},
		{"down to up after rise", []step{{down("refused"), ""}, {down("refused"), ""}, {down("refused"), "unknown>down:refused"}, {up, ""}, {up, "down>up:"}}},
		{"flapping never transitions", []step{{up, ""}, {up, "unknown>up:"}, {down("reset"), ""}, {up, ""}, {down("reset"), ""}, {down("reset"), ""}, {up, ""}, {down("reset"), ""}}},
		{"up to degraded after rise", []step{{up, ""}, {up, "unknown>up:"}, {deg("replication_stopped"), ""}, {deg("replication_stopped"), "up>degraded:replication_stopped"}, {deg("replication_stopped"), ""}}},
		{"degraded reason change transitions", []step{{deg("replica_lag_high"), ""}, {deg("replica_lag_high"), "unknown>degraded:replica_lag_high"}, {deg("replication_stopped"), ""}, {deg("replication_stopped"), "degraded>degraded:replication_stopped"}}},
		{"degraded to down", []step{{deg("not_read_only"), ""}, {deg("not_read_only"), "unknown>degraded:not_read_only"}, {down("refused"), ""}, {down("refused"), ""}, {down("refused"), "degraded>down:refused"}}},
		{"degraded back to up", []step{{deg("not_read_only"), ""}, {deg("not_read_only"), "unknown>degraded:not_read_only"}, {up, ""}, {up, "degraded>up:"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := detector.NewMachine(3, 2)
			at := time.Unix(1000, 0)
			for i, s := range tc.steps {
				at = at.Add(time.Second)
				tr, ok := m.Observe(s.v, at)
				got := ""
				if ok {
					got = string(tr.From) + ">" + string(tr.To) + ":" + tr.Reason
					require.Equal(t, at, tr.At)
					require.Equal(t, at, m.LastTransition())
				}
				require.Equal(t, s.want, got, "step %d", i)
			}
		})
	}
}

func TestSplitBrain(t *testing.T) {
	require.Nil(t, detector.SplitBrain([]detector.NodeRole{{NodeID: "a", Reported: probe.RolePrimary}, {NodeID: "b", Reported: probe.RoleReplica}}))
	require.Equal(t, []string{"a", "b"}, detector.SplitBrain([]detector.NodeRole{
		{NodeID: "a", Expected: target.RolePrimary, Reported: probe.RolePrimary},
		{NodeID: "b", Expected: target.RoleReplica, Reported: probe.RolePrimary},
	}))
}
