// Package redissnap takes and checks Redis RDB snapshots on a node's host:
// BGSAVE (on a replica when there is one), waiting for it to finish, and
// the dump file read from the node's directory; and a scratch
// redis-server that loads a snapshot to count its keys.
package redissnap

import (
	"context"
	"io"
	"time"
)

// Source is the node a snapshot is taken from.
type Source struct {
	Address  string
	DataDir  string
	User     string
	Password string
}

// Result is what a snapshot reported.
type Result struct {
	// Offset is master_repl_offset when the snapshot finished.
	Offset       int64
	DataBytes    int64
	ConsistentAt time.Time
	Keys         int64
}

// Snapshot runs BGSAVE on src, waits for it (a BGSAVE already in progress
// is waited for and followed by ours) and copies the RDB file into w.
func Snapshot(ctx context.Context, src Source, w io.Writer) (Result, error) { panic("contract") }

// Inspect starts a scratch redis-server (no TCP, a unix socket under
// scratchDir) on the RDB file at path and returns its key count; an RDB
// that does not load is an error.
func Inspect(ctx context.Context, redisServer, scratchDir, path string) (keys int64, err error) {
	panic("contract")
}
