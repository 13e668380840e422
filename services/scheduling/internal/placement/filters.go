package placement

import (
	"fmt"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

// HostReady rejects hosts that are cordoned or down.
type HostReady struct{}

// Name implements Filter.
func (HostReady) Name() string { return "host-ready" }

// Filter implements Filter.
func (HostReady) Filter(_ *Cycle, _ *node, h *Host) (bool, string) {
	if h.State == inventory.StateReady {
		return true, ""
	}
	return false, string(h.State)
}

// AllowedRegions rejects hosts outside the tenant's allowed regions (data residency).
type AllowedRegions struct{}

// Name implements Filter.
func (AllowedRegions) Name() string { return "allowed-regions" }

// Filter implements Filter.
func (AllowedRegions) Filter(cy *Cycle, _ *node, h *Host) (bool, string) {
	if cy.allowed == nil || cy.allowed[h.region] {
		return true, ""
	}
	return false, cy.notAllowed[h.region]
}

// RequestedRegion rejects hosts outside the region requested for the node's
// group (region for the primary group, dr_region for dr-replicas).
type RequestedRegion struct{}

// Name implements Filter.
func (RequestedRegion) Name() string { return "requested-region" }

// Filter implements Filter.
func (RequestedRegion) Filter(cy *Cycle, n *node, h *Host) (bool, string) {
	want := cy.groupRegion[n.group]
	if want < 0 || want == h.region {
		return true, ""
	}
	return false, cy.notRequested[n.group]
}

// RequiredLabels rejects hosts missing one of the required labels.
type RequiredLabels struct{}

// Name implements Filter.
func (RequiredLabels) Name() string { return "required-labels" }

// Filter implements Filter.
func (RequiredLabels) Filter(cy *Cycle, _ *node, h *Host) (bool, string) {
	for k, v := range cy.req.RequiredLabels {
		if got, ok := h.Labels[k]; !ok || got != v {
			return false, "missing label " + k + "=" + v
		}
	}
	return true, ""
}

// AntiAffinity rejects hosts that already run a node of the instance, or that
// the request asks to avoid.
type AntiAffinity struct{}

// Name implements Filter.
func (AntiAffinity) Name() string { return "anti-affinity" }

// Filter implements Filter.
func (AntiAffinity) Filter(cy *Cycle, _ *node, h *Host) (bool, string) {
	if cy.excluded(h) {
		return false, "already runs a node of this instance or is to be avoided"
	}
	return true, ""
}

// Capacity rejects hosts without enough free vCPU, memory, storage or ports.
type Capacity struct{}

// Name implements Filter.
func (Capacity) Name() string { return "capacity" }

// Filter implements Filter.
func (Capacity) Filter(_ *Cycle, n *node, h *Host) (bool, string) {
	r := n.Resources
	switch {
	case h.Capacity.MemoryMB-h.Allocated.MemoryMB < r.MemoryMB:
		return false, n.reason(0)
	case h.Capacity.MilliCPU-h.Allocated.MilliCPU < r.MilliCPU:
		return false, n.reason(1)
	case h.Capacity.StorageGB-h.Allocated.StorageGB < r.StorageGB:
		return false, n.reason(2)
	case h.Ports.Size()-len(h.ports) < 1:
		return false, "no free port"
	}
	return true, ""
}

// reason returns the capacity rejection reason for dimension d (memory, vCPU,
// storage), built once per node.
func (n *node) reason(d int) string {
	if n.reasons[d] == "" {
		r := n.Resources
		n.reasons = [3]string{
			"less than " + inventory.FormatMemory(r.MemoryMB) + " memory free",
			"less than " + inventory.FormatCPU(r.MilliCPU) + " vCPU free",
			fmt.Sprintf("less than %d GiB storage free", r.StorageGB),
		}
	}
	return n.reasons[d]
}

// Utilisation scores hosts by their use after placing the node: balanced
// prefers the least and most evenly used hosts, binpack the fullest that fit.
type Utilisation struct {
	Strategy Strategy
}

// Name implements Scorer.
func (u Utilisation) Name() string { return "utilisation-" + string(u.Strategy) }

// Score implements Scorer.
func (u Utilisation) Score(_ *Cycle, n *node, h *Host) float64 {
	cpu := frac(h.Allocated.MilliCPU+n.Resources.MilliCPU, h.Capacity.MilliCPU)
	mem := frac(h.Allocated.MemoryMB+n.Resources.MemoryMB, h.Capacity.MemoryMB)
	sto := frac(h.Allocated.StorageGB+n.Resources.StorageGB, h.Capacity.StorageGB)
	mean := (cpu + mem + sto) / 3
	spread := max(cpu, mem, sto) - min(cpu, mem, sto)
	if u.Strategy == BinPack {
		return 0.8*mean + 0.2*(1-spread)
	}
	return 0.5*(1-mean) + 0.5*(1-spread)
}

func frac(a, b int64) float64 {
	if b <= 0 {
		return 1
	}
	f := float64(a) / float64(b)
	return min(max(f, 0), 1)
}

// Price scores hosts by what the node would cost per hour on them, relative to
// the cheapest and dearest prices in the inventory.
type Price struct{}

// Name implements Scorer.
func (Price) Name() string { return "price" }

// Score implements Scorer.
func (Price) Score(cy *Cycle, n *node, h *Host) float64 {
	c := cy.cluster
	vcpu := float64(n.Resources.MilliCPU) / 1000
	gb := float64(n.Resources.MemoryMB) / 1024
	lo := vcpu*c.minCPUPrice + gb*c.minGBPrice
	hi := vcpu*c.maxCPUPrice + gb*c.maxGBPrice
	if hi <= lo {
		return 1
	}
	cost := vcpu*h.Price.PerVCPUHour + gb*h.Price.PerGBHour
	return min(max((hi-cost)/(hi-lo), 0), 1)
}

// LatencyToPrimary scores a zone by its latency to the primary's zone: within
// the primary group relative to the latency bound, for dr-replicas relative to
// the largest inter-region latency.
type LatencyToPrimary struct{}

// Name implements ZoneScorer.
func (LatencyToPrimary) Name() string { return "latency-to-primary" }

// ScoreZone implements ZoneScorer.
func (LatencyToPrimary) ScoreZone(cy *Cycle, n *node, zone, primaryZone int) float64 {
	if primaryZone < 0 || n.isPrimary() {
		return 1
	}
	t := cy.cluster.topo
	lat := t.ZoneLatency(zone, primaryZone)
	bound := cy.cfg.MaxLatencyMS
	if n.group == 1 {
		bound = t.MaxRegionLatency()
	}
	if bound <= 0 {
		return 1
	}
	return min(max(1-lat/bound, 0), 1)
}
