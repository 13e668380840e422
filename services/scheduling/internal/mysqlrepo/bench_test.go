package mysqlrepo_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
	"github.com/canopy-platform/canopy/services/scheduling/internal/scheduler"
)

// BenchmarkPlacePersisted measures placements of 3-node multi-az instances on
// 10,000 generated hosts (3 regions of 3, 4 and 4 zones) including the
// MariaDB transaction that books the hosts, records the reservations and
// writes the outbox event, with 1 and 8 concurrent callers. Reports p50/p99
// latency per placement in µs and placements/s.
//
// The batched-workers-N variants send the same placements from N concurrent
// callers (as N consumers of the placement topic would) through a
// scheduler.Batcher, which decides them one by one and writes each batch of
// pending placements in one transaction (one commit).
func BenchmarkPlacePersisted(b *testing.B) {
	for _, v := range []struct {
		workers int
		batched bool
	}{{1, false}, {8, false}, {6, true}, {8, true}, {16, true}, {32, true}} {
		name := fmt.Sprintf("workers-%d", v.workers)
		if v.batched {
			name = "batched-" + name
		}
		workers, batched := v.workers, v.batched
		b.Run(name, func(b *testing.B) {
			repo, _ := newRepo(b, "bench")
			ctx := context.Background()
			inv := inventory.Generate(inventory.GenerateSpec{
				ZonesPerRegion: []int{3, 4, 4}, Hosts: 10000,
				Capacity: inventory.Resources{MilliCPU: 32000, MemoryMB: 128 * 1024, StorageGB: 2000}, Seed: 1,
			})
			if _, err := repo.Seed(ctx, inv, "bench"); err != nil {
				b.Fatal(err)
			}
			s, err := scheduler.New(scheduler.Config{}, repo, slog.New(slog.DiscardHandler), nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Load(ctx); err != nil {
				b.Fatal(err)
			}
			place := s.Place
			if batched {
				place = scheduler.NewBatcher(s, scheduler.BatcherConfig{}).Place
			}
			sizes := []inventory.Resources{
				{MilliCPU: 1000, MemoryMB: 2048, StorageGB: 20},
				{MilliCPU: 2000, MemoryMB: 8192, StorageGB: 100},
				{MilliCPU: 4000, MemoryMB: 16384, StorageGB: 250},
			}
			regions := []string{"", "gen-r0", "gen-r1", "gen-r2"}
			var next atomic.Int64
			var mu sync.Mutex
			durs := make([]time.Duration, 0, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						res := sizes[i%len(sizes)]
						req := placement.Request{InstanceID: fmt.Sprintf("bench-%d", i), Tenant: "bench", Mode: placement.MultiAZ, Region: regions[i%len(regions)],
							Nodes: []placement.NodeSpec{{Role: "primary", Resources: res}, {Role: "replica", Resources: res}, {Role: "replica", Resources: res}}}
						t0 := time.Now()
						_, err := place(ctx, req)
						d := time.Since(t0)
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						durs = append(durs, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(durs)
			if len(durs) == 0 {
				return
			}
			q := func(p float64) float64 {
				return float64(durs[min(len(durs)-1, int(p*float64(len(durs))))].Nanoseconds()) / 1e3
			}
			b.ReportMetric(q(0.50), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
			b.ReportMetric(float64(len(durs))/elapsed.Seconds(), "placements/s")
		})
	}
}
