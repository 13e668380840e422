package local

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver/drivertest"
)

// BenchmarkReplicatedReady measures the time from nothing to a ready
// three-node instance (primary + 2 replicas replicating; semi-sync for
// MySQL) through the driver, and to a verified one (a write read back on
// every node). Phases are reported as metrics:
//
//	create-ms    slowest Create (data dir, config, accounts)
//	start-ms     slowest Start after its Create (until the server answers)
//	configure-ms ConfigurePrimary + the replicas' ConfigureReplica (until replicating)
//	ready-ms     the whole, nodes created and started concurrently
//	verified-ms  ready plus a replicated write
//
// The iteration log shows the spread. Redis 7.0's diskless sync may hold a
// fresh replica's stream until the replica's next periodic ACK (up to 1 s);
// ConfigureReplica asks for that ACK at once, so verified-ms should stay
// within a few ms of ready-ms.
//
// MySQL runs three ways: a warm template (the steady state: the template of
// the version exists), a cold template (the first instance on a fresh data
// root pays one mariadb-install-db) and mariadb-install-db for every node.
func BenchmarkReplicatedReady(b *testing.B) {
	requireBinaries(b)
	cases := []struct {
		name      string
		engine    driver.Engine
		cfg       Config
		freshRoot bool // a new data root per iteration: the template is made again
		settings  map[string]string
	}{
		{name: "mysql-template-warm", engine: driver.EngineMySQL},
		{name: "mysql-template-cold", engine: driver.EngineMySQL, freshRoot: true},
		{name: "mysql-install-db-per-node", engine: driver.EngineMySQL, cfg: Config{NoTemplate: true}},
		{name: "redis", engine: driver.EngineRedis},
		// Disk-based full sync: no diskless ACK race, ~100 ms per attach.
		{name: "redis-disk-sync", engine: driver.EngineRedis, settings: map[string]string{"repl-diskless-sync": "no"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			d, err := New(tc.cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			root := dataRoot(b)
			if !tc.freshRoot && tc.engine == driver.EngineMySQL && !tc.cfg.NoTemplate {
				// Warm the template outside the measurement.
				readyOnce(b, d, root, tc.engine, tc.settings, 0)
			}
			var sum phases
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				r := root
				if tc.freshRoot {
					b.StopTimer()
					r = dataRoot(b)
					b.StartTimer()
				}
				p := readyOnce(b, d, r, tc.engine, tc.settings, i+1)
				sum.add(p)
			}
			n := float64(b.N)
			b.ReportMetric(ms(sum.create)/n, "create-ms")
			b.ReportMetric(ms(sum.start)/n, "start-ms")
			b.ReportMetric(ms(sum.configure)/n, "configure-ms")
			b.ReportMetric(ms(sum.ready)/n, "ready-ms")
			b.ReportMetric(ms(sum.verified)/n, "verified-ms")
			b.Logf("%s: 3 nodes ready in %.0f ms (create %.0f, start %.0f, configure %.0f), verified in %.0f ms; mean of %d",
				tc.name, ms(sum.ready)/n, ms(sum.create)/n, ms(sum.start)/n, ms(sum.configure)/n, ms(sum.verified)/n, b.N)
		})
	}
}

type phases struct{ create, start, configure, ready, verified time.Duration }

func (p *phases) add(q phases) {
	p.create += q.create
	p.start += q.start
	p.configure += q.configure
	p.ready += q.ready
	p.verified += q.verified
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// readyOnce brings up one three-node instance, measures it and destroys it
// outside the measurement.
func readyOnce(b *testing.B, d *Driver, root string, engine driver.Engine, settings map[string]string, i int) phases {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	specs := drivertest.Specs(fmt.Sprintf("b%c%d", engine[0], i), engine, "", root, func() int { return freePort(b) })
	for i := range specs {
		specs[i].Settings = settings
	}
	var p phases
	began := time.Now()
	nodes := make([]driver.Node, len(specs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i := range specs {
		wg.Go(func() {
			t0 := time.Now()
			if _, err := d.Create(ctx, specs[i]); err != nil {
				errs[i] = err
				return
			}
			t1 := time.Now()
			nodes[i], errs[i] = d.Start(ctx, specs[i].NodeID)
			t2 := time.Now()
			mu.Lock()
			p.create = max(p.create, t1.Sub(t0))
			p.start = max(p.start, t2.Sub(t1))
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	t3 := time.Now()
	if err := d.ConfigurePrimary(ctx, specs[0].NodeID, driver.PrimaryOpts{SemiSync: specs[0].SemiSync}); err != nil {
		b.Fatal(err)
	}
	primary, _ := driver.EndpointOf(nodes[0])
	for i := 1; i < len(specs); i++ {
		wg.Go(func() {
			errs[i] = d.ConfigureReplica(ctx, specs[i].NodeID, driver.ReplicaOpts{Primary: primary, SemiSync: specs[i].SemiSync})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	p.configure = now.Sub(t3)
	p.ready = now.Sub(began)
	if err := drivertest.VerifyReplication(ctx, nodes, specs); err != nil {
		b.Fatal(err)
	}
	p.verified = time.Since(began)
	b.Logf("iteration %d: ready %s verified %s", i, p.ready, p.verified)

	b.StopTimer()
	for _, s := range specs {
		if err := d.Destroy(ctx, s.NodeID); err != nil {
			b.Fatal(err)
		}
	}
	b.StartTimer()
	return p
}
