package events

import "time"

// Failover event types on TopicFailover (payload Recovery, or NodeRejoined
// for failover.node.rejoined).
const (
	// TypeFailoverStarted: a recovery took the instance's lease and recorded
	// itself; nothing has been changed on the nodes yet.
	TypeFailoverStarted = "failover.started"
	// TypeFailoverCompleted: the new primary accepts writes, the other
	// replicas follow it and the old primary is fenced. Provisioning moves
	// the instance's roles and endpoints on it.
	TypeFailoverCompleted = "failover.completed"
	// TypeFailoverFailed: the recovery stopped without promoting (no safe
	// candidate, hold-off, lease lost, the instance went away); Reason says
	// why. The topology is the one before the recovery.
	TypeFailoverFailed = "failover.failed"
	// TypeNodeRejoined: a fenced old primary came back and now replicates,
	// read-only, from the current primary (or was rebuilt from it).
	TypeNodeRejoined = "failover.node.rejoined"
)

// Recovery kinds.
const (
	RecoveryAutomatic  = "automatic"
	RecoverySwitchover = "switchover"
	RecoveryDrill      = "drill"
)

// Recovery is the payload of failover.started, .completed and .failed: one
// automatic failover, switchover or drill of an instance.
type Recovery struct {
	RecoveryID string `json:"recovery_id"`
	InstanceID string `json:"instance_id"`
	TenantID   string `json:"tenant_id"`
	Engine     string `json:"engine"`
	// Kind is automatic, switchover or drill.
	Kind string `json:"kind"`
	// Problem is the analysis code that started it (DeadPrimary, ...) or
	// "Switchover" for a planned one.
	Problem string `json:"problem"`
	// State is started, completed or failed.
	State string `json:"state"`
	// OldPrimary and NewPrimary are node ids; NewPrimary is empty until a
	// candidate was promoted.
	OldPrimary string `json:"old_primary"`
	NewPrimary string `json:"new_primary,omitempty"`
	// NewPrimaryAddress is where clients now write ("host:port").
	NewPrimaryAddress string `json:"new_primary_address,omitempty"`
	// Roles is every node's role after the recovery (node id → primary |
	// replica | fenced), so a consumer needs no other source.
	Roles map[string]string `json:"roles,omitempty"`
	// FencingToken is the lease token the recovery acted under.
	FencingToken int64 `json:"fencing_token"`
	// Reason explains a failed recovery.
	Reason string `json:"reason,omitempty"`
	// LostTransactions lists what the old primary had that the new one does
	// not (GTIDs, or a Redis offset range), when known.
	LostTransactions []string   `json:"lost_transactions,omitempty"`
	DetectedAt       time.Time  `json:"detected_at"`
	PromotedAt       *time.Time `json:"promoted_at,omitempty"`
	CompletedAt      *time.Time `json:"completed_at,omitempty"`
	// RTOMS is first failed check → new primary writable and re-pointed;
	// DetectionMS the confirmation, PromotionMS promote + re-point.
	RTOMS       int64 `json:"rto_ms,omitempty"`
	DetectionMS int64 `json:"detection_ms,omitempty"`
	PromotionMS int64 `json:"promotion_ms,omitempty"`
}

// NodeRejoined is the payload of failover.node.rejoined.
type NodeRejoined struct {
	InstanceID string `json:"instance_id"`
	TenantID   string `json:"tenant_id"`
	NodeID     string `json:"node_id"`
	// Primary is the node id it now replicates from.
	Primary string `json:"primary"`
	// Rebuilt: its data was replaced by a copy of the primary's because it
	// had transactions the primary lacks (listed in LostTransactions).
	Rebuilt          bool      `json:"rebuilt"`
	LostTransactions []string  `json:"lost_transactions,omitempty"`
	OccurredAt       time.Time `json:"occurred_at"`
}
