package mysqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// Saga leases (table saga_leases): a replica drives an instance only while
// it holds the instance's lease. Expiry is measured in the database's clock
// (NOW(6)), so replicas' clocks never have to agree; the holder stops on its
// own clock before the database would hand the lease over (see the saga).

// AcquireLease gives owner the lease of instance id for ttl when it is free
// (never taken, released or expired) or already owner's, with a token one
// higher than any before. A lease another owner holds fails with a
// *port.LeaseHeldError saying for how long.
func (r *Repo) AcquireLease(ctx context.Context, id, owner string, ttl time.Duration) (port.Lease, error) {
	l, err := r.acquireLease(ctx, id, owner, ttl)
	if errors.Is(err, errNoLease) {
		// A first lease: the row is made free on its own (outside the
		// transaction, whose gap locks would make racers deadlock), then
		// taken like any other.
		if _, err = r.db.SQL().ExecContext(ctx, "INSERT IGNORE INTO saga_leases (instance_id, owner, token, expires_at) VALUES (?, '', 0, NOW(6))", id); err == nil {
			l, err = r.acquireLease(ctx, id, owner, ttl)
		}
	}
	if err != nil {
		return port.Lease{}, fmt.Errorf("acquire saga lease of %s: %w", id, err)
	}
	return l, nil
}

// errNoLease: the instance has no saga_leases row yet.
var errNoLease = errors.New("no saga lease row")

func (r *Repo) acquireLease(ctx context.Context, id, owner string, ttl time.Duration) (port.Lease, error) {
	var out port.Lease
	err := r.db.TxRetry(ctx, func(tx *store.Tx) error {
		var (
			prev      string
			token     int64
			remaining int64
		)
		err := tx.QueryRowContext(ctx, "SELECT owner, token, TIMESTAMPDIFF(MICROSECOND, NOW(6), expires_at) FROM saga_leases WHERE instance_id = ? FOR UPDATE", id).
			Scan(&prev, &token, &remaining)
		if errors.Is(err, sql.ErrNoRows) {
			return errNoLease
		}
		if err != nil {
			return fmt.Errorf("read saga lease: %w", err)
		}
		if remaining > 0 && prev != owner {
			return &port.LeaseHeldError{Instance: id, Owner: prev, Remaining: time.Duration(remaining) * time.Microsecond}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE saga_leases SET owner = ?, token = token + 1, expires_at = NOW(6) + INTERVAL ? MICROSECOND WHERE instance_id = ?",
			owner, ttl.Microseconds(), id); err != nil {
			return fmt.Errorf("take saga lease: %w", err)
		}
		out = port.Lease{Instance: id, Owner: owner, Token: token + 1, Previous: prev}
		return nil
	})
	return out, err
}

// RenewLease extends l by ttl from now; port.ErrLeaseLost when a newer
// token exists or the lease is no longer l's owner's.
func (r *Repo) RenewLease(ctx context.Context, l port.Lease, ttl time.Duration) error {
	res, err := r.db.SQL().ExecContext(ctx, "UPDATE saga_leases SET expires_at = NOW(6) + INTERVAL ? MICROSECOND WHERE instance_id = ? AND owner = ? AND token = ?",
		ttl.Microseconds(), l.Instance, l.Owner, l.Token)
	if err != nil {
		return fmt.Errorf("renew saga lease of %s: %w", l.Instance, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("renew saga lease of %s (token %d): %w", l.Instance, l.Token, port.ErrLeaseLost)
	}
	return nil
}

// ReleaseLease frees l at once (it expires now), so that another replica
// can take the instance without waiting; a lease already taken over is
// left alone.
func (r *Repo) ReleaseLease(ctx context.Context, l port.Lease) error {
	if _, err := r.db.SQL().ExecContext(ctx, "UPDATE saga_leases SET expires_at = NOW(6) WHERE instance_id = ? AND owner = ? AND token = ?",
		l.Instance, l.Owner, l.Token); err != nil {
		return fmt.Errorf("release saga lease of %s: %w", l.Instance, err)
	}
	return nil
}

// checkFence refuses a write that carries a fencing token (port.WithFence)
// older than instance id's lease. The lease row is read in share mode, so an
// acquisition that would bump the token waits for this transaction: the
// write either lands before the takeover or is refused after it.
func checkFence(ctx context.Context, tx *store.Tx, id string) error {
	f, ok := port.FenceOf(ctx, id)
	if !ok {
		return nil
	}
	var token int64
	err := tx.QueryRowContext(ctx, "SELECT token FROM saga_leases WHERE instance_id = ? LOCK IN SHARE MODE", id).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("instance %s has no saga lease (write with token %d): %w", id, f.Token, port.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("read saga lease: %w", err)
	}
	if token != f.Token {
		return fmt.Errorf("instance %s: lease token %d, write carries %d: %w", id, token, f.Token, port.ErrFenced)
	}
	return nil
}
