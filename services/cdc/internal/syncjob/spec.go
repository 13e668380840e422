package syncjob

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

// SyncSchema is the schema a MySQL target keeps its watermarks in; a job
// never syncs, captures or verifies it.
const SyncSchema = "_canopy_sync"

// ServerIDBase is the top byte of every job's session server_id: the range
// 0x7d000000–0x7dffffff is reserved for sync jobs, so a job's id never
// collides with a real server's.
const ServerIDBase uint32 = 0x7d000000

// ServerIDFor is the n-th candidate server id of job id (n = 0 first; a
// store takes the next one when the previous is already some other job's).
func ServerIDFor(id string, n int) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	if n > 0 {
		fmt.Fprintf(h, "#%d", n)
	}
	return ServerIDBase | h.Sum32()&0xffffff
}

// ValidationError names one invalid field of a Spec.
type ValidationError struct {
	// Field is the JSON name of the field, dotted and indexed:
	// "target.format", "tables[1]".
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

var identifier = regexp.MustCompile(`^[A-Za-z0-9_$]+$`)

// keyPlaceholder matches the {name} placeholders of a key pattern.
var keyPlaceholder = regexp.MustCompile(`\{[^}]*\}`)

// WithDefaults fills the optional fields: source-wins, one-way, DDL
// replayed, initial load on, and for a Redis target the default key
// pattern and the hash format.
func (s Spec) WithDefaults() Spec {
	if s.Conflict == "" {
		s.Conflict = SourceWins
	}
	if s.Direction == "" {
		s.Direction = OneWay
	}
	if s.DDL == "" {
		s.DDL = DDLReplay
	}
	if s.InitialLoad == nil {
		yes := true
		s.InitialLoad = &yes
	}
	if s.Target.RedisInstance != "" {
		if s.Target.KeyPattern == "" {
			s.Target.KeyPattern = DefaultKeyPattern
		}
		if s.Target.Format == "" {
			s.Target.Format = FormatHash
		}
	}
	return s
}

// Redis reports whether the job's target is a Redis cache.
func (s Spec) Redis() bool { return s.Target.RedisInstance != "" }

// TargetInstance is the id of the target, MySQL or Redis.
func (s Spec) TargetInstance() string {
	if s.Target.RedisInstance != "" {
		return s.Target.RedisInstance
	}
	return s.Target.Instance
}

// Validate reports every invalid field of a spec with defaults applied,
// each as a *ValidationError (joined: Unwrap() []error lists them all). It
// checks the spec's shape only; that the instances exist, belong to the
// caller and run the right engine is the caller's check.
func (s Spec) Validate() error {
	var errs []error
	add := func(field, reason string) { errs = append(errs, &ValidationError{Field: field, Reason: reason}) }
	if s.SourceInstance == "" {
		add("source_instance", "the source MySQL instance is required")
	}
	errs = append(errs, s.validateTables()...)
	errs = append(errs, s.validateTarget()...)
	switch s.Conflict {
	case SourceWins, TargetWins, Manual:
		if s.Column != "" {
			add("column", "only latest-wins compares a column")
		}
	case LatestWins:
		if !identifier.MatchString(s.Column) {
			add("column", "latest-wins needs the column to compare (a plain identifier, e.g. updated_at)")
		}
	default:
		add("conflict", `must be "source-wins", "target-wins", "latest-wins" or "manual"`)
	}
	if s.Redis() && s.Conflict != SourceWins && s.Conflict != "" {
		// A cache holds no writes of its own to keep: every change wins.
		add("conflict", "a Redis cache takes every change (source-wins)")
	}
	switch s.Direction {
	case OneWay:
	case TwoWay:
		if s.Redis() {
			add("direction", "two-way needs a MySQL target; a Redis cache is one-way")
		}
	default:
		add("direction", `must be "one-way" or "two-way"`)
	}
	if s.DDL != DDLReplay && s.DDL != DDLStop {
		add("ddl", `must be "replay" or "stop"`)
	}
	switch {
	case s.VerifyEvery < 0:
		add("verify_every", "must not be negative")
	case s.VerifyEvery > 0 && s.Redis():
		add("verify_every", "verification compares MySQL tables; a Redis target cannot be verified")
	}
	return errors.Join(errs...)
}

func (s Spec) validateTables() []error {
	if len(s.Tables) == 0 {
		return []error{&ValidationError{Field: "tables", Reason: "at least one table pattern (db.table or db.*) is required"}}
	}
	var errs []error
	// The stream spec's pattern rules are the same: db.table or db.*, no
	// system schema.
	for i, p := range s.Tables {
		if err := (stream.Spec{Tables: []string{p}, Snapshot: stream.SnapshotInitial}).Validate(); err != nil {
			var ve *stream.ValidationError
			reason := err.Error()
			if errors.As(err, &ve) {
				reason = ve.Reason
			}
			errs = append(errs, &ValidationError{Field: fmt.Sprintf("tables[%d]", i), Reason: reason})
			continue
		}
		if db, _, _ := strings.Cut(p, "."); strings.EqualFold(db, SyncSchema) {
			errs = append(errs, &ValidationError{Field: fmt.Sprintf("tables[%d]", i),
				Reason: SyncSchema + " holds the sync watermarks and is never synced"})
		}
	}
	return errs
}

func (s Spec) validateTarget() []error {
	var errs []error
	add := func(field, reason string) { errs = append(errs, &ValidationError{Field: field, Reason: reason}) }
	t := s.Target
	switch {
	case t.Instance == "" && t.RedisInstance == "":
		add("target", "one of instance (MySQL) and redis_instance is required")
	case t.Instance != "" && t.RedisInstance != "":
		add("target", "instance (MySQL) and redis_instance exclude each other")
	case t.Instance != "":
		if t.Instance == s.SourceInstance {
			add("target.instance", "the target must be another instance than the source")
		}
		if t.KeyPattern != "" || t.Format != "" || t.TTL != 0 {
			add("target", "key_pattern, format and ttl are for a Redis target only")
		}
		if t.Database != "" {
			if !identifier.MatchString(t.Database) || strings.EqualFold(t.Database, SyncSchema) {
				add("target.database", "must be a plain database name (letters, digits, _ and $), not "+SyncSchema)
			}
			dbs := map[string]bool{}
			for _, p := range s.Tables {
				db, _, _ := strings.Cut(p, ".")
				dbs[strings.ToLower(db)] = true
			}
			if len(dbs) > 1 {
				add("target.database", "renames one source database: every table must then be in the same one")
			}
		}
	default:
		if t.Database != "" {
			add("target.database", "is for a MySQL target only")
		}
		if t.Format != FormatHash && t.Format != FormatJSON {
			add("target.format", `must be "hash" or "json"`)
		}
		if t.TTL < 0 {
			add("target.ttl", "must not be negative")
		}
		if !strings.Contains(t.KeyPattern, "{pk}") {
			add("target.key_pattern", "must contain {pk}, or keys of different rows collide")
		}
		for _, ph := range keyPlaceholder.FindAllString(t.KeyPattern, -1) {
			if ph != "{db}" && ph != "{table}" && ph != "{pk}" {
				add("target.key_pattern", fmt.Sprintf("unknown placeholder %s (known: {db}, {table}, {pk})", ph))
			}
		}
	}
	return errs
}

// Action is a change of a job the API asks for.
type Action string

// The actions of the API.
const (
	ActionPause  Action = "pause"
	ActionResume Action = "resume"
	ActionDelete Action = "delete"
)

// TransitionError is returned for an action the job's state does not
// allow; it matches ErrConflict.
type TransitionError struct {
	Action Action
	From   State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s a sync job that is %s", e.Action, e.From)
}

// Is makes a TransitionError match ErrConflict.
func (e *TransitionError) Is(target error) bool { return target == ErrConflict }

// Apply performs action a on j, or returns a *TransitionError (or an error
// for an unknown action) and leaves j unchanged.
//
// Pause stops a loading or running job (pausing a paused one changes
// nothing); resume restarts a paused or failed job (running again: the
// runner says loading if the load is unfinished) and clears its last
// error; delete marks any job for removal, once.
func (j *Job) Apply(a Action, now time.Time) error {
	switch a {
	case ActionPause:
		switch {
		case j.State == StatePaused:
			return nil
		case !j.State.Running():
			return &TransitionError{Action: a, From: j.State}
		}
		j.set(StatePaused, now)
	case ActionResume:
		switch j.State {
		case StateLoading, StateRunning:
			return nil
		case StatePaused, StateFailed:
		default:
			return &TransitionError{Action: a, From: j.State}
		}
		j.set(StateRunning, now)
		j.Status.LastError = ""
	case ActionDelete:
		if j.State != StateDeleting {
			j.set(StateDeleting, now)
		}
	default:
		return fmt.Errorf("unknown action %q", a)
	}
	return nil
}

func (j *Job) set(st State, now time.Time) { j.State, j.UpdatedAt = st, now.UTC() }
