package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// maxLockName is MySQL's limit on GET_LOCK names.
const maxLockName = 64

// lockName returns prefix+name, shortened with a hash when it would exceed
// the server's limit on lock names.
func lockName(prefix, name string) string {
	full := prefix + name
	if len(full) <= maxLockName {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	h := hex.EncodeToString(sum[:8])
	return full[:maxLockName-len(h)-1] + "_" + h
}

// errLockTimeout is returned by getLock when the server-side wait ran out.
var errLockTimeout = errors.New("timed out waiting for lock")

// getLock takes the named lock on conn, waiting up to wait on the server.
// The lock belongs to conn's session: it is released by releaseLock or when
// the connection closes.
func getLock(ctx context.Context, conn *sql.Conn, name string, wait time.Duration) error {
	secs := int64(wait / time.Second)
	if secs < 1 {
		secs = 1
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, secs).Scan(&got); err != nil {
		return fmt.Errorf("get lock %s: %w", name, err)
	}
	switch {
	case !got.Valid:
		return fmt.Errorf("get lock %s: server returned NULL", name)
	case got.Int64 != 1:
		return fmt.Errorf("get lock %s: %w after %ds", name, errLockTimeout, secs)
	}
	return nil
}

// releaseLock releases the named lock held by conn's session. It uses a
// context detached from ctx's cancellation so a shutting-down caller still
// hands the lock over promptly.
func releaseLock(ctx context.Context, conn *sql.Conn, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", name); err != nil {
		return fmt.Errorf("release lock %s: %w", name, err)
	}
	return nil
}
