package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// instanceCache is what the ledger knows of instances (tenant, plan,
// region), for keying samples, CDC usage and ingested events. The instances
// table is the truth: only the active ledger writes it, and the cache is
// emptied whenever this process becomes active.
type instanceCache struct {
	mu sync.Mutex
	m  map[string]meter.InstanceInfo
}

func newInstanceCache() *instanceCache {
	return &instanceCache{m: map[string]meter.InstanceInfo{}}
}

func (c *instanceCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// set records an instance as a committed transaction wrote it.
func (c *instanceCache) set(id string, info meter.InstanceInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[id] = info
}

// fill records instances as read from the table, never overwriting what a
// commit set (a reader's snapshot may predate that commit).
func (c *instanceCache) fill(found map[string]meter.InstanceInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, info := range found {
		if _, ok := c.m[id]; !ok {
			c.m[id] = info
		}
	}
}

// querier is what reads need: a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// lookupInstances returns what is known of the instances ids (unknown ones
// are absent), from the cache or else the instances table.
func (l *Ledger) lookupInstances(ctx context.Context, tx querier, ids []string) (map[string]meter.InstanceInfo, error) {
	out := make(map[string]meter.InstanceInfo, len(ids))
	var missing []string
	l.cache.mu.Lock()
	for _, id := range ids {
		if info, ok := l.cache.m[id]; ok {
			out[id] = info
		} else if id != "" {
			missing = append(missing, id)
		}
	}
	l.cache.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	slices.Sort(missing)
	missing = slices.Compact(missing)
	found := map[string]meter.InstanceInfo{}
	for chunk := range slices.Chunk(missing, maxRows) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := tx.QueryContext(ctx, "SELECT instance_id, tenant_id, plan_id, region FROM instances WHERE instance_id IN "+store.Placeholders(len(chunk)), args...)
		if err != nil {
			return nil, fmt.Errorf("read instances: %w", err)
		}
		for rows.Next() {
			var id string
			var info meter.InstanceInfo
			if err := rows.Scan(&id, &info.Tenant, &info.Plan, &info.Region); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read instances: %w", err)
			}
			found[id] = info
			out[id] = info
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read instances: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read instances: %w", err)
		}
	}
	l.cache.fill(found)
	return out, nil
}
