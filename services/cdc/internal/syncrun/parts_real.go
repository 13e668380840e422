// The real parts the Manager runs by default.

package syncrun

import (
	"context"
	"errors"

	"github.com/canopy-platform/canopy/services/cdc/internal/apply"
	"github.com/canopy-platform/canopy/services/cdc/internal/cache"
	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
	"github.com/canopy-platform/canopy/services/cdc/internal/verify"
)

func defaultCapture(ctx context.Context, s CaptureSpec, out chan<- change.Batch) error {
	return capture.Run(ctx, capture.Config{Source: s.Source, ServerID: s.ServerID, Prefix: s.Prefix, Include: s.Include,
		Start: s.Start, FromStart: s.FromStart, MaxBatch: s.MaxBatch, Logger: s.Logger,
		Decoded: true, SkipServerID: s.SkipServerID}, out)
}

func defaultLoad(ctx context.Context, s LoadSpec, resume *snapshot.Progress, out chan<- change.Batch) (snapshot.Progress, error) {
	return snapshot.Run(ctx, snapshot.Config{Source: s.Source, Prefix: s.Prefix, Include: s.Include, ChunkSize: s.ChunkSize,
		Logger: s.Logger, Decoded: true}, resume, out)
}

func defaultOpenMySQL(ctx context.Context, t MySQLTarget) (Target, error) {
	return apply.Open(ctx, apply.Config{JobID: t.JobID, Tenant: t.Tenant, From: t.From, To: t.To, Target: t.Target,
		ServerID: t.ServerID, Strategy: t.Strategy, Column: t.Column, SourceFirst: t.SourceFirst, DDL: t.DDL,
		Schema: t.Schema, Conflicts: t.Conflicts, Logger: t.Logger})
}

func defaultOpenRedis(ctx context.Context, t RedisTarget) (Target, error) {
	return cache.Open(ctx, cache.Config{JobID: t.JobID, Tenant: t.Tenant, From: t.From, Addr: t.Addr,
		Username: t.Username, Password: t.Password, KeyPattern: t.KeyPattern, Format: t.Format, TTL: t.TTL,
		ColumnTypes: func(ctx context.Context, schema, table string) (map[string]string, error) {
			db, err := t.SourceDB(ctx)
			if err != nil {
				return nil, err
			}
			return cache.ColumnTypesFrom(db)(ctx, schema, table)
		},
		Logger: t.Logger})
}

func defaultVerify(ctx context.Context, s VerifySpec) (syncjob.Report, error) {
	return verify.Run(ctx, verify.Config{Source: s.Source, Target: s.Target, Tables: s.Tables, TargetDB: s.TargetDB, ChunkSize: s.ChunkSize,
		Parallel: s.Parallel, Settle: s.Settle, Rechecks: s.Rechecks, Repair: s.Repair,
		RepairServerID: s.RepairServerID, Logger: s.Logger})
}

// skippedOf is change.Checkpoint.Skipped.
func skippedOf(cp *change.Checkpoint) int64 { return cp.Skipped }

// newDDLError builds an apply.DDLError (tests).
func newDDLError(stmt string, err error) error { return &apply.DDLError{Statement: stmt, Err: err} }

// errNoPrimaryKey is apply.ErrNoPrimaryKey.
var errNoPrimaryKey = apply.ErrNoPrimaryKey

// applyFailure says whether err is an applier failure no retry fixes.
func applyFailure(err error) (reason string, ok bool) {
	var de *apply.DDLError
	switch {
	case errors.As(err, &de):
		return ddlReason(de.Statement, de.Err), true
	case errors.Is(err, apply.ErrNoPrimaryKey), errors.Is(err, cache.ErrNoPrimaryKey):
		return noKeyReason(err), true
	}
	return "", false
}
