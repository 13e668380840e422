// Package mysqlrepo stores the scheduling inventory and placements in MySQL
// or MariaDB (database canopy_scheduling) and writes every change together
// with its outbox event in one transaction. Capacity is booked with
// conditional, versioned updates of host rows, so any number of scheduler
// replicas can reserve concurrently without ever overcommitting a host.
//
// It holds no placement logic; the placement package decides, this package
// makes the decision durable or reports that it went stale.
package mysqlrepo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/migrations"
)

// Repo is the scheduling repository.
type Repo struct {
	db  *store.DB
	now func() time.Time
}

// New returns a repository on db. now may be nil (time.Now).
func New(db *store.DB, now func() time.Time) (*Repo, error) {
	if db == nil {
		return nil, errors.New("mysqlrepo: nil db")
	}
	if now == nil {
		now = time.Now
	}
	return &Repo{db: db, now: func() time.Time { return now().UTC() }}, nil
}

// Migrate applies the embedded schema.
func (r *Repo) Migrate(ctx context.Context) error {
	if err := r.db.Migrate(ctx, store.OutboxMigrations(), migrations.FS); err != nil {
		return fmt.Errorf("migrate scheduling schema: %w", err)
	}
	return nil
}

// Ping checks the database answers (readiness).
func (r *Repo) Ping(ctx context.Context) error { return r.db.SQL().PingContext(ctx) }

// MySQL error numbers the repository classifies.
const (
	errDupEntry        = 1062
	errDeadlock        = 1213
	errLockWaitTimeout = 1205
	errCheckMySQL      = 3819
	errCheckMariaDB    = 4025
	errFKParent        = 1451
	errFKChild         = 1452
)

func mysqlErr(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// IsRetryable reports whether err is a transient database condition
// (deadlock, lock wait timeout) worth retrying the transaction for.
func IsRetryable(err error) bool {
	n := mysqlErr(err)
	return n == errDeadlock || n == errLockWaitTimeout
}

// RetryableError marks a transient database failure; callers retry the
// whole operation.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }

// Unwrap returns the database error.
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable is true.
func (e *RetryableError) Retryable() bool { return true }

func classify(err error) error {
	if err != nil && IsRetryable(err) {
		return &RetryableError{Err: err}
	}
	return err
}

// errRace marks a lost race (e.g. two transactions creating the same
// placement row); the transaction is retried from the start.
var errRace = errors.New("concurrent change, retry")

// txRetry bounds retries of deadlocked or raced transactions.
var txRetry = retry.Policy{Initial: 2 * time.Millisecond, Max: 100 * time.Millisecond, MaxTries: 10}

// tx runs fn in a transaction and reruns it on deadlocks, lock wait timeouts
// and lost creation races.
func (r *Repo) tx(ctx context.Context, fn func(tx *store.Tx) error) error {
	err := retry.Do(ctx, txRetry, func(ctx context.Context) error {
		err := r.db.Tx(ctx, fn)
		if err != nil && !IsRetryable(err) && !errors.Is(err, errRace) {
			return retry.Permanent(err)
		}
		return err
	})
	return classify(err)
}

func emit(ctx context.Context, tx *store.Tx, topic, typ, key, tenant string, payload any) error {
	e, err := eventbus.NewEvent(typ, events.SourceScheduling, key, payload)
	if err != nil {
		return err
	}
	e.Tenant = tenant
	if err := tx.Emit(ctx, topic, e); err != nil {
		return fmt.Errorf("emit %s: %w", typ, err)
	}
	return nil
}

func jsonOrEmpty(v map[string]string) []byte {
	if v == nil {
		return []byte("{}")
	}
	b, _ := json.Marshal(v)
	return b
}

const hostColumns = `id, region_id, zone_id, address, port_from, port_to, cap_mcpu, cap_memory_mb, cap_storage_gb,
	alloc_mcpu, alloc_memory_mb, alloc_storage_gb, labels, price_vcpu_hour, price_gb_hour, spot, state, version`

type scanner interface{ Scan(dest ...any) error }

func scanHost(s scanner) (inventory.Host, error) {
	var h inventory.Host
	var labels []byte
	var state string
	err := s.Scan(&h.ID, &h.Region, &h.Zone, &h.Address, &h.Ports.From, &h.Ports.To,
		&h.Capacity.MilliCPU, &h.Capacity.MemoryMB, &h.Capacity.StorageGB,
		&h.Allocated.MilliCPU, &h.Allocated.MemoryMB, &h.Allocated.StorageGB,
		&labels, &h.Price.PerVCPUHour, &h.Price.PerGBHour, &h.Price.Spot, &state, &h.Version)
	if err != nil {
		return h, err
	}
	h.State = inventory.HostState(state)
	if len(labels) > 0 && string(labels) != "{}" {
		if err := json.Unmarshal(labels, &h.Labels); err != nil {
			return h, fmt.Errorf("host %s labels: %w", h.ID, err)
		}
	}
	return h, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryHosts(ctx context.Context, q querier, where string, args ...any) ([]inventory.Host, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+hostColumns+" FROM hosts "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query hosts: %w", err)
	}
	defer rows.Close()
	var out []inventory.Host
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("scan host: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// Ports maps host id → port → "instance/node".
type Ports = map[string]map[int]string

func queryPorts(ctx context.Context, q querier, where string, args ...any) (Ports, error) {
	rows, err := q.QueryContext(ctx, "SELECT host_id, port, instance_id, node_name FROM reservations "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query ports: %w", err)
	}
	defer rows.Close()
	out := Ports{}
	for rows.Next() {
		var host, inst, node string
		var port int
		if err := rows.Scan(&host, &port, &inst, &node); err != nil {
			return nil, fmt.Errorf("scan port: %w", err)
		}
		if out[host] == nil {
			out[host] = map[int]string{}
		}
		out[host][port] = inst + "/" + node
	}
	return out, rows.Err()
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// LoadInventory reads the whole inventory and the ports in use.
func (r *Repo) LoadInventory(ctx context.Context) (inventory.Inventory, Ports, error) {
	var inv inventory.Inventory
	db := r.db.SQL()
	regions, err := r.ListRegions(ctx)
	if err != nil {
		return inv, nil, err
	}
	zones, err := r.ListZones(ctx, "")
	if err != nil {
		return inv, nil, err
	}
	lat, err := listLatencies(ctx, db)
	if err != nil {
		return inv, nil, err
	}
	hosts, err := queryHosts(ctx, db, "ORDER BY id")
	if err != nil {
		return inv, nil, err
	}
	ports, err := queryPorts(ctx, db, "")
	if err != nil {
		return inv, nil, err
	}
	inv = inventory.Inventory{Regions: regions, Zones: zones, Hosts: hosts, Latencies: lat}
	return inv, ports, nil
}

// LoadHosts re-reads some hosts and their ports (after a stale reservation).
func (r *Repo) LoadHosts(ctx context.Context, ids []string) ([]inventory.Host, Ports, error) {
	if len(ids) == 0 {
		return nil, Ports{}, nil
	}
	db := r.db.SQL()
	hosts, err := queryHosts(ctx, db, "WHERE id IN "+store.Placeholders(len(ids)), anySlice(ids)...)
	if err != nil {
		return nil, nil, err
	}
	ports, err := queryPorts(ctx, db, "WHERE host_id IN "+store.Placeholders(len(ids)), anySlice(ids)...)
	if err != nil {
		return nil, nil, err
	}
	return hosts, ports, nil
}

func listLatencies(ctx context.Context, q querier) ([]inventory.Latency, error) {
	rows, err := q.QueryContext(ctx, "SELECT a, b, p95_ms FROM latencies ORDER BY a, b")
	if err != nil {
		return nil, fmt.Errorf("query latencies: %w", err)
	}
	defer rows.Close()
	var out []inventory.Latency
	for rows.Next() {
		var l inventory.Latency
		if err := rows.Scan(&l.A, &l.B, &l.P95MS); err != nil {
			return nil, fmt.Errorf("scan latency: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ListLatencies returns the latency matrix as stored (pairs with a < b).
func (r *Repo) ListLatencies(ctx context.Context) ([]inventory.Latency, error) {
	return listLatencies(ctx, r.db.SQL())
}

// ListRegions returns every region by id.
func (r *Repo) ListRegions(ctx context.Context) ([]inventory.Region, error) {
	rows, err := r.db.SQL().QueryContext(ctx, "SELECT id, name, labels FROM regions ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("query regions: %w", err)
	}
	defer rows.Close()
	var out []inventory.Region
	for rows.Next() {
		var reg inventory.Region
		var labels []byte
		if err := rows.Scan(&reg.ID, &reg.Name, &labels); err != nil {
			return nil, fmt.Errorf("scan region: %w", err)
		}
		if string(labels) != "{}" {
			_ = json.Unmarshal(labels, &reg.Labels)
		}
		out = append(out, reg)
	}
	return out, rows.Err()
}

// ListZones returns the zones (of one region when region is set) by id.
func (r *Repo) ListZones(ctx context.Context, region string) ([]inventory.Zone, error) {
	q, args := "SELECT id, region_id, name FROM zones ORDER BY id", []any{}
	if region != "" {
		q, args = "SELECT id, region_id, name FROM zones WHERE region_id = ? ORDER BY id", []any{region}
	}
	rows, err := r.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query zones: %w", err)
	}
	defer rows.Close()
	var out []inventory.Zone
	for rows.Next() {
		var z inventory.Zone
		if err := rows.Scan(&z.ID, &z.Region, &z.Name); err != nil {
			return nil, fmt.Errorf("scan zone: %w", err)
		}
		out = append(out, z)
	}
	return out, rows.Err()
}

// ListHosts returns hosts matching f in id order, at most f.Limit.
func (r *Repo) ListHosts(ctx context.Context, f inventory.HostFilter) ([]inventory.Host, error) {
	var conds []string
	var args []any
	add := func(cond, v string) {
		if v != "" {
			conds = append(conds, cond)
			args = append(args, v)
		}
	}
	add("region_id = ?", f.Region)
	add("zone_id = ?", f.Zone)
	add("state = ?", f.State)
	add("id > ?", f.After)
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	args = append(args, f.Limit)
	return queryHosts(ctx, r.db.SQL(), where+" ORDER BY id LIMIT ?", args...)
}

// GetHost returns one host.
func (r *Repo) GetHost(ctx context.Context, id string) (inventory.Host, error) {
	hosts, err := queryHosts(ctx, r.db.SQL(), "WHERE id = ?", id)
	if err != nil {
		return inventory.Host{}, err
	}
	if len(hosts) == 0 {
		return inventory.Host{}, fmt.Errorf("host %s: %w", id, inventory.ErrNotFound)
	}
	return hosts[0], nil
}

// Seed loads inv when the inventory is empty and reports whether it did.
// Concurrent seeders serialise on the regions table; only one loads.
func (r *Repo) Seed(ctx context.Context, inv inventory.Inventory, source string) (bool, error) {
	inv.Normalize()
	if err := inv.Validate(); err != nil {
		return false, fmt.Errorf("seed inventory from %s: %w", source, err)
	}
	seeded := false
	err := r.tx(ctx, func(tx *store.Tx) error {
		// Serialise seeders: a locking read of the (maybe empty) table.
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT id FROM regions FOR UPDATE) x").Scan(&n); err != nil {
			return fmt.Errorf("count regions: %w", err)
		}
		if n > 0 {
			return nil
		}
		now := r.now()
		for _, reg := range inv.Regions {
			if _, err := tx.ExecContext(ctx, "INSERT INTO regions (id, name, labels, created_at, updated_at) VALUES (?,?,?,?,?)",
				reg.ID, reg.Name, jsonOrEmpty(reg.Labels), now, now); err != nil {
				return fmt.Errorf("insert region %s: %w", reg.ID, err)
			}
		}
		for _, z := range inv.Zones {
			if _, err := tx.ExecContext(ctx, "INSERT INTO zones (id, region_id, name, created_at, updated_at) VALUES (?,?,?,?,?)",
				z.ID, z.Region, z.Name, now, now); err != nil {
				return fmt.Errorf("insert zone %s: %w", z.ID, err)
			}
		}
		if err := insertLatencies(ctx, tx, inv.Latencies); err != nil {
			return err
		}
		if err := insertHosts(ctx, tx, inv.Hosts, now); err != nil {
			return err
		}
		seeded = true
		return emit(ctx, tx, events.TopicInventory, events.TypeInventoryLoaded, "inventory", "", events.InventoryLoaded{
			Source: source, Regions: len(inv.Regions), Zones: len(inv.Zones), Hosts: len(inv.Hosts)})
	})
	if err != nil {
		return false, fmt.Errorf("seed inventory: %w", err)
	}
	return seeded, nil
}

func insertLatencies(ctx context.Context, tx *store.Tx, lat []inventory.Latency) error {
	for _, l := range lat {
		a, b := l.A, l.B
		if b < a {
			a, b = b, a
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO latencies (a, b, p95_ms) VALUES (?,?,?) ON DUPLICATE KEY UPDATE p95_ms = VALUES(p95_ms)", a, b, l.P95MS); err != nil {
			return fmt.Errorf("insert latency %s-%s: %w", a, b, err)
		}
	}
	return nil
}

// insertHosts inserts hosts in batches of 500 rows.
func insertHosts(ctx context.Context, tx *store.Tx, hosts []inventory.Host, now time.Time) error {
	const batch = 500
	for start := 0; start < len(hosts); start += batch {
		part := hosts[start:min(start+batch, len(hosts))]
		var sb strings.Builder
		sb.WriteString(`INSERT INTO hosts (id, region_id, zone_id, address, port_from, port_to,
		cap_mcpu, cap_memory_mb, cap_storage_gb, alloc_mcpu, alloc_memory_mb, alloc_storage_gb,
		labels, price_vcpu_hour, price_gb_hour, spot, state, version, created_at, updated_at) VALUES `)
		args := make([]any, 0, len(part)*19)
		for i, h := range part {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?,?)")
			if h.State == "" {
				h.State = inventory.StateReady
			}
			args = append(args, h.ID, h.Region, h.Zone, h.Address, h.Ports.From, h.Ports.To,
				h.Capacity.MilliCPU, h.Capacity.MemoryMB, h.Capacity.StorageGB,
				h.Allocated.MilliCPU, h.Allocated.MemoryMB, h.Allocated.StorageGB,
				jsonOrEmpty(h.Labels), h.Price.PerVCPUHour, h.Price.PerGBHour, h.Price.Spot, string(h.State), now, now)
		}
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("insert hosts: %w", err)
		}
	}
	return nil
}

func insertHost(ctx context.Context, tx *store.Tx, h inventory.Host, now time.Time) error {
	if h.State == "" {
		h.State = inventory.StateReady
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO hosts (id, region_id, zone_id, address, port_from, port_to,
		cap_mcpu, cap_memory_mb, cap_storage_gb, alloc_mcpu, alloc_memory_mb, alloc_storage_gb,
		labels, price_vcpu_hour, price_gb_hour, spot, state, version, created_at, updated_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?,?)`,
		h.ID, h.Region, h.Zone, h.Address, h.Ports.From, h.Ports.To,
		h.Capacity.MilliCPU, h.Capacity.MemoryMB, h.Capacity.StorageGB,
		h.Allocated.MilliCPU, h.Allocated.MemoryMB, h.Allocated.StorageGB,
		jsonOrEmpty(h.Labels), h.Price.PerVCPUHour, h.Price.PerGBHour, h.Price.Spot, string(h.State), now, now)
	switch mysqlErr(err) {
	case 0:
		return nil
	case errDupEntry:
		return fmt.Errorf("host %s: %w: already exists", h.ID, inventory.ErrConflict)
	case errFKChild:
		return fmt.Errorf("host %s: zone %s: %w", h.ID, h.Zone, inventory.ErrNotFound)
	default:
		return fmt.Errorf("insert host %s: %w", h.ID, err)
	}
}

// lockTopology loads regions, zones and latencies under a lock so topology
// changes serialise.
func lockTopology(ctx context.Context, tx *store.Tx) ([]inventory.Region, []inventory.Zone, []inventory.Latency, error) {
	rows, err := tx.QueryContext(ctx, "SELECT id, name FROM regions ORDER BY id FOR UPDATE")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lock regions: %w", err)
	}
	var regions []inventory.Region
	for rows.Next() {
		var reg inventory.Region
		if err := rows.Scan(&reg.ID, &reg.Name); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		regions = append(regions, reg)
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, "SELECT id, region_id, name FROM zones ORDER BY id")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read zones: %w", err)
	}
	var zones []inventory.Zone
	for rows.Next() {
		var z inventory.Zone
		if err := rows.Scan(&z.ID, &z.Region, &z.Name); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		zones = append(zones, z)
	}
	rows.Close()
	lat, err := listLatencies(ctx, tx)
	return regions, zones, lat, err
}

// CreateRegion adds a region with its latencies to every other region.
func (r *Repo) CreateRegion(ctx context.Context, reg inventory.Region, lat []inventory.Latency) error {
	ve := &inventory.ValidationError{}
	inventory.ValidateRegion(ve, "", reg)
	if err := ve.Err(); err != nil {
		return trimFieldDots(ve)
	}
	return r.tx(ctx, func(tx *store.Tx) error {
		regions, zones, existing, err := lockTopology(ctx, tx)
		if err != nil {
			return err
		}
		for _, x := range regions {
			if x.ID == reg.ID {
				return fmt.Errorf("region %s: %w: already exists", reg.ID, inventory.ErrConflict)
			}
		}
		for _, z := range zones {
			if z.ID == reg.ID {
				return fmt.Errorf("region %s: %w: a zone has this id", reg.ID, inventory.ErrConflict)
			}
		}
		if _, err := inventory.NewTopology(append(regions, reg), zones, append(existing, lat...)); err != nil {
			return err
		}
		now := r.now()
		if _, err := tx.ExecContext(ctx, "INSERT INTO regions (id, name, labels, created_at, updated_at) VALUES (?,?,?,?,?)",
			reg.ID, reg.Name, jsonOrEmpty(reg.Labels), now, now); err != nil {
			return fmt.Errorf("insert region %s: %w", reg.ID, err)
		}
		if err := insertLatencies(ctx, tx, lat); err != nil {
			return err
		}
		return emit(ctx, tx, events.TopicInventory, events.TypeRegionCreated, reg.ID, "", events.RegionChanged{RegionID: reg.ID, Name: reg.Name})
	})
}

// UpdateRegion changes a region's name and labels, and optionally latencies
// to other regions.
func (r *Repo) UpdateRegion(ctx context.Context, id string, fn func(*inventory.Region) error, lat []inventory.Latency) (inventory.Region, error) {
	var out inventory.Region
	err := r.tx(ctx, func(tx *store.Tx) error {
		regions, zones, existing, err := lockTopology(ctx, tx)
		if err != nil {
			return err
		}
		var labels []byte
		if err := tx.QueryRowContext(ctx, "SELECT id, name, labels FROM regions WHERE id = ?", id).Scan(&out.ID, &out.Name, &labels); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("region %s: %w", id, inventory.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("read region %s: %w", id, err)
		}
		if string(labels) != "{}" {
			_ = json.Unmarshal(labels, &out.Labels)
		}
		if err := fn(&out); err != nil {
			return err
		}
		out.ID = id
		ve := &inventory.ValidationError{}
		inventory.ValidateRegion(ve, "", out)
		if err := ve.Err(); err != nil {
			return trimFieldDots(ve)
		}
		if len(lat) > 0 {
			if _, err := inventory.NewTopology(regions, zones, mergeLatencies(existing, lat)); err != nil {
				return err
			}
			if err := insertLatencies(ctx, tx, lat); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE regions SET name = ?, labels = ?, updated_at = ? WHERE id = ?",
			out.Name, jsonOrEmpty(out.Labels), r.now(), id); err != nil {
			return fmt.Errorf("update region %s: %w", id, err)
		}
		return emit(ctx, tx, events.TopicInventory, events.TypeRegionUpdated, id, "", events.RegionChanged{RegionID: id, Name: out.Name})
	})
	return out, err
}

func mergeLatencies(existing, changes []inventory.Latency) []inventory.Latency {
	key := func(l inventory.Latency) string {
		if l.B < l.A {
			return l.B + "\x00" + l.A
		}
		return l.A + "\x00" + l.B
	}
	m := map[string]inventory.Latency{}
	for _, l := range existing {
		m[key(l)] = l
	}
	for _, l := range changes {
		m[key(l)] = l
	}
	out := make([]inventory.Latency, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

// CreateZone adds a zone with its latencies to the other zones of its region.
func (r *Repo) CreateZone(ctx context.Context, z inventory.Zone, lat []inventory.Latency) error {
	ve := &inventory.ValidationError{}
	inventory.ValidateZone(ve, "", z)
	if err := ve.Err(); err != nil {
		return trimFieldDots(ve)
	}
	return r.tx(ctx, func(tx *store.Tx) error {
		regions, zones, existing, err := lockTopology(ctx, tx)
		if err != nil {
			return err
		}
		found := false
		for _, x := range regions {
			found = found || x.ID == z.Region
			if x.ID == z.ID {
				return fmt.Errorf("zone %s: %w: a region has this id", z.ID, inventory.ErrConflict)
			}
		}
		if !found {
			return &inventory.ValidationError{Fields: []inventory.FieldError{{Field: "region", Reason: fmt.Sprintf("unknown region %q", z.Region)}}}
		}
		for _, x := range zones {
			if x.ID == z.ID {
				return fmt.Errorf("zone %s: %w: already exists", z.ID, inventory.ErrConflict)
			}
		}
		if _, err := inventory.NewTopology(regions, append(zones, z), append(existing, lat...)); err != nil {
			return err
		}
		now := r.now()
		if _, err := tx.ExecContext(ctx, "INSERT INTO zones (id, region_id, name, created_at, updated_at) VALUES (?,?,?,?,?)",
			z.ID, z.Region, z.Name, now, now); err != nil {
			return fmt.Errorf("insert zone %s: %w", z.ID, err)
		}
		if err := insertLatencies(ctx, tx, lat); err != nil {
			return err
		}
		return emit(ctx, tx, events.TopicInventory, events.TypeZoneCreated, z.ID, "", events.ZoneChanged{ZoneID: z.ID, RegionID: z.Region, Name: z.Name})
	})
}

// UpdateZone changes a zone's name and optionally its latencies.
func (r *Repo) UpdateZone(ctx context.Context, id string, name *string, lat []inventory.Latency) (inventory.Zone, error) {
	var out inventory.Zone
	err := r.tx(ctx, func(tx *store.Tx) error {
		regions, zones, existing, err := lockTopology(ctx, tx)
		if err != nil {
			return err
		}
		found := false
		for _, z := range zones {
			if z.ID == id {
				out, found = z, true
			}
		}
		if !found {
			return fmt.Errorf("zone %s: %w", id, inventory.ErrNotFound)
		}
		if name != nil {
			out.Name = *name
		}
		ve := &inventory.ValidationError{}
		inventory.ValidateZone(ve, "", out)
		if err := ve.Err(); err != nil {
			return trimFieldDots(ve)
		}
		if len(lat) > 0 {
			if _, err := inventory.NewTopology(regions, zones, mergeLatencies(existing, lat)); err != nil {
				return err
			}
			if err := insertLatencies(ctx, tx, lat); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE zones SET name = ?, updated_at = ? WHERE id = ?", out.Name, r.now(), id); err != nil {
			return fmt.Errorf("update zone %s: %w", id, err)
		}
		return emit(ctx, tx, events.TopicInventory, events.TypeZoneUpdated, id, "", events.ZoneChanged{ZoneID: id, RegionID: out.Region, Name: out.Name})
	})
	return out, err
}

// CreateHost adds a host; its allocation starts at zero.
func (r *Repo) CreateHost(ctx context.Context, h inventory.Host) (inventory.Host, error) {
	if h.State == "" {
		h.State = inventory.StateReady
	}
	h.Allocated = inventory.Resources{}
	h.Version = 1
	err := r.tx(ctx, func(tx *store.Tx) error {
		var region string
		if err := tx.QueryRowContext(ctx, "SELECT region_id FROM zones WHERE id = ?", h.Zone).Scan(&region); errors.Is(err, sql.ErrNoRows) {
			return &inventory.ValidationError{Fields: []inventory.FieldError{{Field: "zone", Reason: fmt.Sprintf("unknown zone %q", h.Zone)}}}
		} else if err != nil {
			return fmt.Errorf("read zone %s: %w", h.Zone, err)
		}
		if h.Region != "" && h.Region != region {
			return &inventory.ValidationError{Fields: []inventory.FieldError{{Field: "region", Reason: fmt.Sprintf("zone %q is in region %q", h.Zone, region)}}}
		}
		h.Region = region
		ve := &inventory.ValidationError{}
		inventory.ValidateHost(ve, "", h)
		if err := ve.Err(); err != nil {
			return trimFieldDots(ve)
		}
		if err := insertHost(ctx, tx, h, r.now()); err != nil {
			return err
		}
		return emit(ctx, tx, events.TopicInventory, events.TypeHostCreated, h.ID, "", events.HostChanged{
			HostID: h.ID, Region: h.Region, AZ: h.Zone, State: string(h.State), Labels: h.Labels})
	})
	return h, err
}

func trimFieldDots(ve *inventory.ValidationError) error {
	for i := range ve.Fields {
		ve.Fields[i].Field = strings.TrimPrefix(ve.Fields[i].Field, ".")
	}
	return ve
}

// UpdateHost changes a host under a row lock: fn edits a copy, which is
// validated and written with version+1. Capacity below the current
// allocation is refused (inventory.ErrConflict). The event says what
// happened: cordoned, uncordoned, down, or updated.
func (r *Repo) UpdateHost(ctx context.Context, id string, fn func(*inventory.Host) error) (inventory.Host, error) {
	var out inventory.Host
	err := r.tx(ctx, func(tx *store.Tx) error {
		hosts, err := queryHosts(ctx, tx, "WHERE id = ? FOR UPDATE", id)
		if err != nil {
			return err
		}
		if len(hosts) == 0 {
			return fmt.Errorf("host %s: %w", id, inventory.ErrNotFound)
		}
		before := hosts[0]
		out = before
		out.Labels = cloneMap(before.Labels)
		if err := fn(&out); err != nil {
			return err
		}
		out.ID, out.Region, out.Zone, out.Allocated = before.ID, before.Region, before.Zone, before.Allocated
		ve := &inventory.ValidationError{}
		inventory.ValidateHost(ve, "", out)
		if err := ve.Err(); err != nil {
			return trimFieldDots(ve)
		}
		if !out.Capacity.Covers(out.Allocated) {
			return fmt.Errorf("host %s: %w: capacity %s is below the allocated %s", id, inventory.ErrConflict, out.Capacity, out.Allocated)
		}
		out.Version = before.Version + 1
		_, err = tx.ExecContext(ctx, `UPDATE hosts SET address = ?, port_from = ?, port_to = ?, cap_mcpu = ?, cap_memory_mb = ?, cap_storage_gb = ?,
			labels = ?, price_vcpu_hour = ?, price_gb_hour = ?, spot = ?, state = ?, version = version + 1, updated_at = ? WHERE id = ?`,
			out.Address, out.Ports.From, out.Ports.To, out.Capacity.MilliCPU, out.Capacity.MemoryMB, out.Capacity.StorageGB,
			jsonOrEmpty(out.Labels), out.Price.PerVCPUHour, out.Price.PerGBHour, out.Price.Spot, string(out.State), r.now(), id)
		if n := mysqlErr(err); n == errCheckMariaDB || n == errCheckMySQL {
			return fmt.Errorf("host %s: %w: capacity below allocation", id, inventory.ErrConflict)
		} else if err != nil {
			return fmt.Errorf("update host %s: %w", id, err)
		}
		typ := events.TypeHostUpdated
		switch {
		case before.State != out.State && out.State == inventory.StateCordoned:
			typ = events.TypeHostCordoned
		case before.State != out.State && out.State == inventory.StateDown:
			typ = events.TypeHostDown
		case before.State != out.State && out.State == inventory.StateReady:
			typ = events.TypeHostUncordoned
		}
		payload := events.HostChanged{HostID: id, Region: out.Region, AZ: out.Zone, State: string(out.State), Labels: out.Labels}
		if before.State != out.State {
			payload.PreviousState = string(before.State)
			if payload.Instances, err = instancesOnHost(ctx, tx, id); err != nil {
				return err
			}
		}
		return emit(ctx, tx, events.TopicInventory, typ, id, "", payload)
	})
	return out, err
}

func instancesOnHost(ctx context.Context, q querier, host string) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT DISTINCT instance_id FROM reservations WHERE host_id = ? ORDER BY instance_id", host)
	if err != nil {
		return nil, fmt.Errorf("instances on %s: %w", host, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
