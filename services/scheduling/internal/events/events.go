// Package events names the scheduling service's Kafka topics, CloudEvents
// types and consumer group, and defines their JSON payloads (schemas in
// api/events/scheduling.*.schema.json). It holds contracts only: no Kafka
// client, no business rules.
package events

import (
	"time"
)

// Topics.
const (
	// TopicPlacements carries placement requests (from provisioning) and the
	// scheduler's decisions, failures and releases, keyed by instance id.
	TopicPlacements = "canopy.placements.v1"
	// TopicInventory carries inventory changes, keyed by region, zone or host id.
	TopicInventory = "canopy.inventory.v1"
	// TopicInstances is provisioning's lifecycle topic; the scheduler reads it
	// to confirm reservations (instance ready) and free them (deleted, failed).
	TopicInstances = "canopy.instances.v1"
)

// ConsumerGroup is the scheduler's Kafka consumer group.
const ConsumerGroup = "canopy-scheduling"

// Source is the CloudEvents source of every scheduling event.
const Source = "/canopy/scheduling"

// Event types the scheduler consumes and publishes.
const (
	TypePlacementRequested = "scheduling.placement.requested"
	TypePlacementDecided   = "scheduling.placement.decided"
	TypePlacementFailed    = "scheduling.placement.failed"
	TypePlacementReleased  = "scheduling.placement.released"
	TypePlacementConfirmed = "scheduling.placement.confirmed"

	TypeRegionCreated   = "scheduling.inventory.region.created"
	TypeRegionUpdated   = "scheduling.inventory.region.updated"
	TypeZoneCreated     = "scheduling.inventory.zone.created"
	TypeZoneUpdated     = "scheduling.inventory.zone.updated"
	TypeHostCreated     = "scheduling.inventory.host.created"
	TypeHostUpdated     = "scheduling.inventory.host.updated"
	TypeHostCordoned    = "scheduling.inventory.host.cordoned"
	TypeHostUncordoned  = "scheduling.inventory.host.uncordoned"
	TypeHostDown        = "scheduling.inventory.host.down"
	TypeInventoryLoaded = "scheduling.inventory.loaded"
)

// Provisioning lifecycle types the scheduler reacts to (published by the
// provisioning service on TopicInstances).
const (
	TypeInstanceReady   = "provisioning.instance.ready"
	TypeInstanceDeleted = "provisioning.instance.deleted"
	TypeInstanceFailed  = "provisioning.instance.failed"
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

// FilterResult is how many hosts one filter rejected, and why.
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

// HostChanged reports a host created, updated, cordoned, uncordoned or down.
type HostChanged struct {
	HostID        string            `json:"host_id"`
	Region        string            `json:"region"`
	AZ            string            `json:"az"`
	State         string            `json:"state"`
	PreviousState string            `json:"previous_state,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	// Instances running or reserved on the host, so failover and
	// re-placement can react to a host going down.
	Instances []string `json:"instances,omitempty"`
}

// RegionChanged reports a region created or updated.
type RegionChanged struct {
	RegionID string `json:"region_id"`
	Name     string `json:"name,omitempty"`
}

// ZoneChanged reports a zone created or updated.
type ZoneChanged struct {
	ZoneID   string `json:"zone_id"`
	RegionID string `json:"region_id"`
	Name     string `json:"name,omitempty"`
}

// InventoryLoaded reports the initial inventory loaded from a file.
type InventoryLoaded struct {
	Source  string `json:"source"`
	Regions int    `json:"regions"`
	Zones   int    `json:"zones"`
	Hosts   int    `json:"hosts"`
}
