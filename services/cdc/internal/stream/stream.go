// Package stream is the cdc service's domain: a CDC stream of one MySQL
// instance (which tables it captures, whether it starts with a snapshot,
// whether deletes get tombstones), its lifecycle states and the transitions
// the API may ask for, and the status the pipeline reports. It holds no
// SQL, HTTP or Kafka: the store persists it, the API maps it to JSON and
// the pipeline runs it.
//
// canopy:domain
package stream

import (
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// ErrNotFound is wrapped when a stream (or, for the API, an instance) does
// not exist or belongs to another tenant.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped when a request contradicts the stream's state; a
// *TransitionError is one.
var ErrConflict = errors.New("conflict")

// State is a stream's lifecycle state.
type State string

// The states of a stream.
const (
	// StateSnapshotting: the initial (or a re-requested) consistent
	// snapshot is being read; streaming follows from its GTID.
	StateSnapshotting State = "snapshotting"
	// StateStreaming: row changes are read from the binlog.
	StateStreaming State = "streaming"
	// StatePaused: the user paused the stream; nothing is read, the
	// checkpoint stays.
	StatePaused State = "paused"
	// StateFailed: the stream cannot continue (binlog purged past its
	// position, an event it cannot decode); LastError says why. Resume
	// retries, Resnapshot starts over.
	StateFailed State = "failed"
	// StateDeleting: the user deleted the stream; the pipeline stops its
	// runner and then removes it.
	StateDeleting State = "deleting"
)

// Valid reports whether s is one of the states.
func (s State) Valid() bool {
	switch s {
	case StateSnapshotting, StateStreaming, StatePaused, StateFailed, StateDeleting:
		return true
	}
	return false
}

// Running reports whether a runner should be reading for a stream in s.
func (s State) Running() bool { return s == StateSnapshotting || s == StateStreaming }

// Stream is one CDC stream of an instance.
type Stream struct {
	ID       string
	Tenant   string
	Instance string
	Spec     Spec
	State    State
	// Checkpoint is where the stream restarts from: stored only once Kafka
	// acknowledged everything before it.
	Checkpoint change.Checkpoint
	// Status is what the pipeline last reported; Status.State mirrors State.
	Status    Status
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Status is what the pipeline reports of a running stream.
type Status struct {
	State State
	// LastError says why the stream failed (or why its last attempt did).
	LastError string
	// SourceNode is the node id the binlog is read from.
	SourceNode string
	// CapturedTables are the tables ("db.table") the stream currently
	// captures, the patterns resolved against the source.
	CapturedTables []string
	// LagMs is now minus the event time of the last acknowledged change (0
	// when caught up); LagEvents the GTID sequence distance to the source.
	LagMs     int64
	LagEvents int64
	// RowsPerSecond is the recent rate of published row changes.
	RowsPerSecond float64
	// EventsTotal counts the row changes published (from the checkpoint).
	EventsTotal int64
	// SnapshotGTID is the GTID position of the last snapshot, when one ran.
	SnapshotGTID string
}

// New returns a new stream of instance (tenant's) in its first state:
// snapshotting when the spec asks for an initial snapshot, else streaming.
// spec must be valid (Validate) and have its defaults (WithDefaults).
func New(id, tenant, instance string, spec Spec, now time.Time) Stream {
	st := StateStreaming
	if spec.Snapshot == SnapshotInitial {
		st = StateSnapshotting
	}
	now = now.UTC()
	return Stream{ID: id, Tenant: tenant, Instance: instance, Spec: spec, State: st, Status: Status{State: st},
		CreatedAt: now, UpdatedAt: now}
}

// Prefix is the stream's Debezium "logical server name" and topic prefix:
// cdc.<tenant>.<instance>.
func (s Stream) Prefix() string { return Prefix(s.Tenant, s.Instance) }

// Prefix is the topic prefix of an instance's streams: cdc.<tenant>.<instance>.
func Prefix(tenant, instance string) string { return "cdc." + tenant + "." + instance }

// SnapshotPending reports whether the stream still owes its snapshot: it
// asked for one and either never finished it (progress stored) or never
// started (no position at all).
func (s Stream) SnapshotPending() bool {
	if len(s.Checkpoint.Snapshot) > 0 {
		return true
	}
	return s.Spec.Snapshot == SnapshotInitial && s.Checkpoint.GTID == ""
}

// Action is a transition the API asks for.
type Action string

// The actions of the API.
const (
	ActionPause      Action = "pause"
	ActionResume     Action = "resume"
	ActionResnapshot Action = "resnapshot"
	ActionDelete     Action = "delete"
)

// TransitionError is returned for an action the stream's state does not
// allow; it matches ErrConflict.
type TransitionError struct {
	Action Action
	From   State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s a stream that is %s", e.Action, e.From)
}

// Is makes a TransitionError match ErrConflict.
func (e *TransitionError) Is(target error) bool { return target == ErrConflict }

// Apply performs action a on s, or returns a *TransitionError (or an error
// for an unknown action) and leaves s unchanged.
func (s *Stream) Apply(a Action, now time.Time) error {
	switch a {
	case ActionPause:
		return s.Pause(now)
	case ActionResume:
		return s.Resume(now)
	case ActionResnapshot:
		return s.Resnapshot(now)
	case ActionDelete:
		return s.Delete(now)
	}
	return fmt.Errorf("unknown action %q", a)
}

// Pause stops a snapshotting or streaming stream; the checkpoint stays, so
// Resume continues where it stopped. Pausing a paused stream changes
// nothing; a failed or deleting one cannot be paused.
func (s *Stream) Pause(now time.Time) error {
	switch {
	case s.State == StatePaused:
		return nil
	case !s.State.Running():
		return &TransitionError{Action: ActionPause, From: s.State}
	}
	s.set(StatePaused, now)
	return nil
}

// Resume restarts a paused stream, or retries a failed one, from its
// checkpoint: snapshotting while the snapshot is unfinished, else
// streaming. Resuming a running stream changes nothing; a deleting one
// cannot be resumed.
func (s *Stream) Resume(now time.Time) error {
	switch s.State {
	case StateSnapshotting, StateStreaming:
		return nil
	case StatePaused, StateFailed:
	default:
		return &TransitionError{Action: ActionResume, From: s.State}
	}
	st := StateStreaming
	if s.SnapshotPending() {
		st = StateSnapshotting
	}
	s.set(st, now)
	s.Status.LastError = ""
	return nil
}

// Resnapshot starts the stream over with a new consistent snapshot: the
// checkpoint is cleared, and the spec asks for a snapshot from now on (the
// user asked for one, even of a stream created with snapshot "never").
func (s *Stream) Resnapshot(now time.Time) error {
	if s.State == StateDeleting {
		return &TransitionError{Action: ActionResnapshot, From: s.State}
	}
	s.Checkpoint = change.Checkpoint{}
	s.Spec.Snapshot = SnapshotInitial
	s.Status.LastError, s.Status.SnapshotGTID, s.Status.EventsTotal = "", "", 0
	s.Status.LagMs, s.Status.LagEvents, s.Status.RowsPerSecond = 0, 0, 0
	s.set(StateSnapshotting, now)
	return nil
}

// Delete marks the stream for deletion; the pipeline removes it once its
// runner stopped. Deleting twice is not an error.
func (s *Stream) Delete(now time.Time) error {
	if s.State != StateDeleting {
		s.set(StateDeleting, now)
	}
	return nil
}

func (s *Stream) set(st State, now time.Time) {
	s.State, s.Status.State, s.UpdatedAt = st, st, now.UTC()
}
