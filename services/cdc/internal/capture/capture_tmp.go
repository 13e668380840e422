// Temporary: replaced at merge.
package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// Source is the node to read.
type Source struct{ Addr, User, Password string }

// Config configures a capture.
type Config struct {
	Source     Source
	ServerID   uint32
	Prefix     string
	Include    func(db, table string) bool
	Tombstones bool
	Start      string
	MaxBatch   int
	OnDDL      func(ctx context.Context, d DDL) error
}

// DDL is one schema change.
type DDL struct {
	GTID, DB, Table, Statement string
	At                         time.Time
}

// ErrPositionLost: the binlog no longer has the start position.
var ErrPositionLost = errors.New("binlog position lost")

// PoisonError: cannot decode; never skip.
type PoisonError struct {
	GTID, Table, Column string
	Err                 error
}

func (e *PoisonError) Error() string {
	return fmt.Sprintf("gtid %s table %s column %s: %v", e.GTID, e.Table, e.Column, e.Err)
}

func (e *PoisonError) Unwrap() error { return e.Err }

// Run captures until ctx ends or a failure.
func Run(ctx context.Context, cfg Config, out chan<- change.Batch) error {
	<-ctx.Done()
	return ctx.Err()
}
