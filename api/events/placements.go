package events

import "time"

// Placement kinds.
const (
	// KindNew places a new instance.
	KindNew = "new"
	// KindReplace re-places one failed node of an existing instance.
	KindReplace = "replace"
)

// Node roles in placements: replicas in the DR region are "dr-replica".
const (
	PlacementRolePrimary   = "primary"
	PlacementRoleReplica   = "replica"
	PlacementRoleDRReplica = "dr-replica"
)

// NodeRequest is one node of a placement request.
type NodeRequest struct {
	Name      string  `json:"name,omitempty"`
	Role      string  `json:"role"`
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
}

// PlacementRequested asks for a placement (kind "new") or for re-placing a
// failed node of an existing instance (kind "replace", FailedNode set; the
// other fields come from the stored placement).
type PlacementRequested struct {
	InstanceID     string            `json:"instance_id"`
	TenantID       string            `json:"tenant_id,omitempty"`
	RequestID      string            `json:"request_id,omitempty"`
	Kind           string            `json:"kind,omitempty"`
	Engine         string            `json:"engine,omitempty"`
	DeploymentMode string            `json:"deployment_mode,omitempty"`
	Nodes          []NodeRequest     `json:"nodes,omitempty"`
	Region         string            `json:"region,omitempty"`
	DRRegion       string            `json:"dr_region,omitempty"`
	AllowedRegions []string          `json:"allowed_regions,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	FailedNode     string            `json:"failed_node,omitempty"`
}

// PlacedNode is where one node goes.
type PlacedNode struct {
	Name      string  `json:"name"`
	Role      string  `json:"role"`
	Region    string  `json:"region"`
	AZ        string  `json:"az"`
	Host      string  `json:"host"`
	Address   string  `json:"address"`
	Port      int     `json:"port"`
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
	Score     float64 `json:"score"`
}

// PlacementDecided reports capacity reserved for an instance. For kind
// "replace", Nodes holds only the re-placed node and ReplacedNode names it.
type PlacementDecided struct {
	InstanceID     string       `json:"instance_id"`
	TenantID       string       `json:"tenant_id,omitempty"`
	RequestID      string       `json:"request_id,omitempty"`
	Kind           string       `json:"kind"`
	DeploymentMode string       `json:"deployment_mode"`
	Nodes          []PlacedNode `json:"nodes"`
	ReplacedNode   string       `json:"replaced_node,omitempty"`
	ExpiresAt      time.Time    `json:"expires_at"`
}

// FilterResult is how many hosts one scheduling filter rejected, and why.
type FilterResult struct {
	Name     string `json:"name"`
	Rejected int    `json:"rejected"`
	Reason   string `json:"reason"`
}

// PlacementFailed reports a refused or invalid placement request.
type PlacementFailed struct {
	InstanceID string         `json:"instance_id"`
	TenantID   string         `json:"tenant_id,omitempty"`
	RequestID  string         `json:"request_id,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Reason     string         `json:"reason"`
	Filters    []FilterResult `json:"filters,omitempty"`
}

// PlacementReleased reports capacity freed: deleted or failed instance,
// reservation expired unconfirmed, or an operator release.
type PlacementReleased struct {
	InstanceID string   `json:"instance_id"`
	TenantID   string   `json:"tenant_id,omitempty"`
	Reason     string   `json:"reason"`
	Hosts      []string `json:"hosts"`
}

// PlacementConfirmed reports that provisioning confirmed the reservation.
type PlacementConfirmed struct {
	InstanceID string `json:"instance_id"`
	TenantID   string `json:"tenant_id,omitempty"`
}
