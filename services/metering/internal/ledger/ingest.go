package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// dedupChunk is the most keys registered in one statement (the key rows
// are small; fewer round trips matter more here).
const dedupChunk = 5000

// applyIngest counts ingested CloudEvents towards the custom meters of
// their type, each (source, id) once: copies inside the batch are dropped
// in memory, copies seen before are found through ingest_dedup, whose keys
// this batch adds in the same transaction. A late event is recorded in
// late_events (and its key kept, so a copy is a duplicate), not counted.
func (l *Ledger) applyIngest(ctx context.Context, tx *store.Tx, w *work, recs []ingestRec) error {
	if len(recs) == 0 {
		return nil
	}
	seen := make(map[[16]byte]struct{}, len(recs))
	fresh := make([]ingestRec, 0, len(recs))
	for _, r := range recs {
		if _, ok := seen[r.key]; ok {
			w.count(outcomeDuplicate, 1)
			continue
		}
		seen[r.key] = struct{}{}
		fresh = append(fresh, r)
	}
	old, err := registerKeys(ctx, tx, w.tp.part, fresh)
	if err != nil {
		return err
	}
	meters, err := loadEventMeters(ctx, tx)
	if err != nil {
		return err
	}
	aggs := make(map[string]meter.Aggregation, len(meters))
	byType := map[string][]meter.Meter{}
	for _, m := range meters {
		aggs[m.Slug] = m.Aggregation
		byType[m.EventType] = append(byType[m.EventType], m)
	}
	var subjects []string
	for _, r := range fresh {
		if r.e.Subject != "" && !old[r.key] {
			subjects = append(subjects, r.e.Subject)
		}
	}
	infos, err := l.lookupInstances(ctx, tx, subjects)
	if err != nil {
		return err
	}
	for _, r := range fresh {
		if old[r.key] {
			w.count(outcomeDuplicate, 1)
			continue
		}
		e := r.e
		info := meter.InstanceInfo{Tenant: e.TenantID}
		// Only the tenant's own instance lends its plan and region.
		if inst, ok := infos[e.Subject]; ok && inst.Tenant == e.TenantID {
			info = inst
		}
		cs := meter.EventContributions(e, byType[e.Type], info)
		if meter.IsLate(e.Time, r.recv, l.cfg.Grace) {
			row := lateRow{tenant: e.TenantID, source: e.Source, eventID: e.ID, typ: e.Type, subject: e.Subject,
				eventTime: e.Time, receivedAt: r.recv, reason: reasonLate}
			if len(cs) == 0 {
				w.late = append(w.late, row)
			}
			for _, c := range cs {
				row.meter, row.value = c.Meter, c.Value
				w.late = append(w.late, row)
			}
			w.count(outcomeLate, 1)
			continue
		}
		w.add(cs, aggs)
		w.count(outcomeCounted, 1)
	}
	return nil
}

// registerKeys adds the events' dedup keys with where they were read and
// returns the keys that were there already from another message: copies
// seen before. A key found with this very partition and offset is this
// message's own (the batch is being applied again) and is no copy.
func registerKeys(ctx context.Context, tx *store.Tx, part int, recs []ingestRec) (map[[16]byte]bool, error) {
	old := map[[16]byte]bool{}
	var sb strings.Builder
	for chunk := range slices.Chunk(recs, dedupChunk) {
		sb.Reset()
		sb.WriteString("INSERT IGNORE INTO ingest_dedup (k, part, off, received_at) VALUES ")
		args := make([]any, 0, len(chunk)*4)
		for i, r := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?)")
			args = append(args, r.key[:], part, r.off, datetime(r.recv))
		}
		res, err := tx.ExecContext(ctx, sb.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("register %d ingest keys: %w", len(chunk), err)
		}
		added, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("register %d ingest keys: %w", len(chunk), err)
		}
		if int(added) == len(chunk) {
			continue
		}
		offs := make(map[[16]byte]int64, len(chunk))
		args = args[:0]
		for _, r := range chunk {
			offs[r.key] = r.off
			args = append(args, r.key[:])
		}
		rows, err := tx.QueryContext(ctx, "SELECT k, part, off FROM ingest_dedup WHERE k IN "+inClause(len(chunk)), args...)
		if err != nil {
			return nil, fmt.Errorf("find known ingest keys: %w", err)
		}
		for rows.Next() {
			var k []byte
			var p int
			var off int64
			if err := rows.Scan(&k, &p, &off); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find known ingest keys: %w", err)
			}
			var key [16]byte
			copy(key[:], k)
			if p != part || off != offs[key] {
				old[key] = true
			}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("find known ingest keys: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find known ingest keys: %w", err)
		}
	}
	return old, nil
}

// loadEventMeters returns the custom meters (those over ingested events).
func loadEventMeters(ctx context.Context, tx *store.Tx) ([]meter.Meter, error) {
	rows, err := tx.QueryContext(ctx, "SELECT slug, aggregation, event_type, value_property FROM meters WHERE event_type <> ''")
	if err != nil {
		return nil, fmt.Errorf("read custom meters: %w", err)
	}
	defer rows.Close()
	var out []meter.Meter
	for rows.Next() {
		var m meter.Meter
		if err := rows.Scan(&m.Slug, &m.Aggregation, &m.EventType, &m.ValueProperty); err != nil {
			return nil, fmt.Errorf("read custom meters: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read custom meters: %w", err)
	}
	return out, nil
}
