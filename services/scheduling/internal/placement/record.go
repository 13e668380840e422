package placement

import (
	"errors"
	"fmt"
	"time"
)

// Status is where a stored placement is in its life.
type Status string

// Placement statuses.
const (
	// StatusReserved: capacity booked, waiting for provisioning to confirm.
	StatusReserved Status = "reserved"
	// StatusConfirmed: provisioning confirmed the instance runs there.
	StatusConfirmed Status = "confirmed"
	// StatusFailed: no placement was possible; nothing is booked.
	StatusFailed Status = "failed"
	// StatusReleased: the capacity was freed.
	StatusReleased Status = "released"
)

// Active reports whether capacity is booked in this status.
func (s Status) Active() bool { return s == StatusReserved || s == StatusConfirmed }

// Record is a placement as stored: the last decision (or refusal) for an
// instance and the nodes currently booked.
type Record struct {
	InstanceID string
	Tenant     string
	RequestID  string
	Kind       Kind
	Mode       Mode
	Status     Status
	// Request is the request that produced the record (constraints are kept
	// so a failed node can be re-placed under the same rules).
	Request     Request
	Nodes       []Assignment
	Explanation *Explanation
	Reason      string
	ExpiresAt   *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// ErrStale is wrapped by *StaleError: a reservation found that the capacity
// or port it was decided on is gone (another scheduler got there first).
var ErrStale = errors.New("decision made on stale capacity")

// StaleError names the hosts whose capacity changed under a decision.
type StaleError struct {
	Hosts []string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%v: hosts %v", ErrStale, e.Hosts)
}

// Unwrap makes errors.Is(err, ErrStale) true.
func (e *StaleError) Unwrap() error { return ErrStale }

// ErrAlreadyPlaced is returned when an instance already holds a placement.
var ErrAlreadyPlaced = errors.New("instance already placed")

// ErrNotPlaced is returned when an instance holds no active placement.
var ErrNotPlaced = errors.New("instance not placed")

// Reservation is one decision to make durable in a batch: the request it
// answers, the decision, when an unconfirmed reservation expires, and the
// W3C traceparent of the request (for its event; empty: none).
type Reservation struct {
	Request     Request
	Decision    Decision
	ExpiresAt   time.Time
	TraceParent string
}
