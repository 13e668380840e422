package placement

import (
	"errors"
	"fmt"
	"sort"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

// ErrOvercommit is returned when applying a decision would exceed a host's capacity.
var ErrOvercommit = errors.New("host would be overcommitted")

// Host is a host as the scheduler sees it: the inventory record plus its
// position in the topology and the ports in use.
type Host struct {
	inventory.Host
	zone   int
	region int
	key    float64 // bottleneck free fraction, the zone index's sort key
	// ports maps a port in use to the node holding it ("instance/node").
	ports map[int]string
}

// FreePorts is the number of ports of the range not in use.
func (h *Host) FreePorts() int { return h.Ports.Size() - len(h.ports) }

// lowestFreePort returns the lowest unused port of the range, or 0.
func (h *Host) lowestFreePort() int {
	for p := h.Ports.From; p <= h.Ports.To; p++ {
		if _, used := h.ports[p]; !used {
			return p
		}
	}
	return 0
}

// zoneIndex keeps a zone's hosts sorted by their bottleneck free fraction
// (the smallest of free/capacity over vCPU, memory, storage and ports), then
// id. Every host that can take a node has a key of at least the node's lower
// bound (see lowerBound), so a lookup starts at the emptiest host (spreading)
// or at the bound (bin-packing) and stops early instead of scanning the zone;
// hosts that are full in any one dimension sink to the bottom.
type zoneIndex struct {
	byFree []*Host
	// capMax is the largest capacity per dimension seen in the zone; it only
	// grows, which keeps lowerBound a valid bound.
	capMax   inventory.Resources
	portsMax int
}

// freeKey is the bottleneck free fraction of a host.
func freeKey(h *Host) float64 {
	k := fracFree(h.Capacity.MilliCPU-h.Allocated.MilliCPU, h.Capacity.MilliCPU)
	k = min(k, fracFree(h.Capacity.MemoryMB-h.Allocated.MemoryMB, h.Capacity.MemoryMB))
	k = min(k, fracFree(h.Capacity.StorageGB-h.Allocated.StorageGB, h.Capacity.StorageGB))
	return min(k, fracFree(int64(h.Ports.Size()-len(h.ports)), int64(h.Ports.Size())))
}

func fracFree(free, capacity int64) float64 {
	if capacity <= 0 || free <= 0 {
		return 0
	}
	return float64(free) / float64(capacity)
}

// lowerBound is a key below which no host of the zone can fit r: a fitting
// host has free_d >= r_d, so free_d/cap_d >= r_d/capMax_d for every dimension d.
func (z *zoneIndex) lowerBound(r inventory.Resources) float64 {
	b := fracFree(r.MilliCPU, z.capMax.MilliCPU)
	b = min(b, fracFree(r.MemoryMB, z.capMax.MemoryMB))
	b = min(b, fracFree(r.StorageGB, z.capMax.StorageGB))
	return min(b, fracFree(1, int64(z.portsMax)))
}

// lessHost reports whether host x sorts before the key (k, id).
func lessHost(x *Host, k float64, id string) bool {
	if x.key != k {
		return x.key < k
	}
	return x.ID < id
}

func (z *zoneIndex) insert(h *Host) {
	h.key = freeKey(h)
	z.capMax.MilliCPU = max(z.capMax.MilliCPU, h.Capacity.MilliCPU)
	z.capMax.MemoryMB = max(z.capMax.MemoryMB, h.Capacity.MemoryMB)
	z.capMax.StorageGB = max(z.capMax.StorageGB, h.Capacity.StorageGB)
	z.portsMax = max(z.portsMax, h.Ports.Size())
	i := sort.Search(len(z.byFree), func(i int) bool { return !lessHost(z.byFree[i], h.key, h.ID) })
	z.byFree = append(z.byFree, nil)
	copy(z.byFree[i+1:], z.byFree[i:])
	z.byFree[i] = h
}

// remove deletes h, found by the key it was inserted with.
func (z *zoneIndex) remove(h *Host) {
	i := sort.Search(len(z.byFree), func(i int) bool { return !lessHost(z.byFree[i], h.key, h.ID) })
	if i < len(z.byFree) && z.byFree[i] == h {
		z.byFree = append(z.byFree[:i], z.byFree[i+1:]...)
		return
	}
	for j, x := range z.byFree { // cannot happen while keys are only set by insert
		if x == h {
			z.byFree = append(z.byFree[:j], z.byFree[j+1:]...)
			return
		}
	}
}

// firstAtLeast returns the position of the first host with key >= b.
func (z *zoneIndex) firstAtLeast(b float64) int {
	return sort.Search(len(z.byFree), func(i int) bool { return z.byFree[i].key >= b })
}

// Cluster is the scheduler's in-memory view of the inventory: the topology and
// every host, indexed by zone and free capacity. It is not safe for concurrent
// use; its owner serialises access.
type Cluster struct {
	topo  *inventory.Topology
	hosts map[string]*Host
	zones []zoneIndex
	// price bounds over all hosts, for the price scorer's normalisation.
	minCPUPrice, maxCPUPrice, minGBPrice, maxGBPrice float64
	labelKeys                                        map[string]int
}

// NewCluster validates inv and builds a cluster from it. Host allocations are
// taken as given (they come from the reservations already made).
func NewCluster(inv inventory.Inventory) (*Cluster, error) {
	inv.Normalize()
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	topo, err := inventory.NewTopology(inv.Regions, inv.Zones, inv.Latencies)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		topo:      topo,
		hosts:     make(map[string]*Host, len(inv.Hosts)),
		zones:     make([]zoneIndex, len(topo.Zones)),
		labelKeys: map[string]int{},
	}
	for _, h := range inv.Hosts {
		if err := c.UpsertHost(h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Topology returns the cluster's regions, zones and latencies.
func (c *Cluster) Topology() *inventory.Topology { return c.topo }

// Len is the number of hosts.
func (c *Cluster) Len() int { return len(c.hosts) }

// Host returns a copy of the host with the given id.
func (c *Cluster) Host(id string) (inventory.Host, bool) {
	h, ok := c.hosts[id]
	if !ok {
		return inventory.Host{}, false
	}
	return h.Host, true
}

// Hosts returns copies of all hosts sorted by id.
func (c *Cluster) Hosts() []inventory.Host {
	out := make([]inventory.Host, 0, len(c.hosts))
	for _, h := range c.hosts {
		out = append(out, h.Host)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// PortsInUse returns the ports in use on a host, sorted.
func (c *Cluster) PortsInUse(id string) []int {
	h, ok := c.hosts[id]
	if !ok {
		return nil
	}
	out := make([]int, 0, len(h.ports))
	for p := range h.ports {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// UpsertHost adds a host or replaces its record (capacity, allocation, labels,
// state, ...), keeping the ports in use. The zone must exist in the topology.
func (c *Cluster) UpsertHost(in inventory.Host) error {
	zi, ok := c.topo.ZoneIndex[in.Zone]
	if !ok {
		return fmt.Errorf("host %s: zone %q: %w", in.ID, in.Zone, inventory.ErrNotFound)
	}
	if in.Region == "" {
		in.Region = c.topo.Zones[zi].Region
	}
	if in.State == "" {
		in.State = inventory.StateReady
	}
	ve := &inventory.ValidationError{}
	inventory.ValidateHost(ve, "host", in)
	if err := ve.Err(); err != nil {
		return err
	}
	if old, exists := c.hosts[in.ID]; exists {
		c.zones[old.zone].remove(old)
		for k := range old.Labels {
			c.labelKeys[k]--
		}
		in.Labels = cloneLabels(in.Labels)
		old.Host = in
		old.zone, old.region = zi, c.topo.ZoneRegion[zi]
		c.zones[zi].insert(old)
		c.updatePriceBounds()
	} else {
		in.Labels = cloneLabels(in.Labels)
		h := &Host{Host: in, zone: zi, region: c.topo.ZoneRegion[zi], ports: map[int]string{}}
		c.hosts[in.ID] = h
		c.zones[zi].insert(h)
		p := in.Price
		if len(c.hosts) == 1 {
			c.minCPUPrice, c.maxCPUPrice, c.minGBPrice, c.maxGBPrice = p.PerVCPUHour, p.PerVCPUHour, p.PerGBHour, p.PerGBHour
		}
		c.minCPUPrice, c.maxCPUPrice = min(c.minCPUPrice, p.PerVCPUHour), max(c.maxCPUPrice, p.PerVCPUHour)
		c.minGBPrice, c.maxGBPrice = min(c.minGBPrice, p.PerGBHour), max(c.maxGBPrice, p.PerGBHour)
	}
	for k := range in.Labels {
		c.labelKeys[k]++
	}
	return nil
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *Cluster) updatePriceBounds() {
	first := true
	for _, h := range c.hosts {
		p := h.Price
		if first {
			c.minCPUPrice, c.maxCPUPrice, c.minGBPrice, c.maxGBPrice = p.PerVCPUHour, p.PerVCPUHour, p.PerGBHour, p.PerGBHour
			first = false
			continue
		}
		c.minCPUPrice, c.maxCPUPrice = min(c.minCPUPrice, p.PerVCPUHour), max(c.maxCPUPrice, p.PerVCPUHour)
		c.minGBPrice, c.maxGBPrice = min(c.minGBPrice, p.PerGBHour), max(c.maxGBPrice, p.PerGBHour)
	}
}

// SetPorts replaces the ports in use on a host (owner "instance/node" each).
func (c *Cluster) SetPorts(hostID string, ports map[int]string) error {
	h, ok := c.hosts[hostID]
	if !ok {
		return fmt.Errorf("host %s: %w", hostID, inventory.ErrNotFound)
	}
	z := &c.zones[h.zone]
	z.remove(h)
	h.ports = make(map[int]string, len(ports))
	for p, o := range ports {
		h.ports[p] = o
	}
	z.insert(h)
	return nil
}

// HasLabelKey reports whether any host carries the label key.
func (c *Cluster) HasLabelKey(k string) bool { return c.labelKeys[k] > 0 }

// Apply books the nodes of a decision on their hosts: allocation and ports.
// Either every node is booked or none is (ErrOvercommit, or a port in use).
func (c *Cluster) Apply(instanceID string, nodes []Assignment) error {
	need := map[string]inventory.Resources{}
	for _, n := range nodes {
		h, ok := c.hosts[n.HostID]
		if !ok {
			return fmt.Errorf("apply %s/%s: host %s: %w", instanceID, n.Name, n.HostID, inventory.ErrNotFound)
		}
		need[n.HostID] = need[n.HostID].Add(n.Resources)
		if n.Port != 0 {
			if owner, used := h.ports[n.Port]; used && owner != instanceID+"/"+n.Name {
				return fmt.Errorf("apply %s/%s: port %d on %s held by %s: %w", instanceID, n.Name, n.Port, n.HostID, owner, ErrOvercommit)
			}
		}
	}
	for id, r := range need {
		h := c.hosts[id]
		if !h.Free().Covers(r) {
			return fmt.Errorf("apply %s: host %s has %s free, needs %s: %w", instanceID, id, h.Free(), r, ErrOvercommit)
		}
	}
	for _, n := range nodes {
		h := c.hosts[n.HostID]
		z := &c.zones[h.zone]
		z.remove(h)
		h.Allocated = h.Allocated.Add(n.Resources)
		if n.Port != 0 {
			h.ports[n.Port] = instanceID + "/" + n.Name
		}
		z.insert(h)
	}
	return nil
}

// Release frees what Apply booked for the given nodes. Releasing more than is
// allocated clamps at zero rather than going negative.
func (c *Cluster) Release(instanceID string, nodes []Assignment) {
	for _, n := range nodes {
		h, ok := c.hosts[n.HostID]
		if !ok {
			continue
		}
		a := h.Allocated.Sub(n.Resources)
		a.MilliCPU, a.MemoryMB, a.StorageGB = max(a.MilliCPU, 0), max(a.MemoryMB, 0), max(a.StorageGB, 0)
		z := &c.zones[h.zone]
		z.remove(h)
		h.Allocated = a
		if n.Port != 0 && h.ports[n.Port] == instanceID+"/"+n.Name {
			delete(h.ports, n.Port)
		}
		z.insert(h)
	}
}
