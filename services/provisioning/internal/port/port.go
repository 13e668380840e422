// Package port holds the types of provisioning's repository contract that
// its users (the saga, the HTTP edge) and its adapters (mysqlrepo, memrepo)
// share: the change an update edits, the request that creates an instance,
// the events written with a change (the outbox) and the errors callers
// branch on. Each user declares the interface it needs over these types;
// the package has no behaviour beyond them and imports no adapter.
package port

import (
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// Errors callers branch on.
var (
	// ErrNotFound: no such instance, operation or binding (for this tenant).
	ErrNotFound = errors.New("not found")
	// ErrNameTaken: the tenant has a live instance with the name.
	ErrNameTaken = errors.New("name already in use")
	// ErrDuplicate: the idempotency key or OSB id is already used; the
	// existing row is returned with it.
	ErrDuplicate = errors.New("duplicate request")
	// ErrNoTenant: a tenant-scoped method was called without a tenant. An
	// empty tenant never means "every tenant"; the *AnyTenant and
	// ListAllInstances methods are the explicit cross-tenant reads.
	ErrNoTenant = errors.New("no tenant given")
	// ErrBindingNameTaken: the instance already has an active binding with the name.
	ErrBindingNameTaken = errors.New("binding name already in use")
	// ErrNoChange may be returned by an Update callback to commit nothing.
	ErrNoChange = errors.New("no change")
)

// Outgoing is an event to write to the outbox with a change.
type Outgoing struct {
	Topic string
	Event eventbus.Event
}

// Change is what an Update callback edits: the locked instance, its current
// operation (replace it to start a new one) and the events to emit.
type Change struct {
	Instance *instance.Instance
	Op       *instance.Operation
	// Superseded are earlier operations the change finished (saved too).
	Superseded []instance.Operation
	events     []Outgoing
}

// Emit queues an event for the outbox, written only if the change commits.
func (c *Change) Emit(topic string, e eventbus.Event) {
	c.events = append(c.events, Outgoing{Topic: topic, Event: e})
}

// Events returns the events queued with Emit, for the adapter to write.
func (c *Change) Events() []Outgoing { return c.events }

// Usage is what a tenant's live instances hold.
type Usage = tenancy.Usage

// CreateRequest is a new instance with what its creation depends on.
type CreateRequest struct {
	Instance *instance.Instance
	Op       instance.Operation
	// IdempotencyKey and RequestHash make a retried order return the first
	// instance; a reused key with another request hash is an ErrDuplicate
	// whose existing instance differs.
	IdempotencyKey string
	RequestHash    string
	// Admit is called with the tenant's current usage under a per-tenant
	// lock; an error refuses the order (quotas).
	Admit  func(Usage) error
	Events []Outgoing
	// RouterPorts, when not empty, is the range the instance's router port
	// pair is allocated from (the lowest free pair among live instances),
	// recorded in Instance.Router; a full range is an error wrapping
	// instance.ErrRouterPortsExhausted.
	RouterPorts instance.PortRange
}

// DuplicateError is returned when an idempotency key or OSB id was used
// before; Existing is the instance it created and SameRequest whether the
// request hash matches.
type DuplicateError struct {
	Existing    *instance.Instance
	SameRequest bool
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("instance %s exists for this request key", e.Existing.ID)
}

// Unwrap returns ErrDuplicate.
func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// RestoreJob is a restore job of the backup service as provisioning sees
// it: the saga waits in the restoring step until Status is RestoreReady
// (Seed holds the data) or RestoreFailed (Error says why).
type RestoreJob struct {
	ID     string
	Status string
	// Phase is where a running job stands (fetching, preparing,
	// replaying), shown as the create operation's step detail.
	Phase string
	Seed  string
	Error string
}

// Statuses of a restore job (the backup service's names).
const (
	RestorePending = "pending"
	RestoreRunning = "running"
	RestoreReady   = "ready"
	RestoreDone    = "done"
	RestoreFailed  = "failed"
)
