package loadpeer

import (
	"context"
	"fmt"
	"io"
)

// Target is one leg's way in: where its Redis and MySQL endpoints are and
// how to log in. An empty RedisAddr or MySQLDSN skips that engine's
// workloads on this leg.
type Target struct {
	Name                     string
	RedisAddr                string
	RedisUser, RedisPassword string
	MySQLDSN                 string
}

// Suite is the set of workloads every target runs.
type Suite struct {
	Redis []RedisOptions
	MySQL []MySQLOptions
}

// Run runs each workload on every target in turn (workload-major, so the
// legs of one workload run back to back under the same machine load),
// prints a line per run to progress (nil: nowhere) and returns one Leg per
// target, in the order given.
func (s Suite) Run(ctx context.Context, targets []Target, progress io.Writer) ([]Leg, error) {
	if progress == nil {
		progress = io.Discard
	}
	legs := make([]Leg, len(targets))
	for i, t := range targets {
		legs[i].Name = t.Name
	}
	report := func(i int, rs ...Result) {
		for _, r := range rs {
			fmt.Fprintf(progress, "  %-8s %-24s %10.0f ops/s  p50 %.3f ms  p99 %.3f ms\n", targets[i].Name, r.Name, r.OpsPerSec, ms(r.P50), ms(r.P99))
		}
		legs[i].Results = append(legs[i].Results, rs...)
	}
	for _, o := range s.Redis {
		for i, t := range targets {
			if t.RedisAddr == "" {
				continue
			}
			rs, err := RedisBenchmark(ctx, t.RedisAddr, t.RedisUser, t.RedisPassword, o)
			if err != nil {
				return legs, fmt.Errorf("leg %s: %w", t.Name, err)
			}
			report(i, rs...)
		}
	}
	for _, o := range s.MySQL {
		for i, t := range targets {
			if t.MySQLDSN == "" {
				continue
			}
			r, err := MySQLLoad(ctx, t.MySQLDSN, o)
			if err != nil {
				return legs, fmt.Errorf("leg %s: %w", t.Name, err)
			}
			report(i, r)
		}
	}
	return legs, nil
}
