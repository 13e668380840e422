package events

import "time"

// Replication is a replica's state as the probe saw it.
type Replication struct {
	IORunning  bool   `json:"io_running"`
	SQLRunning bool   `json:"sql_running"`
	LagSeconds int64  `json:"lag_seconds"`
	Position   string `json:"position,omitempty"`
	Source     string `json:"source,omitempty"`
	LastError  string `json:"last_error,omitempty"`
}

// Evidence is what the probe that completed a transition saw.
type Evidence struct {
	// ProbeReason is the failure reason of a failed probe (refused,
	// timeout, reset, closed, protocol_error, auth_failed, ...).
	ProbeReason string `json:"probe_reason,omitempty"`
	// Detail is the error text or the matched rule's explanation.
	Detail string `json:"detail,omitempty"`
	// ObservedRole is the role the node reported.
	ObservedRole string `json:"observed_role,omitempty"`
	// ReadOnly is MySQL's read_only.
	ReadOnly *bool `json:"read_only,omitempty"`
	// SemiSync is the primary's semi-sync status.
	SemiSync *bool `json:"semi_sync,omitempty"`
	// Replication is the replica's state.
	Replication *Replication `json:"replication,omitempty"`
	// SplitBrain lists the nodes of the instance that all claim primary.
	SplitBrain []string `json:"split_brain,omitempty"`
	// ProbeDurationMS is how long the probe took.
	ProbeDurationMS float64 `json:"probe_duration_ms"`
}

// Policy is the thresholds the transition was decided under.
type Policy struct {
	IntervalMS int64 `json:"interval_ms"`
	TimeoutMS  int64 `json:"timeout_ms"`
	Fall       int   `json:"fall"`
	Rise       int   `json:"rise"`
}

// NodeTransition is the payload of health.node.up, .down and .degraded.
type NodeTransition struct {
	InstanceID string `json:"instance_id"`
	TenantID   string `json:"tenant_id,omitempty"`
	NodeID     string `json:"node_id"`
	Address    string `json:"address"`
	Engine     string `json:"engine"`
	// Role is the role Canopy assigned the node.
	Role string `json:"role,omitempty"`
	// Status is the new status; PreviousStatus the one before
	// ("unknown" when this replica had no verdict yet).
	Status         string `json:"status"`
	PreviousStatus string `json:"previous_status"`
	// Reason: the failure reason (down) or the rule code (degraded).
	Reason string `json:"reason,omitempty"`
	// Streak is how many consecutive probes agreed.
	Streak   int      `json:"streak"`
	Evidence Evidence `json:"evidence"`
	Policy   Policy   `json:"policy"`
	// ProbedAt is when the deciding probe ran.
	ProbedAt time.Time `json:"probed_at"`
	// Replica is the healthcheck replica that decided.
	Replica string `json:"replica"`
}

// NodeSample is one node's metrics in a sample batch.
type NodeSample struct {
	NodeID  string           `json:"node_id"`
	Role    string           `json:"role,omitempty"`
	Status  string           `json:"status"`
	At      time.Time        `json:"at"`
	Metrics map[string]int64 `json:"metrics"`
}

// SampleBatch is the payload of health.node.sampled: the latest sample of
// every node of one instance taken since the last batch.
type SampleBatch struct {
	InstanceID string       `json:"instance_id"`
	TenantID   string       `json:"tenant_id,omitempty"`
	Engine     string       `json:"engine"`
	Nodes      []NodeSample `json:"nodes"`
	WindowEnd  time.Time    `json:"window_end"`
}
