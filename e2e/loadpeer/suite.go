package loadpeer

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"
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
	// Rounds is how many times each workload runs on each target (default
	// 1); a leg's figures are the medians over its rounds. On a machine
	// shared with other work, one run can land on a busy second; the median
	// of three does not.
	Rounds int
}

// Run runs each workload on every target in turn, workload-major so the
// legs of one workload run back to back under the same machine load, and
// the order of the legs rotating from round to round so none always goes
// first. It prints a line per run to progress (nil: nowhere) and returns
// one Leg per target, in the order given, with the median of each figure
// over the rounds.
func (s Suite) Run(ctx context.Context, targets []Target, progress io.Writer) ([]Leg, error) {
	if progress == nil {
		progress = io.Discard
	}
	rounds := max(s.Rounds, 1)
	// runs[i][workload] are target i's results of that workload, a round each.
	runs := make([]map[string][]Result, len(targets))
	var order []string // workload names as they first appear
	for i := range runs {
		runs[i] = map[string][]Result{}
	}
	record := func(round, i int, rs ...Result) {
		for _, r := range rs {
			fmt.Fprintf(progress, "  round %d %-8s %-24s %10.0f ops/s  p50 %.3f ms  p99 %.3f ms\n", round+1, targets[i].Name, r.Name, r.OpsPerSec, ms(r.P50), ms(r.P99))
			if !slices.Contains(order, r.Name) {
				order = append(order, r.Name)
			}
			runs[i][r.Name] = append(runs[i][r.Name], r)
		}
	}
	type workload func(t Target) ([]Result, error)
	var workloads []workload
	for _, o := range s.Redis {
		workloads = append(workloads, func(t Target) ([]Result, error) {
			if t.RedisAddr == "" {
				return nil, nil
			}
			return RedisBenchmark(ctx, t.RedisAddr, t.RedisUser, t.RedisPassword, o)
		})
	}
	for _, o := range s.MySQL {
		workloads = append(workloads, func(t Target) ([]Result, error) {
			if t.MySQLDSN == "" {
				return nil, nil
			}
			r, err := MySQLLoad(ctx, t.MySQLDSN, o)
			return []Result{r}, err
		})
	}
	for _, w := range workloads {
		for round := range rounds {
			for k := range targets {
				i := (k + round) % len(targets)
				rs, err := w(targets[i])
				if err != nil {
					return nil, fmt.Errorf("leg %s, round %d: %w", targets[i].Name, round+1, err)
				}
				record(round, i, rs...)
			}
		}
	}
	legs := make([]Leg, len(targets))
	for i, t := range targets {
		legs[i].Name = t.Name
		for _, name := range order {
			if rs := runs[i][name]; len(rs) > 0 {
				legs[i].Results = append(legs[i].Results, medianResult(rs))
			}
		}
	}
	return legs, nil
}

// medianResult is the median of each figure over rs (all of one workload):
// ops/s, p50 and p99 each from the round where it is the median.
func medianResult(rs []Result) Result {
	ops := make([]float64, len(rs))
	p50 := make([]time.Duration, len(rs))
	p99 := make([]time.Duration, len(rs))
	for i, r := range rs {
		ops[i], p50[i], p99[i] = r.OpsPerSec, r.P50, r.P99
	}
	slices.Sort(ops)
	slices.Sort(p50)
	slices.Sort(p99)
	m := len(rs) / 2
	if len(rs)%2 == 0 {
		return Result{Name: rs[0].Name, OpsPerSec: (ops[m-1] + ops[m]) / 2, P50: (p50[m-1] + p50[m]) / 2, P99: (p99[m-1] + p99[m]) / 2}
	}
	return Result{Name: rs[0].Name, OpsPerSec: ops[m], P50: p50[m], P99: p99[m]}
}
