package placement

import (
	"errors"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

// scenario mutates the default inventory (2 regions × 3 zones × 4 hosts).
type scenario func(inv *inventory.Inventory)

func cordonZone(zone string) scenario {
	return func(inv *inventory.Inventory) {
		for i := range inv.Hosts {
			if inv.Hosts[i].Zone == zone {
				inv.Hosts[i].State = inventory.StateCordoned
			}
		}
	}
}

func fillZone(zone string, memFree int64) scenario {
	return func(inv *inventory.Inventory) {
		for i := range inv.Hosts {
			if inv.Hosts[i].Zone == zone {
				inv.Hosts[i].Allocated.MemoryMB = inv.Hosts[i].Capacity.MemoryMB - memFree
			}
		}
	}
}

func setLatency(a, b string, ms float64) scenario {
	return func(inv *inventory.Inventory) {
		for i := range inv.Latencies {
			l := &inv.Latencies[i]
			if (l.A == a && l.B == b) || (l.A == b && l.B == a) {
				l.P95MS = ms
			}
		}
	}
}

func TestDecideModes(t *testing.T) {
	tests := []struct {
		name    string
		setup   []scenario
		cfg     Config
		req     Request
		check   func(t *testing.T, d Decision)
		refusal []string // substrings of the summary
		filters []string // filter names expected in the explanation
		invalid []string // fields expected in a validation error
	}{
		{
			name: "single-az puts every node in one zone on distinct hosts",
			req:  Request{Mode: SingleAZ, Nodes: nodes(big, "primary", "replica", "replica")},
			check: func(t *testing.T, d Decision) {
				zones, hosts := map[string]bool{}, map[string]bool{}
				for _, n := range d.Nodes {
					zones[n.Zone], hosts[n.HostID] = true, true
				}
				if len(zones) != 1 || len(hosts) != 3 {
					t.Fatalf("zones %v hosts %v", zones, hosts)
				}
			},
		},
		{
			name:    "single-az needs enough hosts in one zone",
			req:     Request{Mode: SingleAZ, Region: "r-0", Nodes: nodes(big, "primary", "replica", "replica", "replica", "replica")},
			refusal: []string{"single-az needs 5 hosts in one AZ of r-0", "r-0-a 4/4 hosts fit"},
			filters: []string{"spread"},
		},
		{
			name:  "multi-az spreads over three zones of one region",
			req:   Request{Mode: MultiAZ, Nodes: nodes(big, "primary", "replica", "replica")},
			check: distinctZonesOneRegion,
		},
		{
			name:    "multi-az with too few zones",
			req:     Request{Mode: MultiAZ, Region: "r-0", Nodes: nodes(small, "primary", "replica", "replica", "replica")},
			refusal: []string{"multi-az needs 4 AZs for the primary group in r-0, which has 3"},
		},
		{
			name:    "multi-az refused with per-zone reasons",
			setup:   []scenario{cordonZone("r-0-c"), fillZone("r-0-b", 4*gib)},
			req:     Request{Mode: MultiAZ, Region: "r-0", Nodes: nodes(big, "primary", "replica", "replica")},
			refusal: []string{"multi-az needs 3 AZs with capacity in r-0, 1 has: r-0-a ok, r-0-b 0/4 hosts fit (4 less than 8 GiB memory free), r-0-c cordoned"},
			filters: []string{"host-ready", "requested-region", "capacity", "spread"},
		},
		{
			name:  "multi-az falls back to the region that fits",
			setup: []scenario{cordonZone("r-0-c")},
			req:   Request{Mode: MultiAZ, Nodes: nodes(big, "primary", "replica", "replica")},
			check: func(t *testing.T, d Decision) {
				distinctZonesOneRegion(t, d)
				if d.Nodes[0].Region != "r-1" {
					t.Fatalf("region %s", d.Nodes[0].Region)
				}
			},
		},
		{
			name:    "latency bound excludes a far zone",
			setup:   []scenario{setLatency("r-0-a", "r-0-c", 35), setLatency("r-0-b", "r-0-c", 35)},
			req:     Request{Mode: MultiAZ, Region: "r-0", Nodes: nodes(big, "primary", "replica", "replica")},
			refusal: []string{"within 20 ms of the primary", "r-0-a <-> r-0-c 35 ms"},
			filters: []string{"latency"},
		},
		{
			name:  "latency bound only between primary and replicas",
			setup: []scenario{setLatency("r-0-b", "r-0-c", 35)},
			req:   Request{Mode: MultiAZ, Region: "r-0", Nodes: nodes(big, "primary", "replica", "replica")},
			check: func(t *testing.T, d Decision) {
				distinctZonesOneRegion(t, d)
				if d.Nodes[0].Zone != "r-0-a" {
					t.Fatalf("primary must be in r-0-a, the zone near both others; got %s", d.Nodes[0].Zone)
				}
			},
		},
		{
			name:  "a looser latency bound allows the far zone",
			setup: []scenario{setLatency("r-0-a", "r-0-c", 35), setLatency("r-0-b", "r-0-c", 35)},
			cfg:   Config{MaxLatencyMS: 50},
			req:   Request{Mode: MultiAZ, Region: "r-0", Nodes: nodes(big, "primary", "replica", "replica")},
			check: distinctZonesOneRegion,
		},
		{
			name: "multi-region puts dr-replica in another region",
			req:  Request{Mode: MultiRegion, Region: "r-1", Nodes: nodes(big, "primary", "replica", "dr-replica")},
			check: func(t *testing.T, d Decision) {
				if d.Nodes[0].Region != "r-1" || d.Nodes[1].Region != "r-1" || d.Nodes[2].Region != "r-0" {
					t.Fatalf("%+v", d.Nodes)
				}
				if d.Nodes[0].Zone == d.Nodes[1].Zone {
					t.Fatal("primary group not spread over zones")
				}
			},
		},
		{
			name:    "multi-region without a second allowed region",
			req:     Request{Mode: MultiRegion, AllowedRegions: []string{"r-0"}, Nodes: nodes(big, "primary", "dr-replica")},
			refusal: []string{"no region other than r-0 allowed for the dr-replicas"},
		},
		{
			name:    "multi-region with a full DR region",
			setup:   []scenario{fillZone("r-1-a", gib), fillZone("r-1-b", gib), fillZone("r-1-c", gib)},
			req:     Request{Mode: MultiRegion, Region: "r-0", Nodes: nodes(big, "primary", "dr-replica")},
			refusal: []string{"multi-region needs 1 AZs with capacity in r-1, 0 have"},
		},
		{
			name:  "allowed regions restrict placement",
			req:   Request{Mode: MultiAZ, AllowedRegions: []string{"r-1"}, Nodes: nodes(big, "primary", "replica")},
			check: func(t *testing.T, d Decision) { allInRegion(t, d, "r-1") },
		},
		{
			name:    "requested region not allowed",
			req:     Request{Mode: MultiAZ, Region: "r-0", AllowedRegions: []string{"r-1"}, Nodes: nodes(big, "primary")},
			refusal: []string{"region r-0 not allowed for tenant"},
			filters: []string{"allowed-regions"},
		},
		{
			name: "required labels",
			setup: []scenario{func(inv *inventory.Inventory) {
				for _, id := range []string{"r-1-a-2", "r-1-b-3", "r-1-c-0"} {
					hostByID(inv, id).Labels = map[string]string{"disk": "nvme"}
				}
			}},
			req: Request{Mode: MultiAZ, RequiredLabels: map[string]string{"disk": "nvme"}, Nodes: nodes(big, "primary", "replica", "replica")},
			check: func(t *testing.T, d Decision) {
				got := map[string]bool{}
				for _, n := range d.Nodes {
					got[n.HostID] = true
				}
				if !got["r-1-a-2"] || !got["r-1-b-3"] || !got["r-1-c-0"] {
					t.Fatalf("%v", got)
				}
			},
		},
		{
			name: "required labels too rare",
			setup: []scenario{func(inv *inventory.Inventory) {
				hostByID(inv, "r-1-a-2").Labels = map[string]string{"compliance": "pci"}
			}},
			req:     Request{Mode: MultiAZ, RequiredLabels: map[string]string{"compliance": "pci"}, Nodes: nodes(big, "primary", "replica")},
			refusal: []string{"multi-az needs 2 AZs with capacity in r-1, 1 has: r-1-a ok"},
			filters: []string{"required-labels"},
		},
		{
			name: "replace keeps multi-az spread and avoids the failed host",
			req: Request{Kind: KindReplace, Mode: MultiAZ, Nodes: []NodeSpec{{Name: "node-2", Role: "replica", Resources: big}},
				Existing:   []Placed{{Name: "node-0", Role: "primary", HostID: "r-0-a-0"}, {Name: "node-1", Role: "replica", HostID: "r-0-b-0"}},
				AvoidHosts: []string{"r-0-c-0"}},
			check: func(t *testing.T, d Decision) {
				if len(d.Nodes) != 1 || d.Nodes[0].Zone != "r-0-c" || d.Nodes[0].HostID == "r-0-c-0" || d.Nodes[0].Name != "node-2" {
					t.Fatalf("%+v", d.Nodes)
				}
			},
		},
		{
			name:  "replace refused when the free zone is cordoned",
			setup: []scenario{cordonZone("r-0-c")},
			req: Request{Kind: KindReplace, Mode: MultiAZ, Nodes: []NodeSpec{{Name: "node-2", Role: "replica", Resources: big}},
				Existing: []Placed{{Name: "node-0", Role: "primary", HostID: "r-0-a-0"}, {Name: "node-1", Role: "replica", HostID: "r-0-b-0"}}},
			refusal: []string{"r-0-a already holds a node of this instance", "r-0-c cordoned"},
		},
		{
			name: "replace in single-az stays in the zone on another host",
			req: Request{Kind: KindReplace, Mode: SingleAZ, Nodes: []NodeSpec{{Name: "node-1", Role: "replica", Resources: big}},
				Existing: []Placed{{Name: "node-0", Role: "primary", HostID: "r-1-b-2"}}, AvoidHosts: []string{"r-1-b-1"}},
			check: func(t *testing.T, d Decision) {
				n := d.Nodes[0]
				if n.Zone != "r-1-b" || n.HostID == "r-1-b-2" || n.HostID == "r-1-b-1" {
					t.Fatalf("%+v", n)
				}
			},
		},
		{
			name: "replace a dr-replica stays out of the primary region",
			req: Request{Kind: KindReplace, Mode: MultiRegion, Nodes: []NodeSpec{{Name: "dr", Role: "dr-replica", Resources: big}},
				Existing: []Placed{{Name: "p", Role: "primary", HostID: "r-1-a-0"}}},
			check: func(t *testing.T, d Decision) { allInRegion(t, d, "r-0") },
		},
		{
			name:    "bad input is a validation error",
			req:     Request{Mode: "spread-everywhere", Region: "mars", Nodes: []NodeSpec{{Role: "primary", Resources: inventory.Resources{MilliCPU: -1}}}, RequiredLabels: map[string]string{"nope": "x"}},
			invalid: []string{"deployment_mode", "region", "nodes[0].vcpu", "nodes[0].memory_mb", "nodes[0].storage_gb", "labels.nope"},
		},
		{
			name:    "two primaries",
			req:     Request{Mode: MultiAZ, Nodes: nodes(big, "primary", "primary")},
			invalid: []string{"nodes"},
		},
		{
			name:    "multi-region without dr-replica",
			req:     Request{Mode: MultiRegion, Nodes: nodes(big, "primary", "replica")},
			invalid: []string{"nodes"},
		},
		{
			name:    "no nodes",
			req:     Request{Mode: MultiAZ},
			invalid: []string{"nodes"},
		},
		{
			name:    "replace with unknown surviving host",
			req:     Request{Kind: KindReplace, Mode: MultiAZ, Nodes: nodes(big, "replica"), Existing: []Placed{{Name: "p", Role: "primary", HostID: "nope"}}},
			invalid: []string{"existing[0].host"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := genInventory(2, 3, 4, host)
			for _, f := range tt.setup {
				f(&inv)
			}
			c := mustCluster(t, inv)
			s := mustScheduler(t, tt.cfg)
			tt.req.InstanceID = "inst-1"
			d, err := s.Decide(c, tt.req)
			var re *RefusalError
			var ve *inventory.ValidationError
			switch {
			case tt.check != nil:
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(d.Nodes) != len(tt.req.Nodes) {
					t.Fatalf("placed %d of %d nodes", len(d.Nodes), len(tt.req.Nodes))
				}
				tt.check(t, d)
				if err := c.Apply(d.InstanceID, d.Nodes); err != nil {
					t.Fatalf("apply: %v", err)
				}
			case tt.refusal != nil:
				if !errors.As(err, &re) || !errors.Is(err, ErrNoPlacement) {
					t.Fatalf("want refusal, got %v %+v", err, d)
				}
				for _, want := range tt.refusal {
					if !strings.Contains(re.Explanation.Summary, want) {
						t.Errorf("summary %q lacks %q", re.Explanation.Summary, want)
					}
				}
				names := map[string]bool{}
				for _, f := range re.Explanation.Filters {
					names[f.Name] = true
					if f.Rejected < 0 || f.Reason == "" {
						t.Errorf("bad filter count %+v", f)
					}
				}
				for _, want := range tt.filters {
					if !names[want] {
						t.Errorf("filters %+v lack %s", re.Explanation.Filters, want)
					}
				}
			default:
				if !errors.As(err, &ve) || !errors.Is(err, inventory.ErrInvalid) {
					t.Fatalf("want validation error, got %v", err)
				}
				fields := map[string]bool{}
				for _, f := range ve.Fields {
					fields[f.Field] = true
				}
				for _, want := range tt.invalid {
					if !fields[want] {
						t.Errorf("validation %v lacks field %s", ve, want)
					}
				}
			}
		})
	}
}

func distinctZonesOneRegion(t *testing.T, d Decision) {
	t.Helper()
	zones := map[string]bool{}
	for _, n := range d.Nodes {
		if zones[n.Zone] {
			t.Fatalf("two nodes in zone %s: %+v", n.Zone, d.Nodes)
		}
		zones[n.Zone] = true
		if n.Region != d.Nodes[0].Region {
			t.Fatalf("nodes in several regions: %+v", d.Nodes)
		}
	}
}

func allInRegion(t *testing.T, d Decision, region string) {
	t.Helper()
	for _, n := range d.Nodes {
		if n.Region != region {
			t.Fatalf("node %s in %s, want %s", n.Name, n.Region, region)
		}
	}
}

func TestDecideDoesNotMutateAndApplyIsAtomic(t *testing.T) {
	c := mustCluster(t, genInventory(1, 3, 1, host))
	s := mustScheduler(t, Config{})
	req := Request{InstanceID: "a", Mode: MultiAZ, Nodes: nodes(inventory.Resources{MilliCPU: 1000, MemoryMB: 20 * gib, StorageGB: 10}, "primary", "replica", "replica")}
	d, err := s.Decide(c, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range c.Hosts() {
		if h.Allocated != (inventory.Resources{}) {
			t.Fatalf("decide mutated %s", h.ID)
		}
	}
	if err := c.Apply("a", d.Nodes); err != nil {
		t.Fatal(err)
	}
	req.InstanceID = "b"
	if _, err := s.Decide(c, req); !errors.Is(err, ErrNoPlacement) {
		t.Fatalf("second instance must not fit: %v", err)
	}
	// Applying the first decision again would overcommit: nothing changes.
	before := c.Hosts()
	if err := c.Apply("b", d.Nodes); !errors.Is(err, ErrOvercommit) {
		t.Fatalf("want overcommit, got %v", err)
	}
	after := c.Hosts()
	for i := range before {
		if before[i].Allocated != after[i].Allocated {
			t.Fatal("failed apply changed allocation")
		}
	}
	c.Release("a", d.Nodes)
	if _, err := s.Decide(c, req); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestBinPackFillsOneHostFirst(t *testing.T) {
	c := mustCluster(t, genInventory(1, 1, 3, host))
	s := mustScheduler(t, Config{Strategy: BinPack})
	used := map[string]int{}
	for i := 0; i < 4; i++ {
		d, err := s.Decide(c, Request{InstanceID: string(rune('a' + i)), Mode: SingleAZ, Nodes: nodes(big, "primary")})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(d.InstanceID, d.Nodes); err != nil {
			t.Fatal(err)
		}
		used[d.Nodes[0].HostID]++
	}
	if len(used) != 1 {
		t.Fatalf("binpack spread nodes over %v", used)
	}
	sb := mustScheduler(t, Config{Strategy: Balanced})
	c2 := mustCluster(t, genInventory(1, 1, 3, host))
	used = map[string]int{}
	for i := 0; i < 3; i++ {
		d, _ := sb.Decide(c2, Request{InstanceID: string(rune('a' + i)), Mode: SingleAZ, Nodes: nodes(big, "primary")})
		_ = c2.Apply(d.InstanceID, d.Nodes)
		used[d.Nodes[0].HostID]++
	}
	if len(used) != 3 {
		t.Fatalf("balanced packed nodes: %v", used)
	}
}
