// Package ratingtest sets up rating for tests: a fresh migrated metering
// database, a settable clock, a Service and SQL fixtures in usage_hour,
// usage_day, prices, meters and instances. Tests only.
package ratingtest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/metering/internal/rating"
	"github.com/canopy-platform/canopy/services/metering/migrations"
)

// Clock is a settable clock for Config.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t.UTC()
}

// Env is one test's database, clock and service.
type Env struct {
	T     testing.TB
	DB    *store.DB
	Clock *Clock
	Svc   *rating.Service
	Cfg   rating.Config
}

// New migrates a fresh database (dropped when t ends) and builds a Service
// with cfg (Now set to the returned clock, starting at now).
func New(t testing.TB, cfg rating.Config, now time.Time) *Env {
	t.Helper()
	db := storetest.NewDB(t, "metering_rating")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Migrate(ctx, store.OutboxMigrations(), migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	clock := &Clock{}
	clock.Set(now)
	cfg.Now = clock.Now
	e := &Env{T: t, DB: db, Clock: clock, Cfg: cfg}
	e.Svc = e.Replica()
	return e
}

// Replica builds another Service on the same database and clock, as a
// second replica of the metering service would be.
func (e *Env) Replica() *rating.Service {
	e.T.Helper()
	s, err := rating.New(e.Cfg, e.DB, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		e.T.Fatalf("new rating service: %v", err)
	}
	return s
}

// Exec runs a statement.
func (e *Env) Exec(q string, args ...any) {
	e.T.Helper()
	if _, err := e.DB.SQL().ExecContext(context.Background(), q, args...); err != nil {
		e.T.Fatalf("%s: %v", q, err)
	}
}

// Int reads one integer.
func (e *Env) Int(q string, args ...any) int {
	e.T.Helper()
	var n int
	if err := e.DB.SQL().QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		e.T.Fatalf("%s: %v", q, err)
	}
	return n
}

// Usage is one hourly aggregate to add.
type Usage struct {
	Tenant, Meter, Subject, Plan, Region string
	Hour                                 time.Time
	// Total in the meter's stored unit (node_hours: seconds); Count the
	// observations (COUNT meters), Max the MAX column when set.
	Total string
	Count int64
	Max   string
}

// AddUsage adds us to usage_hour and usage_day as the ledger would (both
// levels, adding to what is there), in one statement per level.
func (e *Env) AddUsage(us ...Usage) {
	e.T.Helper()
	const perInsert = 500
	for len(us) > 0 {
		n := min(len(us), perInsert)
		e.addUsage(us[:n])
		us = us[n:]
	}
}

func (e *Env) addUsage(us []Usage) {
	e.T.Helper()
	for _, table := range []string{"usage_hour", "usage_day"} {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + table + " (tenant_id, meter, window_start, subject, plan_id, region, total, cnt, maximum) VALUES ")
		var args []any
		for i, u := range us {
			var maxv any
			if u.Max != "" {
				maxv = u.Max
			}
			if u.Total == "" {
				u.Total = "0"
			}
			at := u.Hour.UTC().Truncate(time.Hour)
			if table == "usage_day" {
				at = time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
			}
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, u.Tenant, u.Meter, at, u.Subject, u.Plan, u.Region, u.Total, u.Count, maxv)
		}
		sb.WriteString(` ON DUPLICATE KEY UPDATE total = total + VALUES(total), cnt = cnt + VALUES(cnt),
			maximum = GREATEST(COALESCE(maximum, VALUES(maximum)), COALESCE(VALUES(maximum), maximum))`)
		e.Exec(sb.String(), args...)
	}
}

// AddHours adds the same usage for every hour in [from, to).
func (e *Env) AddHours(u Usage, from, to time.Time) {
	e.T.Helper()
	var us []Usage
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		u.Hour = h
		us = append(us, u)
	}
	e.AddUsage(us...)
}

// Price adds a price version (source catalog).
func (e *Env) Price(plan, meterSlug string, from time.Time, unitPrice string) {
	e.T.Helper()
	e.Exec(`INSERT INTO prices (plan_id, meter, effective_from, currency, unit_price, source, created_at)
		VALUES (?, ?, ?, 'USD', ?, 'catalog', ?)`, plan, meterSlug, from.UTC(), unitPrice, from.UTC())
}

// Instance adds what metering knows of an instance.
func (e *Env) Instance(id, tenant, name, plan string) {
	e.T.Helper()
	now := e.Clock.Now()
	e.Exec(`INSERT INTO instances (instance_id, tenant_id, name, plan_id, region, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, 'eu-1', 'ready', ?, ?)`, id, tenant, name, plan, now, now)
}

// Meter adds a custom meter definition.
func (e *Env) Meter(slug, unit, aggregation, scale string) {
	e.T.Helper()
	e.Exec(`INSERT INTO meters (slug, name, unit, aggregation, scale, event_type, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, slug, slug, unit, aggregation, scale, "com.example."+slug, e.Clock.Now())
}

// Outbox counts outbox rows of an event type, for one key when key is set.
func (e *Env) Outbox(eventType, key string) int {
	e.T.Helper()
	q := "SELECT COUNT(*) FROM outbox WHERE topic = 'canopy.usage.v1' AND JSON_VALUE(headers, '$.type') = ?"
	args := []any{eventType}
	if key != "" {
		q += " AND msg_key = ?"
		args = append(args, key)
	}
	return e.Int(q, args...)
}

// Payloads returns the payloads of the outbox rows of an event type, in
// the order written.
func (e *Env) Payloads(eventType string) [][]byte {
	e.T.Helper()
	rows, err := e.DB.SQL().QueryContext(context.Background(),
		"SELECT payload FROM outbox WHERE topic = 'canopy.usage.v1' AND JSON_VALUE(headers, '$.type') = ? ORDER BY id", eventType)
	if err != nil {
		e.T.Fatalf("read outbox: %v", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var p []byte
		if err := rows.Scan(&p); err != nil {
			e.T.Fatalf("read outbox: %v", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		e.T.Fatalf("read outbox: %v", err)
	}
	return out
}

// Date is a shorthand for a UTC time.
func Date(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }
