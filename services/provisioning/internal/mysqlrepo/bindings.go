package mysqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// CreateBinding stores a binding (its password sealed) and emits events.
// A binding whose OSB id exists already is an ErrDuplicate; the existing
// binding is returned.
func (r *Repo) CreateBinding(ctx context.Context, b instance.Binding, events []Outgoing) (instance.Binding, error) {
	var out instance.Binding
	err := r.db.Tx(ctx, func(tx *store.Tx) error {
		if b.OSBID != "" {
			existing, err := r.binding(ctx, tx.Tx, b.Tenant, b.InstanceID, "osb_id = ?", b.OSBID)
			if err == nil {
				out = existing
				return ErrDuplicate
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		sealed, err := r.box.Seal([]byte(b.Credentials.Password), []byte("binding:"+b.ID))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO bindings (id, instance_id, tenant, name, osb_id, request_hash, username, secret, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, b.ID, b.InstanceID, b.Tenant, b.Name, nullable(b.OSBID), b.RequestHash, b.Credentials.Username, sealed, b.CreatedAt.UTC())
		if isDuplicateKey(err, "bindings_instance_live_name") {
			return fmt.Errorf("%w: %s", ErrBindingNameTaken, b.Name)
		}
		if b.OSBID != "" && isDuplicateKey(err, "bindings_instance_osb") {
			// A concurrent bind with the same OSB id committed first.
			return errOSBBindingRace
		}
		if err != nil {
			return fmt.Errorf("insert binding: %w", err)
		}
		out = b
		return emit(ctx, tx, b.Tenant, events)
	})
	if errors.Is(err, ErrDuplicate) {
		return out, ErrDuplicate
	}
	if errors.Is(err, errOSBBindingRace) {
		// Read outside the failed transaction: its snapshot predates the winner.
		existing, lerr := r.BindingByOSBID(ctx, b.Tenant, b.InstanceID, b.OSBID)
		if lerr != nil {
			return instance.Binding{}, fmt.Errorf("create binding %s: %w", b.ID, lerr)
		}
		return existing, ErrDuplicate
	}
	if err != nil {
		return instance.Binding{}, fmt.Errorf("create binding %s: %w", b.ID, err)
	}
	return out, nil
}

// errOSBBindingRace: the insert lost to a concurrent bind with the same OSB id.
var errOSBBindingRace = errors.New("binding with this OSB id created concurrently")

// Binding returns a binding of the tenant's instance by id.
func (r *Repo) Binding(ctx context.Context, tenant, instanceID, id string) (instance.Binding, error) {
	return r.binding(ctx, r.db.SQL(), tenant, instanceID, "id = ?", id)
}

// BindingByOSBID returns a binding of the tenant's instance by OSB binding id.
func (r *Repo) BindingByOSBID(ctx context.Context, tenant, instanceID, osbID string) (instance.Binding, error) {
	return r.binding(ctx, r.db.SQL(), tenant, instanceID, "osb_id = ?", osbID)
}

func (r *Repo) binding(ctx context.Context, q querier, tenant, instanceID, where, arg string) (instance.Binding, error) {
	var b instance.Binding
	if err := needTenant(tenant, "binding "+arg); err != nil {
		return b, err
	}
	var osb sql.NullString
	var sealed []byte
	err := q.QueryRowContext(ctx, `SELECT id, instance_id, tenant, name, osb_id, request_hash, username, secret, deleted, created_at
		FROM bindings WHERE tenant = ? AND instance_id = ? AND `+where, tenant, instanceID, arg).
		Scan(&b.ID, &b.InstanceID, &b.Tenant, &b.Name, &osb, &b.RequestHash, &b.Credentials.Username, &sealed, &b.Deleted, &b.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("binding %s: %w", arg, ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("load binding %s: %w", arg, err)
	}
	b.OSBID = osb.String
	pw, err := r.box.Open(sealed, []byte("binding:"+b.ID))
	if err != nil {
		return b, fmt.Errorf("open binding %s: %w", b.ID, err)
	}
	b.Credentials.Password = string(pw)
	b.CreatedAt = b.CreatedAt.UTC()
	return b, nil
}

// Bindings lists an instance's active bindings.
func (r *Repo) Bindings(ctx context.Context, tenant, instanceID string) ([]instance.Binding, error) {
	if err := needTenant(tenant, "list bindings"); err != nil {
		return nil, err
	}
	rows, err := r.db.SQL().QueryContext(ctx, `SELECT id FROM bindings WHERE tenant = ? AND instance_id = ? AND NOT deleted ORDER BY id`, tenant, instanceID)
	if err != nil {
		return nil, fmt.Errorf("list bindings: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	out := make([]instance.Binding, 0, len(ids))
	for _, id := range ids {
		b, err := r.Binding(ctx, tenant, instanceID, id)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// DeleteBinding marks a binding deleted and emits events.
func (r *Repo) DeleteBinding(ctx context.Context, b instance.Binding, events []Outgoing) error {
	return r.db.Tx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE bindings SET deleted = TRUE, deleted_at = ? WHERE id = ? AND NOT deleted", now(), b.ID)
		if err != nil {
			return fmt.Errorf("delete binding %s: %w", b.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return emit(ctx, tx, b.Tenant, events)
	})
}

// DeleteBindings marks every binding of an instance deleted (the instance
// is gone, and its users with it).
func (r *Repo) DeleteBindings(ctx context.Context, instanceID string) error {
	if _, err := r.db.SQL().ExecContext(ctx, "UPDATE bindings SET deleted = TRUE, deleted_at = ? WHERE instance_id = ? AND NOT deleted", now(), instanceID); err != nil {
		return fmt.Errorf("delete bindings of %s: %w", instanceID, err)
	}
	return nil
}
