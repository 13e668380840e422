package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// applySamples turns sample batches into traffic, operations, connections
// and used-storage contributions, moving the nodes' stored counters. A late
// batch (its window ended before receipt minus the grace) still moves the
// counters, so the next batch's deltas stay right, but is recorded in
// late_events instead of counted.
func (l *Ledger) applySamples(ctx context.Context, tx *sql.Tx, w *work, recs []sampleRec) error {
	if len(recs) == 0 {
		return nil
	}
	var instIDs, nodeIDs []string
	for _, r := range recs {
		instIDs = append(instIDs, r.b.InstanceID)
		for _, n := range r.b.Nodes {
			nodeIDs = append(nodeIDs, clip(n.NodeID, 64))
		}
	}
	infos, err := l.lookupInstances(ctx, tx, instIDs)
	if err != nil {
		return err
	}
	counters, err := loadCounters(ctx, tx, nodeIDs)
	if err != nil {
		return err
	}
	changed := map[meter.CounterKey]meter.Counter{}
	for _, r := range recs {
		info, ok := infos[r.b.InstanceID]
		if !ok {
			// Samples can precede the instance's first lifecycle event.
			info = meter.InstanceInfo{Tenant: cmp.Or(r.b.TenantID, r.tenant)}
		}
		if info.Tenant == "" {
			w.count(outcomeSkipped, 1)
			continue
		}
		cs, next := meter.SampleContributions(r.b, info, counters)
		for k, c := range next {
			k = meter.CounterKey{NodeID: clip(k.NodeID, 64), Name: clip(k.Name, 64)}
			counters[k] = c
			changed[k] = c
		}
		at := sampleTime(r)
		if meter.IsLate(at, r.origin.recv, l.cfg.Grace) {
			w.late = append(w.late, lateRow{tenant: info.Tenant, source: r.origin.source, eventID: r.origin.id, typ: r.origin.typ,
				subject: r.b.InstanceID, eventTime: at, receivedAt: r.origin.recv, reason: reasonLate})
			w.count(outcomeLate, 1)
			continue
		}
		w.add(cs, l.builtin)
		w.count(outcomeCounted, 1)
	}
	return writeCounters(ctx, tx, changed)
}

// sampleTime is when a sample batch was taken: its window's end, else its
// latest node sample, else when it was received.
func sampleTime(r sampleRec) time.Time {
	if !r.b.WindowEnd.IsZero() {
		return r.b.WindowEnd
	}
	var last time.Time
	for _, n := range r.b.Nodes {
		if n.At.After(last) {
			last = n.At
		}
	}
	if !last.IsZero() {
		return last
	}
	return r.origin.recv
}

// applyCDC counts the rows cdc streams published (cdc_rows).
func (l *Ledger) applyCDC(ctx context.Context, tx *sql.Tx, w *work, recs []cdcRec) error {
	if len(recs) == 0 {
		return nil
	}
	// Each usage event counts once, however often the relay delivered it:
	// its (source, id) joins the ingested events' dedup keys.
	fresh := make([]cdcRec, 0, len(recs))
	keys := make([]ingestRec, 0, len(recs))
	inBatch := make(map[[16]byte]bool, len(recs))
	for _, r := range recs {
		if inBatch[r.key] {
			w.count(outcomeDuplicate, 1)
			continue
		}
		inBatch[r.key] = true
		fresh = append(fresh, r)
		keys = append(keys, ingestRec{part: r.part, off: r.off, recv: r.recv, key: r.key})
	}
	old, err := registerKeys(ctx, tx, keys)
	if err != nil {
		return fmt.Errorf("register cdc usage events: %w", err)
	}
	ids := make([]string, 0, len(fresh))
	for _, r := range fresh {
		ids = append(ids, r.u.InstanceID)
	}
	infos, err := l.lookupInstances(ctx, tx, ids)
	if err != nil {
		return err
	}
	for _, r := range fresh {
		if old[r.key] {
			w.count(outcomeDuplicate, 1)
			continue
		}
		info, ok := infos[r.u.InstanceID]
		if !ok {
			info = meter.InstanceInfo{Tenant: cmp.Or(r.u.TenantID, r.tenant)}
		}
		if info.Tenant == "" {
			w.count(outcomeSkipped, 1)
			continue
		}
		w.add(meter.CDCContributions(r.u, info), l.builtin)
		w.count(outcomeCounted, 1)
	}
	return nil
}

// loadCounters returns the stored counters SampleContributions needs of
// the nodes.
func loadCounters(ctx context.Context, tx *sql.Tx, nodeIDs []string) (map[meter.CounterKey]meter.Counter, error) {
	out := map[meter.CounterKey]meter.Counter{}
	if len(nodeIDs) == 0 {
		return out, nil
	}
	slices.Sort(nodeIDs)
	nodeIDs = slices.Compact(nodeIDs)
	names := meter.SampleCounters()
	for chunk := range slices.Chunk(nodeIDs, maxRows) {
		args := make([]any, 0, len(chunk)+len(names))
		for _, id := range chunk {
			args = append(args, id)
		}
		for _, n := range names {
			args = append(args, n)
		}
		rows, err := tx.QueryContext(ctx, "SELECT node_id, name, value, uptime, sampled_at FROM node_counters WHERE node_id IN "+
			store.Placeholders(len(chunk))+" AND name IN "+store.Placeholders(len(names)), args...)
		if err != nil {
			return nil, fmt.Errorf("read node counters: %w", err)
		}
		for rows.Next() {
			var k meter.CounterKey
			var c meter.Counter
			if err := rows.Scan(&k.NodeID, &k.Name, &c.Value, &c.Uptime, &c.At); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read node counters: %w", err)
			}
			c.At = c.At.UTC()
			out[k] = c
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read node counters: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read node counters: %w", err)
		}
	}
	return out, nil
}

// writeCounters stores the nodes' latest counters.
func writeCounters(ctx context.Context, tx *sql.Tx, cs map[meter.CounterKey]meter.Counter) error {
	if len(cs) == 0 {
		return nil
	}
	keys := make([]meter.CounterKey, 0, len(cs))
	for k := range cs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b meter.CounterKey) int {
		return cmp.Or(cmp.Compare(a.NodeID, b.NodeID), cmp.Compare(a.Name, b.Name))
	})
	var sb strings.Builder
	for chunk := range slices.Chunk(keys, maxRows) {
		sb.Reset()
		sb.WriteString("INSERT INTO node_counters (node_id, name, value, uptime, sampled_at) VALUES ")
		args := make([]any, 0, len(chunk)*5)
		for i, k := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?)")
			c := cs[k]
			args = append(args, k.NodeID, k.Name, c.Value, c.Uptime, datetime(c.At))
		}
		sb.WriteString(" ON DUPLICATE KEY UPDATE value = VALUES(value), uptime = VALUES(uptime), sampled_at = VALUES(sampled_at)")
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("write %d node counters: %w", len(chunk), err)
		}
	}
	return nil
}
