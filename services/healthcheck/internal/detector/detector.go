// Package detector turns probe results into a node's health: a verdict per
// probe (up, down with the failure reason, degraded with the first matching
// rule), and a state machine per node with fall/rise hysteresis that reports
// transitions only — unknown → up | down | degraded and between them — never
// every probe. It also finds split-brain evidence across the nodes of one
// instance. Pure logic: no clocks, sockets or Kafka.
package detector

import (
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

// Status is a node's health.
type Status string

// Statuses.
const (
	StatusUnknown  Status = "unknown"
	StatusUp       Status = "up"
	StatusDown     Status = "down"
	StatusDegraded Status = "degraded"
)

// Degraded reasons (rule codes).
const (
	ReasonRoleMismatch       = "role_mismatch"
	ReasonReplicationStopped = "replication_stopped"
	ReasonNotReadOnly        = "not_read_only"
	ReasonReplicaLagHigh     = "replica_lag_high"
	ReasonSemiSyncOff        = "semi_sync_off"
)

// Expectation is what Canopy believes about a node.
type Expectation struct {
	Engine   target.Engine
	Role     target.Role
	SemiSync bool
	MaxLag   time.Duration
}

// ExpectationOf returns the expectation a target carries.
func ExpectationOf(t target.Target) Expectation {
	return Expectation{Engine: t.Engine, Role: t.Role, SemiSync: t.SemiSync, MaxLag: t.Policy.MaxLag}
}

// Rule is one degradation: a code, what it means and when it matches. A
// match returns the evidence shown to users.
type Rule struct {
	Code        string
	Description string
	Match       func(Expectation, probe.Observation) (bool, string)
}

// Rules returns the degradation rules in the order they are checked: the
// first match names the degradation.
func Rules() []Rule {
	return []Rule{
		{
			Code:        ReasonRoleMismatch,
			Description: "the node reports a role other than the one Canopy assigned (a replica claiming primary is split-brain evidence)",
			Match: func(e Expectation, o probe.Observation) (bool, string) {
				if e.Role == "" || o.Role == "" || string(o.Role) == string(e.Role) {
					return false, ""
				}
				return true, fmt.Sprintf("node reports role %s, Canopy expects %s", o.Role, e.Role)
			},
		},
		{
			Code:        ReasonReplicationStopped,
			Description: "a replica's replication is not running (IO or SQL thread stopped, link to the primary down)",
			Match: func(e Expectation, o probe.Observation) (bool, string) {
				if e.Role != target.RoleReplica || o.Replication == nil {
					return false, ""
				}
				r := o.Replication
				if r.IORunning && r.SQLRunning {
					return false, ""
				}
				ev := fmt.Sprintf("io_running=%t sql_running=%t", r.IORunning, r.SQLRunning)
				if r.LastError != "" {
					ev += ": " + r.LastError
				}
				return true, ev
			},
		},
		{
			Code:        ReasonNotReadOnly,
			Description: "a MySQL replica accepts writes (read_only is OFF)",
			Match: func(e Expectation, o probe.Observation) (bool, string) {
				if e.Role != target.RoleReplica || o.ReadOnly == nil || *o.ReadOnly {
					return false, ""
				}
				return true, "read_only=OFF on a replica"
			},
		},
		{
			Code:        ReasonReplicaLagHigh,
			Description: "a replica lags its primary by more than the allowed lag",
			Match: func(e Expectation, o probe.Observation) (bool, string) {
				if e.Role != target.RoleReplica || o.Replication == nil || e.MaxLag <= 0 {
					return false, ""
				}
				lag := time.Duration(o.Replication.LagSeconds) * time.Second
				if o.Replication.LagSeconds < 0 || lag <= e.MaxLag {
					return false, ""
				}
				return true, fmt.Sprintf("lag %s > %s", lag, e.MaxLag)
			},
		},
		{
			Code:        ReasonSemiSyncOff,
			Description: "a primary that should wait for a replica's acknowledgement has fallen back to asynchronous replication",
			Match: func(e Expectation, o probe.Observation) (bool, string) {
				if !e.SemiSync || e.Role != target.RolePrimary || o.SemiSync == nil || *o.SemiSync {
					return false, ""
				}
				return true, "Rpl_semi_sync_master_status=OFF"
			},
		},
	}
}

// Verdict is what one probe says about a node.
type Verdict struct {
	Status Status
	// Reason is the failure reason (down) or the rule code (degraded).
	Reason string
	// Evidence explains the reason.
	Evidence string
}

// Judge returns the verdict of one probe result under rules.
func Judge(rules []Rule, e Expectation, r probe.Result) Verdict {
	if !r.OK {
		return Verdict{Status: StatusDown, Reason: string(r.Reason), Evidence: r.Detail}
	}
	for _, rule := range rules {
		if ok, ev := rule.Match(e, r.Observation); ok {
			return Verdict{Status: StatusDegraded, Reason: rule.Code, Evidence: ev}
		}
	}
	return Verdict{Status: StatusUp}
}

// Transition is a change of a node's health.
type Transition struct {
	From, To Status
	// Reason and Evidence are those of the probe that completed the streak.
	Reason   string
	Evidence string
	// At is when that probe ran; Streak how many consecutive probes agreed.
	At     time.Time
	Streak int
}

// Machine is one node's health with fall/rise hysteresis: down after Fall
// consecutive failed probes, up (or degraded) after Rise consecutive
// answering probes. A degraded node whose reason changes for Rise probes
// transitions again with the new reason. A down node's reason may change
// without a transition (refused → timeout is still down).
type Machine struct {
	fall, rise int

	status         Status
	reason         string
	lastTransition time.Time

	// The run of consecutive verdicts that would change the state.
	candStatus Status
	candReason string
	candN      int
}

// NewMachine returns a machine in unknown.
func NewMachine(fall, rise int) *Machine {
	return &Machine{fall: max(fall, 1), rise: max(rise, 1), status: StatusUnknown}
}

// Status returns the current status and reason.
func (m *Machine) Status() (Status, string) { return m.status, m.reason }

// LastTransition returns when the status last changed (zero if never).
func (m *Machine) LastTransition() time.Time { return m.lastTransition }

// key is what a verdict must repeat to complete a streak: the status, plus
// the reason for degraded.
func key(v Verdict) (Status, string) {
	if v.Status == StatusDegraded {
		return v.Status, v.Reason
	}
	return v.Status, ""
}

// Observe feeds one verdict and returns the transition it completes, if any.
func (m *Machine) Observe(v Verdict, at time.Time) (Transition, bool) {
	s, r := key(v)
	cur, curReason := m.status, m.reason
	if m.status != StatusDegraded {
		curReason = ""
	}
	if s == cur && r == curReason {
		// Confirms the current state: any pending change is abandoned.
		m.candN = 0
		if s == StatusDown {
			m.reason = v.Reason // keep the latest failure reason
		}
		return Transition{}, false
	}
	if s == m.candStatus && r == m.candReason && m.candN > 0 {
		m.candN++
	} else {
		m.candStatus, m.candReason, m.candN = s, r, 1
	}
	need := m.rise
	if s == StatusDown {
		need = m.fall
	}
	if m.candN < need {
		return Transition{}, false
	}
	t := Transition{From: m.status, To: s, Reason: v.Reason, Evidence: v.Evidence, At: at, Streak: m.candN}
	m.status, m.reason, m.lastTransition = s, v.Reason, at
	if s == StatusUp {
		m.reason = ""
		t.Reason = ""
	}
	m.candN = 0
	return t, true
}

// NodeRole is one node's reported role, for split-brain checks.
type NodeRole struct {
	NodeID   string
	Expected target.Role
	Reported probe.Role
}

// SplitBrain returns the nodes of one instance that report themselves
// primary when more than one does: two writable primaries.
func SplitBrain(nodes []NodeRole) []string {
	var primaries []string
	for _, n := range nodes {
		if n.Reported == probe.RolePrimary {
			primaries = append(primaries, n.NodeID)
		}
	}
	if len(primaries) < 2 {
		return nil
	}
	return primaries
}
