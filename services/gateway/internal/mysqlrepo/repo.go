// Package mysqlrepo stores the gateway's tenants, API keys, audit log and
// idempotency records in MySQL (database canopy_gateway). Tenant-owned rows
// are read and changed through tenancy.Scope, so a query without a tenant in
// the context fails instead of reaching another tenant's rows. The only
// unscoped key lookup is KeyByID, which authentication needs.
package mysqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/apikey"
	"github.com/canopy-platform/canopy/services/gateway/internal/audit"
	"github.com/canopy-platform/canopy/services/gateway/internal/tenant"
)

// Repo is the gateway's MySQL repository.
type Repo struct {
	db *sql.DB
}

// New returns a Repo on db.
func New(db *store.DB) (*Repo, error) {
	if db == nil {
		return nil, errors.New("new gateway repo: nil db")
	}
	return &Repo{db: db.SQL()}, nil
}

var (
	_ apikey.Store      = (*Repo)(nil)
	_ audit.Store       = (*Repo)(nil)
	_ idempotency.Store = (*Repo)(nil)
)

const errDuplicate = 1062

func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == errDuplicate
}

// --- tenants ---

const tenantCols = "id, name, rate_limit_rps, rate_limit_burst, max_instances, max_vcpu, max_memory_mb, max_storage_gb, created_at"

func scanTenant(row interface{ Scan(...any) error }) (tenant.Tenant, error) {
	var t tenant.Tenant
	var id string
	err := row.Scan(&id, &t.Name, &t.RateLimit.RPS, &t.RateLimit.Burst, &t.Quota.MaxInstances, &t.Quota.MaxVCPU,
		&t.Quota.MaxMemoryMB, &t.Quota.MaxStorageGB, &t.CreatedAt)
	t.ID = tenancy.ID(id)
	return t, err
}

// CreateTenant inserts t, or returns tenant.ErrExists.
func (r *Repo) CreateTenant(ctx context.Context, t tenant.Tenant) error {
	_, err := r.db.ExecContext(ctx, "INSERT INTO tenants ("+tenantCols+", updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
		string(t.ID), t.Name, t.RateLimit.RPS, t.RateLimit.Burst, t.Quota.MaxInstances, t.Quota.MaxVCPU,
		t.Quota.MaxMemoryMB, t.Quota.MaxStorageGB, t.CreatedAt, t.CreatedAt)
	if isDuplicate(err) {
		return fmt.Errorf("create tenant %s: %w", t.ID, tenant.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	return nil
}

// Tenant returns the tenant in ctx (tenancy.Scope), or tenant.ErrNotFound.
func (r *Repo) Tenant(ctx context.Context) (tenant.Tenant, error) {
	clause, arg, err := tenancy.ScopeColumn(ctx, "id")
	if err != nil {
		return tenant.Tenant{}, fmt.Errorf("get tenant: %w", err)
	}
	t, err := scanTenant(r.db.QueryRowContext(ctx, "SELECT "+tenantCols+" FROM tenants WHERE "+clause, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return tenant.Tenant{}, fmt.Errorf("get tenant %v: %w", arg, tenant.ErrNotFound)
	}
	if err != nil {
		return tenant.Tenant{}, fmt.Errorf("get tenant %v: %w", arg, err)
	}
	return t, nil
}

// ListTenants returns up to limit tenants with ids after after, in id order.
// Only platform operators list across tenants.
func (r *Repo) ListTenants(ctx context.Context, after string, limit int) ([]tenant.Tenant, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT "+tenantCols+" FROM tenants WHERE id > ? ORDER BY id LIMIT ?", after, limit)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []tenant.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// SetQuota replaces the quota of the tenant in ctx.
func (r *Repo) SetQuota(ctx context.Context, q tenancy.Quota, now time.Time) error {
	return r.updateTenant(ctx, "set quota",
		"max_instances = ?, max_vcpu = ?, max_memory_mb = ?, max_storage_gb = ?, updated_at = ?",
		q.MaxInstances, q.MaxVCPU, q.MaxMemoryMB, q.MaxStorageGB, now)
}

// SetRateLimit replaces the rate limit of the tenant in ctx.
func (r *Repo) SetRateLimit(ctx context.Context, rl tenant.RateLimit, now time.Time) error {
	return r.updateTenant(ctx, "set rate limit", "rate_limit_rps = ?, rate_limit_burst = ?, updated_at = ?", rl.RPS, rl.Burst, now)
}

func (r *Repo) updateTenant(ctx context.Context, what, set string, args ...any) error {
	clause, arg, err := tenancy.ScopeColumn(ctx, "id")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	res, err := r.db.ExecContext(ctx, "UPDATE tenants SET "+set+" WHERE "+clause, append(args, arg)...)
	if err != nil {
		return fmt.Errorf("%s for %v: %w", what, arg, err)
	}
	// With CLIENT_FOUND_ROWS off, an update to equal values affects 0 rows; check existence then.
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := r.Tenant(ctx); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// --- api keys ---

const keyCols = "id, tenant_id, role, name, secret_hash, bootstrap, created_at, last_used_at, revoked_at"

func scanKey(row interface{ Scan(...any) error }) (apikey.Key, error) {
	var k apikey.Key
	var tenantID sql.NullString
	var role string
	var hash []byte
	var lastUsed, revoked sql.NullTime
	if err := row.Scan(&k.ID, &tenantID, &role, &k.Name, &hash, &k.Bootstrap, &k.CreatedAt, &lastUsed, &revoked); err != nil {
		return k, err
	}
	k.Tenant = tenancy.ID(tenantID.String)
	k.Role = tenancy.Role(role)
	copy(k.Hash[:], hash)
	if lastUsed.Valid {
		t := lastUsed.Time
		k.LastUsedAt = &t
	}
	if revoked.Valid {
		t := revoked.Time
		k.RevokedAt = &t
	}
	return k, nil
}

func nullTenant(id tenancy.ID) sql.NullString {
	return sql.NullString{String: string(id), Valid: id != ""}
}

// CreateKey inserts k for the tenant in ctx (k.Tenant must match it).
func (r *Repo) CreateKey(ctx context.Context, k apikey.Key) error {
	id, err := tenancy.Require(ctx)
	if err != nil || id != k.Tenant {
		return fmt.Errorf("create api key: tenant mismatch: %w", tenancy.ErrNoTenant)
	}
	return r.insertKey(ctx, k)
}

func (r *Repo) insertKey(ctx context.Context, k apikey.Key) error {
	_, err := r.db.ExecContext(ctx, "INSERT INTO api_keys ("+keyCols+") VALUES (?,?,?,?,?,?,?,?,?)",
		k.ID, nullTenant(k.Tenant), string(k.Role), k.Name, k.Hash[:], k.Bootstrap, k.CreatedAt, nil, nil)
	if err != nil {
		return fmt.Errorf("insert api key %s: %w", k.ID, err)
	}
	return nil
}

// Keys lists the keys of the tenant in ctx with ids after after, in id (creation) order.
func (r *Repo) Keys(ctx context.Context, after string, limit int) ([]apikey.Key, error) {
	clause, arg, err := tenancy.Scope(ctx)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	rows, err := r.db.QueryContext(ctx, "SELECT "+keyCols+" FROM api_keys WHERE "+clause+" AND id > ? ORDER BY id LIMIT ?", arg, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list api keys of %v: %w", arg, err)
	}
	defer rows.Close()
	var out []apikey.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys of %v: %w", arg, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api keys of %v: %w", arg, err)
	}
	return out, nil
}

// Key returns key id of the tenant in ctx, or apikey.ErrNotFound.
func (r *Repo) Key(ctx context.Context, id string) (apikey.Key, error) {
	clause, arg, err := tenancy.Scope(ctx)
	if err != nil {
		return apikey.Key{}, fmt.Errorf("get api key: %w", err)
	}
	k, err := scanKey(r.db.QueryRowContext(ctx, "SELECT "+keyCols+" FROM api_keys WHERE "+clause+" AND id = ?", arg, id))
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.Key{}, fmt.Errorf("get api key %s: %w", id, apikey.ErrNotFound)
	}
	if err != nil {
		return apikey.Key{}, fmt.Errorf("get api key %s: %w", id, err)
	}
	return k, nil
}

// RevokeKey marks key id of the tenant in ctx revoked (idempotent) and returns it.
func (r *Repo) RevokeKey(ctx context.Context, id string, now time.Time) (apikey.Key, error) {
	clause, arg, err := tenancy.Scope(ctx)
	if err != nil {
		return apikey.Key{}, fmt.Errorf("revoke api key: %w", err)
	}
	if _, err := r.db.ExecContext(ctx, "UPDATE api_keys SET revoked_at = ? WHERE "+clause+" AND id = ? AND revoked_at IS NULL", now, arg, id); err != nil {
		return apikey.Key{}, fmt.Errorf("revoke api key %s: %w", id, err)
	}
	return r.Key(ctx, id)
}

// KeyByID returns any key by id, for authentication.
func (r *Repo) KeyByID(ctx context.Context, id string) (apikey.Key, error) {
	k, err := scanKey(r.db.QueryRowContext(ctx, "SELECT "+keyCols+" FROM api_keys WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.Key{}, apikey.ErrNotFound
	}
	if err != nil {
		return apikey.Key{}, fmt.Errorf("get api key %s: %w", id, err)
	}
	return k, nil
}

// TouchKeys sets last_used_at for many keys in one statement.
func (r *Repo) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	var b strings.Builder
	args := make([]any, 0, len(used)*3)
	b.WriteString("UPDATE api_keys SET last_used_at = GREATEST(COALESCE(last_used_at, '1970-01-01'), CASE id")
	ids := make([]any, 0, len(used))
	for id, t := range used {
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, id, t)
		ids = append(ids, id)
	}
	b.WriteString(" END) WHERE id IN (?" + strings.Repeat(",?", len(ids)-1) + ")")
	if _, err := r.db.ExecContext(ctx, b.String(), append(args, ids...)...); err != nil {
		return fmt.Errorf("touch %d api keys: %w", len(used), err)
	}
	return nil
}

// HasBootstrapKey reports whether an unrevoked bootstrap key exists.
func (r *Repo) HasBootstrapKey(ctx context.Context) (bool, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM api_keys WHERE bootstrap AND revoked_at IS NULL").Scan(&n); err != nil {
		return false, fmt.Errorf("find bootstrap key: %w", err)
	}
	return n > 0, nil
}

// PutBootstrapKey makes k the only valid bootstrap key: it inserts or
// replaces k and revokes every other bootstrap key, in one transaction.
func (r *Repo) PutBootstrapKey(ctx context.Context, k apikey.Key, now time.Time) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put bootstrap key: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "UPDATE api_keys SET revoked_at = ? WHERE bootstrap AND id <> ? AND revoked_at IS NULL", now, k.ID); err != nil {
		return fmt.Errorf("put bootstrap key: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO api_keys ("+keyCols+") VALUES (?,NULL,?,?,?,TRUE,?,NULL,NULL) "+
		"ON DUPLICATE KEY UPDATE secret_hash = VALUES(secret_hash), role = VALUES(role), tenant_id = NULL, bootstrap = TRUE, revoked_at = NULL",
		k.ID, string(k.Role), k.Name, k.Hash[:], k.CreatedAt); err != nil {
		return fmt.Errorf("put bootstrap key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put bootstrap key: %w", err)
	}
	return nil
}

// --- audit ---

// InsertAudit appends e.
func (r *Repo) InsertAudit(ctx context.Context, e audit.Entry) error {
	_, err := r.db.ExecContext(ctx, "INSERT INTO audit_log (at, key_id, tenant_id, role, method, path, status, request_id) VALUES (?,?,?,?,?,?,?,?)",
		e.At, e.KeyID, nullTenant(e.Tenant), string(e.Role), e.Method, e.Path, e.Status, e.RequestID)
	if err != nil {
		return fmt.Errorf("insert audit entry: %w", err)
	}
	return nil
}

// ListAudit returns up to limit entries older than before (0: newest first
// from the end), optionally only of one tenant.
func (r *Repo) ListAudit(ctx context.Context, tenantID tenancy.ID, before uint64, limit int) ([]audit.Entry, error) {
	q := "SELECT id, at, key_id, tenant_id, role, method, path, status, request_id FROM audit_log WHERE 1=1"
	var args []any
	if tenantID != "" {
		q += " AND tenant_id = ?"
		args = append(args, string(tenantID))
	}
	if before > 0 {
		q += " AND id < ?"
		args = append(args, before)
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var tid sql.NullString
		var role string
		if err := rows.Scan(&e.ID, &e.At, &e.KeyID, &tid, &role, &e.Method, &e.Path, &e.Status, &e.RequestID); err != nil {
			return nil, fmt.Errorf("list audit log: %w", err)
		}
		e.Tenant, e.Role = tenancy.ID(tid.String), tenancy.Role(role)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	return out, nil
}

// --- idempotency ---

// Begin implements idempotency.Store.
func (r *Repo) Begin(ctx context.Context, subject, key string, hash idempotency.Hash, now, notBefore time.Time) (idempotency.Record, bool, error) {
	if _, err := r.db.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE subject = ? AND idem_key = ? AND created_at < ?", subject, key, notBefore); err != nil {
		return idempotency.Record{}, false, fmt.Errorf("begin idempotent request: %w", err)
	}
	_, err := r.db.ExecContext(ctx, "INSERT INTO idempotency_keys (subject, idem_key, request_hash, created_at) VALUES (?,?,?,?)", subject, key, hash[:], now)
	if err == nil {
		return idempotency.Record{RequestHash: hash}, true, nil
	}
	if !isDuplicate(err) {
		return idempotency.Record{}, false, fmt.Errorf("begin idempotent request: %w", err)
	}
	var rec idempotency.Record
	var h []byte
	err = r.db.QueryRowContext(ctx, "SELECT request_hash, status, content_type, body FROM idempotency_keys WHERE subject = ? AND idem_key = ?", subject, key).
		Scan(&h, &rec.Status, &rec.ContentType, &rec.Body)
	if err != nil {
		return idempotency.Record{}, false, fmt.Errorf("read idempotent request: %w", err)
	}
	copy(rec.RequestHash[:], h)
	return rec, false, nil
}

// Complete implements idempotency.Store.
func (r *Repo) Complete(ctx context.Context, subject, key string, status int, contentType string, body []byte) error {
	if _, err := r.db.ExecContext(ctx, "UPDATE idempotency_keys SET status = ?, content_type = ?, body = ? WHERE subject = ? AND idem_key = ?",
		status, contentType, body, subject, key); err != nil {
		return fmt.Errorf("complete idempotent request: %w", err)
	}
	return nil
}

// Abort implements idempotency.Store.
func (r *Repo) Abort(ctx context.Context, subject, key string) error {
	if _, err := r.db.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE subject = ? AND idem_key = ? AND status = 0", subject, key); err != nil {
		return fmt.Errorf("abort idempotent request: %w", err)
	}
	return nil
}

// PurgeIdempotency deletes records created before cutoff.
func (r *Repo) PurgeIdempotency(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := r.db.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE created_at < ? LIMIT 10000", cutoff)
	if err != nil {
		return 0, fmt.Errorf("purge idempotency records: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
