// Temporary: replaced at merge.
package stream

import (
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// State is a stream's state.
type State string

// States.
const (
	StateSnapshotting State = "snapshotting"
	StateStreaming    State = "streaming"
	StatePaused       State = "paused"
	StateFailed       State = "failed"
	StateDeleting     State = "deleting"
)

// Spec is what a stream captures.
type Spec struct {
	Tables     []string
	Exclude    []string
	Snapshot   string
	Tombstones bool
}

// Includes reports whether db.table is captured.
func (s Spec) Includes(db, table string) bool {
	match := func(p string) bool {
		pd, pt, _ := strings.Cut(p, ".")
		return pd == db && (pt == "*" || pt == table)
	}
	in := false
	for _, p := range s.Tables {
		in = in || match(p)
	}
	for _, p := range s.Exclude {
		if match(p) {
			return false
		}
	}
	return in
}

// Status is a stream's observed status.
type Status struct {
	State          State
	LastError      string
	SourceNode     string
	CapturedTables []string
	LagMs          int64
	LagEvents      int64
	RowsPerSecond  float64
	EventsTotal    int64
}

// Stream is one CDC stream.
type Stream struct {
	ID, Tenant, Instance string
	Spec                 Spec
	State                State
	Checkpoint           change.Checkpoint
	Status               Status
	CreatedAt, UpdatedAt time.Time
}
