package alertstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

const alertColumns = "fingerprint, labels, annotations, starts_at, ends_at, state, rule, value, action, generator_url, updated_at"

// upsertAlertsTail updates an existing row. starts_at comes first because
// MySQL evaluates the assignments in order and the condition reads the
// row's old state and ends_at: an earlier StartsAt of a row that has not
// ended (a continuation of the same episode) is kept — the same rule as
// alert.Merge, so writing the engine's merged alert changes nothing, and a
// report that restarts a resolved alert starts a new episode.
const upsertAlertsTail = " ON DUPLICATE KEY UPDATE" +
	" starts_at = IF(state <> 'resolved' AND (ends_at IS NULL OR ends_at > VALUES(updated_at))" +
	" AND starts_at IS NOT NULL AND (VALUES(starts_at) IS NULL OR starts_at < VALUES(starts_at)), starts_at, VALUES(starts_at))," +
	" tenant = VALUES(tenant), labels = VALUES(labels), annotations = VALUES(annotations), ends_at = VALUES(ends_at)," +
	" state = VALUES(state), rule = VALUES(rule), value = VALUES(value), action = VALUES(action)," +
	" generator_url = VALUES(generator_url), updated_at = VALUES(updated_at)"

// alertRowArgs is the number of columns UpsertAlerts writes per alert.
const alertRowArgs = 12

// UpsertAlerts writes alerts by fingerprint (labels, annotations,
// starts/ends, state, rule, value, action, updated) and emits evs to the
// outbox (topic canopy.alerts.v1), in one transaction. Many alerts go in
// few multi-row statements: the push path runs at thousands per second.
//
// The store writes what it is given (merging reports is the engine's
// job, alert.Merge) with one safeguard that agrees with Merge: the
// StartsAt of a stored alert that has not ended is kept when the new
// report starts later. A zero UpdatedAt is stored as now. Rows are written
// in fingerprint order (so concurrent batches lock in the same order); of
// two alerts with one fingerprint in a batch the later wins.
func (s *Store) UpsertAlerts(ctx context.Context, alerts []*alert.Alert, evs []eventbus.Event) error {
	if len(alerts) == 0 && len(evs) == 0 {
		return nil
	}
	rows, err := alertRows(alerts, time.Now())
	if err != nil {
		return err
	}
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		err := statementChunks(rows, alertRowSize, func(part [][alertRowArgs]any) error {
			return upsertAlertChunk(ctx, tx, part)
		})
		if err != nil {
			return err
		}
		if err := tx.Emit(ctx, events.TopicAlerts, evs...); err != nil {
			return fmt.Errorf("upsert alerts: %w", err)
		}
		return nil
	})
}

// alertRows encodes alerts as rows sorted by fingerprint, deduplicated.
func alertRows(alerts []*alert.Alert, now time.Time) ([][alertRowArgs]any, error) {
	type keyed struct {
		fp  alert.Fingerprint
		row [alertRowArgs]any
	}
	byFP := make(map[alert.Fingerprint]int, len(alerts))
	out := make([]keyed, 0, len(alerts))
	for _, a := range alerts {
		row, fp, err := alertRow(a, now)
		if err != nil {
			return nil, err
		}
		if i, ok := byFP[fp]; ok {
			out[i].row = row
			continue
		}
		byFP[fp] = len(out)
		out = append(out, keyed{fp, row})
	}
	slices.SortFunc(out, func(a, b keyed) int {
		switch {
		case a.fp < b.fp:
			return -1
		case a.fp > b.fp:
			return 1
		}
		return 0
	})
	rows := make([][alertRowArgs]any, len(out))
	for i, k := range out {
		rows[i] = k.row
	}
	return rows, nil
}

// alertRow encodes one alert in alertColumns' order, tenant second.
func alertRow(a *alert.Alert, now time.Time) ([alertRowArgs]any, alert.Fingerprint, error) {
	fp := a.Fingerprint()
	labels, err := json.Marshal(a.Labels)
	if err != nil {
		return [alertRowArgs]any{}, fp, fmt.Errorf("encode alert %s labels: %w", fp, err)
	}
	annotations, err := json.Marshal(a.Annotations)
	if err != nil {
		return [alertRowArgs]any{}, fp, fmt.Errorf("encode alert %s annotations: %w", fp, err)
	}
	updated := a.UpdatedAt
	if updated.IsZero() {
		updated = now
	}
	var value any
	if !math.IsNaN(a.Value) && !math.IsInf(a.Value, 0) {
		value = a.Value
	}
	return [alertRowArgs]any{uint64(fp), tenantColumn(a.Tenant()), string(labels), string(annotations), nullTime(a.StartsAt),
		nullTime(a.EndsAt), string(a.State), a.Rule, value, a.Action, a.GeneratorURL, dbTime(updated)}, fp, nil
}

// alertRowSize is the length of a row's long values: labels, annotations
// and generator URL.
func alertRowSize(r [alertRowArgs]any) int {
	return len(r[2].(string)) + len(r[3].(string)) + len(r[10].(string))
}

// maxTenantColumn is the alerts.tenant column's width. A pushed tenant
// label can be anything; no tenant id is that long, so clipping keeps such
// an alert invisible to tenants without failing the whole batch.
const maxTenantColumn = 255

func tenantColumn(tenant string) string {
	if len(tenant) <= maxTenantColumn {
		return tenant
	}
	return strings.ToValidUTF8(tenant[:maxTenantColumn], "")
}

func upsertAlertChunk(ctx context.Context, tx *store.Tx, rows [][alertRowArgs]any) error {
	var b strings.Builder
	b.Grow(200 + len(rows)*28 + len(upsertAlertsTail))
	b.WriteString("INSERT INTO alerts (fingerprint, tenant, labels, annotations, starts_at, ends_at, state, rule, value, action, generator_url, updated_at) VALUES ")
	args := make([]any, 0, len(rows)*alertRowArgs)
	ph := store.Placeholders(alertRowArgs)
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ph)
		args = append(args, r[:]...)
	}
	b.WriteString(upsertAlertsTail)
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("upsert %d alerts: %w", len(rows), err)
	}
	return nil
}

// scanAlert reads alertColumns.
func scanAlert(sc store.Scanner) (StoredAlert, error) {
	var (
		sa                  StoredAlert
		fp                  uint64
		labels, annotations []byte
		starts, ends        sql.NullTime
		state               string
		value               sql.NullFloat64
	)
	if err := sc.Scan(&fp, &labels, &annotations, &starts, &ends, &state, &sa.Rule, &value, &sa.Action,
		&sa.GeneratorURL, &sa.UpdatedAt); err != nil {
		return sa, err
	}
	sa.Fingerprint = alert.Fingerprint(fp)
	if err := json.Unmarshal(labels, &sa.Labels); err != nil {
		return sa, fmt.Errorf("alert %s labels: %w", sa.Fingerprint, err)
	}
	if err := json.Unmarshal(annotations, &sa.Annotations); err != nil {
		return sa, fmt.Errorf("alert %s annotations: %w", sa.Fingerprint, err)
	}
	sa.StartsAt, sa.EndsAt, sa.UpdatedAt = fromNull(starts), fromNull(ends), sa.UpdatedAt.UTC()
	sa.State = alert.State(state)
	sa.Value = math.NaN()
	if value.Valid {
		sa.Value = value.Float64
	}
	return sa, nil
}

// LiveAlerts returns every pending or firing alert and the resolved ones
// resolved after since (the engine's state at start).
func (s *Store) LiveAlerts(ctx context.Context, since time.Time) ([]*alert.Alert, error) {
	rows, err := store.QueryAll(ctx, s.db.SQL(), "read live alerts", scanAlert,
		"SELECT "+alertColumns+" FROM alerts WHERE state IN ('pending', 'firing')"+
			" UNION ALL SELECT "+alertColumns+" FROM alerts WHERE state = 'resolved' AND ends_at > ?", dbTime(since))
	if err != nil {
		return nil, err
	}
	out := make([]*alert.Alert, len(rows))
	for i := range rows {
		out[i] = &rows[i].Alert
	}
	return out, nil
}

// ListAlerts pages alerts for the API, ordered by fingerprint for stable
// cursors. States filter in SQL; Matchers in Go over what SQL returns.
// A Limit of 0 or less means paging.DefaultLimit; a bad After is a
// paging.ErrInvalid.
func (s *Store) ListAlerts(ctx context.Context, f AlertFilter) (items []StoredAlert, next string, err error) {
	limit := f.Limit
	if limit <= 0 {
		limit = paging.DefaultLimit
	}
	var after uint64
	hasAfter := f.After != ""
	if hasAfter {
		fp, err := alert.ParseFingerprint(f.After)
		if err != nil {
			return nil, "", fmt.Errorf("list alerts: %w", &paging.FieldError{Field: "cursor", Reason: "not a fingerprint"})
		}
		after = uint64(fp)
	}
	// Without matchers one page of SQL rows is the page; with them, read
	// in larger batches until the page (plus one, to know of a next) fills.
	batch := limit + 1
	if len(f.Matchers) > 0 {
		batch = max(4*limit, 200)
	}
	items = []StoredAlert{}
	for {
		rows, err := s.alertBatch(ctx, f, hasAfter, after, batch)
		if err != nil {
			return nil, "", err
		}
		for _, r := range rows {
			if len(f.Matchers) == 0 || f.Matchers.Matches(r.Labels) {
				items = append(items, r)
			}
		}
		if len(items) > limit || len(rows) < batch {
			break
		}
		hasAfter, after = true, uint64(rows[len(rows)-1].Fingerprint)
	}
	if len(items) > limit {
		items = items[:limit]
		next = items[limit-1].Fingerprint.String()
	}
	if err := s.attachActions(ctx, items); err != nil {
		return nil, "", err
	}
	return items, next, nil
}

// alertBatch reads up to n alerts of the filter's tenant and states after
// the cursor, in fingerprint order.
func (s *Store) alertBatch(ctx context.Context, f AlertFilter, hasAfter bool, after uint64, n int) ([]StoredAlert, error) {
	q := "SELECT " + alertColumns + " FROM alerts WHERE TRUE"
	cond, args := tenantClause("tenant", f.Tenant, f.All)
	q += cond
	if len(f.States) > 0 {
		q += " AND state IN " + store.Placeholders(len(f.States))
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if hasAfter {
		q += " AND fingerprint > ?"
		args = append(args, after)
	}
	q += " ORDER BY fingerprint LIMIT ?"
	args = append(args, n)
	return store.QueryAll(ctx, s.db.SQL(), "list alerts", scanAlert, q, args...)
}

// GetAlert returns one alert; a tenant other than the alert's gets
// ErrNotFound (tenant "" with all=true: any).
func (s *Store) GetAlert(ctx context.Context, tenant string, all bool, fp alert.Fingerprint) (StoredAlert, error) {
	cond, args := tenantClause("tenant", tenant, all)
	sa, err := scanAlert(s.db.SQL().QueryRowContext(ctx,
		"SELECT "+alertColumns+" FROM alerts WHERE fingerprint = ?"+cond, append([]any{uint64(fp)}, args...)...))
	if errors.Is(err, sql.ErrNoRows) {
		return sa, fmt.Errorf("alert %s: %w", fp, ErrNotFound)
	}
	if err != nil {
		return sa, fmt.Errorf("read alert %s: %w", fp, err)
	}
	items := []StoredAlert{sa}
	if err := s.attachActions(ctx, items); err != nil {
		return sa, err
	}
	return items[0], nil
}

// attachActions fills the ActionRuns of items (oldest first) in one query.
func (s *Store) attachActions(ctx context.Context, items []StoredAlert) error {
	if len(items) == 0 {
		return nil
	}
	fps := make([]any, len(items))
	at := make(map[string]int, len(items))
	for i := range items {
		h := items[i].Fingerprint.String()
		fps[i] = h
		at[h] = i
	}
	runs, err := store.QueryAll(ctx, s.db.SQL(), "read alert action runs", scanAction,
		"SELECT "+actionColumns+" FROM action_runs WHERE fingerprint IN "+store.Placeholders(len(fps))+" ORDER BY id", fps...)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if i, ok := at[r.Fingerprint]; ok {
			items[i].ActionRuns = append(items[i].ActionRuns, r)
		}
	}
	return nil
}

// PruneAlerts deletes resolved alerts resolved before (every alert whose
// EndsAt is before it, as Alertmanager's garbage collection), in chunks.
func (s *Store) PruneAlerts(ctx context.Context, before time.Time) (int64, error) {
	return deleteChunked(ctx, s.db.SQL(), "prune alerts",
		"DELETE FROM alerts WHERE ends_at < ? LIMIT 5000", dbTime(before))
}

// deleteChunked repeats a DELETE ... LIMIT until it deletes less than a
// chunk, so that a large prune does not hold locks for long.
func deleteChunked(ctx context.Context, db *sql.DB, what, q string, args ...any) (int64, error) {
	var total int64
	for {
		res, err := db.ExecContext(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("%s: %w", what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("%s: %w", what, err)
		}
		total += n
		if n < 5000 {
			return total, nil
		}
	}
}
