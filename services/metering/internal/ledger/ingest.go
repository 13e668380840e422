package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// dedupChunk is the most keys registered in one statement (the key rows
// are small; fewer round trips matter more here).
const dedupChunk = 5000

// prepareIngest computes the events' contributions and lateness ahead of
// their transaction (in the partition's reader goroutine, in parallel with
// the applier), with the custom meters as of at most meterRefresh ago and
// the subjects' instances as committed.
func (l *Ledger) prepareIngest(ctx context.Context, recs []ingestRec) error {
	if len(recs) == 0 {
		return nil
	}
	byType, aggs, err := l.meters.get(ctx, l.db.SQL())
	if err != nil {
		return err
	}
	subjects := make([]string, 0, len(recs))
	for i := range recs {
		if s := recs[i].e.Subject; s != "" {
			subjects = append(subjects, s)
		}
	}
	infos, err := l.lookupInstances(ctx, l.db.SQL(), subjects)
	if err != nil {
		return err
	}
	for i := range recs {
		r := &recs[i]
		e := &r.e
		info := meter.InstanceInfo{Tenant: e.TenantID}
		// Only the tenant's own instance lends its plan and region.
		if inst, ok := infos[e.Subject]; ok && inst.Tenant == e.TenantID {
			info = inst
		}
		r.cs = meter.EventContributions(*e, byType[e.Type], info)
		r.aggs = aggs
		r.late = meter.IsLate(e.Time, r.recv, l.cfg.Grace)
	}
	return nil
}

// applyIngest counts ingested CloudEvents towards the custom meters of
// their type, each (source, id) once: copies inside the batch are dropped
// in memory, copies seen before are found through ingest_dedup, whose keys
// this batch adds in the same transaction. A late event is recorded in
// late_events (and its key kept, so a copy is a duplicate), not counted.
func (l *Ledger) applyIngest(ctx context.Context, tx *sql.Tx, w *work, recs []ingestRec) error {
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
	// While the server registers the keys, fold the events as if none was
	// a copy seen before (the usual case); fold again if some were.
	var old map[[16]byte]bool
	var regErr error
	registered := make(chan struct{})
	go func() {
		defer close(registered)
		old, regErr = registerKeys(ctx, tx, fresh)
	}()
	for i := range fresh {
		if !fresh[i].late {
			w.add(fresh[i].cs, fresh[i].aggs)
		}
	}
	<-registered
	if regErr != nil {
		return regErr
	}
	if len(old) > 0 {
		w.batch = meter.NewBatch()
		for i := range fresh {
			if !fresh[i].late && !old[fresh[i].key] {
				w.add(fresh[i].cs, fresh[i].aggs)
			}
		}
	}
	for i := range fresh {
		r := &fresh[i]
		switch {
		case old[r.key]:
			w.count(outcomeDuplicate, 1)
		case r.late:
			e := &r.e
			row := lateRow{tenant: e.TenantID, source: e.Source, eventID: e.ID, typ: e.Type, subject: e.Subject,
				eventTime: e.Time, receivedAt: r.recv, reason: reasonLate}
			if len(r.cs) == 0 {
				w.late = append(w.late, row)
			}
			for _, c := range r.cs {
				row.meter, row.value = c.Meter, c.Value
				w.late = append(w.late, row)
			}
			w.count(outcomeLate, 1)
		default:
			w.count(outcomeCounted, 1)
		}
	}
	return nil
}

// registerKeys adds the events' dedup keys with where they were read and
// returns the keys that were there already from another message: copies
// seen before. A key found with this very partition and offset is this
// message's own (the batch is being applied again) and is no copy.
func registerKeys(ctx context.Context, tx *sql.Tx, recs []ingestRec) (map[[16]byte]bool, error) {
	type dedupRow struct {
		key  [16]byte
		part int
		off  int64
		recv time.Time
	}
	// In key order: the inserts then walk the primary key's pages in order.
	keys := make([]dedupRow, len(recs))
	for i := range recs {
		r := &recs[i]
		keys[i] = dedupRow{key: r.key, part: r.part, off: r.off, recv: r.recv}
	}
	slices.SortFunc(keys, func(a, b dedupRow) int { return bytes.Compare(a.key[:], b.key[:]) })
	old := map[[16]byte]bool{}
	var sb strings.Builder
	for chunk := range slices.Chunk(keys, dedupChunk) {
		// Written as literals (hex keys, numbers, formatted times: nothing
		// to escape), which the server parses faster than escaped binary
		// strings and which spares the driver's interpolation.
		sb.Reset()
		sb.Grow(len(chunk) * 80)
		sb.WriteString("INSERT IGNORE INTO ingest_dedup (k, part, off, received_at) VALUES ")
		var buf [64]byte
		for i := range chunk {
			r := &chunk[i]
			if i > 0 {
				sb.WriteByte(',')
			}
			b := append(buf[:0], "(X'"...)
			b = hex.AppendEncode(b, r.key[:])
			b = append(b, "',"...)
			b = strconv.AppendInt(b, int64(r.part), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, r.off, 10)
			b = append(b, ",'"...)
			b = datetime(r.recv).AppendFormat(b, "2006-01-02 15:04:05")
			b = append(b, "')"...)
			sb.Write(b)
		}
		res, err := tx.ExecContext(ctx, sb.String())
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
		at := make(map[[16]byte]*dedupRow, len(chunk))
		args := make([]any, 0, len(chunk))
		for i := range chunk {
			at[chunk[i].key] = &chunk[i]
			args = append(args, chunk[i].key[:])
		}
		rows, err := tx.QueryContext(ctx, "SELECT k, part, off FROM ingest_dedup WHERE k IN "+store.Placeholders(len(chunk)), args...)
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
			if r := at[key]; r != nil && (p != r.part || off != r.off) {
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

// meterRefresh is how old the custom meters the ledger counts with may be:
// a meter defined now counts the events applied from at most this later.
const meterRefresh = time.Second

// meterCache holds the custom meters (those over ingested events).
type meterCache struct {
	mu     sync.Mutex
	loaded time.Time
	byType map[string][]meter.Meter
	aggs   map[string]meter.Aggregation
}

func (c *meterCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded = time.Time{}
}

// get returns the custom meters by event type and the aggregation of each,
// read again when older than meterRefresh.
func (c *meterCache) get(ctx context.Context, db querier) (map[string][]meter.Meter, map[string]meter.Aggregation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded.IsZero() && time.Since(c.loaded) < meterRefresh {
		return c.byType, c.aggs, nil
	}
	rows, err := db.QueryContext(ctx, "SELECT slug, aggregation, event_type, value_property FROM meters WHERE event_type <> ''")
	if err != nil {
		return nil, nil, fmt.Errorf("read custom meters: %w", err)
	}
	defer rows.Close()
	byType := map[string][]meter.Meter{}
	aggs := map[string]meter.Aggregation{}
	for rows.Next() {
		var m meter.Meter
		if err := rows.Scan(&m.Slug, &m.Aggregation, &m.EventType, &m.ValueProperty); err != nil {
			return nil, nil, fmt.Errorf("read custom meters: %w", err)
		}
		byType[m.EventType] = append(byType[m.EventType], m)
		aggs[m.Slug] = m.Aggregation
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read custom meters: %w", err)
	}
	c.byType, c.aggs, c.loaded = byType, aggs, time.Now()
	return byType, aggs, nil
}
