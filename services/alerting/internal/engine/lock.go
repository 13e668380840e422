package engine

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"
)

// maxLockName is MySQL's limit on GET_LOCK names.
const maxLockName = 64

// lockName is the engine lock of database db, shortened with a hash when
// the name would be too long.
func lockName(db string) string {
	name := db + ".alerting.engine"
	if len(name) <= maxLockName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:8])
	return name[:maxLockName-len(h)-1] + "_" + h
}

// lockConn is the dedicated connection whose session holds the engine
// lock: the lock lives exactly as long as that session, so a crashed engine
// hands over to a standby as soon as the server notices.
type lockConn struct {
	conn *sql.Conn
}

// acquire waits until this engine holds the lock, trying every lockRetry;
// it returns an error only when ctx ends.
func (e *Engine) acquire(ctx context.Context) (*lockConn, error) {
	logged := false
	for {
		conn, err := e.tryLock(ctx)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !logged {
			e.log.InfoContext(ctx, "waiting for the alerting engine lock", slog.String("reason", err.Error()))
			logged = true
		}
		t := time.NewTimer(lockRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// tryLock takes a connection and asks for the lock, waiting at most a
// second on the server.
func (e *Engine) tryLock(ctx context.Context) (*lockConn, error) {
	conn, err := e.db.SQL().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock connection: %w", err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 1)", e.cfg.LockName).Scan(&got); err != nil {
		discard(conn)
		return nil, fmt.Errorf("get lock %s: %w", e.cfg.LockName, err)
	}
	if !got.Valid || got.Int64 != 1 {
		_ = conn.Close()
		return nil, fmt.Errorf("lock %s is held by another engine", e.cfg.LockName)
	}
	return &lockConn{conn: conn}, nil
}

// watchLock returns when ctx ends or the lock's session stops answering
// (the server has then released the lock, and a standby may take it).
func (e *Engine) watchLock(ctx context.Context, lock *lockConn) {
	t := time.NewTicker(lockCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Not cancelled with ctx: a query cut short kills the session, and
		// release should hand the lock over cleanly instead.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		var holder sql.NullInt64
		err := lock.conn.QueryRowContext(pctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", e.cfg.LockName).Scan(&holder)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil || !holder.Valid || holder.Int64 != 1 {
			e.log.ErrorContext(ctx, "alerting engine lock lost", slog.Any("err", err))
			return
		}
	}
}

// release gives the lock back (if the session still lives) and closes its
// connection, so a waiting engine takes over at once.
func (e *Engine) release(ctx context.Context, lock *lockConn) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := lock.conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", e.cfg.LockName); err != nil {
		e.log.WarnContext(ctx, "release alerting engine lock", slog.Any("err", err))
		discard(lock.conn) // never return the session, lock and all, to the pool
		return
	}
	_ = lock.conn.Close()
}

// discard closes conn's session instead of returning it to the pool (it
// may hold the lock, or be in an unknown state).
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
