// Package analysis decides what is wrong with an instance's replication
// topology and what recovery each problem calls for. It is a table of
// problem codes, each with a rule (a predicate over the instance as Canopy
// assigned it, one fresh NodeView per node, and the health checker's latest
// verdicts) and one recovery action — vitess vtorc's analysis codes, reduced
// to what Canopy's MySQL and Redis topologies need. It also chooses the
// failover candidate. It acts on nothing: the recovery package does.
package analysis

import (
	"fmt"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Code names a problem.
type Code string

// Problem codes, in the order the table evaluates them.
const (
	NoProblem                  Code = "NoProblem"
	DeadPrimary                Code = "DeadPrimary"
	DeadPrimaryAndSomeReplicas Code = "DeadPrimaryAndSomeReplicas"
	DeadPrimaryAndReplicas     Code = "DeadPrimaryAndReplicas"
	UnreachablePrimary         Code = "UnreachablePrimary"
	PrimaryMoved               Code = "PrimaryMoved"
	PrimaryIsReadOnly          Code = "PrimaryIsReadOnly"
	SplitBrain                 Code = "SplitBrain"
	WritableReplica            Code = "WritableReplica"
	ReplicationStopped         Code = "ReplicationStopped"
	FencedNodeReturned         Code = "FencedNodeReturned"
)

// Action is the recovery a problem calls for.
type Action string

// Actions.
const (
	// ActionNone: watch, do nothing.
	ActionNone Action = "none"
	// ActionFailover: promote a replica (recovery.Failover).
	ActionFailover Action = "failover"
	// ActionMakeWritable: turn the assigned primary's writes back on.
	ActionMakeWritable Action = "make-writable"
	// ActionFence: make the node refuse client writes.
	ActionFence Action = "fence"
	// ActionRepoint: make the node replicate from the assigned primary.
	ActionRepoint Action = "repoint"
	// ActionRejoin: rejoin a fenced node as a replica (errant check first).
	ActionRejoin Action = "rejoin"
)

// Verdict is the health checker's latest status of a node
// (health.node.up/down/degraded on canopy.health.v1).
type Verdict string

// Verdicts.
const (
	VerdictUnknown  Verdict = ""
	VerdictUp       Verdict = "up"
	VerdictDown     Verdict = "down"
	VerdictDegraded Verdict = "degraded"
)

// Health is the health checker's latest verdict per node id. It is a second
// vantage point, slower than the failover service's own look (its
// thresholds need several failed probes), so it never vetoes what the
// replicas report; it decides only where nobody else can see the node.
type Health map[string]Verdict

// Problem is one finding of Analyze.
type Problem struct {
	Code Code
	// Node is the node the problem is about (the primary for the
	// DeadPrimary family, the replica for ReplicationStopped, ...).
	Node   string
	Detail string
	Action Action
	// Since is the first failed check of the node (zero: unknown) and
	// DetectedAt when the problem was confirmed; the watcher fills them in
	// for the recovery record's detection_ms and rto_ms.
	Since      time.Time
	DetectedAt time.Time
}

// Actionable reports whether the problem calls for a recovery.
func (p Problem) Actionable() bool { return p.Action != ActionNone && p.Action != "" }

// Rule is one row of the analysis table.
type Rule struct {
	Code Code
	// Description is the rule in words (it goes into docs/failover.md).
	Description string
	// Recovery is what is done about it, in words.
	Recovery string
	// Match returns the problems the rule finds (none: no match).
	Match func(s Snapshot) []Problem
}

// Snapshot is what a rule looks at.
type Snapshot struct {
	Instance topology.Instance
	// Views holds one view per node id; a node without a view is treated
	// as unreachable unless Health says it is up.
	Views  map[string]topology.NodeView
	Health Health
}

// view returns the node's view; a missing one is unreachable.
func (s Snapshot) view(id string) topology.NodeView {
	if v, ok := s.Views[id]; ok {
		return v
	}
	return topology.NodeView{NodeID: id, Err: "not observed"}
}

// streamsFrom: the replica is reachable and its replication link to the
// node at addr is up — it vouches that that node is alive.
func streamsFrom(v topology.NodeView, addr string) bool {
	return v.Reachable && v.Replicating && v.Source == addr && v.LinkUp
}

func (s Snapshot) replicas() []topology.Node {
	var out []topology.Node
	for _, n := range s.Instance.Nodes {
		if n.Role == topology.RoleReplica {
			out = append(out, n)
		}
	}
	return out
}

// writable returns the reachable writable nodes, in instance order.
func (s Snapshot) writable() []topology.Node {
	var out []topology.Node
	for _, n := range s.Instance.Nodes {
		if v := s.view(n.ID); v.Reachable && v.Writable {
			out = append(out, n)
		}
	}
	return out
}

// deadPrimary classifies an unreachable primary by what its replicas say:
// reachable counts the replicas we can reach, streaming those still linked
// to it.
func (s Snapshot) deadPrimary() (p topology.Node, reachable, unreachable int, streaming []string, ok bool) {
	p, has := s.Instance.Primary()
	if !has || s.view(p.ID).Reachable {
		return p, 0, 0, nil, false
	}
	if _, moved := s.moved(); moved {
		return p, 0, 0, nil, false
	}
	for _, r := range s.replicas() {
		v := s.view(r.ID)
		if !v.Reachable {
			unreachable++
			continue
		}
		reachable++
		if streamsFrom(v, p.Address) {
			streaming = append(streaming, r.ID)
		}
	}
	return p, reachable, unreachable, streaming, true
}

// writablePrimary returns the assigned primary when it is reachable and
// writable: the precondition of every rule that checks the others against it.
func (s Snapshot) writablePrimary() (topology.Node, bool) {
	p, ok := s.Instance.Primary()
	if !ok || !s.view(p.ID).Reachable || !s.view(p.ID).Writable {
		return topology.Node{}, false
	}
	return p, true
}

// writableBeside returns the writable nodes other than p that stream from
// it (streaming: a writable replica) or not (a second primary).
func (s Snapshot) writableBeside(p topology.Node, streaming bool) []topology.Node {
	var out []topology.Node
	for _, n := range s.writable() {
		if n.ID != p.ID && streamsFrom(s.view(n.ID), p.Address) == streaming {
			out = append(out, n)
		}
	}
	return out
}

// moved finds, while the assigned primary is unreachable or read-only
// (a fenced old primary that came back), another node
// that already acts as the primary: reachable, writable, replicating from
// nobody, and followed by at least one reachable node. Then the topology
// this analysis was given is stale (another actor failed over and the new
// roles have not arrived yet); failing over again would only repeat it.
func (s Snapshot) moved() (topology.Node, bool) {
	p, has := s.Instance.Primary()
	if pv := s.view(p.ID); !has || (pv.Reachable && pv.Writable) {
		return topology.Node{}, false
	}
	for _, n := range s.Instance.Nodes {
		v := s.view(n.ID)
		if n.ID == p.ID || !v.Reachable || !v.Writable || v.Replicating {
			continue
		}
		for _, f := range s.Instance.Nodes {
			if f.ID != n.ID && streamsFrom(s.view(f.ID), n.Address) {
				return n, true
			}
		}
	}
	return topology.Node{}, false
}

// Table returns the analysis table, in evaluation order. Every matching
// rule reports; callers act on the first actionable problem, so the order is
// the priority (a dead primary before a stopped replica).
func Table() []Rule {
	return []Rule{
		{
			Code:        DeadPrimary,
			Description: "The failover service cannot reach the assigned primary, every replica is reachable, and no replica's replication link to the primary is up (a kill -9 closes them at once).",
			Recovery:    "failover: promote the most advanced eligible replica, fence the old primary, re-point the others.",
			Match: func(s Snapshot) []Problem {
				p, reach, unreach, streaming, ok := s.deadPrimary()
				if !ok || reach == 0 || unreach > 0 || len(streaming) > 0 {
					return nil
				}
				return []Problem{{Code: DeadPrimary, Node: p.ID, Action: ActionFailover,
					Detail: fmt.Sprintf("primary %s unreachable (%s); all %d replicas lost their link%s", p.ID, s.view(p.ID).Err, reach, healthNote(s, p.ID))}}
			},
		},
		{
			Code:        DeadPrimaryAndSomeReplicas,
			Description: "As DeadPrimary, but some replicas are unreachable too; at least one replica is reachable and none of the reachable ones still streams from the primary.",
			Recovery:    "failover among the reachable replicas.",
			Match: func(s Snapshot) []Problem {
				p, reach, unreach, streaming, ok := s.deadPrimary()
				if !ok || reach == 0 || unreach == 0 || len(streaming) > 0 {
					return nil
				}
				return []Problem{{Code: DeadPrimaryAndSomeReplicas, Node: p.ID, Action: ActionFailover,
					Detail: fmt.Sprintf("primary %s unreachable (%s); %d replicas unreachable, %d reachable without a link%s", p.ID, s.view(p.ID).Err, unreach, reach, healthNote(s, p.ID))}}
			},
		},
		{
			Code:        DeadPrimaryAndReplicas,
			Description: "The primary and every replica are unreachable (or there are no replicas) and the health checker does not report the primary up: nothing can be promoted.",
			Recovery:    "none: no candidate; it is reported and watched.",
			Match: func(s Snapshot) []Problem {
				p, reach, _, _, ok := s.deadPrimary()
				if !ok || reach > 0 || s.Health[p.ID] == VerdictUp {
					return nil
				}
				return []Problem{{Code: DeadPrimaryAndReplicas, Node: p.ID, Action: ActionNone,
					Detail: fmt.Sprintf("primary %s and all replicas unreachable", p.ID)}}
			},
		},
		{
			Code:        UnreachablePrimary,
			Description: "The failover service cannot reach the assigned primary but a replica still streams from it (or, with no replica to ask, the health checker reports it up): it is alive, only our path to it is broken.",
			Recovery:    "none: a failover would create a second primary.",
			Match: func(s Snapshot) []Problem {
				p, reach, _, streaming, ok := s.deadPrimary()
				if !ok {
					return nil
				}
				switch {
				case len(streaming) > 0:
					return []Problem{{Code: UnreachablePrimary, Node: p.ID, Action: ActionNone,
						Detail: fmt.Sprintf("primary %s unreachable from here but replicas %s stream from it", p.ID, strings.Join(streaming, ","))}}
				case reach == 0 && s.Health[p.ID] == VerdictUp:
					return []Problem{{Code: UnreachablePrimary, Node: p.ID, Action: ActionNone,
						Detail: fmt.Sprintf("primary %s unreachable from here, no replica reachable, health checker reports it up", p.ID)}}
				}
				return nil
			},
		},
		{
			Code:        PrimaryMoved,
			Description: "The assigned primary is unreachable or read-only but another node is writable, replicates from nobody and is followed by replicas: the primary role already moved (another actor's failover) and the topology given is stale.",
			Recovery:    "none: wait for the new roles (the watcher follows the recovery's record; provisioning republishes the instance).",
			Match: func(s Snapshot) []Problem {
				n, ok := s.moved()
				if !ok {
					return nil
				}
				p, _ := s.Instance.Primary()
				return []Problem{{Code: PrimaryMoved, Node: n.ID, Action: ActionNone,
					Detail: fmt.Sprintf("primary %s unreachable; %s is writable and followed", p.ID, n.ID)}}
			},
		},
		{
			Code:        PrimaryIsReadOnly,
			Description: "The assigned primary is reachable but refuses writes (e.g. it restarted: nodes always come back read-only).",
			Recovery:    "make it writable again if it is at least as advanced as every reachable replica (at least one, unless it has none) and no other node is writable; otherwise failover.",
			Match: func(s Snapshot) []Problem {
				p, ok := s.Instance.Primary()
				if !ok {
					return nil
				}
				v := s.view(p.ID)
				if !v.Reachable || v.Writable {
					return nil
				}
				if _, moved := s.moved(); moved {
					return nil
				}
				if others := s.writable(); len(others) > 0 {
					return []Problem{{Code: PrimaryIsReadOnly, Node: p.ID, Action: ActionFailover,
						Detail: fmt.Sprintf("primary %s read-only while %s is writable", p.ID, others[0].ID)}}
				}
				compared := 0
				for _, r := range s.replicas() {
					rv := s.view(r.ID)
					if !rv.Reachable {
						continue
					}
					compared++
					ahead, err := AtLeast(s.Instance.Engine, v.Position, rv.Position)
					if err != nil || !ahead {
						return []Problem{{Code: PrimaryIsReadOnly, Node: p.ID, Action: ActionFailover,
							Detail: fmt.Sprintf("primary %s read-only and behind replica %s", p.ID, r.ID)}}
					}
				}
				if compared == 0 && len(s.replicas()) > 0 {
					// Nothing to compare with: a Redis primary that came
					// back empty would look "most advanced". Wait.
					return []Problem{{Code: PrimaryIsReadOnly, Node: p.ID, Action: ActionNone,
						Detail: fmt.Sprintf("primary %s read-only; no replica reachable to compare positions with", p.ID)}}
				}
				return []Problem{{Code: PrimaryIsReadOnly, Node: p.ID, Action: ActionMakeWritable,
					Detail: fmt.Sprintf("primary %s read-only, most advanced, no other writable node", p.ID)}}
			},
		},
		{
			Code:        SplitBrain,
			Description: "The assigned primary is writable and another node is writable and does not replicate from it (a second primary).",
			Recovery:    "fence every writable node but the assigned primary.",
			Match: func(s Snapshot) []Problem {
				p, ok := s.writablePrimary()
				if !ok {
					return nil
				}
				var out []Problem
				for _, n := range s.writableBeside(p, false) {
					out = append(out, Problem{Code: SplitBrain, Node: n.ID, Action: ActionFence,
						Detail: fmt.Sprintf("%s (%s) writable beside primary %s", n.ID, n.Role, p.ID)})
				}
				return out
			},
		},
		{
			Code:        WritableReplica,
			Description: "A replica still streams from the writable assigned primary but accepts client writes too (errant transactions waiting to happen).",
			Recovery:    "fence it (read-only).",
			Match: func(s Snapshot) []Problem {
				p, ok := s.writablePrimary()
				if !ok {
					return nil
				}
				var out []Problem
				for _, n := range s.writableBeside(p, true) {
					out = append(out, Problem{Code: WritableReplica, Node: n.ID, Action: ActionFence,
						Detail: fmt.Sprintf("replica %s writable", n.ID)})
				}
				return out
			},
		},
		{
			Code:        ReplicationStopped,
			Description: "The assigned primary is reachable and writable, and a reachable read-only replica does not replicate from it with both threads running (IO/SQL thread stopped, link down, or another source).",
			Recovery:    "re-point it to the assigned primary.",
			Match: func(s Snapshot) []Problem {
				p, ok := s.writablePrimary()
				if !ok {
					return nil
				}
				var out []Problem
				for _, r := range s.replicas() {
					v := s.view(r.ID)
					if !v.Reachable || v.Writable {
						continue
					}
					var why string
					switch {
					case !v.Replicating:
						why = "not replicating"
					case v.Source != p.Address:
						why = "replicates from " + v.Source
					case !v.LinkUp:
						why = "IO thread / link down"
					case !v.SQLRunning:
						why = "SQL thread stopped"
					default:
						continue
					}
					out = append(out, Problem{Code: ReplicationStopped, Node: r.ID, Action: ActionRepoint,
						Detail: fmt.Sprintf("replica %s %s", r.ID, why)})
				}
				return out
			},
		},
		{
			Code:        FencedNodeReturned,
			Description: "A node Canopy fenced (a former primary) is reachable again while the assigned primary is writable.",
			Recovery:    "rejoin it as a read-only replica of the primary (errant transactions are reported, not replicated).",
			Match: func(s Snapshot) []Problem {
				if _, ok := s.writablePrimary(); !ok {
					return nil
				}
				var out []Problem
				for _, n := range s.Instance.Nodes {
					if n.Role != topology.RoleFenced || !s.view(n.ID).Reachable {
						continue
					}
					out = append(out, Problem{Code: FencedNodeReturned, Node: n.ID, Action: ActionRejoin,
						Detail: fmt.Sprintf("fenced node %s reachable again", n.ID)})
				}
				return out
			},
		},
	}
}

func healthNote(s Snapshot, id string) string {
	if v := s.Health[id]; v != VerdictUnknown {
		return "; health checker: " + string(v)
	}
	return ""
}

// Analyze runs the table over one look at every node and returns every
// problem found, highest priority first, or a single NoProblem.
func Analyze(in topology.Instance, views []topology.NodeView, health Health) []Problem {
	s := Snapshot{Instance: in, Views: make(map[string]topology.NodeView, len(views)), Health: health}
	for _, v := range views {
		s.Views[v.NodeID] = v
	}
	// A node nobody observed but the health checker reports up or down
	// keeps our default (unreachable): the table only lets an "up" verdict
	// hold back a failover, never start one.
	var out []Problem
	for _, r := range Table() {
		out = append(out, r.Match(s)...)
	}
	if len(out) == 0 {
		return []Problem{{Code: NoProblem, Action: ActionNone}}
	}
	return out
}

// FirstActionable returns the highest-priority problem that calls for a
// recovery.
func FirstActionable(ps []Problem) (Problem, bool) {
	for _, p := range ps {
		if p.Actionable() {
			return p, true
		}
	}
	return Problem{}, false
}
