package placement

import (
	"testing"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

func TestFilters(t *testing.T) {
	inv := genInventory(2, 3, 2, host)
	hostByID(&inv, "r-0-a-1").Labels = map[string]string{"compliance": "pci"}
	c := mustCluster(t, inv)
	h := func(id string) *Host { return c.hosts[id] }
	mod := func(id string, f func(h *Host)) *Host {
		cp := *c.hosts[id]
		f(&cp)
		return &cp
	}
	cfg := DefaultConfig()
	n := &node{NodeSpec: NodeSpec{Name: "n", Role: RoleReplica, Resources: big}}
	drNode := &node{NodeSpec: NodeSpec{Name: "d", Role: RoleDRReplica, Resources: big}, group: 1}
	cycle := func(req Request) *Cycle {
		nodes, err := validate(c, &req)
		if err != nil {
			t.Fatalf("validate: %v", err)
		}
		return mustScheduler(t, cfg).newCycle(c, &req, nodes)
	}
	base := Request{InstanceID: "i", Mode: MultiAZ, Nodes: nodes(big, "primary")}
	withAllowed := base
	withAllowed.AllowedRegions = []string{"r-1"}
	withRegion := base
	withRegion.Region = "r-1"
	withLabels := base
	withLabels.RequiredLabels = map[string]string{"compliance": "pci"}
	withAvoid := base
	withAvoid.AvoidHosts = []string{"r-0-a-0"}
	mr := Request{InstanceID: "i", Mode: MultiRegion, Nodes: nodes(big, "primary", "dr-replica"), DRRegion: "r-1"}

	tests := []struct {
		name   string
		filter Filter
		cy     *Cycle
		node   *node
		host   *Host
		ok     bool
		reason string
	}{
		{"ready host passes", HostReady{}, cycle(base), n, h("r-0-a-0"), true, ""},
		{"cordoned host rejected", HostReady{}, cycle(base), n, mod("r-0-a-0", func(h *Host) { h.State = inventory.StateCordoned }), false, "cordoned"},
		{"down host rejected", HostReady{}, cycle(base), n, mod("r-0-a-0", func(h *Host) { h.State = inventory.StateDown }), false, "down"},
		{"no residency constraint", AllowedRegions{}, cycle(base), n, h("r-0-a-0"), true, ""},
		{"allowed region passes", AllowedRegions{}, cycle(withAllowed), n, h("r-1-a-0"), true, ""},
		{"other region rejected", AllowedRegions{}, cycle(withAllowed), n, h("r-0-a-0"), false, "region r-0 not allowed for tenant"},
		{"requested region passes", RequestedRegion{}, cycle(withRegion), n, h("r-1-b-0"), true, ""},
		{"outside requested region", RequestedRegion{}, cycle(withRegion), n, h("r-0-b-0"), false, "not in requested region r-1"},
		{"dr group uses dr_region", RequestedRegion{}, cycle(mr), drNode, h("r-0-b-0"), false, "not in requested region r-1"},
		{"labels present", RequiredLabels{}, cycle(withLabels), n, h("r-0-a-1"), true, ""},
		{"labels missing", RequiredLabels{}, cycle(withLabels), n, h("r-0-a-0"), false, "missing label compliance=pci"},
		{"label value differs", RequiredLabels{}, cycle(withLabels), n, mod("r-0-a-1", func(h *Host) { h.Labels = map[string]string{"compliance": "none"} }), false, "missing label compliance=pci"},
		{"anti-affinity free host", AntiAffinity{}, cycle(withAvoid), n, h("r-0-a-1"), true, ""},
		{"anti-affinity avoided host", AntiAffinity{}, cycle(withAvoid), n, h("r-0-a-0"), false, "already runs a node of this instance or is to be avoided"},
		{"capacity fits exactly", Capacity{}, cycle(base), n, mod("r-0-a-0", func(h *Host) { h.Allocated = host.Sub(big) }), true, ""},
		{"memory short", Capacity{}, cycle(base), n, mod("r-0-a-0", func(h *Host) { h.Allocated.MemoryMB = 25 * gib }), false, "less than 8 GiB memory free"},
		{"cpu short", Capacity{}, cycle(base), n, mod("r-0-a-0", func(h *Host) { h.Allocated.MilliCPU = 6500 }), false, "less than 2 vCPU free"},
		{"storage short", Capacity{}, cycle(base), n, mod("r-0-a-0", func(h *Host) { h.Allocated.StorageGB = 460 }), false, "less than 50 GiB storage free"},
		{"ports exhausted", Capacity{}, cycle(base), n, mod("r-0-a-0", func(h *Host) {
			h.Ports = inventory.PortRange{From: 1, To: 1}
			h.ports = map[int]string{1: "x/y"}
		}), false, "no free port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := tt.filter.Filter(tt.cy, tt.node, tt.host)
			if ok != tt.ok || reason != tt.reason {
				t.Fatalf("%s: got (%v, %q), want (%v, %q)", tt.filter.Name(), ok, reason, tt.ok, tt.reason)
			}
		})
	}
}

func TestScorers(t *testing.T) {
	inv := genInventory(2, 3, 3, host)
	hostByID(&inv, "r-0-a-1").Allocated = inventory.Resources{MilliCPU: 4000, MemoryMB: 16 * gib, StorageGB: 250}
	hostByID(&inv, "r-0-a-2").Allocated = inventory.Resources{MilliCPU: 0, MemoryMB: 16 * gib, StorageGB: 0}
	hostByID(&inv, "r-0-b-1").Price = inventory.Price{PerVCPUHour: 0.01, PerGBHour: 0.001}
	hostByID(&inv, "r-0-b-2").Price = inventory.Price{PerVCPUHour: 0.04, PerGBHour: 0.01}
	c := mustCluster(t, inv)
	cy := &Cycle{cluster: c, cfg: &Config{MaxLatencyMS: 20}}
	n := &node{NodeSpec: NodeSpec{Role: RoleReplica, Resources: big}}
	h := func(id string) *Host { return c.hosts[id] }

	type cmp struct {
		name          string
		scorer        Scorer
		better, worse string
	}
	for _, tt := range []cmp{
		{"balanced prefers the empty host", Utilisation{Strategy: Balanced}, "r-0-a-0", "r-0-a-1"},
		{"balanced prefers evenly used over lopsided", Utilisation{Strategy: Balanced}, "r-0-a-1", "r-0-a-2"},
		{"binpack prefers the fuller host", Utilisation{Strategy: BinPack}, "r-0-a-1", "r-0-a-0"},
		{"price prefers the cheap host", Price{}, "r-0-b-1", "r-0-b-0"},
		{"price ranks the dearest last", Price{}, "r-0-b-0", "r-0-b-2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, w := tt.scorer.Score(cy, n, h(tt.better)), tt.scorer.Score(cy, n, h(tt.worse))
			if !(b > w) {
				t.Fatalf("%s: %s scored %.3f, %s scored %.3f", tt.scorer.Name(), tt.better, b, tt.worse, w)
			}
			if b < 0 || b > 1 || w < 0 || w > 1 {
				t.Fatalf("scores out of [0,1]: %.3f %.3f", b, w)
			}
		})
	}
	if got := (Price{}).Score(cy, n, h("r-0-b-1")); got != 1 {
		t.Fatalf("cheapest host price score = %v, want 1", got)
	}

	t.Run("latency to primary", func(t *testing.T) {
		inv := genInventory(2, 3, 1, host)
		inv.Latencies[0].P95MS = 15 // r-0-a <-> r-0-b
		c := mustCluster(t, inv)
		cy := &Cycle{cluster: c, cfg: &Config{MaxLatencyMS: 20}}
		z := c.topo.ZoneIndex
		rep := &node{NodeSpec: NodeSpec{Role: RoleReplica}}
		prim := &node{NodeSpec: NodeSpec{Role: RolePrimary}}
		dr := &node{NodeSpec: NodeSpec{Role: RoleDRReplica}, group: 1}
		s := LatencyToPrimary{}
		near, far := s.ScoreZone(cy, rep, z["r-0-c"], z["r-0-a"]), s.ScoreZone(cy, rep, z["r-0-b"], z["r-0-a"])
		if !(near > far) || near != 0.9 || far != 0.25 {
			t.Fatalf("near %.3f far %.3f", near, far)
		}
		if s.ScoreZone(cy, prim, z["r-0-b"], z["r-0-a"]) != 1 {
			t.Fatal("primary should score 1")
		}
		if got := s.ScoreZone(cy, dr, z["r-1-a"], z["r-0-a"]); got != 0 {
			t.Fatalf("dr at the farthest region scored %.3f, want 0", got)
		}
	})
}
