package analysis

import (
	"errors"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

func inst(engine topology.Engine) topology.Instance {
	return topology.Instance{ID: "i1", Engine: engine, Region: "r1", Nodes: []topology.Node{
		{ID: "a", Address: "h:1", Region: "r1", Role: topology.RolePrimary},
		{ID: "b", Address: "h:2", Region: "r1", Role: topology.RoleReplica},
		{ID: "c", Address: "h:3", Region: "r1", Role: topology.RoleReplica},
	}}
}

func primaryUp(gtid string) topology.NodeView {
	return topology.NodeView{NodeID: "a", Reachable: true, Writable: true, Position: topology.Position{GTID: gtid}}
}

func down(id string) topology.NodeView {
	return topology.NodeView{NodeID: id, Err: "connection refused"}
}

func streaming(id, gtid string) topology.NodeView {
	return topology.NodeView{NodeID: id, Reachable: true, Replicating: true, Source: "h:1", LinkUp: true, SQLRunning: true, Position: topology.Position{GTID: gtid}}
}

func linkDown(id string) topology.NodeView {
	v := streaming(id, "0-1-10")
	v.LinkUp = false
	return v
}

func TestAnalyzeTable(t *testing.T) {
	type want struct {
		code   Code
		node   string
		action Action
	}
	fenced := inst(topology.EngineMySQL)
	fenced.Nodes = append(fenced.Nodes, topology.Node{ID: "d", Address: "h:4", Role: topology.RoleFenced})
	single := inst(topology.EngineMySQL)
	single.Nodes = single.Nodes[:1]
	with := func(v topology.NodeView, f func(*topology.NodeView)) topology.NodeView { f(&v); return v }

	cases := []struct {
		name   string
		in     topology.Instance
		views  []topology.NodeView
		health Health
		want   []want
	}{
		{"healthy", inst(topology.EngineMySQL), []topology.NodeView{primaryUp("0-1-10"), streaming("b", "0-1-10"), streaming("c", "0-1-10")}, nil,
			[]want{{NoProblem, "", ActionNone}}},
		{"dead primary: unreachable and every link down", inst(topology.EngineMySQL), []topology.NodeView{down("a"), linkDown("b"), linkDown("c")}, nil,
			[]want{{DeadPrimary, "a", ActionFailover}}},
		{"dead primary although health checker still says up", inst(topology.EngineMySQL), []topology.NodeView{down("a"), linkDown("b"), linkDown("c")}, Health{"a": VerdictUp},
			[]want{{DeadPrimary, "a", ActionFailover}}},
		{"not dead: one replica still streams (unreachable primary)", inst(topology.EngineMySQL), []topology.NodeView{down("a"), streaming("b", "0-1-10"), linkDown("c")}, Health{"a": VerdictDown},
			[]want{{UnreachablePrimary, "a", ActionNone}}},
		{"not dead: every replica streams", inst(topology.EngineRedis), []topology.NodeView{down("a"), streaming("b", ""), streaming("c", "")}, nil,
			[]want{{UnreachablePrimary, "a", ActionNone}}},
		{"dead primary and some replicas", inst(topology.EngineMySQL), []topology.NodeView{down("a"), linkDown("b"), down("c")}, nil,
			[]want{{DeadPrimaryAndSomeReplicas, "a", ActionFailover}}},
		{"some replicas unreachable, the reachable one streams", inst(topology.EngineMySQL), []topology.NodeView{down("a"), streaming("b", "0-1-1"), down("c")}, nil,
			[]want{{UnreachablePrimary, "a", ActionNone}}},
		{"everything unreachable", inst(topology.EngineMySQL), []topology.NodeView{down("a"), down("b"), down("c")}, nil,
			[]want{{DeadPrimaryAndReplicas, "a", ActionNone}}},
		{"single node down", single, []topology.NodeView{down("a")}, nil,
			[]want{{DeadPrimaryAndReplicas, "a", ActionNone}}},
		{"everything unreachable from here, health checker sees primary up", inst(topology.EngineMySQL), []topology.NodeView{down("a"), down("b"), down("c")}, Health{"a": VerdictUp},
			[]want{{UnreachablePrimary, "a", ActionNone}}},
		{"primary restarted read-only and most advanced", inst(topology.EngineMySQL),
			[]topology.NodeView{with(primaryUp("0-1-10"), func(v *topology.NodeView) { v.Writable = false }), linkDown("b"), linkDown("c")}, nil,
			[]want{{PrimaryIsReadOnly, "a", ActionMakeWritable}}},
		{"primary read-only, replicas unreachable: cannot compare, wait", inst(topology.EngineRedis),
			[]topology.NodeView{{NodeID: "a", Reachable: true}, down("b"), down("c")}, nil,
			[]want{{PrimaryIsReadOnly, "a", ActionNone}}},
		{"single node restarted read-only", single,
			[]topology.NodeView{{NodeID: "a", Reachable: true}}, nil,
			[]want{{PrimaryIsReadOnly, "a", ActionMakeWritable}}},
		{"primary read-only and behind a replica", inst(topology.EngineMySQL),
			[]topology.NodeView{with(primaryUp("0-1-9"), func(v *topology.NodeView) { v.Writable = false }), linkDown("b"), linkDown("c")}, nil,
			[]want{{PrimaryIsReadOnly, "a", ActionFailover}}},
		{"primary read-only while a replica is writable", inst(topology.EngineMySQL),
			[]topology.NodeView{with(primaryUp("0-1-10"), func(v *topology.NodeView) { v.Writable = false }), with(linkDown("b"), func(v *topology.NodeView) { v.Writable = true; v.Replicating = false }), linkDown("c")}, nil,
			[]want{{PrimaryIsReadOnly, "a", ActionFailover}}},
		{"redis primary restarted as empty read-only node behind replicas", inst(topology.EngineRedis),
			[]topology.NodeView{{NodeID: "a", Reachable: true, Position: topology.Position{Offset: 0}}, {NodeID: "b", Reachable: true, Replicating: true, Source: "h:1", Position: topology.Position{Offset: 500}}, linkDown("c")}, nil,
			[]want{{PrimaryIsReadOnly, "a", ActionFailover}}},
		{"replication stopped: SQL thread", inst(topology.EngineMySQL),
			[]topology.NodeView{primaryUp("0-1-10"), with(streaming("b", "0-1-10"), func(v *topology.NodeView) { v.SQLRunning = false }), streaming("c", "0-1-10")}, nil,
			[]want{{ReplicationStopped, "b", ActionRepoint}}},
		{"replication stopped: not replicating at all", inst(topology.EngineMySQL),
			[]topology.NodeView{primaryUp("0-1-10"), streaming("b", "0-1-10"), {NodeID: "c", Reachable: true}}, nil,
			[]want{{ReplicationStopped, "c", ActionRepoint}}},
		{"replica points elsewhere", inst(topology.EngineMySQL),
			[]topology.NodeView{primaryUp("0-1-10"), streaming("b", "0-1-10"), with(streaming("c", "0-1-10"), func(v *topology.NodeView) { v.Source = "h:9" })}, nil,
			[]want{{ReplicationStopped, "c", ActionRepoint}}},
		{"writable replica still streaming", inst(topology.EngineMySQL),
			[]topology.NodeView{primaryUp("0-1-10"), with(streaming("b", "0-1-10"), func(v *topology.NodeView) { v.Writable = true }), streaming("c", "0-1-10")}, nil,
			[]want{{WritableReplica, "b", ActionFence}}},
		{"split brain: two primaries", inst(topology.EngineRedis),
			[]topology.NodeView{primaryUp(""), {NodeID: "b", Reachable: true, Writable: true}, {NodeID: "c", Reachable: true, Writable: true}}, nil,
			[]want{{SplitBrain, "b", ActionFence}, {SplitBrain, "c", ActionFence}, {ReplicationStopped, "b", ActionNone}}},
		{"primary moved: another actor already failed over", inst(topology.EngineMySQL),
			[]topology.NodeView{down("a"), {NodeID: "b", Reachable: true, Writable: true}, with(streaming("c", "0-1-10"), func(v *topology.NodeView) { v.Source = "h:2" })}, nil,
			[]want{{PrimaryMoved, "b", ActionNone}}},
		{"primary moved, stale old primary back read-only", inst(topology.EngineMySQL),
			[]topology.NodeView{{NodeID: "a", Reachable: true, Position: topology.Position{GTID: "0-1-10"}}, {NodeID: "b", Reachable: true, Writable: true, Position: topology.Position{GTID: "0-1-12"}}, with(streaming("c", "0-1-12"), func(v *topology.NodeView) { v.Source = "h:2" })}, nil,
			[]want{{PrimaryMoved, "b", ActionNone}}},
		{"writable unfollowed replica beside a dead primary is no move", inst(topology.EngineMySQL),
			[]topology.NodeView{down("a"), with(linkDown("b"), func(v *topology.NodeView) { v.Writable = true }), linkDown("c")}, nil,
			[]want{{DeadPrimary, "a", ActionFailover}}},
		{"fenced node returned", fenced,
			[]topology.NodeView{primaryUp("0-1-10"), streaming("b", "0-1-10"), streaming("c", "0-1-10"), {NodeID: "d", Reachable: true}}, nil,
			[]want{{FencedNodeReturned, "d", ActionRejoin}}},
		{"fenced node still away", fenced,
			[]topology.NodeView{primaryUp("0-1-10"), streaming("b", "0-1-10"), streaming("c", "0-1-10"), down("d")}, nil,
			[]want{{NoProblem, "", ActionNone}}},
		{"fenced node reachable but primary dead: failover, no rejoin", fenced,
			[]topology.NodeView{down("a"), linkDown("b"), linkDown("c"), {NodeID: "d", Reachable: true}}, nil,
			[]want{{DeadPrimary, "a", ActionFailover}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Analyze(tc.in, tc.views, tc.health)
			// ReplicationStopped never fires for a writable node: drop the
			// sentinel ActionNone rows a case lists to say so.
			var wants []want
			for _, w := range tc.want {
				if w.code == ReplicationStopped && w.action == ActionNone {
					continue
				}
				wants = append(wants, w)
			}
			if len(got) != len(wants) {
				t.Fatalf("got %d problems %+v, want %+v", len(got), got, wants)
			}
			for i, w := range wants {
				if got[i].Code != w.code || got[i].Node != w.node || got[i].Action != w.action {
					t.Errorf("problem %d: got %s/%s/%s (%s), want %s/%s/%s", i, got[i].Code, got[i].Node, got[i].Action, got[i].Detail, w.code, w.node, w.action)
				}
			}
		})
	}
}

func TestTableDocumented(t *testing.T) {
	seen := map[Code]bool{}
	for _, r := range Table() {
		if r.Description == "" || r.Recovery == "" || r.Match == nil {
			t.Errorf("rule %s incomplete", r.Code)
		}
		if seen[r.Code] {
			t.Errorf("rule %s twice", r.Code)
		}
		seen[r.Code] = true
	}
}

func TestParseGTIDSet(t *testing.T) {
	s, err := ParseGTIDSet("0-1-42, 1-2-7,0-3-40")
	if err != nil {
		t.Fatal(err)
	}
	if s[0].Seq != 42 || s[1].Seq != 7 {
		t.Fatalf("got %+v", s)
	}
	if _, err := ParseGTIDSet("0-1"); err == nil {
		t.Fatal("want error for 0-1")
	}
	o, _ := ParseGTIDSet("0-1-45,1-2-7,2-5-1")
	if s.Contains(o) || !o.Contains(s) {
		t.Fatal("containment wrong")
	}
	if got := s.Missing(o); len(got) != 2 || got[0] != "0-1-43..0-1-45" || got[1] != "2-5-1" {
		t.Fatalf("missing = %v", got)
	}
}

func TestChoose(t *testing.T) {
	mk := func(nodes ...topology.Node) topology.Instance {
		in := topology.Instance{ID: "i", Engine: topology.EngineMySQL, Region: "r1"}
		in.Nodes = append([]topology.Node{{ID: "p", Address: "h:0", Region: "r1", Role: topology.RolePrimary}}, nodes...)
		return in
	}
	rep := func(id, region string, rule topology.PromotionRule) topology.Node {
		return topology.Node{ID: id, Address: "h:" + id, Region: region, Role: topology.RoleReplica, Promotion: rule}
	}
	at := func(id, gtid string) topology.NodeView {
		return topology.NodeView{NodeID: id, Reachable: true, Replicating: true, Position: topology.Position{GTID: gtid}}
	}
	redis := func(in topology.Instance) topology.Instance { in.Engine = topology.EngineRedis; return in }
	off := func(id string, o int64) topology.NodeView {
		return topology.NodeView{NodeID: id, Reachable: true, Replicating: true, Position: topology.Position{Offset: o}}
	}
	lag := func(v topology.NodeView, s int64) topology.NodeView { v.LagSeconds = s; return v }

	cases := []struct {
		name  string
		in    topology.Instance
		views []topology.NodeView
		opts  ChooseOptions
		want  string // "" → ErrNoCandidate
	}{
		{"most advanced gtid wins", mk(rep("b", "r1", ""), rep("c", "r1", "")), []topology.NodeView{down("p"), at("b", "0-1-9"), at("c", "0-1-10")}, ChooseOptions{}, "c"},
		{"per-domain comparison", mk(rep("b", "r1", ""), rep("c", "r1", "")), []topology.NodeView{at("b", "0-1-10,1-2-3"), at("c", "0-1-10,1-2-5")}, ChooseOptions{}, "c"},
		{"prefer breaks a tie", mk(rep("b", "r1", topology.PromoteNeutral), rep("c", "r1", topology.PromotePrefer)), []topology.NodeView{at("b", "0-1-10"), at("c", "0-1-10")}, ChooseOptions{}, "c"},
		{"prefer does not beat data", mk(rep("b", "r1", topology.PromoteNeutral), rep("c", "r1", topology.PromotePrefer)), []topology.NodeView{at("b", "0-1-11"), at("c", "0-1-10")}, ChooseOptions{}, "b"},
		{"never is never chosen", mk(rep("b", "r1", topology.PromoteNever), rep("c", "r1", "")), []topology.NodeView{at("b", "0-1-11"), at("c", "0-1-11")}, ChooseOptions{}, "c"},
		{"only never: none", mk(rep("b", "r1", topology.PromoteNever)), []topology.NodeView{at("b", "0-1-11")}, ChooseOptions{}, ""},
		{"same region first", mk(rep("b", "r2", ""), rep("c", "r1", "")), []topology.NodeView{at("b", "0-1-11"), at("c", "0-1-11")}, ChooseOptions{}, "c"},
		{"other region when none in region", mk(rep("b", "r2", ""), rep("c", "r1", "")), []topology.NodeView{at("b", "0-1-11"), down("c")}, ChooseOptions{}, "b"},
		{"unreachable skipped", mk(rep("b", "r1", ""), rep("c", "r1", "")), []topology.NodeView{down("b"), at("c", "0-1-1")}, ChooseOptions{}, "c"},
		{"lagging beyond bound: none", mk(rep("b", "r1", "")), []topology.NodeView{lag(at("b", "0-1-1"), 30)}, ChooseOptions{}, ""},
		{"lagging beyond bound: forced", mk(rep("b", "r1", "")), []topology.NodeView{lag(at("b", "0-1-1"), 30)}, ChooseOptions{Force: true}, "b"},
		{"lag bound configurable", mk(rep("b", "r1", "")), []topology.NodeView{lag(at("b", "0-1-1"), 30)}, ChooseOptions{CandidateConfig: CandidateConfig{MaxLagSeconds: 60}}, "b"},
		{"redis highest offset", redis(mk(rep("b", "r1", ""), rep("c", "r1", ""))), []topology.NodeView{off("b", 1000), off("c", 900)}, ChooseOptions{}, "b"},
		{"redis offset gap beyond bound", redis(mk(rep("b", "r1", ""), rep("c", "r1", ""))), []topology.NodeView{off("b", 5000000), down("c"), {NodeID: "p", Reachable: true, Position: topology.Position{Offset: 9000000}}}, ChooseOptions{}, ""},
		{"target named", mk(rep("b", "r1", ""), rep("c", "r1", "")), []topology.NodeView{at("b", "0-1-9"), at("c", "0-1-10")}, ChooseOptions{Target: "b"}, "b"},
		{"target is the primary", mk(rep("b", "r1", "")), []topology.NodeView{at("p", "0-1-9"), at("b", "0-1-10")}, ChooseOptions{Target: "p"}, ""},
		{"target never, forced", mk(rep("b", "r1", topology.PromoteNever)), []topology.NodeView{at("b", "0-1-9")}, ChooseOptions{Target: "b", Force: true}, "b"},
		{"fenced node not a candidate", mk(topology.Node{ID: "f", Role: topology.RoleFenced}), []topology.NodeView{at("f", "0-1-99")}, ChooseOptions{}, ""},
		{"bad gtid refused", mk(rep("b", "r1", "")), []topology.NodeView{at("b", "zz")}, ChooseOptions{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Choose(tc.in, tc.views, tc.opts)
			if tc.want == "" {
				var nc *NoCandidateError
				if !errors.Is(err, topology.ErrNoCandidate) || !errors.As(err, &nc) {
					t.Fatalf("got %v, %v; want NoCandidateError", c.Node.ID, err)
				}
				return
			}
			if err != nil || c.Node.ID != tc.want {
				t.Fatalf("got %q, %v; want %q", c.Node.ID, err, tc.want)
			}
		})
	}
}

func TestMarkdownListsEveryCode(t *testing.T) {
	md := Markdown()
	for _, r := range Table() {
		if !strings.Contains(md, "`"+string(r.Code)+"`") {
			t.Errorf("%s missing from the markdown table", r.Code)
		}
	}
}
