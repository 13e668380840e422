package placement

import (
	"fmt"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

var (
	gib   = int64(1024)
	small = inventory.Resources{MilliCPU: 1000, MemoryMB: 2 * gib, StorageGB: 20}
	big   = inventory.Resources{MilliCPU: 2000, MemoryMB: 8 * gib, StorageGB: 50}
	host  = inventory.Resources{MilliCPU: 8000, MemoryMB: 32 * gib, StorageGB: 500}
)

// genInventory builds regions r-0.. with zones r-0-a.. and hosts r-0-a-0..,
// intra-region latency 2 ms and inter-region 40 ms.
func genInventory(regions, zones, hosts int, capacity inventory.Resources) inventory.Inventory {
	var inv inventory.Inventory
	for r := 0; r < regions; r++ {
		rid := fmt.Sprintf("r-%d", r)
		inv.Regions = append(inv.Regions, inventory.Region{ID: rid})
		for z := 0; z < zones; z++ {
			zid := fmt.Sprintf("%s-%c", rid, 'a'+z)
			inv.Zones = append(inv.Zones, inventory.Zone{ID: zid, Region: rid})
			for zz := z + 1; zz < zones; zz++ {
				inv.Latencies = append(inv.Latencies, inventory.Latency{A: zid, B: fmt.Sprintf("%s-%c", rid, 'a'+zz), P95MS: 2})
			}
			for h := 0; h < hosts; h++ {
				inv.Hosts = append(inv.Hosts, inventory.Host{
					ID: fmt.Sprintf("%s-%d", zid, h), Zone: zid, Address: "127.0.0.1",
					Ports:    inventory.PortRange{From: 20000 + h*100, To: 20000 + h*100 + 99},
					Capacity: capacity, State: inventory.StateReady,
					Price: inventory.Price{PerVCPUHour: 0.02, PerGBHour: 0.005},
				})
			}
		}
		for rr := r + 1; rr < regions; rr++ {
			inv.Latencies = append(inv.Latencies, inventory.Latency{A: rid, B: fmt.Sprintf("r-%d", rr), P95MS: 40})
		}
	}
	return inv
}

func mustCluster(t interface{ Fatalf(string, ...any) }, inv inventory.Inventory) *Cluster {
	c, err := NewCluster(inv)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	return c
}

func mustScheduler(t interface{ Fatalf(string, ...any) }, cfg Config) *Pipeline {
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("scheduler: %v", err)
	}
	return s
}

func nodes(res inventory.Resources, roles ...string) []NodeSpec {
	out := make([]NodeSpec, len(roles))
	for i, r := range roles {
		out[i] = NodeSpec{Role: r, Resources: res}
	}
	return out
}

func hostByID(inv *inventory.Inventory, id string) *inventory.Host {
	for i := range inv.Hosts {
		if inv.Hosts[i].ID == id {
			return &inv.Hosts[i]
		}
	}
	panic("no host " + id)
}
