package loadpeer

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// Leg is one path to the backend and its results, one per workload.
type Leg struct {
	Name    string
	Results []Result
}

// result returns the leg's result for the workload name.
func (l Leg) result(name string) (Result, bool) {
	for _, r := range l.Results {
		if r.Name == name {
			return r, true
		}
	}
	return Result{}, false
}

// Ratio names two legs to compare: Of's throughput over Over's
// (router/haproxy).
type Ratio struct {
	Of, Over string
}

// Comparison is one Ratio on one workload.
type Comparison struct {
	Workload, Of, Over string
	// Throughput is Of's ops/s over Over's.
	Throughput float64
	// AddedP99Of and AddedP99Over are each leg's p99 minus the baseline's
	// (the first leg, the direct one); noise can make them negative.
	AddedP99Of, AddedP99Over time.Duration
}

// metricReporter is what *testing.B adds to testing.TB for Compare.
type metricReporter interface {
	ReportMetric(n float64, unit string)
}

// Compare prints, per workload, each leg's ops/s, p50, p99 and the p99 it
// adds over legs[0] (the baseline: the direct leg), then each ratio's
// throughput ratio and added p99s; it returns the ratios. When tb is a
// *testing.B, each throughput ratio is also reported as a metric
// "<of>/<over>-<workload>" (spaces as dashes). Without ratios, every leg
// is compared with the baseline.
func Compare(tb testing.TB, legs []Leg, ratios ...Ratio) []Comparison {
	tb.Helper()
	cs := compare(os.Stdout, legs, ratios)
	if m, ok := tb.(metricReporter); ok {
		for _, c := range cs {
			m.ReportMetric(c.Throughput, metricUnit(c))
		}
	}
	return cs
}

func metricUnit(c Comparison) string {
	return strings.Join(strings.Fields(c.Of+"/"+c.Over+"-"+c.Workload), "-")
}

func compare(w io.Writer, legs []Leg, ratios []Ratio) []Comparison {
	if len(legs) == 0 {
		return nil
	}
	if len(ratios) == 0 {
		for _, l := range legs[1:] {
			ratios = append(ratios, Ratio{Of: l.Name, Over: legs[0].Name})
		}
	}
	byName := map[string]Leg{}
	for _, l := range legs {
		byName[l.Name] = l
	}
	var workloads []string
	seen := map[string]bool{}
	for _, l := range legs {
		for _, r := range l.Results {
			if !seen[r.Name] {
				seen[r.Name] = true
				workloads = append(workloads, r.Name)
			}
		}
	}
	base := legs[0]
	added := func(l Leg, workload string) (time.Duration, bool) {
		r, ok := l.result(workload)
		b, bok := base.result(workload)
		return r.P99 - b.P99, ok && bok
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\tleg\tops/s\tp50 ms\tp99 ms\t+p99 vs %s ms\t\n", base.Name)
	var cs []Comparison
	for _, wl := range workloads {
		for i, l := range legs {
			name := ""
			if i == 0 {
				name = wl
			}
			r, ok := l.result(wl)
			if !ok {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t\n", name, l.Name)
				continue
			}
			plus := "-"
			if d, ok := added(l, wl); ok && i > 0 {
				plus = fmt.Sprintf("%+.3f", ms(d))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.3f\t%.3f\t%s\t\n", name, l.Name, r.OpsPerSec, ms(r.P50), ms(r.P99), plus)
		}
		for _, ra := range ratios {
			of, okOf := byName[ra.Of].result(wl)
			over, okOver := byName[ra.Over].result(wl)
			if !okOf || !okOver || over.OpsPerSec == 0 {
				continue
			}
			c := Comparison{Workload: wl, Of: ra.Of, Over: ra.Over, Throughput: of.OpsPerSec / over.OpsPerSec}
			c.AddedP99Of, _ = added(byName[ra.Of], wl)
			c.AddedP99Over, _ = added(byName[ra.Over], wl)
			cs = append(cs, c)
			fmt.Fprintf(tw, "\t%s/%s\t%.3f×\t\t\t%+.3f vs %+.3f\t\n", ra.Of, ra.Over, c.Throughput, ms(c.AddedP99Of), ms(c.AddedP99Over))
		}
	}
	_ = tw.Flush()
	return cs
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
