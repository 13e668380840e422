package mysqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
)

const credentialColumns = "id, username, password_hash, name, tenant, created_by, created_at, revoked_at"

// CreateCredential stores c; when idem is not nil the response is stored
// under its key in the same transaction.
func (r *Repo) CreateCredential(ctx context.Context, c brokercred.Credential, idem *IdempotentResponse) error {
	err := r.db.Tx(ctx, func(tx *store.Tx) error {
		if idem != nil {
			if err := saveIdempotent(ctx, tx, *idem, r.now()); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx,
			"INSERT INTO broker_credentials (id, username, password_hash, name, tenant, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
			c.ID, c.Username, c.PasswordHash, c.Name, string(c.Tenant), c.CreatedBy, c.CreatedAt)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create broker credential %s: %w", c.Name, err)
	}
	return nil
}

func scanCredential(row rowScanner) (brokercred.Credential, error) {
	var (
		c       brokercred.Credential
		tenant  string
		revoked sql.NullTime
	)
	if err := row.Scan(&c.ID, &c.Username, &c.PasswordHash, &c.Name, &tenant, &c.CreatedBy, &c.CreatedAt, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return brokercred.Credential{}, ErrNotFound
		}
		return brokercred.Credential{}, fmt.Errorf("read broker credential: %w", err)
	}
	c.Tenant = tenancy.ID(tenant)
	if revoked.Valid {
		t := revoked.Time.UTC()
		c.RevokedAt = &t
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// GetCredential returns credential id (revoked or not).
func (r *Repo) GetCredential(ctx context.Context, id string) (brokercred.Credential, error) {
	c, err := scanCredential(r.db.SQL().QueryRowContext(ctx, "SELECT "+credentialColumns+" FROM broker_credentials WHERE id = ?", id))
	if err != nil {
		return brokercred.Credential{}, fmt.Errorf("get broker credential %s: %w", id, err)
	}
	return c, nil
}

// CredentialByUsername returns the credential with username (revoked or not).
func (r *Repo) CredentialByUsername(ctx context.Context, username string) (brokercred.Credential, error) {
	c, err := scanCredential(r.db.SQL().QueryRowContext(ctx, "SELECT "+credentialColumns+" FROM broker_credentials WHERE username = ?", username))
	if err != nil {
		return brokercred.Credential{}, fmt.Errorf("get broker credential by username: %w", err)
	}
	return c, nil
}

// CredentialCursor is the position after which ListCredentials continues.
type CredentialCursor struct {
	CreatedAt time.Time
	ID        string
}

// ListCredentials returns up to limit credentials (revoked ones included) in
// creation order, after the cursor when it is not nil.
func (r *Repo) ListCredentials(ctx context.Context, after *CredentialCursor, limit int) ([]brokercred.Credential, error) {
	query := "SELECT " + credentialColumns + " FROM broker_credentials"
	var args []any
	if after != nil {
		query += " WHERE (created_at, id) > (?, ?)"
		args = append(args, after.CreatedAt.UTC(), after.ID)
	}
	query += " ORDER BY created_at, id LIMIT ?"
	args = append(args, limit)
	rows, err := r.db.SQL().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list broker credentials: %w", err)
	}
	defer rows.Close()
	var out []brokercred.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("list broker credentials: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list broker credentials: %w", err)
	}
	return out, nil
}

// RevokeCredential marks credential id revoked at now; revoking a revoked
// credential is a no-op. It returns ErrNotFound for an unknown id.
func (r *Repo) RevokeCredential(ctx context.Context, id string, now time.Time) error {
	res, err := r.db.SQL().ExecContext(ctx,
		"UPDATE broker_credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", now.UTC(), id)
	if err != nil {
		return fmt.Errorf("revoke broker credential %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		if _, err := r.GetCredential(ctx, id); err != nil {
			return fmt.Errorf("revoke broker credential: %w", err)
		}
	}
	return nil
}
