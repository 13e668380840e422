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
	"unicode/utf8"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// maxRows is the most rows in one multi-row statement: big enough to keep
// round trips few, small enough to keep statements and lock sets modest.
const maxRows = 1000

// Reasons of late_events rows.
const reasonLate = "older than grace window"

// lateRow is one late_events row.
type lateRow struct {
	tenant, source, eventID, typ, subject, meter string
	value                                        float64
	eventTime, receivedAt                        time.Time
	reason                                       string
}

// writeBatch writes what the batch accumulated: late events, distinct
// values, then the aggregates, last, so that the rows many partitions
// share stay locked only for the commit.
func writeBatch(ctx context.Context, tx *sql.Tx, w *work) error {
	if err := writeLate(ctx, tx, w.late); err != nil {
		return err
	}
	if err := writeUniques(ctx, tx, w.batch); err != nil {
		return err
	}
	return writeAggs(ctx, tx, w.batch)
}

var levelTables = []struct {
	level meter.Level
	table string
}{{meter.Minute, "usage_minute"}, {meter.Hour, "usage_hour"}, {meter.Day, "usage_day"}}

// writeAggs adds the batch's aggregates to the stored ones, table by table
// in one order and rows sorted by key, so concurrent transactions lock
// shared rows in the same order (waits, not deadlocks), then the hour and
// day ones to the per-tenant rollups (writeRollups), which must move with
// them in every transaction that writes aggregates.
func writeAggs(ctx context.Context, tx *sql.Tx, b *meter.Batch) error {
	if len(b.Aggs) == 0 {
		return nil
	}
	byLevel := map[meter.Level][]meter.Window{}
	for win := range b.Aggs {
		byLevel[win.Level] = append(byLevel[win.Level], win)
	}
	var q []byte
	for _, lt := range levelTables {
		wins := byLevel[lt.level]
		slices.SortFunc(wins, func(a, c meter.Window) int {
			return cmpKeyAt(a.Key, a.Start, c.Key, c.Start)
		})
		for chunk := range slices.Chunk(wins, maxRows) {
			// Literals rather than placeholders: strings as hex (nothing to
			// escape), numbers and times formatted; the server parses them
			// faster than escaped strings and the driver has nothing to do.
			q = append(q[:0], "INSERT INTO "...)
			q = append(q, lt.table...)
			q = append(q, " (tenant_id, meter, window_start, subject, plan_id, region, total, cnt, maximum) VALUES "...)
			for i, win := range chunk {
				if i > 0 {
					q = append(q, ',')
				}
				a := b.Aggs[win]
				q = appendAggKey(q, win.Key, win.Start, true)
				q = strconv.AppendFloat(q, a.Total, 'f', 9, 64)
				q = appendAggTail(q, a.Count, a.Max, a.HasMax)
			}
			q = append(q, aggUpsert...)
			if _, err := tx.ExecContext(ctx, string(q)); err != nil {
				return fmt.Errorf("add %d rows to %s: %w", len(chunk), lt.table, err)
			}
		}
	}
	return writeRollups(ctx, tx, b)
}

// appendHexString appends s as a MySQL hex literal (X'…'); the column's
// character set reads the bytes, which are valid UTF-8 (see clip).
func appendHexString(b []byte, s string) []byte {
	const digits = "0123456789abcdef"
	b = append(b, "X'"...)
	for i := 0; i < len(s); i++ {
		b = append(b, digits[s[i]>>4], digits[s[i]&0x0f])
	}
	return append(b, '\'')
}

// uniqueLevels are usage_unique's level codes.
var uniqueLevels = map[meter.Level]string{meter.Hour: "h", meter.Day: "d", meter.Month: "M"}

// writeUniques records the batch's distinct values (ignoring known ones).
func writeUniques(ctx context.Context, tx *sql.Tx, b *meter.Batch) error {
	if len(b.Uniques) == 0 {
		return nil
	}
	keys := make([]meter.UniqueKey, 0, len(b.Uniques))
	for k := range b.Uniques {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b meter.UniqueKey) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), cmpKeyAt(a.Key, a.Start, b.Key, b.Start), cmp.Compare(a.Hash, b.Hash))
	})
	var sb strings.Builder
	for chunk := range slices.Chunk(keys, maxRows) {
		sb.Reset()
		sb.WriteString("INSERT IGNORE INTO usage_unique (level, tenant_id, meter, window_start, subject, plan_id, region, value_hash) VALUES ")
		args := make([]any, 0, len(chunk)*8)
		for i, k := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?)")
			args = append(args, uniqueLevels[k.Level], k.Tenant, k.Meter, k.Start, k.Subject, k.Plan, k.Region, k.Hash)
		}
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("add %d distinct values: %w", len(chunk), err)
		}
	}
	return nil
}

// writeLate records late events.
func writeLate(ctx context.Context, tx *sql.Tx, rows []lateRow) error {
	var sb strings.Builder
	for chunk := range slices.Chunk(rows, maxRows) {
		sb.Reset()
		sb.WriteString(`INSERT INTO late_events (tenant_id, source, event_id, type, subject, meter, value, event_time, received_at, reason) VALUES `)
		args := make([]any, 0, len(chunk)*10)
		for i, r := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?,?,?)")
			value := r.value
			if !storable(value) {
				value = 0
			}
			args = append(args, clip(r.tenant, 64), clip(r.source, 255), clip(r.eventID, 255), clip(r.typ, 255),
				clip(r.subject, 255), clip(r.meter, 64), decimal(value), datetime(r.eventTime), datetime(r.receivedAt), r.reason)
		}
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("record %d late events: %w", len(chunk), err)
		}
	}
	return nil
}

// cmpKeyAt orders aggregate rows as their primary key does.
func cmpKeyAt(a meter.Key, at time.Time, b meter.Key, bt time.Time) int {
	return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Meter, b.Meter), at.Compare(bt),
		cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Plan, b.Plan), cmp.Compare(a.Region, b.Region))
}

// decimal formats v for a DECIMAL(…,9) column: as a decimal literal, so the
// server converts it exactly.
func decimal(v float64) string { return strconv.FormatFloat(v, 'f', 9, 64) }

// maxStorable bounds the values the ledger stores: DECIMAL(38,9) holds 29
// integer digits, and totals must have room to grow.
const maxStorable = 1e20

// storable reports whether a contribution's value fits the aggregates.
func storable(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && math.Abs(v) < maxStorable
}

// clipKey fits a key's strings into the aggregate columns (an over-long or
// invalid string must not fail a batch over and over).
func clipKey(k meter.Key) meter.Key {
	return meter.Key{Tenant: clip(k.Tenant, 64), Meter: clip(k.Meter, 64), Subject: clip(k.Subject, 255),
		Plan: clip(k.Plan, 64), Region: clip(k.Region, 64)}
}

// clip returns s as valid UTF-8 of at most n characters.
func clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	i, count := 0, 0
	for i < len(s) && count < n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i]
}

// DATETIME's range.
var (
	minDatetime = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDatetime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// datetime clamps t into DATETIME's range, in UTC.
func datetime(t time.Time) time.Time {
	t = t.UTC()
	switch {
	case t.Before(minDatetime):
		return minDatetime
	case t.After(maxDatetime):
		return maxDatetime
	}
	return t
}

// builtinAggregations maps the built-in meters to their aggregation.
func builtinAggregations() map[string]meter.Aggregation {
	m := map[string]meter.Aggregation{}
	for _, b := range meter.Builtins() {
		m[b.Slug] = b.Aggregation
	}
	return m
}

// aggUpsert adds a batch's row to the stored one: totals and counts add up,
// the maximum is the larger.
const aggUpsert = ` ON DUPLICATE KEY UPDATE total = total + VALUES(total), cnt = cnt + VALUES(cnt),
	maximum = GREATEST(COALESCE(maximum, VALUES(maximum)), COALESCE(VALUES(maximum), maximum))`

// appendAggKey opens an aggregate row with its key: tenant, meter, window
// start, the subject (the per-subject tables; not the tenant rollups), plan
// and region, and the comma before the total.
func appendAggKey(q []byte, k meter.Key, start time.Time, withSubject bool) []byte {
	q = append(q, '(')
	q = appendHexString(q, k.Tenant)
	q = append(q, ',')
	q = appendHexString(q, k.Meter)
	q = append(q, ",'"...)
	q = start.UTC().AppendFormat(q, "2006-01-02 15:04:05")
	q = append(q, "',"...)
	if withSubject {
		q = appendHexString(q, k.Subject)
		q = append(q, ',')
	}
	q = appendHexString(q, k.Plan)
	q = append(q, ',')
	q = appendHexString(q, k.Region)
	return append(q, ',')
}

// appendAggTail closes an aggregate row after its total: the count and the
// maximum (NULL when the row has none).
func appendAggTail(q []byte, count int64, max float64, hasMax bool) []byte {
	q = append(q, ',')
	q = strconv.AppendInt(q, count, 10)
	q = append(q, ',')
	if hasMax {
		q = strconv.AppendFloat(q, max, 'f', 9, 64)
	} else {
		q = append(q, "NULL"...)
	}
	return append(q, ')')
}
