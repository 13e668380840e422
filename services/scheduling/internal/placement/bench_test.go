package placement

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

// benchInventory is 10,000 hosts in 3 regions of 3, 4 and 4 zones.
func benchInventory() inventory.Inventory {
	return inventory.Generate(inventory.GenerateSpec{
		ZonesPerRegion: []int{3, 4, 4},
		Hosts:          10000,
		Capacity:       inventory.Resources{MilliCPU: 32000, MemoryMB: 128 * 1024, StorageGB: 2000},
		Seed:           1,
	})
}

// BenchmarkDecideMultiAZ measures decisions for 3-node multi-az instances with
// anti-affinity on 10,000 hosts, each decision booked in memory; instances are
// released in FIFO order beyond 30,000 live ones so hosts stay partly full.
// Reports p50/p99 decision latency in µs and decisions/s.
func BenchmarkDecideMultiAZ(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"balanced", Config{Strategy: Balanced}},
		{"binpack", Config{Strategy: BinPack}},
		{"balanced-score-all-hosts", Config{Strategy: Balanced, HostsToScore: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := mustCluster(b, benchInventory())
			s := mustScheduler(b, bc.cfg)
			sizes := []inventory.Resources{
				{MilliCPU: 1000, MemoryMB: 2048, StorageGB: 20},
				{MilliCPU: 2000, MemoryMB: 8192, StorageGB: 100},
				{MilliCPU: 4000, MemoryMB: 16384, StorageGB: 250},
			}
			regions := []string{"", "gen-r0", "gen-r1", "gen-r2"}
			type live struct {
				id    string
				nodes []Assignment
			}
			var ring []live
			durs := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				req := Request{
					InstanceID: fmt.Sprintf("inst-%d", i), Mode: MultiAZ, Region: regions[i%len(regions)],
					Nodes: nodes(sizes[i%len(sizes)], RolePrimary, RoleReplica, RoleReplica),
				}
				t0 := time.Now()
				d, err := s.Decide(c, req)
				if err == nil {
					err = c.Apply(d.InstanceID, d.Nodes)
				}
				durs = append(durs, time.Since(t0))
				if err != nil {
					b.Fatalf("decision %d: %v", i, err)
				}
				ring = append(ring, live{d.InstanceID, d.Nodes})
				if len(ring) > 30000 {
					c.Release(ring[0].id, ring[0].nodes)
					ring = ring[1:]
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			reportLatencies(b, durs, elapsed)
		})
	}
}

// BenchmarkRefusalExplanation measures a refused multi-az placement, which
// scans every host to explain itself.
func BenchmarkRefusalExplanation(b *testing.B) {
	inv := benchInventory()
	for i := range inv.Hosts {
		if inv.Hosts[i].Zone == "gen-r0-c" {
			inv.Hosts[i].State = inventory.StateCordoned
		}
	}
	c := mustCluster(b, inv)
	s := mustScheduler(b, Config{})
	req := Request{InstanceID: "x", Mode: MultiAZ, Region: "gen-r0", Nodes: nodes(big, RolePrimary, RoleReplica, RoleReplica)}
	durs := make([]time.Duration, 0, b.N)
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := s.Decide(c, req); err == nil {
			b.Fatal("expected a refusal")
		}
		durs = append(durs, time.Since(t0))
	}
	reportLatencies(b, durs, time.Since(start))
}

func reportLatencies(b *testing.B, durs []time.Duration, elapsed time.Duration) {
	if len(durs) == 0 {
		return
	}
	slices.Sort(durs)
	q := func(p float64) float64 {
		return float64(durs[min(len(durs)-1, int(p*float64(len(durs))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(durs))/elapsed.Seconds(), "decisions/s")
}
