package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ActiveLock makes one process the active one of its kind per database
// (the metering ledger, the alerting engine) while standbys wait: a MySQL
// named lock held by a dedicated session. The lock lives exactly as long as
// that session, so a crashed holder hands over to a standby as soon as the
// server notices its connection is gone.
type ActiveLock struct {
	name string
	conn *sql.Conn
}

// ErrLockLost is Watch's answer when the lock's session stopped answering
// or no longer holds the lock.
var ErrLockLost = errors.New("active lock lost")

// ActiveLockName is the lock of role on this database (<database>.<role>,
// shortened with a hash to MySQL's 64 bytes), so that several databases on
// one server each have their active process.
func (d *DB) ActiveLockName(role string) string { return lockName(d.Name()+".", role) }

// AcquireActive waits until this process holds the named lock, trying
// every retry (each try waits up to a second on the server); it logs once
// that it waits, and returns an error only when ctx ends.
func (d *DB) AcquireActive(ctx context.Context, name string, retry time.Duration, log *slog.Logger) (*ActiveLock, error) {
	logged := false
	for {
		l, err := d.tryActive(ctx, name)
		if err == nil {
			return l, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !logged {
			log.InfoContext(ctx, "waiting for the active lock", slog.String("lock", name), slog.String("reason", err.Error()))
			logged = true
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// tryActive takes a connection and asks for the lock once.
func (d *DB) tryActive(ctx context.Context, name string) (*ActiveLock, error) {
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock connection: %w", err)
	}
	if err := getLock(ctx, conn, name, time.Second); err != nil {
		discard(conn) // a query cut short leaves the session unknown
		return nil, err
	}
	return &ActiveLock{name: name, conn: conn}, nil
}

// Watch checks every interval that the lock's session still holds the
// lock: it returns nil when ctx ends and ErrLockLost (wrapped) once it does
// not, after which the server has released the lock to a standby.
func (l *ActiveLock) Watch(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// Not cancelled with ctx: a query cut short kills the session, and
		// Release should hand the lock over cleanly instead.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		var holder sql.NullInt64
		err := l.conn.QueryRowContext(pctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l.name).Scan(&holder)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("%w: %s: %w", ErrLockLost, l.name, err)
		case !holder.Valid || holder.Int64 != 1:
			return fmt.Errorf("%w: %s is no longer this session's", ErrLockLost, l.name)
		}
	}
}

// Release gives the lock back (if the session still lives) and closes its
// connection, so that a waiting standby takes over at once; a session that
// cannot be released is discarded, never returned to the pool with the
// lock.
func (l *ActiveLock) Release(ctx context.Context) error {
	if err := releaseLock(ctx, l.conn, l.name); err != nil {
		discard(l.conn)
		return err
	}
	return l.conn.Close()
}

// discard closes conn's session instead of returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
