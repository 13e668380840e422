package events

import "time"

// Instance is the payload of every provisioning.instance.* event
// (provisioning.instance.schema.json): the instance as it is after the fact.
// It never carries secrets.
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
	// FailoverToken is the fencing token of the last failover applied to
	// the nodes' roles (0 before any): of two events of an instance, the
	// one with the higher token describes the later topology.
	FailoverToken int64     `json:"failover_token,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// Node is a node of an instance in a lifecycle event.
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

// Endpoints are an instance's client addresses: Primary and Replicas name
// the nodes; RW, RO and Sentinel (host:port) the router's stable endpoints,
// which follow the primary, when the instance has them.
type Endpoints struct {
	Primary  string   `json:"primary"`
	Replicas []string `json:"replicas"`
	// RW forwards to the current primary.
	RW string `json:"rw,omitempty"`
	// RO spreads connections over healthy replicas.
	RO string `json:"ro,omitempty"`
	// Sentinel is the router's Redis Sentinel port (Redis only).
	Sentinel string `json:"sentinel,omitempty"`
	// MasterName is the name Sentinel clients ask for (Redis only).
	MasterName string `json:"master_name,omitempty"`
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
