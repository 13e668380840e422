package stream

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Snapshot says whether a stream starts with a consistent snapshot.
type Snapshot string

// The snapshot modes.
const (
	// SnapshotInitial reads the selected tables at one GTID position, then
	// streams from exactly there.
	SnapshotInitial Snapshot = "initial"
	// SnapshotNever streams from the source's current position.
	SnapshotNever Snapshot = "never"
)

// Spec is what the user asked a stream to capture.
type Spec struct {
	// Tables are the patterns of the captured tables: "db.table" or "db.*".
	Tables []string
	// Exclude are patterns of the same form taken out of Tables.
	Exclude []string
	// Snapshot is initial or never.
	Snapshot Snapshot
	// Tombstones asks for a tombstone (null value, same key) after each
	// delete, for compacted topics.
	Tombstones bool
}

// ValidationError names one invalid field of a Spec.
type ValidationError struct {
	// Field is the JSON name of the field, with an index: "tables[1]".
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// systemSchemas are never captured: they are the server's, not the
// tenant's, or (_canopy_sync) the sync jobs' watermarks on a target.
var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true,
	"_canopy_sync": true}

var identifier = regexp.MustCompile(`^[A-Za-z0-9_$]+$`)

// WithDefaults fills the optional fields: Snapshot defaults to initial.
func (s Spec) WithDefaults() Spec {
	if s.Snapshot == "" {
		s.Snapshot = SnapshotInitial
	}
	return s
}

// Validate reports every invalid field, each as a *ValidationError (joined:
// errors.As finds the first, Unwrap() []error lists them all).
func (s Spec) Validate() error {
	var errs []error
	if len(s.Tables) == 0 {
		errs = append(errs, &ValidationError{Field: "tables", Reason: "at least one table pattern (db.table or db.*) is required"})
	}
	for i, p := range s.Tables {
		if err := checkPattern(fmt.Sprintf("tables[%d]", i), p); err != nil {
			errs = append(errs, err)
		}
	}
	for i, p := range s.Exclude {
		if err := checkPattern(fmt.Sprintf("exclude_tables[%d]", i), p); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Snapshot != SnapshotInitial && s.Snapshot != SnapshotNever {
		errs = append(errs, &ValidationError{Field: "snapshot", Reason: `must be "initial" or "never"`})
	}
	return errors.Join(errs...)
}

func checkPattern(field, p string) error {
	db, table, ok := strings.Cut(p, ".")
	if !ok {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("%q is not db.table or db.*", p)}
	}
	if !identifier.MatchString(db) {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("database %q must be a plain identifier (letters, digits, _ and $)", db)}
	}
	if systemSchemas[strings.ToLower(db)] {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("%s is a system schema and is never captured", db)}
	}
	if table != "*" && !identifier.MatchString(table) {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("table %q must be * or a plain identifier (letters, digits, _ and $)", table)}
	}
	return nil
}

// Includes reports whether the stream captures db.table: a Tables pattern
// matches it, no Exclude pattern does, and db is not a system schema.
// Names compare exactly, as MariaDB on Linux does.
func (s Spec) Includes(db, table string) bool {
	if systemSchemas[strings.ToLower(db)] {
		return false
	}
	return anyMatch(s.Tables, db, table) && !anyMatch(s.Exclude, db, table)
}

func anyMatch(patterns []string, db, table string) bool {
	for _, p := range patterns {
		pd, pt, ok := strings.Cut(p, ".")
		if ok && pd == db && (pt == "*" || pt == table) {
			return true
		}
	}
	return false
}
