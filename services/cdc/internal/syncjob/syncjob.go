// Package syncjob is the domain of sync jobs: a job applies the row changes
// of a source MySQL instance's tables to a target (another MySQL instance,
// one- or two-way, with a conflict strategy; or a Redis instance as a
// cache), resuming from a watermark kept in the target itself. It holds the
// job's spec and its validation, its states, its status, conflicts and
// verification reports, and the Target contract the appliers meet. No SQL,
// HTTP, Redis or Kafka here.
//
// canopy:domain
package syncjob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// ErrNotFound is wrapped when a job, conflict, verification or instance
// does not exist or belongs to another tenant.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped when a request contradicts the job's state.
var ErrConflict = errors.New("conflict")

// Direction says whether changes flow one way or both ways.
type Direction string

// The directions.
const (
	OneWay Direction = "one-way"
	TwoWay Direction = "two-way"
)

// Strategy decides a conflict: a target row that does not match the
// change's before image, an insert over an existing row, a delete or
// update of a missing row.
type Strategy string

// The strategies.
const (
	// SourceWins applies the source's change over the target's row.
	SourceWins Strategy = "source-wins"
	// TargetWins keeps the target's row and drops the change.
	TargetWins Strategy = "target-wins"
	// LatestWins keeps the version with the greater value of Spec.Column;
	// on a tie the side whose instance id sorts first wins, so both
	// directions of a two-way job decide alike.
	LatestWins Strategy = "latest-wins"
	// Manual parks the change as a pending Conflict until a user resolves it.
	Manual Strategy = "manual"
)

// DDLMode says what a job does with a DDL statement of a synced table.
type DDLMode string

// The DDL modes.
const (
	// DDLReplay runs the statement on the target.
	DDLReplay DDLMode = "replay"
	// DDLStop fails the job with the statement as the reason.
	DDLStop DDLMode = "stop"
)

// Format is how a Redis cache stores a row.
type Format string

// The formats.
const (
	FormatHash Format = "hash"
	FormatJSON Format = "json"
)

// DefaultKeyPattern is a Redis target's key pattern when none is given.
const DefaultKeyPattern = "{table}:{pk}"

// Target is where a job applies: exactly one of Instance (MySQL) and
// RedisInstance is set.
type Target struct {
	Instance      string `json:"instance,omitempty"`
	RedisInstance string `json:"redis_instance,omitempty"`
	// Database is the MySQL target's database the source's tables go to
	// when it is not the source's (instances have a database each, named
	// after them); every synced table must then be in one source database.
	Database string `json:"database,omitempty"`
	// KeyPattern names a row's key ({db}, {table}, {pk}: the key values
	// joined by ':'); Redis only.
	KeyPattern string `json:"key_pattern,omitempty"`
	// Format is hash (default) or json; Redis only.
	Format Format `json:"format,omitempty"`
	// TTL expires the keys (0: never); Redis only.
	TTL Duration `json:"ttl,omitempty"`
}

// Duration is a time.Duration that reads and writes as "30s" in JSON.
type Duration time.Duration

// MarshalJSON writes d as Go duration text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads Go duration text ("90s", "1h").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Spec is what a user asked a job to do.
type Spec struct {
	SourceInstance string `json:"source_instance"`
	// Tables are "db.table" or "db.*".
	Tables    []string  `json:"tables"`
	Target    Target    `json:"target"`
	Conflict  Strategy  `json:"conflict,omitempty"`
	Column    string    `json:"column,omitempty"`
	Direction Direction `json:"direction,omitempty"`
	DDL       DDLMode   `json:"ddl,omitempty"`
	// InitialLoad copies the tables' current rows before streaming
	// (default true).
	InitialLoad *bool `json:"initial_load,omitempty"`
	// VerifyEvery schedules a verification (0: only on request).
	VerifyEvery Duration `json:"verify_every,omitempty"`
}

// State is a job's lifecycle state.
type State string

// The states of a job.
const (
	// StateLoading: the initial load copies the source's rows.
	StateLoading State = "loading"
	// StateRunning: changes are applied as they are committed.
	StateRunning State = "running"
	// StatePaused: the user paused the job; the watermark stays.
	StatePaused State = "paused"
	// StateFailed: the job cannot continue (LastError says why); resume
	// retries.
	StateFailed State = "failed"
	// StateDeleting: the runner stops, then the job is removed.
	StateDeleting State = "deleting"
)

// TargetDB maps a source database to the target's: Target.Database when
// set, else the same name.
func (s Spec) TargetDB(sourceDB string) string {
	if s.Target.Database != "" {
		return s.Target.Database
	}
	return sourceDB
}

// SourceDB maps a target database back to the source's (the reverse
// direction of a two-way job).
func (s Spec) SourceDB(targetDB string) string {
	if s.Target.Database != "" && strings.EqualFold(targetDB, s.Target.Database) {
		db, _, _ := strings.Cut(s.Tables[0], ".")
		return db
	}
	return targetDB
}

// Running reports whether a runner should work for a job in s.
func (s State) Running() bool { return s == StateLoading || s == StateRunning }

// Job is a stored sync job.
type Job struct {
	ID, Tenant string
	Spec       Spec
	State      State
	Status     Status
	// ServerID is the session server_id the job's writes carry on a MySQL
	// target, so its own captures skip them (two-way without echo).
	ServerID  uint32
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Status is what the runner reports of a job.
type Status struct {
	// Directions: one for a one-way job, two for a two-way one
	// (source → target first).
	Directions []DirectionStatus `json:"directions"`
	// Tables is per "db.table": rows applied and lag.
	Tables    map[string]TableStatus `json:"tables"`
	Applied   int64                  `json:"applied_rows"`
	Conflicts int64                  `json:"conflicts"`
	LastError string                 `json:"last_error,omitempty"`
	// NextVerification is when the scheduled verification (VerifyEvery)
	// is due; kept with the status so a restart does not put it off.
	NextVerification time.Time `json:"next_verification,omitzero"`
}

// DirectionStatus is one direction of a job.
type DirectionStatus struct {
	From, To string
	// Watermark is the source GTID position applied up to.
	Watermark string
	// SourceNode is the node read.
	SourceNode string
	Applied    int64
	Conflicts  int64
	// Skipped counts the transactions skipped as the job's own echo.
	Skipped int64
	LagMs   int64
}

// TableStatus is one table of a job.
type TableStatus struct {
	Applied int64 `json:"applied_rows"`
	LagMs   int64 `json:"lag_ms"`
}

// Watermark is what a target holds of a job's direction: how far it
// applied, written in the same transaction as the changes.
type Watermark struct {
	// Position is the source GTID position (domain-server-seq per domain)
	// after the last applied transaction; "" before any.
	Position string
	// Load is the initial load's progress (snapshot.Progress JSON) while it
	// runs; nil once streaming.
	Load []byte
	// Applied counts the rows applied.
	Applied int64
}

// Stats is what one Apply did.
type Stats struct {
	Applied   int64
	Conflicts int64
	// Tables counts applied rows per "db.table".
	Tables map[string]int64
}

// Applier is one direction's target: a MySQL applier or a Redis cache.
type Applier interface {
	// Watermark reads the target's watermark of this direction.
	Watermark(ctx context.Context) (Watermark, error)
	// Apply applies b's changes. The changes and, when b.Checkpoint is
	// set, the watermark move (to b.Checkpoint.GTID, or the load progress
	// in b.Checkpoint.Snapshot) commit together; a batch without a
	// checkpoint stays uncommitted until one with a checkpoint follows.
	// Stats count what was committed.
	Apply(ctx context.Context, b change.Batch) (Stats, error)
	Close() error
}

// ConflictKind names why a change conflicted.
type ConflictKind string

// The conflict kinds.
const (
	// KindExists: an insert found the row already there (and different).
	KindExists ConflictKind = "exists"
	// KindMissing: an update or delete found no row.
	KindMissing ConflictKind = "missing"
	// KindDiffers: an update or delete found the row but not as the
	// change's before image.
	KindDiffers ConflictKind = "differs"
)

// Resolution is how a conflict was (or is to be) settled.
type Resolution string

// The resolutions.
const (
	ResolvedPending Resolution = "pending"
	ResolvedSource  Resolution = "source"
	ResolvedTarget  Resolution = "target"
)

// Conflict is one conflicting change. (Direction, GTID, Row) identifies it:
// a redelivered change records no second conflict.
type Conflict struct {
	ID, JobID, Tenant string
	// From and To are the instances of the change's direction.
	From, To  string
	DB, Table string
	Kind      ConflictKind
	// Key is the row's primary key as a JSON object.
	Key json.RawMessage
	// Change is the source's change; TargetRow the target's row as it was
	// (column → value, nil when missing), both as EncodeRow writes them.
	Change    json.RawMessage
	TargetRow json.RawMessage
	GTID      string
	Row       int
	// Strategy decided it; Resolution says which side won (pending for a
	// manual one not yet resolved).
	Strategy   Strategy
	Resolution Resolution
	At         time.Time
	ResolvedAt *time.Time
}

// Conflicts records conflicts (a store); a redelivered one (same JobID,
// From, GTID, Row) is ignored.
type Conflicts interface {
	Record(ctx context.Context, c Conflict) error
}

// VerifyState is a verification's state.
type VerifyState string

// The verification states.
const (
	VerifyRunning VerifyState = "running"
	VerifyDone    VerifyState = "done"
	VerifyFailed  VerifyState = "failed"
)

// Verification is one consistency check of a job.
type Verification struct {
	ID, JobID, Tenant string
	Repair            bool
	State             VerifyState
	Report            Report
	Error             string
	StartedAt         time.Time
	FinishedAt        *time.Time
}

// Report is what a verification found.
type Report struct {
	Tables        []TableReport `json:"tables"`
	Chunks        int64         `json:"chunks"`
	RowsChecked   int64         `json:"rows_checked"`
	DifferingRows int64         `json:"differing_rows"`
	Repaired      int64         `json:"repaired_rows"`
	// Rechecked counts chunks that differed once and were checked again
	// after the job caught up (writes in flight, not differences).
	Rechecked  int64 `json:"rechecked_chunks"`
	DurationMs int64 `json:"duration_ms"`
	Consistent bool  `json:"consistent"`
}

// TableReport is one table's part of a Report.
type TableReport struct {
	Table       string    `json:"table"`
	Chunks      int64     `json:"chunks"`
	RowsChecked int64     `json:"rows_checked"`
	Differences []RowDiff `json:"differences"`
}

// RowDiff is one row that differs.
type RowDiff struct {
	// Key is the primary key as a JSON object.
	Key json.RawMessage `json:"key"`
	// Kind: missing_on_target, extra_on_target or different.
	Kind     string `json:"kind"`
	Repaired bool   `json:"repaired"`
}
