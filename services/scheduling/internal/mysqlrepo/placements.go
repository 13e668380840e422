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

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// storedRequest is the request kept with a placement (nodes live in
// reservations).
type storedRequest struct {
	Region         string            `json:"region,omitempty"`
	DRRegion       string            `json:"dr_region,omitempty"`
	AllowedRegions []string          `json:"allowed_regions,omitempty"`
	RequiredLabels map[string]string `json:"labels,omitempty"`
}

func requestJSON(req placement.Request) []byte {
	b, _ := json.Marshal(storedRequest{Region: req.Region, DRRegion: req.DRRegion, AllowedRegions: req.AllowedRegions, RequiredLabels: req.RequiredLabels})
	return b
}

// GetPlacement returns the stored placement of an instance with its booked
// nodes, or placement.ErrNotPlaced.
func (r *Repo) GetPlacement(ctx context.Context, instanceID string) (placement.Record, error) {
	return getPlacement(ctx, r.db.SQL(), instanceID, "")
}

type rowQuerier interface {
	querier
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getPlacement(ctx context.Context, q rowQuerier, instanceID, lock string) (placement.Record, error) {
	var rec placement.Record
	var kind, mode, status string
	var reqJSON, explJSON []byte
	var reason sql.NullString
	var expires sql.NullTime
	err := q.QueryRowContext(ctx, `SELECT instance_id, tenant_id, request_id, kind, mode, status, request, explanation, reason, expires_at, created_at, updated_at
		FROM placements WHERE instance_id = ? `+lock, instanceID).
		Scan(&rec.InstanceID, &rec.Tenant, &rec.RequestID, &kind, &mode, &status, &reqJSON, &explJSON, &reason, &expires, &rec.CreatedAt, &rec.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return rec, fmt.Errorf("placement %s: %w", instanceID, placement.ErrNotPlaced)
	}
	if err != nil {
		return rec, fmt.Errorf("read placement %s: %w", instanceID, err)
	}
	rec.Kind, rec.Mode, rec.Status, rec.Reason = placement.Kind(kind), placement.Mode(mode), placement.Status(status), reason.String
	if expires.Valid {
		t := expires.Time
		rec.ExpiresAt = &t
	}
	var sr storedRequest
	if err := json.Unmarshal(reqJSON, &sr); err != nil {
		return rec, fmt.Errorf("placement %s request: %w", instanceID, err)
	}
	rec.Request = placement.Request{InstanceID: rec.InstanceID, Tenant: rec.Tenant, Kind: rec.Kind, Mode: rec.Mode,
		Region: sr.Region, DRRegion: sr.DRRegion, AllowedRegions: sr.AllowedRegions, RequiredLabels: sr.RequiredLabels}
	if len(explJSON) > 0 {
		rec.Explanation = &placement.Explanation{}
		if err := json.Unmarshal(explJSON, rec.Explanation); err != nil {
			return rec, fmt.Errorf("placement %s explanation: %w", instanceID, err)
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT node_name, role, host_id, region_id, zone_id, address, port, mcpu, memory_mb, storage_gb, score
		FROM reservations WHERE instance_id = ? ORDER BY node_name`, instanceID)
	if err != nil {
		return rec, fmt.Errorf("read reservations of %s: %w", instanceID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a placement.Assignment
		if err := rows.Scan(&a.Name, &a.Role, &a.HostID, &a.Region, &a.Zone, &a.Address, &a.Port,
			&a.Resources.MilliCPU, &a.Resources.MemoryMB, &a.Resources.StorageGB, &a.Score); err != nil {
			return rec, fmt.Errorf("scan reservation: %w", err)
		}
		rec.Nodes = append(rec.Nodes, a)
	}
	return rec, rows.Err()
}

// lockPlacement locks the placement row of an instance for the rest of the
// transaction. When there is none it inserts a placeholder row (status
// failed, rolled back with the transaction unless the caller updates it), so
// no transaction ever takes a gap lock on placements: a locking read of a
// missing row would, and concurrent inserts of other instances would then
// deadlock on it. It reports whether a real placement existed.
func lockPlacement(ctx context.Context, tx *store.Tx, instanceID string, now time.Time) (placement.Record, bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM placements WHERE instance_id = ?", instanceID).Scan(&one)
	switch {
	case err == nil:
		rec, err := getPlacement(ctx, tx, instanceID, "FOR UPDATE")
		return rec, err == nil, err
	case !errors.Is(err, sql.ErrNoRows):
		return placement.Record{}, false, fmt.Errorf("read placement %s: %w", instanceID, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO placements (instance_id, kind, mode, status, request, created_at, updated_at)
		VALUES (?, 'new', '', 'failed', '{}', ?, ?)`, instanceID, now, now)
	if mysqlErr(err) == errDupEntry {
		return placement.Record{}, false, fmt.Errorf("create placement %s: %w", instanceID, errRace)
	}
	if err != nil {
		return placement.Record{}, false, fmt.Errorf("create placement %s: %w", instanceID, err)
	}
	return placement.Record{InstanceID: instanceID}, false, nil
}

// Reserve makes a decision durable in one transaction: it books each node's
// resources on its host with a conditional update (the host must still be
// ready and have the room), records the reservations (unique per host and
// port), stores the placement as reserved until expiresAt, and emits
// scheduling.placement.decided. When a host no longer has the room or the
// port is taken it returns a *placement.StaleError and nothing is written.
//
// For a replace decision, replaced names the node given up; its booking is
// freed in the same transaction.
func (r *Repo) Reserve(ctx context.Context, req placement.Request, d placement.Decision, replaced string, expiresAt time.Time) error {
	return r.tx(ctx, func(tx *store.Tx) error {
		now := r.now()
		// A replaced node needs confirming again, so the placement goes back
		// to reserved (and expires if provisioning never confirms it).
		status := placement.StatusReserved
		var existing placement.Record
		written := false
		if d.Kind != placement.KindReplace {
			// The common case, a new instance: create the row in its final
			// form, one statement, no gap lock.
			_, err := tx.ExecContext(ctx, `INSERT INTO placements (instance_id, tenant_id, request_id, kind, mode, status, request, expires_at, created_at, updated_at)
				VALUES (?,?,?,?,?,?,?,?,?,?)`,
				d.InstanceID, d.Tenant, req.RequestID, string(d.Kind), string(d.Mode), string(status), requestJSON(req), expiresAt, now, now)
			switch {
			case err == nil:
				written = true
			case mysqlErr(err) != errDupEntry:
				return fmt.Errorf("store placement %s: %w", d.InstanceID, err)
			}
		}
		if !written {
			var exists bool
			var err error
			existing, exists, err = lockPlacement(ctx, tx, d.InstanceID, now)
			if err != nil {
				return err
			}
			switch d.Kind {
			case placement.KindReplace:
				if !exists || !existing.Status.Active() {
					return fmt.Errorf("replace node of %s: %w", d.InstanceID, placement.ErrNotPlaced)
				}
				var old *placement.Assignment
				for i := range existing.Nodes {
					if existing.Nodes[i].Name == replaced {
						old = &existing.Nodes[i]
					}
				}
				if old == nil {
					return &inventory.ValidationError{Fields: []inventory.FieldError{{Field: "failed_node", Reason: fmt.Sprintf("instance %s has no node %q", d.InstanceID, replaced)}}}
				}
				if err := unbook(ctx, tx, d.InstanceID, []placement.Assignment{*old}, now); err != nil {
					return err
				}
			default:
				if exists && existing.Status.Active() {
					return fmt.Errorf("reserve %s: %w", d.InstanceID, placement.ErrAlreadyPlaced)
				}
			}
		}
		if err := book(ctx, tx, d, now); err != nil {
			return err
		}
		if !written {
			stored := requestJSON(req)
			if d.Kind == placement.KindReplace {
				stored = requestJSON(existing.Request) // keep the original constraints
			}
			if _, err := tx.ExecContext(ctx, `UPDATE placements SET tenant_id = ?, request_id = ?, kind = ?, mode = ?, status = ?, request = ?,
				explanation = NULL, reason = NULL, expires_at = ?, updated_at = ? WHERE instance_id = ?`,
				d.Tenant, req.RequestID, string(d.Kind), string(d.Mode), string(status), stored, expiresAt, now, d.InstanceID); err != nil {
				return fmt.Errorf("store placement %s: %w", d.InstanceID, err)
			}
		}
		payload := events.PlacementDecided{InstanceID: d.InstanceID, TenantID: d.Tenant, RequestID: req.RequestID,
			Kind: string(d.Kind), DeploymentMode: string(d.Mode), ExpiresAt: expiresAt, ReplacedNode: replaced}
		for _, n := range d.Nodes {
			payload.Nodes = append(payload.Nodes, PlacedNode(n))
		}
		return emit(ctx, tx, events.TopicPlacements, events.TypePlacementDecided, d.InstanceID, d.Tenant, payload)
	})
}

// PlacedNode renders an assignment for events and APIs.
func PlacedNode(n placement.Assignment) events.PlacedNode {
	return events.PlacedNode{Name: n.Name, Role: n.Role, Region: n.Region, AZ: n.Zone, Host: n.HostID, Address: n.Address, Port: n.Port,
		VCPU: float64(n.Resources.MilliCPU) / 1000, MemoryMB: n.Resources.MemoryMB, StorageGB: n.Resources.StorageGB, Score: n.Score}
}

// book adds the nodes' resources to their hosts, in host id order so
// concurrent transactions lock rows in the same order, and inserts the
// reservation rows.
func book(ctx context.Context, tx *store.Tx, d placement.Decision, now time.Time) error {
	nodes := append([]placement.Assignment(nil), d.Nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].HostID < nodes[j].HostID })
	// One conditional UPDATE for all hosts (their rows are locked in primary
	// key order, so concurrent placements never deadlock on each other): each
	// host must still be ready and have the room. Fewer rows than hosts means
	// the decision went stale.
	var need inventory.Demand
	for _, n := range nodes {
		need.Add(n.HostID, n.Resources)
	}
	ids := need.Hosts()
	if err := bookHosts(ctx, tx, ids, need, now); errors.Is(err, errHostsLacking) {
		return &placement.StaleError{Hosts: ids}
	} else if err != nil {
		return fmt.Errorf("book %s: %w", d.InstanceID, err)
	}
	var sb strings.Builder
	sb.WriteString(`INSERT INTO reservations (instance_id, node_name, role, host_id, region_id, zone_id, address, port, mcpu, memory_mb, storage_gb, score, created_at) VALUES `)
	args := make([]any, 0, 13*len(nodes))
	for i, n := range nodes {
		if n.Port < 1 {
			return &placement.StaleError{Hosts: []string{n.HostID}}
		}
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?)")
		args = append(args, d.InstanceID, n.Name, n.Role, n.HostID, n.Region, n.Zone, n.Address, n.Port,
			n.Resources.MilliCPU, n.Resources.MemoryMB, n.Resources.StorageGB, n.Score, now)
	}
	_, err := tx.ExecContext(ctx, sb.String(), args...)
	if mysqlErr(err) == errDupEntry {
		hosts := make([]string, 0, len(nodes))
		for _, n := range nodes {
			hosts = append(hosts, n.HostID)
		}
		return &placement.StaleError{Hosts: hosts}
	}
	if err != nil {
		return fmt.Errorf("insert reservations of %s: %w", d.InstanceID, err)
	}
	return nil
}

// errHostsLacking means the conditional booking found a host that is not
// ready or lacks the room: the decision went stale.
var errHostsLacking = errors.New("a host is not ready or lacks the room")

// bookHosts adds what need asks of each host to its allocation with one
// conditional UPDATE, the SQL form of inventory.Admits: every host must
// still be ready and have the room, otherwise it returns errHostsLacking and
// the caller rolls back. ids are need's hosts in primary key order, so
// concurrent transactions lock rows in the same order and never deadlock on
// each other.
func bookHosts(ctx context.Context, tx *store.Tx, ids []string, need inventory.Demand, now time.Time) error {
	caseOf := func(get func(inventory.Resources) int64) (string, []any) {
		var sb strings.Builder
		args := make([]any, 0, 2*len(ids))
		sb.WriteString("CASE id")
		for _, id := range ids {
			sb.WriteString(" WHEN ? THEN ?")
			args = append(args, id, get(need.Of(id)))
		}
		sb.WriteString(" END")
		return sb.String(), args
	}
	cpu, cpuArgs := caseOf(func(r inventory.Resources) int64 { return r.MilliCPU })
	mem, memArgs := caseOf(func(r inventory.Resources) int64 { return r.MemoryMB })
	sto, stoArgs := caseOf(func(r inventory.Resources) int64 { return r.StorageGB })
	q := `UPDATE hosts SET alloc_mcpu = alloc_mcpu + ` + cpu + `, alloc_memory_mb = alloc_memory_mb + ` + mem +
		`, alloc_storage_gb = alloc_storage_gb + ` + sto + `, version = version + 1, updated_at = ?
		WHERE id IN ` + store.Placeholders(len(ids)) + ` AND state = 'ready' AND cap_mcpu - alloc_mcpu >= ` + cpu +
		` AND cap_memory_mb - alloc_memory_mb >= ` + mem + ` AND cap_storage_gb - alloc_storage_gb >= ` + sto
	args := make([]any, 0, 12*len(ids)+1)
	args = append(append(append(append(args, cpuArgs...), memArgs...), stoArgs...), now)
	args = append(args, anySlice(ids)...)
	args = append(append(append(args, cpuArgs...), memArgs...), stoArgs...)
	res, err := tx.ExecContext(ctx, q, args...)
	if c := mysqlErr(err); c == errCheckMariaDB || c == errCheckMySQL {
		return errHostsLacking
	} else if err != nil {
		return fmt.Errorf("book hosts: %w", err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("book hosts: %w", err)
	} else if int(k) != len(ids) {
		return errHostsLacking
	}
	return nil
}

// unbook frees the nodes' resources and deletes their reservations.
func unbook(ctx context.Context, tx *store.Tx, instanceID string, nodes []placement.Assignment, now time.Time) error {
	nodes = append([]placement.Assignment(nil), nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].HostID < nodes[j].HostID })
	for _, n := range nodes {
		if _, err := tx.ExecContext(ctx, `UPDATE hosts SET alloc_mcpu = GREATEST(alloc_mcpu - ?, 0), alloc_memory_mb = GREATEST(alloc_memory_mb - ?, 0),
			alloc_storage_gb = GREATEST(alloc_storage_gb - ?, 0), version = version + 1, updated_at = ? WHERE id = ?`,
			n.Resources.MilliCPU, n.Resources.MemoryMB, n.Resources.StorageGB, now, n.HostID); err != nil {
			return fmt.Errorf("unbook %s/%s on %s: %w", instanceID, n.Name, n.HostID, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM reservations WHERE instance_id = ? AND node_name = ?", instanceID, n.Name); err != nil {
			return fmt.Errorf("delete reservation %s/%s: %w", instanceID, n.Name, err)
		}
	}
	return nil
}

// RecordFailure stores a refused (or invalid) request and emits
// scheduling.placement.failed. An active placement of the instance is kept
// (a refused replace leaves the surviving nodes booked); it returns
// placement.ErrAlreadyPlaced for a refused new request on a placed instance.
func (r *Repo) RecordFailure(ctx context.Context, req placement.Request, reason string, ex *placement.Explanation) error {
	return r.tx(ctx, func(tx *store.Tx) error {
		existing, exists, err := lockPlacement(ctx, tx, req.InstanceID, r.now())
		if err != nil {
			return err
		}
		var explJSON []byte
		if ex != nil {
			explJSON, _ = json.Marshal(ex)
		}
		now := r.now()
		switch {
		case exists && existing.Status.Active() && req.Kind != placement.KindReplace:
			return fmt.Errorf("record failure of %s: %w", req.InstanceID, placement.ErrAlreadyPlaced)
		case exists && existing.Status.Active():
			if _, err := tx.ExecContext(ctx, "UPDATE placements SET explanation = ?, reason = ?, updated_at = ? WHERE instance_id = ?",
				explJSON, reason, now, req.InstanceID); err != nil {
				return fmt.Errorf("store failure of %s: %w", req.InstanceID, err)
			}
		default:
			kind := req.Kind
			if kind == "" {
				kind = placement.KindNew
			}
			if _, err := tx.ExecContext(ctx, `UPDATE placements SET tenant_id = ?, request_id = ?, kind = ?, mode = ?, status = ?, request = ?,
				explanation = ?, reason = ?, expires_at = NULL, updated_at = ? WHERE instance_id = ?`,
				req.Tenant, req.RequestID, string(kind), string(req.Mode), string(placement.StatusFailed), requestJSON(req), explJSON, reason, now, req.InstanceID); err != nil {
				return fmt.Errorf("store failure of %s: %w", req.InstanceID, err)
			}
		}
		payload := events.PlacementFailed{InstanceID: req.InstanceID, TenantID: req.Tenant, RequestID: req.RequestID, Kind: string(req.Kind), Reason: reason}
		if ex != nil {
			for _, f := range ex.Filters {
				payload.Filters = append(payload.Filters, events.FilterResult{Name: f.Name, Rejected: f.Rejected, Reason: f.Reason})
			}
		}
		return emit(ctx, tx, events.TopicPlacements, events.TypePlacementFailed, req.InstanceID, req.Tenant, payload)
	})
}

// Confirm marks a reserved placement confirmed (no longer expiring). It is
// idempotent; an instance without an active placement is placement.ErrNotPlaced.
func (r *Repo) Confirm(ctx context.Context, instanceID string) (placement.Record, error) {
	var rec placement.Record
	err := r.tx(ctx, func(tx *store.Tx) error {
		var err error
		rec, err = getPlacement(ctx, tx, instanceID, "FOR UPDATE")
		if err != nil {
			return err
		}
		if !rec.Status.Active() {
			return fmt.Errorf("confirm %s (status %s): %w", instanceID, rec.Status, placement.ErrNotPlaced)
		}
		if rec.Status == placement.StatusConfirmed {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE placements SET status = 'confirmed', expires_at = NULL, updated_at = ? WHERE instance_id = ?", r.now(), instanceID); err != nil {
			return fmt.Errorf("confirm %s: %w", instanceID, err)
		}
		rec.Status, rec.ExpiresAt = placement.StatusConfirmed, nil
		return emit(ctx, tx, events.TopicPlacements, events.TypePlacementConfirmed, instanceID, rec.Tenant, events.PlacementConfirmed{InstanceID: instanceID, TenantID: rec.Tenant})
	})
	return rec, err
}

// Release frees every node booked for an instance and emits
// scheduling.placement.released. With onlyExpiredAt set it releases only a
// placement still reserved (unconfirmed) and expired at that time, so a
// confirmation racing the reaper wins. It returns the nodes freed (none when
// there was nothing to release).
func (r *Repo) Release(ctx context.Context, instanceID, reason string, onlyExpiredAt *time.Time) ([]placement.Assignment, error) {
	var freed []placement.Assignment
	err := r.tx(ctx, func(tx *store.Tx) error {
		rec, err := getPlacement(ctx, tx, instanceID, "FOR UPDATE")
		if errors.Is(err, placement.ErrNotPlaced) {
			return nil
		}
		if err != nil {
			return err
		}
		if !rec.Status.Active() {
			return nil
		}
		if onlyExpiredAt != nil && (rec.Status != placement.StatusReserved || rec.ExpiresAt == nil || rec.ExpiresAt.After(*onlyExpiredAt)) {
			return nil
		}
		now := r.now()
		if err := unbook(ctx, tx, instanceID, rec.Nodes, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE placements SET status = 'released', reason = ?, expires_at = NULL, updated_at = ? WHERE instance_id = ?", reason, now, instanceID); err != nil {
			return fmt.Errorf("release %s: %w", instanceID, err)
		}
		freed = rec.Nodes
		hosts := make([]string, 0, len(rec.Nodes))
		for _, n := range rec.Nodes {
			hosts = append(hosts, n.HostID)
		}
		return emit(ctx, tx, events.TopicPlacements, events.TypePlacementReleased, instanceID, rec.Tenant, events.PlacementReleased{InstanceID: instanceID, TenantID: rec.Tenant, Reason: reason, Hosts: hosts})
	})
	return freed, err
}

// Expired lists instances whose reservation expired unconfirmed at now.
func (r *Repo) Expired(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := r.db.SQL().QueryContext(ctx, "SELECT instance_id FROM placements WHERE status = 'reserved' AND expires_at <= ? ORDER BY expires_at LIMIT ?", now, limit)
	if err != nil {
		return nil, fmt.Errorf("query expired placements: %w", err)
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
