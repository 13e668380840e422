package events

import "strings"

// Catalog event types on TopicCatalog (payload PlanEvent).
const (
	TypePlanCreated    = "catalog.plan.created"
	TypePlanUpdated    = "catalog.plan.updated"
	TypePlanDeprecated = "catalog.plan.deprecated"
)

// Provisioning lifecycle event types on TopicInstances (payload Instance or
// Binding).
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

// instancePrefix starts every provisioning.instance.* type.
const instancePrefix = "provisioning.instance."

// IsInstanceEvent reports whether typ is a provisioning.instance.* type, so
// a consumer also sees lifecycle types added later within v1.
func IsInstanceEvent(typ string) bool {
	return len(typ) > len(instancePrefix) && strings.HasPrefix(typ, instancePrefix)
}

// Placement event types on TopicPlacements.
const (
	TypePlacementRequested = "scheduling.placement.requested"
	TypePlacementDecided   = "scheduling.placement.decided"
	TypePlacementFailed    = "scheduling.placement.failed"
	TypePlacementReleased  = "scheduling.placement.released"
	TypePlacementConfirmed = "scheduling.placement.confirmed"
)

// Inventory event types on TopicInventory (platform events, no tenant).
const (
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

// Health event types: transitions on TopicHealth, samples on TopicSamples.
const (
	TypeNodeUp       = "health.node.up"
	TypeNodeDown     = "health.node.down"
	TypeNodeDegraded = "health.node.degraded"
	TypeNodeSampled  = "health.node.sampled"
)
