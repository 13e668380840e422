package nodes

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metricPrefix starts every per-node metric name.
const metricPrefix = "canopy_node_"

// labelNames are the per-node gauges' labels, in order.
var labelNames = []string{"tenant", "instance", "node", "role", "az", "region", "engine"}

// upDesc describes canopy_node_up.
var upDesc = prometheus.NewDesc(metricPrefix+"up",
	"1 when the node's latest sample is fresh and says up, else 0.", labelNames, nil)

// Collector exposes canopy_node_<metric> gauges (labels tenant, instance,
// node, role, az, region, engine) from the latest samples, and
// canopy_node_up (1 when the node's status is up/healthy).
//
// It is an unchecked collector (Describe sends nothing): the metric names
// follow whatever the samples carry. A stale sample (older than
// StaleAfter) exports only canopy_node_up 0.
func (r *Registry) Collector() prometheus.Collector { return collector{r: r} }

type collector struct{ r *Registry }

// Describe sends nothing: the gauges' names come from the samples.
func (collector) Describe(chan<- *prometheus.Desc) {}

// Collect emits the gauges of every listed node.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	now := c.r.now()
	for _, n := range c.r.list(func(*node) bool { return true }) {
		values := []string{n.Tenant, n.Instance, n.Node.Node, n.Role, n.AZ, n.Region, n.Engine}
		fresh := !n.SampledAt.IsZero() && now.Sub(n.SampledAt) <= c.r.staleAfter
		up := 0.0
		if fresh && isUp(n.status) {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, values...)
		if !fresh {
			continue
		}
		c.collectSamples(ch, n.metrics, values)
	}
}

// collectSamples emits one gauge per metric; names that sanitise to one
// already emitted for the node (or to "up") are skipped, since a
// duplicate series would fail the whole scrape.
func (c collector) collectSamples(ch chan<- prometheus.Metric, metrics map[string]int64, values []string) {
	raw := make([]string, 0, len(metrics))
	for k := range metrics {
		raw = append(raw, k)
	}
	slices.Sort(raw)
	seen := map[string]bool{"up": true}
	for _, k := range raw {
		name := SanitizeMetricName(k)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		ch <- prometheus.MustNewConstMetric(c.r.descs.get(name), prometheus.GaugeValue, float64(metrics[k]), values...)
	}
}

// isUp reads the healthcheck status (up, degraded, down, unknown).
func isUp(status string) bool {
	return status == "up" || status == "healthy"
}

// SanitizeMetricName turns a sample's metric name into the suffix of a
// valid Prometheus metric name: lower case, every character other than
// [a-z0-9_] becomes '_'. Empty when nothing is left.
func SanitizeMetricName(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	if strings.Trim(b.String(), "_") == "" {
		return ""
	}
	return b.String()
}

// descCache keeps one Desc per sanitised metric name.
type descCache struct {
	mu sync.Mutex
	m  map[string]*prometheus.Desc
}

func (d *descCache) get(name string) *prometheus.Desc {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]*prometheus.Desc{}
	}
	desc, ok := d.m[name]
	if !ok {
		desc = prometheus.NewDesc(metricPrefix+name,
			"Latest value of the node's "+name+" sample (canopy.health.samples.v1).", labelNames, nil)
		d.m[name] = desc
	}
	return desc
}
