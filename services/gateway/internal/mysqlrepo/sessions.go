package mysqlrepo

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/services/gateway/internal/session"
)

var _ session.Store = (*Repo)(nil)

// CreateSession inserts s.
func (r *Repo) CreateSession(ctx context.Context, s session.Session) error {
	_, err := r.db.ExecContext(ctx, "INSERT INTO sessions (id_hash, key_id, csrf_token, created_at, expires_at) VALUES (?,?,?,?,?)",
		s.IDHash[:], s.KeyID, s.CSRFToken, s.CreatedAt, s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("create session for key %s: %w", s.KeyID, err)
	}
	return nil
}

// SessionByHash returns the session whose id hashes to hash, or
// session.ErrNotFound.
func (r *Repo) SessionByHash(ctx context.Context, hash [sha256.Size]byte) (session.Session, error) {
	s := session.Session{IDHash: hash}
	err := r.db.QueryRowContext(ctx, "SELECT key_id, csrf_token, created_at, expires_at FROM sessions WHERE id_hash = ?", hash[:]).
		Scan(&s.KeyID, &s.CSRFToken, &s.CreatedAt, &s.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return session.Session{}, session.ErrNotFound
	}
	if err != nil {
		return session.Session{}, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// DeleteSession removes the session whose id hashes to hash.
func (r *Repo) DeleteSession(ctx context.Context, hash [sha256.Size]byte) error {
	if _, err := r.db.ExecContext(ctx, "DELETE FROM sessions WHERE id_hash = ?", hash[:]); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes the sessions that expired before now.
func (r *Repo) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := r.db.ExecContext(ctx, "DELETE FROM sessions WHERE expires_at <= ?", now.UTC())
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
