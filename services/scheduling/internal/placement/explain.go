package placement

import (
	"fmt"
	"sort"
	"strings"
)

// FilterCount is how many hosts one filter rejected, and why.
type FilterCount struct {
	Name     string `json:"name"`
	Rejected int    `json:"rejected"`
	Reason   string `json:"reason"`
}

// ZoneSummary says how many hosts of a zone could take the node and, if none,
// why not.
type ZoneSummary struct {
	Region   string `json:"region"`
	Zone     string `json:"zone"`
	Hosts    int    `json:"hosts"`
	Feasible int    `json:"feasible"`
	Reason   string `json:"reason"`
}

// Explanation is why a placement was refused: a sentence for humans and the
// same facts as data.
type Explanation struct {
	// Summary is one human sentence, e.g. "no placement for 3 nodes (multi-az):
	// multi-az needs 3 AZs with capacity in region-a, 1 has: az-1 ok, az-2 0/4
	// hosts fit (4 less than 8 GiB memory free), az-3 cordoned".
	Summary string `json:"summary"`
	// Node is the node the host counts are for (the largest new node of the
	// group that could not be placed).
	Node string `json:"node"`
	// Filters lists, in pipeline order, the hosts each filter rejected first.
	Filters []FilterCount `json:"filters"`
	// Zones summarises each zone for that node.
	Zones []ZoneSummary `json:"zones"`
}

type reasonKey struct{ filter, reason string }

type zoneStat struct {
	hosts, feasible int
	reasons         map[reasonKey]int
	order           []reasonKey
}

// explain scans every host for the largest new node of the group that failed,
// attributing each rejection to the first filter that rejects, and phrases the
// topology rule that could not be met.
func (s *Pipeline) explain(cy *Cycle, groups [2][]*node, g0Regions []int) Explanation {
	topo := cy.cluster.topo
	failing := 0
	if len(g0Regions) > 0 {
		failing = 1
	}
	newNodes := orderNew(groups[failing])
	if len(newNodes) == 0 { // only fixed nodes in the failing group: nothing to explain per host
		return Explanation{Summary: "no placement for " + describeNodes(cy.req) + ": the surviving nodes break the spread rules"}
	}
	n := newNodes[0]
	for _, x := range newNodes[1:] {
		if x.Resources.MemoryMB > n.Resources.MemoryMB || (x.Resources.MemoryMB == n.Resources.MemoryMB && x.Resources.MilliCPU > n.Resources.MilliCPU) {
			n = x
		}
	}
	stats := make([]zoneStat, len(topo.Zones))
	type fk struct{ name, reason string }
	counts := map[fk]int{}
	var order []fk
	for _, z := range cy.cluster.zones {
		for _, h := range z.byFree {
			st := &stats[h.zone]
			if st.reasons == nil {
				st.reasons = map[reasonKey]int{}
			}
			st.hosts++
			rejected := false
			for _, f := range s.filters {
				if ok, reason := f.Filter(cy, n, h); !ok {
					k := fk{f.Name(), reason}
					if counts[k] == 0 {
						order = append(order, k)
					}
					counts[k]++
					key := reasonKey{f.Name(), reason}
					if st.reasons[key] == 0 {
						st.order = append(st.order, key)
					}
					st.reasons[key]++
					rejected = true
					break
				}
			}
			if !rejected {
				st.feasible++
			}
		}
	}
	rank := map[string]int{}
	for i, f := range s.filters {
		rank[f.Name()] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return rank[order[i].name] < rank[order[j].name] })
	ex := Explanation{Node: n.Name}
	for _, k := range order {
		ex.Filters = append(ex.Filters, FilterCount{Name: k.name, Rejected: counts[k], Reason: k.reason})
	}
	for zi, st := range stats {
		ex.Zones = append(ex.Zones, ZoneSummary{
			Region: topo.Zones[zi].Region, Zone: topo.Zones[zi].ID,
			Hosts: st.hosts, Feasible: st.feasible, Reason: zonePhrase(st),
		})
	}

	// The topology rule, per candidate region of the failing group.
	notIn := -1
	if failing == 1 {
		notIn = g0Regions[0]
	}
	regions := s.candidateRegions(cy, groups[failing], failing, notIn)
	var parts []string
	spreadRejected, latencyRejected := 0, 0
	var latencyReasons []string
	if len(regions) == 0 {
		switch {
		case failing == 1:
			parts = append(parts, fmt.Sprintf("no region other than %s allowed for the dr-replicas", topo.Regions[notIn].ID))
		case cy.groupRegion[0] >= 0:
			parts = append(parts, fmt.Sprintf("region %s not allowed for tenant", topo.Regions[cy.groupRegion[0]].ID))
		default:
			parts = append(parts, "no allowed region")
		}
	}
	need := len(newNodes)
	for _, r := range regions {
		rid := topo.Regions[r].ID
		var fixedZones []int
		for _, x := range groups[failing] {
			if x.fixed != nil {
				fixedZones = append(fixedZones, x.fixed.zone)
			}
		}
		var zoneParts []string
		okZones, feasibleHosts := []int{}, 0
		for _, z := range topo.RegionZones[r] {
			st := stats[z]
			taken := false
			for _, fz := range fixedZones {
				taken = taken || fz == z
			}
			label := topo.Zones[z].ID
			switch {
			case taken && cy.req.Mode != SingleAZ:
				zoneParts = append(zoneParts, label+" already holds a node of this instance")
				continue
			case st.feasible > 0 && cy.req.Mode == SingleAZ:
				zoneParts = append(zoneParts, fmt.Sprintf("%s %d/%d hosts fit", label, st.feasible, st.hosts))
			case st.feasible > 0:
				zoneParts = append(zoneParts, label+" ok")
			default:
				zoneParts = append(zoneParts, label+" "+zonePhrase(st))
			}
			if st.feasible > 0 {
				okZones = append(okZones, z)
				feasibleHosts += st.feasible
			}
		}
		var sentence string
		group := "the primary group"
		if failing == 1 {
			group = "the dr-replicas"
		}
		switch {
		case cy.req.Mode == SingleAZ:
			sentence = fmt.Sprintf("single-az needs %d hosts in one AZ of %s: %s", need, rid, strings.Join(zoneParts, ", "))
			spreadRejected += feasibleHosts
		case len(topo.RegionZones[r])-len(fixedZones) < need:
			sentence = fmt.Sprintf("%s needs %d AZs for %s in %s, which has %d", cy.req.Mode, need, group, rid, len(topo.RegionZones[r])-len(fixedZones))
			if len(fixedZones) > 0 {
				sentence += " without a node of this instance"
			}
			spreadRejected += feasibleHosts
		case len(okZones) < need:
			sentence = fmt.Sprintf("%s needs %d AZs with capacity in %s, %d %s: %s", cy.req.Mode, need, rid, len(okZones), has(len(okZones)), strings.Join(zoneParts, ", "))
			spreadRejected += feasibleHosts
		default:
			pairs := s.latencyViolations(cy, okZones, fixedZones)
			if len(pairs) > 0 {
				sentence = fmt.Sprintf("%s has %d AZs with capacity but no %d of them within %g ms of the primary: %s", rid, len(okZones), need, cy.cfg.MaxLatencyMS, strings.Join(pairs, ", "))
				latencyRejected += feasibleHosts
				latencyReasons = append(latencyReasons, pairs...)
			} else {
				sentence = fmt.Sprintf("%s has %d AZs with capacity but no combination fits every node: %s", rid, len(okZones), strings.Join(zoneParts, ", "))
				spreadRejected += feasibleHosts
			}
		}
		parts = append(parts, sentence)
	}
	if len(regions) == 0 {
		for _, st := range stats {
			spreadRejected += st.feasible
		}
		ex.Filters = append(ex.Filters, FilterCount{Name: FilterSpread, Rejected: spreadRejected, Reason: parts[0]})
	} else if spreadRejected > 0 || latencyRejected == 0 {
		ex.Filters = append(ex.Filters, FilterCount{Name: FilterSpread, Rejected: spreadRejected, Reason: spreadReason(cy.req.Mode, need)})
	}
	if latencyRejected > 0 {
		ex.Filters = append(ex.Filters, FilterCount{Name: FilterLatency, Rejected: latencyRejected,
			Reason: fmt.Sprintf("P95 latency above %g ms: %s", cy.cfg.MaxLatencyMS, strings.Join(latencyReasons, ", "))})
	}
	ex.Summary = "no placement for " + describeNodes(cy.req) + ": " + strings.Join(parts, "; ")
	return ex
}

func has(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

func spreadReason(m Mode, need int) string {
	switch m {
	case SingleAZ:
		return fmt.Sprintf("needs %d hosts in one AZ", need)
	case MultiRegion:
		return fmt.Sprintf("needs %d AZs of one region per group, dr-replicas in another region", need)
	default:
		return fmt.Sprintf("needs %d AZs with capacity in one region", need)
	}
}

// latencyViolations lists zone pairs among the candidates (and fixed zones)
// whose latency exceeds the bound.
func (s *Pipeline) latencyViolations(cy *Cycle, zones, fixed []int) []string {
	topo := cy.cluster.topo
	all := append(append([]int(nil), zones...), fixed...)
	var out []string
	for i := 0; i < len(all); i++ {
		for j := i + 1; j < len(all); j++ {
			if l := topo.ZoneLatency(all[i], all[j]); l > cy.cfg.MaxLatencyMS {
				out = append(out, fmt.Sprintf("%s <-> %s %g ms", topo.Zones[all[i]].ID, topo.Zones[all[j]].ID, l))
			}
		}
	}
	return out
}

// zonePhrase says why a zone has no feasible host: its state when every host
// is cordoned or down, else "0/N hosts fit (k reason, ...)".
func zonePhrase(st zoneStat) string {
	if st.hosts == 0 {
		return "has no hosts"
	}
	if st.feasible > 0 {
		return "ok"
	}
	states := 0
	for _, key := range st.order {
		if key.filter == (HostReady{}).Name() {
			states += st.reasons[key]
		}
	}
	if states == st.hosts {
		if len(st.order) == 1 {
			return st.order[0].reason
		}
		return "cordoned or down"
	}
	var rs []string
	for _, key := range st.order {
		rs = append(rs, fmt.Sprintf("%d %s", st.reasons[key], key.reason))
	}
	return fmt.Sprintf("0/%d hosts fit (%s)", st.hosts, strings.Join(rs, ", "))
}
