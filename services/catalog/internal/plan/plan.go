// Package plan is the catalog's domain: engines and their versions, the plans
// tenants order (topology, resources, replication, SLO, prices, parameter
// schema, maintenance info) and the rules a plan must satisfy. It is plain Go:
// no HTTP, SQL or Kafka; adapters translate to and from these types.
package plan

import (
	"encoding/json"
	"time"
)

// DeploymentMode says how a plan's nodes are spread.
type DeploymentMode string

// The deployment modes.
const (
	// SingleAZ places every node in one availability zone.
	SingleAZ DeploymentMode = "single-az"
	// MultiAZ spreads the nodes over availability zones of one region.
	MultiAZ DeploymentMode = "multi-az"
	// MultiRegion keeps the primary region and a disaster-recovery region.
	MultiRegion DeploymentMode = "multi-region"
)

// ReplicationMode says how replicas follow the primary.
type ReplicationMode string

// The replication modes.
const (
	// Async replicas acknowledge nothing; a failover may lose the last writes.
	Async ReplicationMode = "async"
	// SemiSync commits wait for one replica to receive the change (MySQL only).
	SemiSync ReplicationMode = "semi-sync"
)

// NodeRole is what a node does in an instance.
type NodeRole string

// The node roles.
const (
	// RolePrimary takes writes; every plan has exactly one.
	RolePrimary NodeRole = "primary"
	// RoleReplica follows the primary and may be promoted.
	RoleReplica NodeRole = "replica"
)

// RegionRole says in which region of a multi-region plan a node lives.
type RegionRole string

// The region roles.
const (
	// RegionPrimary is the region that holds the primary.
	RegionPrimary RegionRole = "primary"
	// RegionDR is the disaster-recovery region.
	RegionDR RegionRole = "dr"
)

// State is a plan's lifecycle state.
type State string

// The plan states.
const (
	// Active plans can be ordered.
	Active State = "active"
	// Deprecated plans stay readable (existing instances keep them) but cannot be ordered.
	Deprecated State = "deprecated"
)

// NodeGroup is a number of nodes sharing a role and a region role.
type NodeGroup struct {
	Role       NodeRole   `json:"role"`
	RegionRole RegionRole `json:"region_role"`
	Count      int        `json:"count"`
}

// Nodes is a plan's topology: how many nodes, in which roles, over how many
// availability zones of the primary region.
type Nodes struct {
	// Count is the total number of nodes; it equals the sum of Groups.
	Count int `json:"count"`
	// Zones is the number of distinct availability zones the primary
	// region's nodes are spread over.
	Zones int `json:"zones"`
	// Groups lists the nodes by role and region role.
	Groups []NodeGroup `json:"groups"`
}

// Resources are what one node gets.
type Resources struct {
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int     `json:"memory_mb"`
	StorageGB int     `json:"storage_gb"`
}

// SLO is the service level a plan promises.
type SLO struct {
	// Availability in percent, e.g. 99.95.
	Availability float64 `json:"availability"`
	// RTOSeconds is the recovery time objective.
	RTOSeconds int `json:"rto_seconds"`
	// RPOSeconds is the recovery point objective (0 = no committed write lost).
	RPOSeconds int `json:"rpo_seconds"`
}

// Prices are what one unit of each meter costs, as decimal strings so no
// rounding creeps in between the catalog and metering.
type Prices struct {
	// Currency is an ISO 4217 code, e.g. "USD".
	Currency string `json:"currency"`
	// NodeHour is the price of one node-hour of this plan's size.
	NodeHour string `json:"node_hour"`
	// StorageGBHour is the price of one GB of provisioned storage for an hour.
	StorageGBHour string `json:"storage_gb_hour"`
}

// MaintenanceInfo is the OSB maintenance_info of a plan.
type MaintenanceInfo struct {
	// Version is a semantic version 2.0 string.
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

// Spec is what a platform admin chooses for a plan: everything but its
// identity, state and timestamps.
type Spec struct {
	Name             string          `json:"name"`
	DisplayName      string          `json:"display_name"`
	Description      string          `json:"description"`
	Engine           Engine          `json:"engine"`
	Versions         []string        `json:"versions"`
	DefaultVersion   string          `json:"default_version"`
	DeploymentMode   DeploymentMode  `json:"deployment_mode"`
	Nodes            Nodes           `json:"nodes"`
	Resources        Resources       `json:"resources"`
	ReplicationMode  ReplicationMode `json:"replication_mode"`
	SLO              SLO             `json:"slo"`
	Prices           Prices          `json:"prices"`
	ParametersSchema json.RawMessage `json:"parameters_schema"`
	MaintenanceInfo  MaintenanceInfo `json:"maintenance_info"`
}

// Plan is one orderable configuration of an engine.
type Plan struct {
	ID string `json:"id"`
	Spec
	State        State      `json:"state"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	DeprecatedAt *time.Time `json:"deprecated_at,omitempty"`
}

// Orderable reports whether new instances may be created with p.
func (p Plan) Orderable() bool { return p.State == Active }

// Size names the node size of p for metering ("node-hours by size"), e.g.
// "2vcpu-8192mb".
func (p Plan) Size() string { return SizeName(p.Resources) }

// Deprecate marks p deprecated at now. It reports false when p already was.
func (p *Plan) Deprecate(now time.Time) bool {
	if p.State == Deprecated {
		return false
	}
	t := now.UTC()
	p.State = Deprecated
	p.DeprecatedAt = &t
	p.UpdatedAt = t
	return true
}
