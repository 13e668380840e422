package inventory

// Demand is what a set of placements asks of each host: the resources summed
// per host, hosts in the order they were first added. It is the one
// statement of the overcommit guard: a host may take a demand only if it is
// ready and its free resources cover it (Admits), which the repository
// enforces in SQL with the same rule for every host of the demand at once.
type Demand struct {
	hosts []string
	need  map[string]Resources
}

// Add adds r to what the demand asks of host.
func (d *Demand) Add(host string, r Resources) {
	if d.need == nil {
		d.need = make(map[string]Resources)
	}
	cur, ok := d.need[host]
	if !ok {
		d.hosts = append(d.hosts, host)
	}
	d.need[host] = cur.Add(r)
}

// Merge adds everything o asks to d.
func (d *Demand) Merge(o Demand) {
	for _, h := range o.hosts {
		d.Add(h, o.need[h])
	}
}

// Hosts returns the hosts asked for, in first-added order; the caller must
// not modify the slice.
func (d Demand) Hosts() []string { return d.hosts }

// Of returns what the demand asks of host (zero if nothing).
func (d Demand) Of(host string) Resources { return d.need[host] }

// Has reports whether the demand asks anything of host.
func (d Demand) Has(host string) bool {
	_, ok := d.need[host]
	return ok
}

// Len returns the number of hosts asked for.
func (d Demand) Len() int { return len(d.hosts) }

// Admits reports whether a host with the given readiness and free resources
// may take need without being overcommitted.
func Admits(ready bool, free, need Resources) bool {
	return ready && free.Covers(need)
}
