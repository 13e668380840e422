package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// stateDeleted is the instance state after which nothing follows.
const stateDeleted = "deleted"

// interval is a node_intervals row.
type interval struct {
	node    meter.BilledNode
	started time.Time
	accrued time.Time
	ended   *time.Time
}

type intervalKey struct {
	instance, node string
	started        int64 // unix µs
}

func (iv *interval) key() intervalKey {
	return intervalKey{instance: iv.node.InstanceID, node: iv.node.NodeID, started: iv.started.UnixMicro()}
}

// instanceRow is an instances row.
type instanceRow struct {
	id, tenant, name, plan, region, engine, state string
	vcpu                                          float64
	memoryMB, storageGB                           int64
	createdAt, updatedAt                          time.Time
	deletedAt                                     *time.Time
}

func (r *instanceRow) info() meter.InstanceInfo {
	return meter.InstanceInfo{Tenant: r.tenant, Plan: r.plan, Region: r.region}
}

// applyInstances applies lifecycle events in partition order (which is the
// order of each instance's events): the instance's row, and its nodes'
// billed intervals — opened at the event's time when a node becomes billed,
// closed at it when the node stops being billed (its accrued usage past that
// time taken back, or the usage up to it added).
//
// An event older than the last one applied to its instance (a copy the
// outbox relay sent again, or a clock that went back) is not applied: it
// would reopen what a later event closed. Only a stale "deleted" still
// closes whatever is open (at its time, or the interval's start if later),
// since nothing can follow a deletion and an instance must never be billed
// past it.
func (l *Ledger) applyInstances(ctx context.Context, tx *sql.Tx, w *work, recs []instanceRec) error {
	if len(recs) == 0 {
		return nil
	}
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, r.in.InstanceID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	// Intervals first: the accrual locks them too.
	open, err := loadOpenIntervals(ctx, tx, ids)
	if err != nil {
		return err
	}
	rows, err := loadInstanceRows(ctx, tx, ids)
	if err != nil {
		return err
	}
	changedIv := map[intervalKey]*interval{}
	changedRows := map[string]*instanceRow{}
	for _, r := range recs {
		in := r.in
		t := r.at
		row := rows[in.InstanceID]
		stale := row != nil && t.Before(row.updatedAt)
		if stale && in.State != stateDeleted {
			w.count(outcomeSkipped, 1)
			continue
		}
		billed := map[string]meter.BilledNode{}
		if !stale {
			for _, b := range meter.BilledNodes(in) {
				b = normalizeNode(b)
				billed[b.NodeID] = b
			}
		}
		matched := map[string]bool{}
		var still []*interval
		for _, iv := range open[in.InstanceID] {
			if b, ok := billed[iv.node.NodeID]; ok && b == iv.node && !matched[b.NodeID] {
				matched[b.NodeID] = true
				still = append(still, iv)
				continue
			}
			w.add(closeInterval(iv, t), l.builtin)
			changedIv[iv.key()] = iv
		}
		nodeIDs := make([]string, 0, len(billed))
		for id := range billed {
			nodeIDs = append(nodeIDs, id)
		}
		slices.Sort(nodeIDs)
		for _, id := range nodeIDs {
			if matched[id] {
				continue
			}
			iv := &interval{node: billed[id], started: t, accrued: t}
			changedIv[iv.key()] = iv
			still = append(still, iv)
		}
		open[in.InstanceID] = still

		if stale {
			if row.state != stateDeleted || row.deletedAt == nil {
				row.state = stateDeleted
				if row.deletedAt == nil {
					at := t
					row.deletedAt = &at
				}
				changedRows[row.id] = row
			}
		} else {
			row = nextRow(row, in, t)
			rows[row.id] = row
			changedRows[row.id] = row
		}
		w.count(outcomeCounted, 1)
	}
	if err := writeIntervals(ctx, tx, slicesOf(changedIv)); err != nil {
		return err
	}
	if err := writeInstanceRows(ctx, tx, changedRows); err != nil {
		return err
	}
	w.afterCommit = append(w.afterCommit, func() {
		for id, row := range changedRows {
			l.cache.set(id, row.info())
		}
	})
	return nil
}

// closeInterval ends iv at t (not before it started) and returns the
// contributions that make its usage exactly [started, t): the accrued part
// past t taken back, or the part from accrued_until to t added.
func closeInterval(iv *interval, t time.Time) []meter.Contribution {
	if t.Before(iv.started) {
		t = iv.started
	}
	var cs []meter.Contribution
	switch {
	case t.Before(iv.accrued):
		cs = meter.IntervalContributions(iv.node, t, iv.accrued, -1)
	case t.After(iv.accrued):
		cs = meter.IntervalContributions(iv.node, iv.accrued, t, 1)
	}
	iv.ended = &t
	iv.accrued = t
	return cs
}

// normalizeNode makes a billed node what the node_intervals row will hold,
// so that comparing the two tells a changed node from an unchanged one.
func normalizeNode(b meter.BilledNode) meter.BilledNode {
	b.InstanceID, b.NodeID = clip(b.InstanceID, 64), clip(b.NodeID, 64)
	b.Tenant, b.Plan, b.Region = clip(b.Tenant, 64), clip(b.Plan, 64), clip(b.Region, 64)
	b.Size.VCPU = vcpu3(b.Size.VCPU)
	return b
}

// vcpu3 is v as DECIMAL(10,3) holds it.
func vcpu3(v float64) float64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return min(math.Round(v*1000)/1000, 9999999.999)
}

// nextRow is row (nil: none yet) after event in at t.
func nextRow(row *instanceRow, in events.Instance, t time.Time) *instanceRow {
	next := &instanceRow{
		id: clip(in.InstanceID, 64), tenant: clip(in.TenantID, 64), name: clip(in.Name, 255), plan: clip(in.PlanID, 64),
		region: clip(instanceRegion(in), 64), engine: clip(in.Engine, 32), state: clip(in.State, 32),
		vcpu: vcpu3(in.VCPU), memoryMB: in.MemoryMB, storageGB: in.StorageGB, createdAt: t, updatedAt: t,
	}
	if row != nil {
		next.createdAt = row.createdAt
		next.deletedAt = row.deletedAt
		if next.region == "" {
			next.region = row.region
		}
	}
	if in.State == stateDeleted && next.deletedAt == nil {
		at := t
		next.deletedAt = &at
	}
	return next
}

// instanceRegion is the region of the instance's primary node (else of its
// first node): the region its samples and ingested usage are keyed by.
func instanceRegion(in events.Instance) string {
	for _, n := range in.Nodes {
		if n.ID == in.Endpoints.Primary || (n.Name != "" && n.Name == in.Endpoints.Primary) {
			return n.Region
		}
	}
	if len(in.Nodes) > 0 {
		return in.Nodes[0].Region
	}
	return ""
}

func slicesOf(m map[intervalKey]*interval) []*interval {
	out := make([]*interval, 0, len(m))
	for _, iv := range m {
		out = append(out, iv)
	}
	return out
}

// loadOpenIntervals locks and returns the open intervals of the instances.
func loadOpenIntervals(ctx context.Context, tx *sql.Tx, ids []string) (map[string][]*interval, error) {
	out := map[string][]*interval{}
	for chunk := range slices.Chunk(ids, maxRows) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := tx.QueryContext(ctx, `SELECT instance_id, node_id, started_at, accrued_until, tenant_id, plan_id, region, vcpu, memory_mb, storage_gb
			FROM node_intervals WHERE instance_id IN `+store.Placeholders(len(chunk))+` AND ended_at IS NULL
			ORDER BY instance_id, node_id, started_at FOR UPDATE`, args...)
		if err != nil {
			return nil, fmt.Errorf("lock open intervals: %w", err)
		}
		ivs, err := scanIntervals(rows)
		if err != nil {
			return nil, fmt.Errorf("lock open intervals: %w", err)
		}
		for _, iv := range ivs {
			out[iv.node.InstanceID] = append(out[iv.node.InstanceID], iv)
		}
	}
	return out, nil
}

// scanIntervals reads (and closes) rows of node_intervals columns as
// loadOpenIntervals selects them.
func scanIntervals(rows *sql.Rows) ([]*interval, error) {
	defer rows.Close()
	var out []*interval
	for rows.Next() {
		iv := &interval{}
		n := &iv.node
		if err := rows.Scan(&n.InstanceID, &n.NodeID, &iv.started, &iv.accrued, &n.Tenant, &n.Plan, &n.Region,
			&n.Size.VCPU, &n.Size.MemoryMB, &n.Size.StorageGB); err != nil {
			return nil, err
		}
		iv.started, iv.accrued = iv.started.UTC(), iv.accrued.UTC()
		out = append(out, iv)
	}
	return out, rows.Err()
}

// writeIntervals inserts new intervals and updates changed ones (a new
// interval with the key of a zero-length closed one reopens it).
func writeIntervals(ctx context.Context, tx *sql.Tx, ivs []*interval) error {
	slices.SortFunc(ivs, func(a, b *interval) int {
		return cmp.Or(cmp.Compare(a.node.InstanceID, b.node.InstanceID), cmp.Compare(a.node.NodeID, b.node.NodeID), a.started.Compare(b.started))
	})
	var sb strings.Builder
	for chunk := range slices.Chunk(ivs, maxRows) {
		sb.Reset()
		sb.WriteString(`INSERT INTO node_intervals (instance_id, node_id, started_at, ended_at, accrued_until, tenant_id, plan_id, region, vcpu, memory_mb, storage_gb) VALUES `)
		args := make([]any, 0, len(chunk)*11)
		for i, iv := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
			var ended any
			if iv.ended != nil {
				ended = *iv.ended
			}
			n := iv.node
			args = append(args, n.InstanceID, n.NodeID, iv.started, ended, iv.accrued, n.Tenant, n.Plan, n.Region,
				strconv.FormatFloat(n.Size.VCPU, 'f', 3, 64), n.Size.MemoryMB, n.Size.StorageGB)
		}
		sb.WriteString(` ON DUPLICATE KEY UPDATE ended_at = VALUES(ended_at), accrued_until = VALUES(accrued_until),
			tenant_id = VALUES(tenant_id), plan_id = VALUES(plan_id), region = VALUES(region), vcpu = VALUES(vcpu),
			memory_mb = VALUES(memory_mb), storage_gb = VALUES(storage_gb)`)
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("write %d node intervals: %w", len(chunk), err)
		}
	}
	return nil
}

// loadInstanceRows locks and returns the instances' rows.
func loadInstanceRows(ctx context.Context, tx *sql.Tx, ids []string) (map[string]*instanceRow, error) {
	out := map[string]*instanceRow{}
	for chunk := range slices.Chunk(ids, maxRows) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := tx.QueryContext(ctx, `SELECT instance_id, tenant_id, name, plan_id, region, engine, state, vcpu, memory_mb, storage_gb,
			created_at, updated_at, deleted_at FROM instances WHERE instance_id IN `+store.Placeholders(len(chunk))+` FOR UPDATE`, args...)
		if err != nil {
			return nil, fmt.Errorf("lock instances: %w", err)
		}
		for rows.Next() {
			r := &instanceRow{}
			var deleted sql.NullTime
			if err := rows.Scan(&r.id, &r.tenant, &r.name, &r.plan, &r.region, &r.engine, &r.state, &r.vcpu, &r.memoryMB, &r.storageGB,
				&r.createdAt, &r.updatedAt, &deleted); err != nil {
				rows.Close()
				return nil, fmt.Errorf("lock instances: %w", err)
			}
			r.createdAt, r.updatedAt = r.createdAt.UTC(), r.updatedAt.UTC()
			if deleted.Valid {
				at := deleted.Time.UTC()
				r.deletedAt = &at
			}
			out[r.id] = r
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("lock instances: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("lock instances: %w", err)
		}
	}
	return out, nil
}

// writeInstanceRows upserts the instances' rows (created_at is kept).
func writeInstanceRows(ctx context.Context, tx *sql.Tx, rows map[string]*instanceRow) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]string, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var sb strings.Builder
	for chunk := range slices.Chunk(ids, maxRows) {
		sb.Reset()
		sb.WriteString(`INSERT INTO instances (instance_id, tenant_id, name, plan_id, region, engine, state, vcpu, memory_mb, storage_gb,
			created_at, updated_at, deleted_at) VALUES `)
		args := make([]any, 0, len(chunk)*13)
		for i, id := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?)")
			r := rows[id]
			var deleted any
			if r.deletedAt != nil {
				deleted = *r.deletedAt
			}
			args = append(args, r.id, r.tenant, r.name, r.plan, r.region, r.engine, r.state,
				strconv.FormatFloat(r.vcpu, 'f', 3, 64), r.memoryMB, r.storageGB, r.createdAt, r.updatedAt, deleted)
		}
		sb.WriteString(` ON DUPLICATE KEY UPDATE tenant_id = VALUES(tenant_id), name = VALUES(name), plan_id = VALUES(plan_id),
			region = VALUES(region), engine = VALUES(engine), state = VALUES(state), vcpu = VALUES(vcpu), memory_mb = VALUES(memory_mb),
			storage_gb = VALUES(storage_gb), updated_at = VALUES(updated_at), deleted_at = VALUES(deleted_at)`)
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("write %d instances: %w", len(chunk), err)
		}
	}
	return nil
}
