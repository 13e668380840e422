package events

import (
	"encoding/json"
	"time"
)

// PlanEvent is the payload of every catalog.plan.* event
// (catalog.plan.<verb>.schema.json).
type PlanEvent struct {
	Plan Plan `json:"plan"`
	// ChangedFields lists the fields an update changed (updated events only).
	ChangedFields []string `json:"changed_fields,omitempty"`
}

// Plan is a catalog plan as events carry it (catalog.plan.schema.json): the
// stored plan plus the fields consumers derive nothing from themselves
// (service id, and the size metering rates node-hours by). Members are in
// the order the catalog has always written them.
type Plan struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	DisplayName      string          `json:"display_name"`
	Description      string          `json:"description"`
	Engine           string          `json:"engine"`
	Versions         []string        `json:"versions"`
	DefaultVersion   string          `json:"default_version"`
	DeploymentMode   string          `json:"deployment_mode"`
	Nodes            PlanNodes       `json:"nodes"`
	Resources        PlanResources   `json:"resources"`
	ReplicationMode  string          `json:"replication_mode"`
	SLO              PlanSLO         `json:"slo"`
	Prices           PlanPrices      `json:"prices"`
	ParametersSchema json.RawMessage `json:"parameters_schema"`
	MaintenanceInfo  MaintenanceInfo `json:"maintenance_info"`
	State            string          `json:"state"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	DeprecatedAt     *time.Time      `json:"deprecated_at,omitempty"`
	ServiceID        string          `json:"service_id"`
	Size             string          `json:"size"`
}

// PlanNodes is a plan's topology.
type PlanNodes struct {
	Count  int         `json:"count"`
	Zones  int         `json:"zones"`
	Groups []NodeGroup `json:"groups"`
}

// NodeGroup is a number of nodes sharing a role and a region role.
type NodeGroup struct {
	Role       string `json:"role"`
	RegionRole string `json:"region_role"`
	Count      int    `json:"count"`
}

// PlanResources are what one node of a plan gets.
type PlanResources struct {
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int     `json:"memory_mb"`
	StorageGB int     `json:"storage_gb"`
}

// PlanSLO is the service level a plan promises.
type PlanSLO struct {
	Availability float64 `json:"availability"`
	RTOSeconds   int     `json:"rto_seconds"`
	RPOSeconds   int     `json:"rpo_seconds"`
}

// PlanPrices are the price per meter unit, as decimal strings.
type PlanPrices struct {
	Currency      string `json:"currency"`
	NodeHour      string `json:"node_hour"`
	StorageGBHour string `json:"storage_gb_hour"`
}

// MaintenanceInfo is a plan's OSB maintenance_info.
type MaintenanceInfo struct {
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}
