package placement

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

// Mode is how an instance's nodes are spread.
type Mode string

// Deployment modes, as in catalog plans.
const (
	// SingleAZ puts every node in one zone, on different hosts.
	SingleAZ Mode = "single-az"
	// MultiAZ puts each node in a different zone of one region.
	MultiAZ Mode = "multi-az"
	// MultiRegion puts the primary group across zones of one region and the
	// dr-replica nodes in another region.
	MultiRegion Mode = "multi-region"
)

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool { return m == SingleAZ || m == MultiAZ || m == MultiRegion }

// Node roles the scheduler gives meaning to; other roles (e.g. "arbiter") are
// placed like replicas.
const (
	RolePrimary   = "primary"
	RoleReplica   = "replica"
	RoleDRReplica = "dr-replica"
)

// Kind is what a request asks for.
type Kind string

// Request kinds.
const (
	// KindNew places every node of a new instance.
	KindNew Kind = "new"
	// KindReplace re-places failed node(s) of an existing instance, keeping the
	// spread rules with respect to the surviving nodes.
	KindReplace Kind = "replace"
)

// NodeSpec is one node to place.
type NodeSpec struct {
	// Name identifies the node within its instance; defaults to "node-<i>".
	Name      string
	Role      string
	Resources inventory.Resources
}

// Placed is a node of the instance that already runs somewhere and stays.
type Placed struct {
	Name   string
	Role   string
	HostID string
}

// Request asks where the nodes of one instance go.
type Request struct {
	InstanceID string
	Tenant     string
	// RequestID identifies the asking request (for idempotency and tracing).
	RequestID string
	Kind      Kind
	Mode      Mode
	Nodes     []NodeSpec
	// Existing are surviving nodes of the instance (KindReplace): new nodes keep
	// the mode's spread with them and never share their hosts.
	Existing []Placed
	// AvoidHosts are hosts never to use (e.g. the failed node's host).
	AvoidHosts []string
	// Region, when set, is the region the primary group must be placed in.
	Region string
	// DRRegion, when set, is the region for dr-replica nodes (multi-region).
	DRRegion string
	// AllowedRegions restricts every node to these regions (data residency);
	// empty allows all.
	AllowedRegions []string
	// RequiredLabels must all be present, with equal values, on a chosen host.
	RequiredLabels map[string]string
}

// Assignment is where one node goes.
type Assignment struct {
	Name      string              `json:"name"`
	Role      string              `json:"role"`
	Region    string              `json:"region"`
	Zone      string              `json:"zone"`
	HostID    string              `json:"host"`
	Address   string              `json:"address"`
	Port      int                 `json:"port"`
	Resources inventory.Resources `json:"resources"`
	Score     float64             `json:"score"`
}

// Decision is a successful placement.
type Decision struct {
	InstanceID string
	Tenant     string
	Kind       Kind
	Mode       Mode
	Nodes      []Assignment
	Score      float64
}

// ErrNoPlacement is wrapped by *RefusalError.
var ErrNoPlacement = errors.New("no placement")

// RefusalError says why no placement exists; it wraps ErrNoPlacement.
type RefusalError struct {
	Explanation Explanation
}

func (e *RefusalError) Error() string { return e.Explanation.Summary }

// Unwrap makes errors.Is(err, ErrNoPlacement) true.
func (e *RefusalError) Unwrap() error { return ErrNoPlacement }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// node is a prepared node of a request.
type node struct {
	NodeSpec
	index int
	group int // 0 primary group, 1 dr group
	// class groups nodes with identical needs so lookups are shared.
	class int
	// fixed nodes already run on host.
	fixed *Host
	// reasons caches capacity rejection reasons.
	reasons [3]string
}

func (n *node) isPrimary() bool { return n.Role == RolePrimary }

// validate checks the request against the cluster and returns the prepared
// nodes (new ones first, then fixed ones).
func validate(c *Cluster, req *Request) ([]*node, error) {
	ve := &inventory.ValidationError{}
	switch {
	case req.InstanceID == "":
		ve.Add("instance_id", "required")
	case len(req.InstanceID) > 64:
		ve.Add("instance_id", "at most 64 characters")
	}
	if len(req.Tenant) > 64 {
		ve.Add("tenant_id", "at most 64 characters")
	}
	if len(req.RequestID) > 255 {
		ve.Add("request_id", "at most 255 characters")
	}
	if req.Kind == "" {
		req.Kind = KindNew
	}
	if req.Kind != KindNew && req.Kind != KindReplace {
		ve.Add("kind", "must be new or replace")
	}
	if !req.Mode.Valid() {
		ve.Add("deployment_mode", "must be one of single-az, multi-az, multi-region")
	}
	if len(req.Nodes) == 0 {
		ve.Add("nodes", "at least one node is required")
	}
	if len(req.Nodes) > 16 {
		ve.Add("nodes", "at most 16 nodes per instance")
	}
	if req.Kind == KindNew && len(req.Existing) > 0 {
		ve.Add("existing", "only for replace requests")
	}
	names := map[string]bool{}
	var nodes []*node
	primaries, dr := 0, 0
	for i := range req.Nodes {
		n := &req.Nodes[i]
		f := fmt.Sprintf("nodes[%d]", i)
		if n.Name == "" {
			n.Name = fmt.Sprintf("node-%d", i)
		}
		if !nameRE.MatchString(n.Name) {
			ve.Add(f+".name", "must match %s", nameRE)
		}
		if names[n.Name] {
			ve.Add(f+".name", "duplicate node name %q", n.Name)
		}
		names[n.Name] = true
		if n.Role == "" {
			ve.Add(f+".role", "required")
		} else if !nameRE.MatchString(n.Role) {
			ve.Add(f+".role", "must match %s", nameRE)
		}
		if n.Resources.MilliCPU <= 0 {
			ve.Add(f+".vcpu", "must be positive")
		}
		if n.Resources.MemoryMB <= 0 {
			ve.Add(f+".memory_mb", "must be positive")
		}
		if n.Resources.StorageGB <= 0 {
			ve.Add(f+".storage_gb", "must be positive")
		}
		nodes = append(nodes, &node{NodeSpec: *n, index: i})
	}
	for i, p := range req.Existing {
		f := fmt.Sprintf("existing[%d]", i)
		if names[p.Name] || p.Name == "" {
			ve.Add(f+".name", "missing or duplicate node name %q", p.Name)
		}
		names[p.Name] = true
		h, ok := c.hosts[p.HostID]
		if !ok {
			ve.Add(f+".host", "unknown host %q", p.HostID)
			continue
		}
		nodes = append(nodes, &node{NodeSpec: NodeSpec{Name: p.Name, Role: p.Role}, index: len(nodes), fixed: h, class: -1})
	}
	for _, h := range req.AvoidHosts {
		if _, ok := c.hosts[h]; !ok {
			ve.Add("avoid_hosts", "unknown host %q", h)
		}
	}
	for _, n := range nodes {
		switch n.Role {
		case RolePrimary:
			primaries++
		case RoleDRReplica:
			dr++
			if req.Mode == MultiRegion {
				n.group = 1
			}
		}
	}
	if primaries > 1 {
		ve.Add("nodes", "at most one node may have role primary")
	}
	if req.Mode == MultiRegion {
		if dr == 0 {
			ve.Add("nodes", "multi-region needs at least one node with role dr-replica")
		}
		if dr == len(nodes) {
			ve.Add("nodes", "multi-region needs at least one node outside the dr group")
		}
	} else if dr > 0 {
		ve.Add("nodes", "role dr-replica only in multi-region mode")
	}
	checkRegion := func(field, id string) {
		if id != "" {
			if _, ok := c.topo.RegionIndex[id]; !ok {
				ve.Add(field, "unknown region %q", id)
			}
		}
	}
	checkRegion("region", req.Region)
	checkRegion("dr_region", req.DRRegion)
	for i, r := range req.AllowedRegions {
		checkRegion(fmt.Sprintf("allowed_regions[%d]", i), r)
	}
	if req.DRRegion != "" && req.Mode != MultiRegion {
		ve.Add("dr_region", "only in multi-region mode")
	}
	if req.DRRegion != "" && req.DRRegion == req.Region {
		ve.Add("dr_region", "must differ from region")
	}
	for k := range req.RequiredLabels {
		if !c.HasLabelKey(k) {
			ve.Add("labels."+k, "no host has label %q", k)
		}
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	// Classes: new nodes with equal resources and group share host lookups.
	type key struct {
		r inventory.Resources
		g int
	}
	classes := map[key]int{}
	for _, n := range nodes {
		if n.fixed != nil {
			continue
		}
		k := key{n.Resources, n.group}
		id, ok := classes[k]
		if !ok {
			id = len(classes)
			classes[k] = id
		}
		n.class = id
	}
	return nodes, nil
}

func describeNodes(req *Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d node", len(req.Nodes))
	if len(req.Nodes) != 1 {
		b.WriteString("s")
	}
	fmt.Fprintf(&b, " (%s", req.Mode)
	if req.Kind == KindReplace {
		b.WriteString(", replacing")
	}
	b.WriteString(")")
	return b.String()
}
