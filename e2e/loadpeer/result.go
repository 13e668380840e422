package loadpeer

import (
	"slices"
	"time"
)

// Result is one workload's figures on one leg.
type Result struct {
	// Name identifies the workload ("redis SET P1", "mysql point_select
	// c50"); legs are compared by it.
	Name      string
	OpsPerSec float64
	P50, P99  time.Duration
}

// percentile returns the nearest-rank q-quantile (0 < q ≤ 1) of sorted
// latencies: the smallest value at least q of the samples are at or below.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// summarize sorts lat in place and returns its p50 and p99.
func summarize(lat []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(lat)
	return percentile(lat, 0.50), percentile(lat, 0.99)
}
