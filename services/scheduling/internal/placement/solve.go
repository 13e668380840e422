package placement

import (
	"sort"
)

// choice is where one new node of a group goes.
type choice struct {
	host  *Host
	score float64
}

// groupSolution places the new nodes of one group in one region.
type groupSolution struct {
	region      int
	primaryZone int // -1 when the group has no primary
	choices     map[*node]choice
	score       float64
}

// Decide places the request's nodes on c without changing c. It returns a
// *inventory.ValidationError for bad input and a *RefusalError, with its
// explanation, when no placement satisfies every rule.
func (s *Pipeline) Decide(c *Cluster, req Request) (Decision, error) {
	nodes, err := validate(c, &req)
	if err != nil {
		return Decision{}, err
	}
	cy := s.newCycle(c, &req, nodes)
	var groups [2][]*node
	for _, n := range nodes {
		groups[n.group] = append(groups[n.group], n)
	}
	var best0, best1 *groupSolution
	bestScore := -1.0
	var g0Regions []int // regions where the primary group fits
	for _, r0 := range s.candidateRegions(cy, groups[0], 0, -1) {
		g0 := s.solveGroup(cy, groups[0], r0, -1)
		if g0 == nil {
			continue
		}
		g0Regions = append(g0Regions, r0)
		if len(groups[1]) == 0 {
			if g0.score > bestScore {
				best0, bestScore = g0, g0.score
			}
			continue
		}
		pz := g0.primaryZone
		if pz < 0 {
			pz = cy.cluster.topo.RegionZones[r0][0]
		}
		for _, r1 := range s.candidateRegions(cy, groups[1], 1, r0) {
			g1 := s.solveGroup(cy, groups[1], r1, pz)
			if g1 == nil {
				continue
			}
			if total := g0.score + g1.score; total > bestScore {
				best0, best1, bestScore = g0, g1, total
			}
		}
	}
	if best0 == nil {
		return Decision{}, &RefusalError{Explanation: s.explain(cy, groups, g0Regions)}
	}
	d := Decision{InstanceID: req.InstanceID, Tenant: req.Tenant, Kind: req.Kind, Mode: req.Mode, Score: bestScore}
	for _, n := range nodes {
		if n.fixed != nil {
			continue
		}
		ch, ok := best0.choices[n]
		if !ok && best1 != nil {
			ch = best1.choices[n]
		}
		h := ch.host
		d.Nodes = append(d.Nodes, Assignment{
			Name: n.Name, Role: n.Role, Region: h.Region, Zone: h.Zone, HostID: h.ID,
			Address: h.Address, Port: h.lowestFreePort(), Resources: n.Resources, Score: round3(ch.score),
		})
	}
	d.Score = round3(d.Score)
	return d, nil
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

func (s *Pipeline) newCycle(c *Cluster, req *Request, nodes []*node) *Cycle {
	cy := &Cycle{cluster: c, req: req, cfg: &s.cfg, groupRegion: [2]int{-1, -1}}
	if len(req.AllowedRegions) > 0 {
		cy.allowed = make([]bool, len(c.topo.Regions))
		for _, r := range req.AllowedRegions {
			cy.allowed[c.topo.RegionIndex[r]] = true
		}
		cy.notAllowed = make([]string, len(c.topo.Regions))
		for i, r := range c.topo.Regions {
			cy.notAllowed[i] = "region " + r.ID + " not allowed for tenant"
		}
	}
	if req.Region != "" {
		cy.groupRegion[0] = c.topo.RegionIndex[req.Region]
		cy.notRequested[0] = "not in requested region " + req.Region
	}
	if req.DRRegion != "" {
		cy.groupRegion[1] = c.topo.RegionIndex[req.DRRegion]
		cy.notRequested[1] = "not in requested region " + req.DRRegion
	}
	for _, n := range nodes {
		if n.fixed != nil {
			cy.exclude = append(cy.exclude, n.fixed)
		}
	}
	for _, id := range req.AvoidHosts {
		cy.exclude = append(cy.exclude, c.hosts[id])
	}
	return cy
}

// candidateRegions lists the regions a group may go to: the region of its
// fixed nodes, else the requested one, else every allowed region; never notIn.
func (s *Pipeline) candidateRegions(cy *Cycle, group []*node, g, notIn int) []int {
	for _, n := range group {
		if n.fixed != nil {
			if n.fixed.region == notIn {
				return nil
			}
			return []int{n.fixed.region}
		}
	}
	if r := cy.groupRegion[g]; r >= 0 {
		if r == notIn || (cy.allowed != nil && !cy.allowed[r]) {
			return nil
		}
		return []int{r}
	}
	out := make([]int, 0, len(cy.cluster.topo.Regions))
	for r := range cy.cluster.topo.Regions {
		if r != notIn && (cy.allowed == nil || cy.allowed[r]) {
			out = append(out, r)
		}
	}
	return out
}

// orderNew returns the group's new nodes, primary first, then largest first.
func orderNew(group []*node) []*node {
	var out []*node
	for _, n := range group {
		if n.fixed == nil {
			out = append(out, n)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.isPrimary() != b.isPrimary() {
			return a.isPrimary()
		}
		if a.Resources.MemoryMB != b.Resources.MemoryMB {
			return a.Resources.MemoryMB > b.Resources.MemoryMB
		}
		return a.Resources.MilliCPU > b.Resources.MilliCPU
	})
	return out
}

// solveGroup places a group's new nodes in region r, or returns nil.
// outsidePrimary is the primary's zone when the primary is in another group.
func (s *Pipeline) solveGroup(cy *Cycle, group []*node, r, outsidePrimary int) *groupSolution {
	topo := cy.cluster.topo
	newNodes := orderNew(group)
	var fixedZones []int
	primaryZone := outsidePrimary
	hasPrimary := false
	for _, n := range group {
		if n.isPrimary() {
			hasPrimary = true
		}
		if n.fixed != nil {
			if n.fixed.region != r {
				return nil
			}
			fixedZones = append(fixedZones, n.fixed.zone)
			if n.isPrimary() {
				primaryZone = n.fixed.zone
			}
		}
	}
	if len(newNodes) == 0 {
		return &groupSolution{region: r, primaryZone: primaryZone, choices: map[*node]choice{}}
	}
	if cy.req.Mode == SingleAZ {
		return s.solveSameZone(cy, group, newNodes, r, fixedZones, primaryZone)
	}
	// Distinct zones: every node of the group in its own zone.
	var usable []int
	for _, z := range topo.RegionZones[r] {
		used := false
		for _, fz := range fixedZones {
			used = used || fz == z
		}
		if !used {
			usable = append(usable, z)
		}
	}
	if len(newNodes) > len(usable) {
		return nil
	}
	type memoKey struct{ class, zone int }
	memo := map[memoKey]choice{}
	lookup := func(n *node, z int) choice {
		k := memoKey{n.class, z}
		if ch, ok := memo[k]; ok {
			return ch
		}
		h, sc := s.bestInZone(cy, n, z, nil)
		ch := choice{host: h, score: sc}
		memo[k] = ch
		return ch
	}
	bound := cy.cfg.MaxLatencyMS
	assigned := make([]int, len(newNodes))
	usedZone := make([]bool, len(topo.Zones))
	var best *groupSolution
	var dfs func(i int, hostScore float64)
	dfs = func(i int, hostScore float64) {
		if i == len(newNodes) {
			pz := primaryZone
			for j, n := range newNodes {
				if n.isPrimary() {
					pz = assigned[j]
				}
			}
			total := hostScore
			for j, n := range newNodes {
				total += s.zoneScore(cy, n, assigned[j], pz)
			}
			if best == nil || total > best.score {
				sol := &groupSolution{region: r, primaryZone: pz, score: total, choices: make(map[*node]choice, len(newNodes))}
				for j, n := range newNodes {
					ch := lookup(n, assigned[j])
					ch.score += s.zoneScore(cy, n, assigned[j], pz)
					sol.choices[n] = ch
				}
				best = sol
			}
			return
		}
		n := newNodes[i]
		for _, z := range usable {
			if usedZone[z] {
				continue
			}
			ch := lookup(n, z)
			if ch.host == nil {
				continue
			}
			if !latencyOK(topo, bound, hasPrimary, n, z, newNodes[:i], assigned[:i], group) {
				continue
			}
			usedZone[z] = true
			assigned[i] = z
			dfs(i+1, hostScore+ch.score)
			usedZone[z] = false
		}
	}
	dfs(0, 0)
	return best
}

// latencyOK checks the latency bound between node n in zone z and the nodes
// of its group placed so far (new ones in assigned, fixed ones on their
// hosts): between the primary and each other node, or between every pair when
// the group has no primary. dr-replicas are not bound (asynchronous).
func latencyOK(topo interface{ ZoneLatency(a, b int) float64 }, bound float64, hasPrimary bool, n *node, z int, prev []*node, assigned []int, group []*node) bool {
	if n.group == 1 {
		return true
	}
	check := func(other *node, oz int) bool {
		if hasPrimary && !n.isPrimary() && !other.isPrimary() {
			return true
		}
		return topo.ZoneLatency(z, oz) <= bound
	}
	for j, o := range prev {
		if !check(o, assigned[j]) {
			return false
		}
	}
	for _, o := range group {
		if o.fixed != nil && !check(o, o.fixed.zone) {
			return false
		}
	}
	return true
}

// solveSameZone places every new node of the group in one zone (the fixed
// nodes' zone if any), each on its own host.
func (s *Pipeline) solveSameZone(cy *Cycle, group, newNodes []*node, r int, fixedZones []int, primaryZone int) *groupSolution {
	zones := cy.cluster.topo.RegionZones[r]
	if len(fixedZones) > 0 {
		zones = fixedZones[:1]
	}
	var best *groupSolution
	for _, z := range zones {
		sol := &groupSolution{region: r, primaryZone: primaryZone, choices: make(map[*node]choice, len(newNodes))}
		var chosen []*Host
		ok := true
		for _, n := range newNodes {
			h, sc := s.bestInZone(cy, n, z, chosen)
			if h == nil {
				ok = false
				break
			}
			chosen = append(chosen, h)
			pz := primaryZone
			if pz < 0 {
				pz = z
			}
			sc += s.zoneScore(cy, n, z, pz)
			sol.choices[n] = choice{host: h, score: sc}
			sol.score += sc
		}
		if ok && (best == nil || sol.score > best.score) {
			if sol.primaryZone < 0 {
				sol.primaryZone = z
			}
			best = sol
		}
	}
	return best
}
