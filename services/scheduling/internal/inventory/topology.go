package inventory

import (
	"fmt"
	"sort"
)

// Topology is the fixed shape of an inventory: regions, their zones and the
// complete latency matrix between them, with zones numbered for fast lookup.
type Topology struct {
	Regions []Region
	Zones   []Zone
	// ZoneIndex maps a zone id to its position in Zones.
	ZoneIndex map[string]int
	// RegionIndex maps a region id to its position in Regions.
	RegionIndex map[string]int
	// RegionZones lists the zone positions of each region, in id order.
	RegionZones [][]int
	// ZoneRegion is the region position of each zone.
	ZoneRegion []int
	latency    [][]float64 // zone × zone P95 ms
	regionLat  [][]float64 // region × region P95 ms
	maxRegion  float64
}

// NewTopology builds a topology and checks that the latency matrix is complete:
// every pair of zones in one region and every pair of regions must be given (in
// either order), values must be non-negative, and a pair naming a zone and a
// region, or two zones of different regions, is rejected.
func NewTopology(regions []Region, zones []Zone, latencies []Latency) (*Topology, error) {
	t := &Topology{
		Regions:     append([]Region(nil), regions...),
		Zones:       append([]Zone(nil), zones...),
		ZoneIndex:   make(map[string]int, len(zones)),
		RegionIndex: make(map[string]int, len(regions)),
	}
	sort.Slice(t.Regions, func(i, j int) bool { return t.Regions[i].ID < t.Regions[j].ID })
	sort.Slice(t.Zones, func(i, j int) bool { return t.Zones[i].ID < t.Zones[j].ID })
	for i, r := range t.Regions {
		t.RegionIndex[r.ID] = i
	}
	t.RegionZones = make([][]int, len(t.Regions))
	t.ZoneRegion = make([]int, len(t.Zones))
	ve := &ValidationError{}
	for i, z := range t.Zones {
		t.ZoneIndex[z.ID] = i
		ri, ok := t.RegionIndex[z.Region]
		if !ok {
			ve.Add("zones."+z.ID+".region", "unknown region %q", z.Region)
			continue
		}
		t.ZoneRegion[i] = ri
		t.RegionZones[ri] = append(t.RegionZones[ri], i)
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	nz, nr := len(t.Zones), len(t.Regions)
	t.latency = make([][]float64, nz)
	for i := range t.latency {
		t.latency[i] = make([]float64, nz)
		for j := range t.latency[i] {
			if i != j {
				t.latency[i][j] = -1
			}
		}
	}
	t.regionLat = make([][]float64, nr)
	for i := range t.regionLat {
		t.regionLat[i] = make([]float64, nr)
		for j := range t.regionLat[i] {
			if i != j {
				t.regionLat[i][j] = -1
			}
		}
	}
	for i, l := range latencies {
		f := fmt.Sprintf("latencies[%d]", i)
		if l.P95MS < 0 {
			ve.Add(f+".p95_ms", "must not be negative")
			continue
		}
		if l.A == l.B {
			ve.Add(f, "a and b are the same (%q)", l.A)
			continue
		}
		za, aZone := t.ZoneIndex[l.A]
		zb, bZone := t.ZoneIndex[l.B]
		ra, aRegion := t.RegionIndex[l.A]
		rb, bRegion := t.RegionIndex[l.B]
		switch {
		case aZone && bZone:
			if t.ZoneRegion[za] != t.ZoneRegion[zb] {
				ve.Add(f, "zones %q and %q are in different regions; give the latency between their regions", l.A, l.B)
				continue
			}
			t.latency[za][zb], t.latency[zb][za] = l.P95MS, l.P95MS
		case aRegion && bRegion:
			t.regionLat[ra][rb], t.regionLat[rb][ra] = l.P95MS, l.P95MS
		default:
			ve.Add(f, "%q and %q must both be zones of one region or both be regions", l.A, l.B)
		}
	}
	for _, zs := range t.RegionZones {
		for x := 0; x < len(zs); x++ {
			for y := x + 1; y < len(zs); y++ {
				if t.latency[zs[x]][zs[y]] < 0 {
					ve.Add("latencies", "missing pair %s <-> %s", t.Zones[zs[x]].ID, t.Zones[zs[y]].ID)
				}
			}
		}
	}
	for a := 0; a < nr; a++ {
		for b := a + 1; b < nr; b++ {
			if t.regionLat[a][b] < 0 {
				ve.Add("latencies", "missing pair %s <-> %s", t.Regions[a].ID, t.Regions[b].ID)
			}
			t.maxRegion = max(t.maxRegion, t.regionLat[a][b])
		}
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	// Zones of different regions are as far apart as their regions.
	for a := 0; a < nz; a++ {
		for b := 0; b < nz; b++ {
			ra, rb := t.ZoneRegion[a], t.ZoneRegion[b]
			if ra != rb {
				t.latency[a][b] = t.regionLat[ra][rb]
			}
		}
	}
	return t, nil
}

// ZoneLatency is the P95 latency in ms between two zones by position.
func (t *Topology) ZoneLatency(a, b int) float64 { return t.latency[a][b] }

// RegionLatency is the P95 latency in ms between two regions by position.
func (t *Topology) RegionLatency(a, b int) float64 { return t.regionLat[a][b] }

// MaxRegionLatency is the largest latency between two regions.
func (t *Topology) MaxRegionLatency() float64 { return t.maxRegion }

// Latencies renders the matrix back as pairs (zone pairs within regions, then
// region pairs), sorted.
func (t *Topology) Latencies() []Latency {
	var out []Latency
	for _, zs := range t.RegionZones {
		for x := 0; x < len(zs); x++ {
			for y := x + 1; y < len(zs); y++ {
				out = append(out, Latency{A: t.Zones[zs[x]].ID, B: t.Zones[zs[y]].ID, P95MS: t.latency[zs[x]][zs[y]]})
			}
		}
	}
	for a := range t.Regions {
		for b := a + 1; b < len(t.Regions); b++ {
			out = append(out, Latency{A: t.Regions[a].ID, B: t.Regions[b].ID, P95MS: t.regionLat[a][b]})
		}
	}
	return out
}
