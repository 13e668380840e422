package topology

import (
	"context"
	"time"
)

// Kind is what started a recovery.
type Kind string

// Recovery kinds.
const (
	KindAutomatic  Kind = "automatic"
	KindSwitchover Kind = "switchover"
	KindDrill      Kind = "drill"
)

// State is where a recovery is.
type State string

// Recovery states. A recovery is recorded (started) before anything is done
// on the nodes; Step records each step before it is taken, so a restarted
// actor knows where its predecessor stopped.
const (
	StateStarted   State = "started"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
)

// Step is the last step a recovery began.
type Step string

// Recovery steps, in order.
const (
	StepDetected  Step = "detected"
	StepFenced    Step = "fenced"
	StepPromoting Step = "promoting"
	StepPromoted  Step = "promoted"
	StepRepointed Step = "repointed"
	StepDone      Step = "done"
)

// Recovery is the record of one failover, switchover or drill.
type Recovery struct {
	ID         string
	InstanceID string
	Tenant     string
	Engine     Engine
	Kind       Kind
	// Problem is the analysis code (DeadPrimary, ...) or "Switchover".
	Problem    string
	State      State
	Step       Step
	OldPrimary string
	// Candidate is the node chosen (and, once promoted, the new primary).
	Candidate        string
	CandidateAddress string
	// Roles is every node's role after the recovery.
	Roles            map[string]Role
	Token            int64
	Holder           string
	Reason           string
	LostTransactions []string
	// Acknowledged: an operator acknowledged the recovery, lifting the
	// hold-off it imposes on the next automatic one.
	Acknowledged bool
	DetectedAt   time.Time
	PromotedAt   *time.Time
	CompletedAt  *time.Time
	RTOMS        int64
	DetectionMS  int64
	PromotionMS  int64
}

// Lease is an actor's exclusive right to act on an instance, with the
// fencing token every write of the actor is checked against.
type Lease struct {
	InstanceID string
	Holder     string
	Token      int64
	Expires    time.Time
}

// Store persists leases and recoveries; its writes of a recovery carry the
// failover.* event in the same transaction (outbox). Implementations:
// mysqlstore, and an in-memory one for the recovery's tests.
type Store interface {
	// Acquire takes or renews the instance's lease for holder until now+ttl.
	// Taking an expired or free lease increments the token; renewing one's
	// own keeps it. Another holder's live lease fails with ErrLeaseHeld.
	Acquire(ctx context.Context, instanceID, holder string, ttl time.Duration) (Lease, error)
	// Release gives the lease up if l is still the current one.
	Release(ctx context.Context, l Lease) error
	// Begin records a new recovery (state started) under lease l and emits
	// failover.started. ErrFenced if l is no longer current.
	Begin(ctx context.Context, l Lease, r Recovery) error
	// Save records r's new step/state under lease l, emitting
	// failover.completed or failover.failed when r reaches that state.
	// ErrFenced if l is no longer current.
	Save(ctx context.Context, l Lease, r Recovery) error
	// Get returns one recovery of an instance (ErrNotFound).
	Get(ctx context.Context, instanceID, id string) (Recovery, error)
	// Open returns the instance's unfinished recovery, if any (ErrNotFound).
	Open(ctx context.Context, instanceID string) (Recovery, error)
	// LastAutomatic returns the instance's most recent completed automatic
	// recovery (ErrNotFound), for the hold-off.
	LastAutomatic(ctx context.Context, instanceID string) (Recovery, error)
	// Acknowledge marks a recovery acknowledged (lifts its hold-off).
	Acknowledge(ctx context.Context, instanceID, id string) error
	// Rejoined records that a fenced node replicates again and emits
	// failover.node.rejoined.
	Rejoined(ctx context.Context, in Instance, nodeID, primaryID string, rebuilt bool, lost []string) error
}
