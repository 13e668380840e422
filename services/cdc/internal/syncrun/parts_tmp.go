//go:build !syncmerged

// Throwaway stand-ins for the decoded capture/snapshot, apply, cache and
// verify packages that other helpers are building; delete this file at the
// merge and drop the build constraint of parts_merged.go.

package syncrun

import (
	"context"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

var errNotMerged = errors.New("syncrun: part not merged yet")

func defaultCapture(context.Context, CaptureSpec, chan<- change.Batch) error { return errNotMerged }

func defaultLoad(context.Context, LoadSpec, *snapshot.Progress, chan<- change.Batch) (snapshot.Progress, error) {
	return snapshot.Progress{}, errNotMerged
}

func defaultOpenMySQL(context.Context, MySQLTarget) (Target, error) { return nil, errNotMerged }

func defaultOpenRedis(context.Context, RedisTarget) (Target, error) { return nil, errNotMerged }

func defaultVerify(context.Context, VerifySpec) (syncjob.Report, error) {
	return syncjob.Report{}, errNotMerged
}

// skippedOf is change.Checkpoint.Skipped.
func skippedOf(*change.Checkpoint) int64 { return 0 }

// ddlError stands for apply.DDLError.
type ddlError struct {
	Statement string
	Err       error
}

func (e *ddlError) Error() string { return fmt.Sprintf("ddl %q: %v", e.Statement, e.Err) }

// newDDLError builds an apply.DDLError.
func newDDLError(stmt string, err error) error { return &ddlError{Statement: stmt, Err: err} }

// errNoPrimaryKey stands for apply.ErrNoPrimaryKey.
var errNoPrimaryKey = errors.New("table has no primary key")

// applyFailure says whether err is an applier failure no retry fixes.
func applyFailure(err error) (reason string, ok bool) {
	var de *ddlError
	switch {
	case errors.As(err, &de):
		return ddlReason(de.Statement, de.Err), true
	case errors.Is(err, errNoPrimaryKey):
		return noKeyReason(err), true
	}
	return "", false
}
