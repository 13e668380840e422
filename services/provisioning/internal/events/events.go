// Package events names provisioning's Kafka topics, CloudEvents types and
// consumer group, and defines the JSON payloads it publishes (schemas in
// api/events/provisioning.*.schema.json) and the scheduling payloads it
// exchanges (api/events/scheduling.placement.*.schema.json; copied here as
// contracts, since services never import each other). Contracts only.
package events

import "time"

// Topics.
const (
	// TopicInstances is provisioning's lifecycle stream, keyed by instance id.
	TopicInstances = "canopy.instances.v1"
	// TopicPlacements carries placement requests to scheduling and its
	// decisions back, keyed by instance id.
	TopicPlacements = "canopy.placements.v1"
)

// ConsumerGroup is provisioning's consumer group on TopicPlacements.
const ConsumerGroup = "canopy-provisioning"

// Source is the CloudEvents source of provisioning's events.
const Source = "/canopy/provisioning"

// Lifecycle event types on TopicInstances.
const (
	TypeInstanceRequested = "provisioning.instance.requested"
	TypeInstanceReady     = "provisioning.instance.ready"
	TypeInstanceFailed    = "provisioning.instance.failed"
	TypeInstanceUpdating  = "provisioning.instance.updating"
	TypeInstanceUpdated   = "provisioning.instance.updated"
	TypeInstanceDeleting  = "provisioning.instance.deleting"
	TypeInstanceDeleted   = "provisioning.instance.deleted"
	TypeBindingCreated    = "provisioning.binding.created"
	TypeBindingDeleted    = "provisioning.binding.deleted"
)

// Placement event types on TopicPlacements.
const (
	TypePlacementRequested = "scheduling.placement.requested"
	TypePlacementDecided   = "scheduling.placement.decided"
	TypePlacementFailed    = "scheduling.placement.failed"
)

// Node is a node in a lifecycle event.
type Node struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Region  string `json:"region"`
	AZ      string `json:"az"`
	Host    string `json:"host"`
	Address string `json:"address"`
	State   string `json:"state"`
}

// Endpoints are an instance's client addresses.
type Endpoints struct {
	Primary  string   `json:"primary"`
	Replicas []string `json:"replicas"`
}

// Instance is the payload of every provisioning.instance.* event: the
// instance as it is after the fact.
type Instance struct {
	InstanceID     string    `json:"instance_id"`
	TenantID       string    `json:"tenant_id"`
	Name           string    `json:"name"`
	PlanID         string    `json:"plan_id"`
	Engine         string    `json:"engine"`
	Version        string    `json:"version"`
	DeploymentMode string    `json:"deployment_mode"`
	State          string    `json:"state"`
	OperationID    string    `json:"operation_id,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	VCPU           float64   `json:"vcpu"`
	MemoryMB       int64     `json:"memory_mb"`
	StorageGB      int64     `json:"storage_gb"`
	Nodes          []Node    `json:"nodes"`
	Endpoints      Endpoints `json:"endpoints"`
	OccurredAt     time.Time `json:"occurred_at"`
}

// Binding is the payload of provisioning.binding.* events (never secrets).
type Binding struct {
	BindingID  string    `json:"binding_id"`
	InstanceID string    `json:"instance_id"`
	TenantID   string    `json:"tenant_id"`
	Name       string    `json:"name"`
	Username   string    `json:"username"`
	OccurredAt time.Time `json:"occurred_at"`
}

// PlacementNode is one node of a placement request.
type PlacementNode struct {
	Name      string  `json:"name,omitempty"`
	Role      string  `json:"role"`
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
}

// Scheduling's node roles: replicas in the DR region are "dr-replica".
const (
	PlacementRolePrimary   = "primary"
	PlacementRoleReplica   = "replica"
	PlacementRoleDRReplica = "dr-replica"
)

// PlacementRequested asks scheduling to place a new instance.
type PlacementRequested struct {
	InstanceID     string          `json:"instance_id"`
	TenantID       string          `json:"tenant_id,omitempty"`
	RequestID      string          `json:"request_id,omitempty"`
	Kind           string          `json:"kind,omitempty"`
	Engine         string          `json:"engine,omitempty"`
	DeploymentMode string          `json:"deployment_mode,omitempty"`
	Nodes          []PlacementNode `json:"nodes,omitempty"`
	Region         string          `json:"region,omitempty"`
}

// PlacedNode is where scheduling put one node.
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
}

// PlacementDecided reports capacity reserved for an instance.
type PlacementDecided struct {
	InstanceID     string       `json:"instance_id"`
	TenantID       string       `json:"tenant_id,omitempty"`
	RequestID      string       `json:"request_id,omitempty"`
	Kind           string       `json:"kind"`
	DeploymentMode string       `json:"deployment_mode"`
	Nodes          []PlacedNode `json:"nodes"`
	ExpiresAt      time.Time    `json:"expires_at"`
}

// FilterResult is how many hosts one scheduling filter rejected.
type FilterResult struct {
	Name     string `json:"name"`
	Rejected int    `json:"rejected"`
	Reason   string `json:"reason"`
}

// PlacementFailed reports a refused placement.
type PlacementFailed struct {
	InstanceID string         `json:"instance_id"`
	TenantID   string         `json:"tenant_id,omitempty"`
	RequestID  string         `json:"request_id,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Reason     string         `json:"reason"`
	Filters    []FilterResult `json:"filters,omitempty"`
}

// KindNew is the placement kind of a new instance.
const KindNew = "new"
