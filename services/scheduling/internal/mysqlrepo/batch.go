package mysqlrepo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// errBatchFallback makes ReserveBatch give up on the shared transaction and
// reserve every decision on its own (a collision it cannot attribute to one
// decision: a port taken by another replica, a placement row created
// concurrently, the conditional update finding less room than the locked
// read did).
var errBatchFallback = errors.New("batch reservation needs per-decision transactions")

// Signals to run the batch transaction again, reading what the fast path
// skipped: which instances already have a placement row (errBatchPreselect)
// and what each host has free (errBatchLockHosts).
var (
	errBatchPreselect = errors.New("batch reservation: an instance already has a placement row")
	errBatchLockHosts = errors.New("batch reservation: a host lacks the room")
)

// batchMode says what a batch transaction reads before writing. The fast
// path reads nothing: it inserts the placement rows and books the hosts
// with the conditional update; only when that finds an existing row or a
// host without the room is the batch run again with the reads that tell
// which decision is concerned.
type batchMode struct {
	preselect bool // read existing placement rows first
	lockHosts bool // lock the hosts and admit decisions one by one
}

// ReserveBatch makes several decisions for new instances durable in one
// transaction (one commit, so one log flush, for all of them) and returns
// one error per decision, in order. Each decision keeps Reserve's
// guarantees: its hosts are booked only if they are still ready and have
// the room (no overcommit, whatever other replicas do), its placement row,
// reservations and scheduling.placement.decided event are written together
// or not at all, and a decision that cannot be booked does not fail the
// others:
//
//   - the fast path writes the batch with one statement per table (the
//     placement rows, one conditional UPDATE of all hosts in primary key
//     order like Reserve's, the reservations, the outbox rows) and commits;
//   - when the conditional update finds a host without the room, the
//     transaction is run again locking the batch's hosts first (one locking
//     read, primary key order) and admitting the decisions in order against
//     their current allocation; one that no longer fits gets a
//     *placement.StaleError and is left out, the rest are written;
//   - when a placement row already exists (a repeat, a request after a
//     refusal), the transaction is run again leaving those instances out;
//     they go through Reserve (ErrAlreadyPlaced for an active placement);
//   - a collision the batch cannot attribute to one decision (a port taken
//     by another replica, a row created concurrently) or a failure of the
//     transaction as a whole rolls the batch back, and every decision is
//     reserved on its own with Reserve.
//
// Replace decisions are refused: they go through Reserve (which frees the
// replaced node in the same transaction).
func (r *Repo) ReserveBatch(ctx context.Context, items []placement.Reservation) []error {
	errs := make([]error, len(items))
	if len(items) == 0 {
		return errs
	}
	single := make([]bool, len(items))
	for i, it := range items {
		switch {
		case it.Decision.Kind == placement.KindReplace:
			errs[i] = fmt.Errorf("reserve %s: a replace decision cannot be batched", it.Decision.InstanceID)
			single[i] = true // and answered with errs[i]
		case it.Decision.InstanceID == "":
			single[i] = true
		}
	}
	skip := append([]error(nil), errs...)
	var mode batchMode
	var err error
	for {
		err = r.tx(ctx, func(tx *store.Tx) error {
			copy(errs, skip)
			return reserveBatch(ctx, tx, items, single, errs, mode, r.now())
		})
		switch {
		case errors.Is(err, errBatchPreselect) && !mode.preselect:
			mode.preselect = true
			continue
		case errors.Is(err, errBatchLockHosts) && !mode.lockHosts:
			mode.lockHosts = true
			continue
		}
		break
	}
	if err != nil {
		// The shared transaction failed as a whole (rolled back, or a commit
		// whose outcome is unknown: Reserve then finds the placements and
		// answers ErrAlreadyPlaced). Reserve each decision on its own so that
		// one decision's trouble stays its own.
		for i := range single {
			single[i] = true
		}
		copy(errs, skip)
	}
	for i, it := range items {
		if single[i] && errs[i] == nil {
			errs[i] = r.Reserve(ctx, it.Request, it.Decision, "", it.ExpiresAt)
		}
	}
	return errs
}

func reserveBatch(ctx context.Context, tx *store.Tx, items []placement.Reservation, single []bool, errs []error, mode batchMode, now time.Time) error {
	// Instances that already have a placement row take the single path (it
	// locks the row and handles repeats); a plain read takes no gap lock.
	var ids []string
	for i, it := range items {
		if !single[i] {
			ids = append(ids, it.Decision.InstanceID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	seen := map[string]bool{}
	if mode.preselect {
		rows, err := tx.QueryContext(ctx, "SELECT instance_id FROM placements WHERE instance_id IN "+store.Placeholders(len(ids)), anySlice(ids)...)
		if err != nil {
			return fmt.Errorf("read placements: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			seen[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	dup := map[string]bool{}
	for i, it := range items {
		id := it.Decision.InstanceID
		if single[i] || seen[id] || dup[id] {
			single[i] = true
			continue
		}
		dup[id] = true
	}

	// With lockHosts, lock every host of the batch, in primary key order,
	// and read what each still has free.
	free := map[string]inventory.Resources{}
	var hostIDs []string
	for i, it := range items {
		if single[i] {
			continue
		}
		for _, n := range it.Decision.Nodes {
			if _, ok := free[n.HostID]; !ok {
				free[n.HostID] = inventory.Resources{}
				hostIDs = append(hostIDs, n.HostID)
			}
		}
	}
	if len(hostIDs) == 0 {
		return nil
	}
	sort.Strings(hostIDs)
	ready := map[string]bool{}
	if mode.lockHosts {
		if err := lockHosts(ctx, tx, hostIDs, free, ready); err != nil {
			return err
		}
	}

	// Admit decisions in order while their hosts have the room (without
	// lockHosts, all of them: the conditional update checks).
	var need inventory.Demand
	var admitted []int
	for i, it := range items {
		if single[i] {
			continue
		}
		var want inventory.Demand
		var stale []string
		for _, n := range it.Decision.Nodes {
			want.Add(n.HostID, n.Resources)
			if n.Port < 1 {
				stale = append(stale, n.HostID)
			}
		}
		for _, h := range want.Hosts() {
			if mode.lockHosts && !inventory.Admits(ready[h], free[h], need.Of(h).Add(want.Of(h))) {
				stale = append(stale, h)
			}
		}
		if len(stale) > 0 {
			sort.Strings(stale)
			errs[i] = &placement.StaleError{Hosts: stale}
			continue
		}
		need.Merge(want)
		admitted = append(admitted, i)
	}
	if len(admitted) == 0 {
		return nil
	}

	// The placement rows, in their final form.
	var sb strings.Builder
	sb.WriteString(`INSERT INTO placements (instance_id, tenant_id, request_id, kind, mode, status, request, expires_at, created_at, updated_at) VALUES `)
	args := make([]any, 0, 10*len(admitted))
	for k, i := range admitted {
		it := items[i]
		d := it.Decision
		if k > 0 {
			sb.WriteString(",")
		}
		sb.WriteString("(?,?,?,?,?,?,?,?,?,?)")
		args = append(args, d.InstanceID, d.Tenant, it.Request.RequestID, string(placement.KindNew), string(d.Mode),
			string(placement.StatusReserved), requestJSON(it.Request), it.ExpiresAt, now, now)
	}
	if _, err := tx.ExecContext(ctx, sb.String(), args...); mysqlErr(err) == errDupEntry {
		if !mode.preselect {
			return errBatchPreselect
		}
		return errBatchFallback // created concurrently since the read
	} else if err != nil {
		return fmt.Errorf("store placements: %w", err)
	}

	// Book every host once, conditionally, as Reserve does.
	var booked []string
	for _, h := range hostIDs {
		if need.Has(h) {
			booked = append(booked, h)
		}
	}
	if err := bookHosts(ctx, tx, booked, need, now); errors.Is(err, errHostsLacking) {
		if mode.lockHosts {
			return errBatchFallback // cannot happen with the rows locked; be safe
		}
		return errBatchLockHosts
	} else if err != nil {
		return err
	}

	// The reservations, one statement.
	sb.Reset()
	sb.WriteString(`INSERT INTO reservations (instance_id, node_name, role, host_id, region_id, zone_id, address, port, mcpu, memory_mb, storage_gb, score, created_at) VALUES `)
	args = args[:0]
	first := true
	for _, i := range admitted {
		d := items[i].Decision
		for _, n := range d.Nodes {
			if !first {
				sb.WriteString(",")
			}
			first = false
			sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?)")
			args = append(args, d.InstanceID, n.Name, n.Role, n.HostID, n.Region, n.Zone, n.Address, n.Port,
				n.Resources.MilliCPU, n.Resources.MemoryMB, n.Resources.StorageGB, n.Score, now)
		}
	}
	if _, err := tx.ExecContext(ctx, sb.String(), args...); mysqlErr(err) == errDupEntry {
		return errBatchFallback // a port taken: find out which decision on its own
	} else if err != nil {
		return fmt.Errorf("insert reservations: %w", err)
	}

	// One decided event per placement, one outbox statement.
	evs := make([]eventbus.Event, 0, len(admitted))
	for _, i := range admitted {
		it := items[i]
		d := it.Decision
		payload := events.PlacementDecided{InstanceID: d.InstanceID, TenantID: d.Tenant, RequestID: it.Request.RequestID,
			Kind: string(placement.KindNew), DeploymentMode: string(d.Mode), ExpiresAt: it.ExpiresAt}
		for _, n := range d.Nodes {
			payload.Nodes = append(payload.Nodes, PlacedNode(n))
		}
		e, err := eventbus.NewEvent(events.TypePlacementDecided, events.SourceScheduling, d.InstanceID, payload)
		if err != nil {
			return err
		}
		e.Tenant, e.TraceParent = d.Tenant, it.TraceParent
		evs = append(evs, e)
	}
	if err := tx.Emit(ctx, events.TopicPlacements, evs...); err != nil {
		return fmt.Errorf("emit %s: %w", events.TypePlacementDecided, err)
	}
	return nil
}

// lockHosts locks the hosts (ids sorted) and reads what each has free and
// whether it is ready.
func lockHosts(ctx context.Context, tx *store.Tx, ids []string, free map[string]inventory.Resources, ready map[string]bool) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, state, cap_mcpu - alloc_mcpu, cap_memory_mb - alloc_memory_mb, cap_storage_gb - alloc_storage_gb
		FROM hosts WHERE id IN `+store.Placeholders(len(ids))+` ORDER BY id FOR UPDATE`, anySlice(ids)...)
	if err != nil {
		return fmt.Errorf("lock hosts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, state string
		var f inventory.Resources
		if err := rows.Scan(&id, &state, &f.MilliCPU, &f.MemoryMB, &f.StorageGB); err != nil {
			return err
		}
		free[id] = f
		ready[id] = state == string(inventory.StateReady)
	}
	return rows.Err()
}
