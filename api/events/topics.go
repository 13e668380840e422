package events

// Topics, versioned streams keyed by the aggregate id (see api/topics.md).
const (
	// TopicInstances is provisioning's lifecycle stream, keyed by instance id.
	TopicInstances = "canopy.instances.v1"
	// TopicPlacements carries placement requests to scheduling and its
	// decisions, failures, confirmations and releases, keyed by instance id.
	TopicPlacements = "canopy.placements.v1"
	// TopicInventory carries inventory changes, keyed by region, zone or host id.
	TopicInventory = "canopy.inventory.v1"
	// TopicCatalog carries plan changes, keyed by plan id.
	TopicCatalog = "canopy.catalog.v1"
	// TopicHealth carries node health transitions, keyed by instance id.
	TopicHealth = "canopy.health.v1"
	// TopicSamples carries batched node metric samples, keyed by instance id.
	TopicSamples = "canopy.health.samples.v1"
	// TopicFailover carries recoveries (failover, switchover, drill) and
	// rejoins, keyed by instance id.
	TopicFailover = "canopy.failover.v1"
	// TopicCDC carries the health of CDC streams (lagging, caught up,
	// failed), keyed by stream id, and sync jobs' conflicts,
	// inconsistencies and failures, keyed by job id. The captured rows go
	// to the cdc.<tenant>.<instance>.<db>.<table> data topics instead.
	TopicCDC = "canopy.cdc.v1"
)

// CloudEvents sources (ce_source) of the producing services.
const (
	// SourceCatalog is the source of catalog.* events.
	SourceCatalog = "/canopy/catalog"
	// SourceProvisioning is the source of provisioning.* events and of the
	// placement requests provisioning publishes.
	SourceProvisioning = "/canopy/provisioning"
	// SourceScheduling is the source of scheduling.* events.
	SourceScheduling = "/canopy/scheduling"
	// SourceHealthcheck is the source of health.* events.
	SourceHealthcheck = "/canopy/healthcheck"
	// SourceFailover is the source of failover.* events.
	SourceFailover = "/canopy/failover"
	// SourceCDC is the source of cdc.* events.
	SourceCDC = "/canopy/cdc"
)

// Consumer group names. Their values predate the <service>.<purpose> rule
// and stay as they are: renaming a group loses its committed offsets.
const (
	// GroupProvisioning is provisioning's group on TopicPlacements.
	GroupProvisioning = "canopy-provisioning"
	// GroupScheduling is scheduling's group on TopicPlacements and TopicInstances.
	GroupScheduling = "canopy-scheduling"
	// GroupHealthcheckTargets is the healthcheck replicas' group on
	// TopicInstances; its partition assignment decides which replica probes
	// which instance.
	GroupHealthcheckTargets = "healthcheck.targets"
	// GroupFailoverTargets is the failover replicas' group on TopicInstances;
	// its partition assignment decides which replica watches which instance.
	GroupFailoverTargets = "failover.targets"
	// GroupProvisioningTopology is provisioning's group on TopicFailover: it
	// moves roles and endpoints on failover.completed.
	GroupProvisioningTopology = "provisioning.topology"
)
