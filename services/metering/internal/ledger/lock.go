package ledger

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

// maxLockName is the server's limit on lock names.
const maxLockName = 64

// lockName is the ledger lock of database db, shortened with a hash when
// the name would be too long.
func lockName(db string) string {
	name := db + ".ledger"
	if len(name) <= maxLockName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:8])
	return name[:maxLockName-len(h)-1] + "_" + h
}

// lockConn is the dedicated connection whose session holds the ledger lock:
// the lock lives exactly as long as that session.
type lockConn struct {
	conn *sql.Conn
}

// acquire waits until this process holds the ledger lock, trying every
// lockRetry; it returns an error only when ctx ends.
func (l *Ledger) acquire(ctx context.Context) (*lockConn, error) {
	logged := false
	for {
		conn, err := l.tryLock(ctx)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !logged {
			l.log.InfoContext(ctx, "waiting for the ledger lock", slog.String("reason", err.Error()))
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(l.lockRetry):
		}
	}
}

// tryLock takes a connection and asks for the lock, waiting at most a second
// on the server.
func (l *Ledger) tryLock(ctx context.Context) (*lockConn, error) {
	conn, err := l.db.SQL().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock connection: %w", err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 1)", l.lock).Scan(&got); err != nil {
		discard(conn)
		return nil, fmt.Errorf("get lock %s: %w", l.lock, err)
	}
	if !got.Valid || got.Int64 != 1 {
		_ = conn.Close()
		return nil, fmt.Errorf("lock %s is held by another ledger", l.lock)
	}
	return &lockConn{conn: conn}, nil
}

// watchLock returns when ctx ends or the lock's session stops answering
// (the server then has released the lock, and another ledger may take it).
func (l *Ledger) watchLock(ctx context.Context, lock *lockConn) {
	t := time.NewTicker(l.lockCheck)
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
		err := lock.conn.QueryRowContext(pctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l.lock).Scan(&holder)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil || !holder.Valid || holder.Int64 != 1 {
			l.log.ErrorContext(ctx, "ledger lock lost", slog.Any("err", err))
			return
		}
	}
}

// release gives the lock back (if the session still lives) and closes its
// connection, so a waiting ledger takes over at once.
func (l *Ledger) release(ctx context.Context, lock *lockConn) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := lock.conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", l.lock); err != nil {
		l.log.WarnContext(ctx, "release ledger lock", slog.Any("err", err))
		// Never return the session, lock and all, to the pool.
		discard(lock.conn)
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
