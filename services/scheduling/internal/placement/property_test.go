package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

func randomInventory(rng *rand.Rand) inventory.Inventory {
	var inv inventory.Inventory
	nr := 1 + rng.IntN(3)
	for r := 0; r < nr; r++ {
		rid := fmt.Sprintf("r%d", r)
		inv.Regions = append(inv.Regions, inventory.Region{ID: rid})
		nz := 1 + rng.IntN(4)
		for z := 0; z < nz; z++ {
			zid := fmt.Sprintf("%s-z%d", rid, z)
			inv.Zones = append(inv.Zones, inventory.Zone{ID: zid, Region: rid})
			for zz := z + 1; zz < nz; zz++ {
				inv.Latencies = append(inv.Latencies, inventory.Latency{A: zid, B: fmt.Sprintf("%s-z%d", rid, zz), P95MS: float64(1 + rng.IntN(30))})
			}
			for h := 0; h < 1+rng.IntN(6); h++ {
				states := []inventory.HostState{inventory.StateReady, inventory.StateReady, inventory.StateReady, inventory.StateCordoned, inventory.StateDown}
				var labels map[string]string
				if rng.IntN(3) == 0 {
					labels = map[string]string{"disk": "nvme"}
				}
				from := 10000 + rng.IntN(1000)
				inv.Hosts = append(inv.Hosts, inventory.Host{
					ID: fmt.Sprintf("%s-h%d", zid, h), Zone: zid, Address: "127.0.0.1",
					Ports: inventory.PortRange{From: from, To: from + rng.IntN(8)},
					Capacity: inventory.Resources{
						MilliCPU: int64(1000 * (2 + rng.IntN(15))), MemoryMB: int64(1024 * (4 + rng.IntN(60))), StorageGB: int64(50 + rng.IntN(500)),
					},
					Labels: labels, State: states[rng.IntN(len(states))],
					Price: inventory.Price{PerVCPUHour: rng.Float64() / 10, PerGBHour: rng.Float64() / 50},
				})
			}
		}
		for rr := r + 1; rr < nr; rr++ {
			inv.Latencies = append(inv.Latencies, inventory.Latency{A: rid, B: fmt.Sprintf("r%d", rr), P95MS: float64(20 + rng.IntN(100))})
		}
	}
	return inv
}

func randomRequest(rng *rand.Rand, id string, inv inventory.Inventory) Request {
	modes := []Mode{SingleAZ, MultiAZ, MultiRegion}
	req := Request{InstanceID: id, Mode: modes[rng.IntN(3)]}
	n := 1 + rng.IntN(4)
	res := inventory.Resources{MilliCPU: int64(250 * (1 + rng.IntN(16))), MemoryMB: int64(512 * (1 + rng.IntN(24))), StorageGB: int64(5 + rng.IntN(100))}
	for i := 0; i < n; i++ {
		role := RoleReplica
		if i == 0 {
			role = RolePrimary
		}
		if req.Mode == MultiRegion && i == n-1 && n > 1 {
			role = RoleDRReplica
		}
		req.Nodes = append(req.Nodes, NodeSpec{Role: role, Resources: res})
	}
	if req.Mode == MultiRegion && n == 1 {
		req.Nodes = append(req.Nodes, NodeSpec{Role: RoleDRReplica, Resources: res})
	}
	if rng.IntN(4) == 0 {
		req.Region = inv.Regions[rng.IntN(len(inv.Regions))].ID
	}
	if rng.IntN(5) == 0 {
		req.AllowedRegions = []string{inv.Regions[rng.IntN(len(inv.Regions))].ID}
		if req.Region != "" && rng.IntN(2) == 0 {
			req.AllowedRegions = append(req.AllowedRegions, req.Region)
		}
	}
	if rng.IntN(6) == 0 {
		req.RequiredLabels = map[string]string{"disk": "nvme"}
	}
	return req
}

type placed struct {
	req   Request
	nodes map[string]Assignment // by node name
}

// TestPropertyNeverOvercommits drives thousands of random placements,
// replacements and releases against random inventories and checks after each
// step that no host is overcommitted, every decision respects anti-affinity,
// the mode's spread, the latency bound, residency and labels, and that
// refusals of single nodes are true.
func TestPropertyNeverOvercommits(t *testing.T) {
	inventories, ops := 40, 400
	if testing.Short() {
		inventories = 10
	}
	total, ok, refused := 0, 0, 0
	for seed := uint64(1); seed <= uint64(inventories); seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		inv := randomInventory(rng)
		if !hasLabel(inv) {
			hostByID(&inv, inv.Hosts[0].ID).Labels = map[string]string{"disk": "nvme"}
		}
		c := mustCluster(t, inv)
		strategy := []Strategy{Balanced, BinPack}[seed%2]
		s := mustScheduler(t, Config{Strategy: strategy, MaxLatencyMS: float64(5 + rng.IntN(30)), HostsToScore: []int{-1, 1, 4, 32}[rng.IntN(4)]})
		live := map[string]*placed{}
		var ids []string
		for op := 0; op < ops; op++ {
			total++
			switch k := rng.IntN(10); {
			case k < 6 || len(ids) == 0: // place a new instance
				id := fmt.Sprintf("i%d-%d", seed, op)
				req := randomRequest(rng, id, inv)
				d, err := s.Decide(c, req)
				if err != nil {
					if !errors.Is(err, ErrNoPlacement) {
						t.Fatalf("seed %d op %d: %v", seed, op, err)
					}
					refused++
					checkRefusalTrue(t, c, req, err)
					continue
				}
				ok++
				checkDecision(t, c, s, req, d, nil)
				if err := c.Apply(id, d.Nodes); err != nil {
					t.Fatalf("seed %d op %d apply: %v", seed, op, err)
				}
				p := &placed{req: req, nodes: map[string]Assignment{}}
				for _, a := range d.Nodes {
					p.nodes[a.Name] = a
				}
				live[id] = p
				ids = append(ids, id)
			case k < 8: // release an instance
				i := rng.IntN(len(ids))
				id := ids[i]
				p := live[id]
				c.Release(id, values(p.nodes))
				delete(live, id)
				ids = append(ids[:i], ids[i+1:]...)
			default: // a node failed: release it and re-place it
				id := ids[rng.IntN(len(ids))]
				p := live[id]
				names := sortedKeys(p.nodes)
				failed := p.nodes[names[rng.IntN(len(names))]]
				c.Release(id, []Assignment{failed})
				delete(p.nodes, failed.Name)
				req := Request{InstanceID: id, Kind: KindReplace, Mode: p.req.Mode, Region: p.req.Region,
					AllowedRegions: p.req.AllowedRegions, RequiredLabels: p.req.RequiredLabels,
					Nodes: []NodeSpec{{Name: failed.Name, Role: failed.Role, Resources: failed.Resources}}, AvoidHosts: []string{failed.HostID}}
				for _, a := range values(p.nodes) {
					req.Existing = append(req.Existing, Placed{Name: a.Name, Role: a.Role, HostID: a.HostID})
				}
				if len(req.Existing) == 0 {
					req.Kind, req.AvoidHosts = KindNew, nil
				}
				if req.Mode == MultiRegion && !hasRole(req, RoleDRReplica) || req.Mode == MultiRegion && onlyRole(req, RoleDRReplica) {
					// the survivors alone no longer form a valid multi-region shape; drop the instance
					c.Release(id, values(p.nodes))
					delete(live, id)
					ids = removeID(ids, id)
					continue
				}
				d, err := s.Decide(c, req)
				if err != nil {
					if !errors.Is(err, ErrNoPlacement) {
						t.Fatalf("seed %d op %d replace: %v", seed, op, err)
					}
					refused++
					c.Release(id, values(p.nodes))
					delete(live, id)
					ids = removeID(ids, id)
					continue
				}
				ok++
				checkDecision(t, c, s, req, d, p.nodes)
				if err := c.Apply(id, d.Nodes); err != nil {
					t.Fatalf("seed %d op %d apply replace: %v", seed, op, err)
				}
				p.nodes[d.Nodes[0].Name] = d.Nodes[0]
			}
			checkLedger(t, c, inv, live)
		}
	}
	t.Logf("%d operations: %d placements, %d refusals", total, ok, refused)
	if ok == 0 || refused == 0 {
		t.Fatalf("the random mix should both place and refuse (placed %d, refused %d)", ok, refused)
	}
}

func hasLabel(inv inventory.Inventory) bool {
	for _, h := range inv.Hosts {
		if h.Labels["disk"] == "nvme" {
			return true
		}
	}
	return false
}

func hasRole(req Request, role string) bool {
	for _, n := range req.Nodes {
		if n.Role == role {
			return true
		}
	}
	for _, n := range req.Existing {
		if n.Role == role {
			return true
		}
	}
	return false
}

func onlyRole(req Request, role string) bool {
	for _, n := range req.Nodes {
		if n.Role != role {
			return false
		}
	}
	for _, n := range req.Existing {
		if n.Role != role {
			return false
		}
	}
	return true
}

func removeID(ids []string, id string) []string {
	for i, x := range ids {
		if x == id {
			return append(ids[:i], ids[i+1:]...)
		}
	}
	return ids
}

func values(m map[string]Assignment) []Assignment {
	out := make([]Assignment, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

func sortedKeys(m map[string]Assignment) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// checkDecision verifies one decision against the rules, given the surviving
// nodes of the instance (replace).
func checkDecision(t *testing.T, c *Cluster, s *Pipeline, req Request, d Decision, survivors map[string]Assignment) {
	t.Helper()
	all := append(values(survivors), d.Nodes...)
	hosts := map[string]bool{}
	for _, a := range all {
		if hosts[a.HostID] {
			t.Fatalf("anti-affinity broken for %s: %+v", req.InstanceID, all)
		}
		hosts[a.HostID] = true
	}
	for _, h := range req.AvoidHosts {
		for _, a := range d.Nodes {
			if a.HostID == h {
				t.Fatalf("avoided host %s used", h)
			}
		}
	}
	for _, a := range d.Nodes {
		h := c.hosts[a.HostID]
		if h.State != inventory.StateReady {
			t.Fatalf("node on %s host %s", h.State, h.ID)
		}
		if !h.Free().Covers(a.Resources) {
			t.Fatalf("node does not fit on %s", h.ID)
		}
		if len(req.AllowedRegions) > 0 && !contains(req.AllowedRegions, a.Region) {
			t.Fatalf("node in region %s outside %v", a.Region, req.AllowedRegions)
		}
		for k, v := range req.RequiredLabels {
			if h.Labels[k] != v {
				t.Fatalf("host %s lacks %s=%s", h.ID, k, v)
			}
		}
		if a.Port < h.Ports.From || a.Port > h.Ports.To {
			t.Fatalf("port %d outside range of %s", a.Port, h.ID)
		}
		if _, used := h.ports[a.Port]; used {
			t.Fatalf("port %d on %s already used", a.Port, h.ID)
		}
	}
	group := func(a Assignment) int {
		if req.Mode == MultiRegion && a.Role == RoleDRReplica {
			return 1
		}
		return 0
	}
	for g := 0; g < 2; g++ {
		var members []Assignment
		for _, a := range all {
			if group(a) == g {
				members = append(members, a)
			}
		}
		zones := map[string]bool{}
		var primary *Assignment
		for i, a := range members {
			if a.Region != members[0].Region {
				t.Fatalf("group %d spans regions: %+v", g, members)
			}
			if req.Mode == SingleAZ && a.Zone != members[0].Zone {
				t.Fatalf("single-az spans zones: %+v", members)
			}
			if req.Mode != SingleAZ && zones[a.Zone] {
				t.Fatalf("%s: two nodes of group %d in zone %s: %+v", req.Mode, g, a.Zone, members)
			}
			zones[a.Zone] = true
			if a.Role == RolePrimary {
				primary = &members[i]
			}
		}
		if g == 0 && len(members) > 0 && req.Region != "" && req.Kind == KindNew && members[0].Region != req.Region {
			t.Fatalf("primary group in %s, requested %s", members[0].Region, req.Region)
		}
		if g == 0 {
			topo := c.topo
			for i, a := range members {
				for _, b := range members[i+1:] {
					if primary != nil && a.Role != RolePrimary && b.Role != RolePrimary {
						continue
					}
					if l := topo.ZoneLatency(topo.ZoneIndex[a.Zone], topo.ZoneIndex[b.Zone]); l > s.cfg.MaxLatencyMS {
						t.Fatalf("latency %s-%s %g > %g", a.Zone, b.Zone, l, s.cfg.MaxLatencyMS)
					}
				}
			}
		}
	}
	if req.Mode == MultiRegion {
		var r0, r1 string
		for _, a := range all {
			if group(a) == 0 {
				r0 = a.Region
			} else {
				r1 = a.Region
			}
		}
		if r0 == r1 {
			t.Fatalf("multi-region groups share region %s", r0)
		}
	}
}

// checkRefusalTrue verifies by brute force that a refused single-node request
// without constraints really has no host.
func checkRefusalTrue(t *testing.T, c *Cluster, req Request, err error) {
	t.Helper()
	var re *RefusalError
	if !errors.As(err, &re) || re.Explanation.Summary == "" || len(re.Explanation.Filters) == 0 {
		t.Fatalf("refusal without explanation: %v", err)
	}
	if len(req.Nodes) != 1 || req.Mode == MultiRegion || req.Region != "" || len(req.AllowedRegions) > 0 || len(req.RequiredLabels) > 0 {
		return
	}
	for _, h := range c.hosts {
		if h.State == inventory.StateReady && h.Free().Covers(req.Nodes[0].Resources) && h.FreePorts() > 0 {
			t.Fatalf("refused %s but host %s fits: %s", req.InstanceID, h.ID, re.Explanation.Summary)
		}
	}
}

// checkLedger recomputes every host's allocation from the live instances.
func checkLedger(t *testing.T, c *Cluster, inv inventory.Inventory, live map[string]*placed) {
	t.Helper()
	want := map[string]inventory.Resources{}
	ports := map[string]map[int]bool{}
	for _, p := range live {
		for _, a := range p.nodes {
			want[a.HostID] = want[a.HostID].Add(a.Resources)
			if ports[a.HostID] == nil {
				ports[a.HostID] = map[int]bool{}
			}
			if ports[a.HostID][a.Port] {
				t.Fatalf("port %d used twice on %s", a.Port, a.HostID)
			}
			ports[a.HostID][a.Port] = true
		}
	}
	for _, h := range inv.Hosts {
		got := c.hosts[h.ID]
		if got.Allocated != want[h.ID] {
			t.Fatalf("host %s allocated %v, ledger says %v", h.ID, got.Allocated, want[h.ID])
		}
		if !got.Capacity.Covers(got.Allocated) || got.Allocated.AnyNegative() {
			t.Fatalf("host %s overcommitted: %v of %v", h.ID, got.Allocated, got.Capacity)
		}
		if len(got.ports) > got.Ports.Size() {
			t.Fatalf("host %s uses %d ports of %d", h.ID, len(got.ports), got.Ports.Size())
		}
	}
	// The zone index stays sorted.
	for _, z := range c.zones {
		for i := 1; i < len(z.byFree); i++ {
			a, b := z.byFree[i-1], z.byFree[i]
			if lessHost(b, a.key, a.ID) || a.key != freeKey(a) {
				t.Fatalf("zone index out of order at %s/%s", a.ID, b.ID)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
