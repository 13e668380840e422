package nodes

// TargetGroup is Prometheus HTTP SD's element.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// metaPrefix names Canopy's discovery meta labels, which Prometheus keeps
// for relabelling and drops afterwards.
const metaPrefix = "__meta_canopy_"

// Targets lists every live node as an HTTP SD group (target: the node's
// address; labels __meta_canopy_* and tenant, instance, node, role, az,
// region, engine). tenant "" and all: every node; else the tenant's.
// Nodes without an address (known only from samples) cannot be scraped
// and are left out. Empty plain labels are omitted, as Prometheus drops
// them anyway; meta labels are always present.
func (r *Registry) Targets(tenant string, all bool) []TargetGroup {
	nodes := r.list(func(n *node) bool { return n.Address != "" && (all || n.Tenant == tenant) })
	out := make([]TargetGroup, 0, len(nodes))
	for _, n := range nodes {
		labels := make(map[string]string, 16)
		for name, v := range n.labels() {
			labels[metaPrefix+name] = v
			if v != "" {
				labels[name] = v
			}
		}
		labels[metaPrefix+"address"] = n.Address
		out = append(out, TargetGroup{Targets: []string{n.Address}, Labels: labels})
	}
	return out
}

// labels are the node's identifying labels by name.
func (n Node) labels() map[string]string {
	return map[string]string{
		"tenant": n.Tenant, "instance": n.Instance, "node": n.Node,
		"role": n.Role, "az": n.AZ, "region": n.Region, "engine": n.Engine,
	}
}
