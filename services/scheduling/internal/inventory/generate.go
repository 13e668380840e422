package inventory

import (
	"fmt"
	"math/rand/v2"
)

// GenerateSpec describes a synthetic inventory, for benchmarks and load tests.
type GenerateSpec struct {
	// ZonesPerRegion gives the number of zones of each region (len = regions).
	ZonesPerRegion []int
	// Hosts is the total number of hosts, spread evenly over the zones.
	Hosts int
	// Capacity of every host.
	Capacity Resources
	// Seed makes prices, labels and latencies reproducible.
	Seed uint64
}

// Generate builds a valid inventory: regions "gen-r<i>", zones
// "gen-r<i>-<letter>", hosts "gen-r<i>-<letter>-<n>", intra-region latencies of
// 1-4 ms, inter-region 30-90 ms, a tenth of the hosts labelled disk=nvme and a
// fifth spot-priced.
func Generate(spec GenerateSpec) Inventory {
	rng := rand.New(rand.NewPCG(spec.Seed, 7))
	var inv Inventory
	var zones []string
	for r, nz := range spec.ZonesPerRegion {
		rid := fmt.Sprintf("gen-r%d", r)
		inv.Regions = append(inv.Regions, Region{ID: rid})
		var rz []string
		for z := 0; z < nz; z++ {
			zid := fmt.Sprintf("%s-%c", rid, 'a'+z)
			inv.Zones = append(inv.Zones, Zone{ID: zid, Region: rid})
			for _, other := range rz {
				inv.Latencies = append(inv.Latencies, Latency{A: other, B: zid, P95MS: float64(1 + rng.IntN(4))})
			}
			rz = append(rz, zid)
		}
		zones = append(zones, rz...)
		for o := 0; o < r; o++ {
			inv.Latencies = append(inv.Latencies, Latency{A: fmt.Sprintf("gen-r%d", o), B: rid, P95MS: float64(30 + rng.IntN(60))})
		}
	}
	zoneRegion := map[string]string{}
	for _, z := range inv.Zones {
		zoneRegion[z.ID] = z.Region
	}
	for i := 0; i < spec.Hosts; i++ {
		zid := zones[i%len(zones)]
		n := i / len(zones)
		h := Host{
			ID: fmt.Sprintf("%s-%d", zid, n), Region: zoneRegion[zid], Zone: zid, Address: "127.0.0.1",
			Ports:    PortRange{From: 10000 + (n%500)*100, To: 10000 + (n%500)*100 + 99},
			Capacity: spec.Capacity, State: StateReady,
			Price: Price{PerVCPUHour: 0.02 + rng.Float64()/100, PerGBHour: 0.004 + rng.Float64()/500},
		}
		if rng.IntN(10) == 0 {
			h.Labels = map[string]string{"disk": "nvme"}
		}
		if rng.IntN(5) == 0 {
			h.Price.Spot = true
			h.Price.PerVCPUHour /= 3
			h.Price.PerGBHour /= 3
		}
		inv.Hosts = append(inv.Hosts, h)
	}
	return inv
}
