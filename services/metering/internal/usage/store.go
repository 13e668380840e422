// Package usage reads what the ledger stored: usage aggregates per window
// and grouping (GET /api/v1/usage), the meter definitions (and their
// create, delete and the built-ins' upsert), the late events, and which
// tenant an instance belongs to. It writes only meters; the aggregates are
// the ledger's. It knows nothing of HTTP.
package usage

import (
	"context"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/libs/store"
)

// Errors callers branch on.
var (
	// ErrMeterNotFound: no meter has the slug.
	ErrMeterNotFound = errors.New("meter not found")
	// ErrMeterExists: a meter (built in or custom) already has the slug.
	ErrMeterExists = errors.New("meter already exists")
	// ErrBuiltinMeter: built-in meters cannot be deleted.
	ErrBuiltinMeter = errors.New("built-in meter")
)

// QueryError is a usage query the store cannot answer as asked; Field
// names the request parameter at fault ("meter", "window").
type QueryError struct {
	Field, Reason string
}

func (e *QueryError) Error() string { return fmt.Sprintf("usage query: %s: %s", e.Field, e.Reason) }

// Store reads metering's database.
type Store struct {
	db *store.DB
	// noRollups makes Usage read the subject tables only (tests compare
	// the two ways).
	noRollups bool
}

// New returns a store over db (migrated by the caller).
func New(db *store.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("usage store: nil db")
	}
	return &Store{db: db}, nil
}

// InstanceTenant returns the tenant of instance id as the ledger learned
// it from canopy.instances.v1; found is false for an id it never saw.
func (s *Store) InstanceTenant(ctx context.Context, id string) (tenant string, found bool, err error) {
	m, err := s.InstanceTenants(ctx, []string{id})
	if err != nil {
		return "", false, err
	}
	tenant, found = m[id]
	return tenant, found, nil
}

// instanceChunk bounds the ids of one IN list.
const instanceChunk = 500

// InstanceTenants returns the tenant of each of ids that is a known
// instance (absent from the map otherwise), in one query per 500 ids: an
// ingested batch names up to a thousand subjects.
func (s *Store) InstanceTenants(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for start := 0; start < len(ids); start += instanceChunk {
		chunk := ids[start:min(start+instanceChunk, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		q := "SELECT instance_id, tenant_id FROM instances WHERE instance_id IN " + store.Placeholders(len(chunk))
		rows, err := s.db.SQL().QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("read tenants of %d instances: %w", len(chunk), err)
		}
		for rows.Next() {
			var id, tenant string
			if err := rows.Scan(&id, &tenant); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read tenants of %d instances: %w", len(chunk), err)
			}
			out[id] = tenant
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read tenants of %d instances: %w", len(chunk), err)
		}
	}
	return out, nil
}
