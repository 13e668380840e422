package usage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
	"github.com/canopy-platform/canopy/services/metering/migrations"
)

// newStore returns a store over a fresh, migrated database with the
// built-in meters and two custom ones (api_calls COUNT, users UNIQUE_COUNT).
func newStore(t *testing.T) (*usage.Store, *store.DB) {
	t.Helper()
	db := storetest.NewDB(t, "metering_usage")
	require.NoError(t, db.Migrate(t.Context(), store.OutboxMigrations(), migrations.FS))
	s, err := usage.New(db)
	require.NoError(t, err)
	require.NoError(t, s.EnsureBuiltins(t.Context()))
	// Custom meters go in by SQL: Create's validation is the domain's and
	// tested there.
	exec(t, db, `INSERT INTO meters (slug, name, unit, aggregation, scale, event_type, value_property, builtin, created_at) VALUES
		('api_calls', 'API calls', 'call', 'COUNT', 1, 'com.example.api', '', FALSE, NOW(6)),
		('users', 'Active users', 'user', 'UNIQUE_COUNT', 1, 'com.example.login', 'user', FALSE, NOW(6))`)
	return s, db
}

func exec(t testing.TB, db *store.DB, q string, args ...any) {
	t.Helper()
	_, err := db.SQL().ExecContext(context.Background(), q, args...)
	require.NoError(t, err, q)
}

// agg is one stored aggregate row.
type agg struct {
	table, tenant, meter, start, subject, plan, region string
	total                                              float64
	cnt                                                int64
	max                                                any
}

// rollupOf is the per-tenant rollup the ledger adds each subject table's
// rows to.
var rollupOf = map[string]string{"usage_hour": "usage_tenant_hour", "usage_day": "usage_tenant_day"}

// insertAggs stores rows as the ledger would: in their subject table and
// added to its per-tenant rollup.
func insertAggs(t testing.TB, db *store.DB, rows ...agg) {
	t.Helper()
	for _, r := range rows {
		exec(t, db, "INSERT INTO "+r.table+" (tenant_id, meter, window_start, subject, plan_id, region, total, cnt, maximum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			r.tenant, r.meter, r.start, r.subject, r.plan, r.region, r.total, r.cnt, r.max)
		if rt, ok := rollupOf[r.table]; ok {
			exec(t, db, "INSERT INTO "+rt+" (tenant_id, meter, window_start, plan_id, region, total, cnt, maximum) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"+
				" ON DUPLICATE KEY UPDATE total = total + VALUES(total), cnt = cnt + VALUES(cnt),"+
				" maximum = GREATEST(COALESCE(maximum, VALUES(maximum)), COALESCE(VALUES(maximum), maximum))",
				r.tenant, r.meter, r.start, r.plan, r.region, r.total, r.cnt, r.max)
		}
	}
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// row is what a test expects of a UsageRow; the window end follows from
// the query's window.
type row struct {
	start, tenant, meter, instance, plan, region string
	value                                        float64
}

func rowsOf(rs []meter.UsageRow) []row {
	out := make([]row, len(rs))
	for i, r := range rs {
		out[i] = row{r.WindowStart.Format(time.RFC3339), r.Tenant, r.Meter, r.Instance, r.Plan, r.Region, r.Value}
	}
	return out
}

// fixtures: acme has i1 (plan small, region eu) and i2 (plan large,
// region us); globex has i3.
func fixtures(t *testing.T, db *store.DB) {
	t.Helper()
	insertAggs(t, db,
		// node_hours: node-seconds, scale 3600.
		agg{table: "usage_hour", tenant: "acme", meter: meter.NodeHours, start: "2026-12-03 10:00:00", subject: "i1", plan: "small", region: "eu", total: 3600, cnt: 0},
		agg{table: "usage_hour", tenant: "acme", meter: meter.NodeHours, start: "2026-12-03 10:00:00", subject: "i2", plan: "large", region: "us", total: 1800, cnt: 0},
		agg{table: "usage_hour", tenant: "acme", meter: meter.NodeHours, start: "2026-12-03 11:00:00", subject: "i1", plan: "small", region: "eu", total: 90, cnt: 0},
		agg{table: "usage_hour", tenant: "globex", meter: meter.NodeHours, start: "2026-12-03 10:00:00", subject: "i3", plan: "small", region: "eu", total: 7200, cnt: 0},
		// api_calls: COUNT.
		agg{table: "usage_hour", tenant: "acme", meter: "api_calls", start: "2026-12-03 10:00:00", subject: "gw", total: 0, cnt: 7},
		agg{table: "usage_hour", tenant: "acme", meter: "api_calls", start: "2026-12-03 10:00:00", subject: "i1", plan: "small", region: "eu", total: 0, cnt: 5},
		// connections: MAX and AVG over two subjects.
		agg{table: "usage_hour", tenant: "acme", meter: meter.ConnectionsMax, start: "2026-12-03 10:00:00", subject: "i1", plan: "small", region: "eu", total: 30, cnt: 3, max: 12},
		agg{table: "usage_hour", tenant: "acme", meter: meter.ConnectionsMax, start: "2026-12-03 10:00:00", subject: "i2", plan: "large", region: "us", total: 40, cnt: 2, max: 25},
		agg{table: "usage_hour", tenant: "acme", meter: meter.ConnectionsAvg, start: "2026-12-03 10:00:00", subject: "i1", plan: "small", region: "eu", total: 30, cnt: 3, max: 12},
		agg{table: "usage_hour", tenant: "acme", meter: meter.ConnectionsAvg, start: "2026-12-03 10:00:00", subject: "i2", plan: "large", region: "us", total: 40, cnt: 2, max: 25},
		// Days of two months for the month window.
		agg{table: "usage_day", tenant: "acme", meter: meter.NodeHours, start: "2026-11-05 00:00:00", subject: "i1", plan: "small", region: "eu", total: 36000},
		agg{table: "usage_day", tenant: "acme", meter: meter.NodeHours, start: "2026-11-30 00:00:00", subject: "i1", plan: "small", region: "eu", total: 7200},
		agg{table: "usage_day", tenant: "acme", meter: meter.NodeHours, start: "2026-12-01 00:00:00", subject: "i1", plan: "small", region: "eu", total: 3600},
		agg{table: "usage_day", tenant: "acme", meter: meter.NodeHours, start: "2026-12-03 00:00:00", subject: "i2", plan: "large", region: "us", total: 1800},
		agg{table: "usage_day", tenant: "globex", meter: meter.NodeHours, start: "2026-12-03 00:00:00", subject: "i3", plan: "small", region: "eu", total: 7200},
	)
	// users: three distinct values in the hour, one of them under two
	// subjects; two in the day; the same value in two days of the month.
	for _, u := range []struct {
		level, start, subject string
		hash                  uint64
	}{
		{"h", "2026-12-03 10:00:00", "i1", 1}, {"h", "2026-12-03 10:00:00", "i1", 2},
		{"h", "2026-12-03 10:00:00", "i2", 2}, {"h", "2026-12-03 10:00:00", "i2", 3},
		{"d", "2026-12-03 00:00:00", "i1", 1}, {"d", "2026-12-03 00:00:00", "i1", 2},
		{"d", "2026-12-03 00:00:00", "i2", 2}, {"d", "2026-12-03 00:00:00", "i2", 3},
		{"M", "2026-12-01 00:00:00", "i1", 1}, {"M", "2026-12-01 00:00:00", "i2", 2}, {"M", "2026-12-01 00:00:00", "i2", 3},
		{"M", "2026-12-01 00:00:00", "i2", 4},
	} {
		exec(t, db, "INSERT INTO usage_unique (level, tenant_id, meter, window_start, subject, value_hash) VALUES (?, 'acme', 'users', ?, ?, ?)",
			u.level, u.start, u.subject, u.hash)
	}
	exec(t, db, "INSERT INTO usage_unique (level, tenant_id, meter, window_start, subject, value_hash) VALUES ('h', 'globex', 'users', '2026-12-03 10:00:00', 'i3', 9)")
}

func TestUsageValues(t *testing.T) {
	s, db := newStore(t)
	fixtures(t, db)
	hour := func(meters ...string) meter.Query {
		return meter.Query{Tenant: "acme", Meters: meters, From: ts("2026-12-03T00:00:00Z"), To: ts("2026-12-04T00:00:00Z"), Window: meter.Hour}
	}
	withGroup := func(q meter.Query, g ...string) meter.Query { q.GroupBy = g; return q }
	withInstance := func(q meter.Query, id string) meter.Query { q.Instance = id; return q }
	cases := []struct {
		name string
		q    meter.Query
		want []row
	}{
		{"SUM is total over scale, summed over instances", hour(meter.NodeHours), []row{
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "", "", "", 1.5},
			{"2026-12-03T11:00:00Z", "", meter.NodeHours, "", "", "", 0.025},
		}},
		{"group by instance", withGroup(hour(meter.NodeHours), meter.ByInstance), []row{
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "i1", "", "", 1},
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "i2", "", "", 0.5},
			{"2026-12-03T11:00:00Z", "", meter.NodeHours, "i1", "", "", 0.025},
		}},
		{"group by plan and region", withGroup(hour(meter.NodeHours), meter.ByRegion, meter.ByPlan, meter.ByMeter), []row{
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "", "large", "us", 0.5},
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "", "small", "eu", 1},
			{"2026-12-03T11:00:00Z", "", meter.NodeHours, "", "small", "eu", 0.025},
		}},
		{"one instance", withInstance(hour(meter.NodeHours), "i2"), []row{
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "", "", "", 0.5},
		}},
		{"COUNT is the count", hour("api_calls"), []row{{"2026-12-03T10:00:00Z", "", "api_calls", "", "", "", 12}}},
		{"MAX is the largest", hour(meter.ConnectionsMax), []row{{"2026-12-03T10:00:00Z", "", meter.ConnectionsMax, "", "", "", 25}}},
		{"AVG is total over count", hour(meter.ConnectionsAvg), []row{{"2026-12-03T10:00:00Z", "", meter.ConnectionsAvg, "", "", "", 14}}},
		{"AVG per instance", withGroup(hour(meter.ConnectionsAvg), meter.ByInstance), []row{
			{"2026-12-03T10:00:00Z", "", meter.ConnectionsAvg, "i1", "", "", 10},
			{"2026-12-03T10:00:00Z", "", meter.ConnectionsAvg, "i2", "", "", 20},
		}},
		{"UNIQUE_COUNT counts a value seen under two instances once", hour("users"), []row{{"2026-12-03T10:00:00Z", "", "users", "", "", "", 3}}},
		{"UNIQUE_COUNT per instance", withGroup(hour("users"), meter.ByInstance), []row{
			{"2026-12-03T10:00:00Z", "", "users", "i1", "", "", 2},
			{"2026-12-03T10:00:00Z", "", "users", "i2", "", "", 2},
		}},
		{"UNIQUE_COUNT per day", meter.Query{Tenant: "acme", Meters: []string{"users"}, From: ts("2026-12-01T00:00:00Z"), To: ts("2026-12-05T00:00:00Z"), Window: meter.Day},
			[]row{{"2026-12-03T00:00:00Z", "", "users", "", "", "", 3}}},
		{"UNIQUE_COUNT per month", meter.Query{Tenant: "acme", Meters: []string{"users"}, From: ts("2026-12-01T00:00:00Z"), To: ts("2027-01-01T00:00:00Z"), Window: meter.Month},
			[]row{{"2026-12-01T00:00:00Z", "", "users", "", "", "", 4}}},
		{"day window reads the days", meter.Query{Tenant: "acme", Meters: []string{meter.NodeHours}, From: ts("2026-12-01T00:00:00Z"), To: ts("2026-12-05T00:00:00Z"), Window: meter.Day}, []row{
			{"2026-12-01T00:00:00Z", "", meter.NodeHours, "", "", "", 1},
			{"2026-12-03T00:00:00Z", "", meter.NodeHours, "", "", "", 0.5},
		}},
		{"month window sums the days of each month", meter.Query{Tenant: "acme", Meters: []string{meter.NodeHours}, From: ts("2026-11-01T00:00:00Z"), To: ts("2027-01-01T00:00:00Z"), Window: meter.Month}, []row{
			{"2026-11-01T00:00:00Z", "", meter.NodeHours, "", "", "", 12},
			{"2026-12-01T00:00:00Z", "", meter.NodeHours, "", "", "", 1.5},
		}},
		{"all meters, ordered by window then meter", hour(), []row{
			{"2026-12-03T10:00:00Z", "", "api_calls", "", "", "", 12},
			{"2026-12-03T10:00:00Z", "", meter.ConnectionsAvg, "", "", "", 14},
			{"2026-12-03T10:00:00Z", "", meter.ConnectionsMax, "", "", "", 25},
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "", "", "", 1.5},
			{"2026-12-03T10:00:00Z", "", "users", "", "", "", 3},
			{"2026-12-03T11:00:00Z", "", meter.NodeHours, "", "", "", 0.025},
		}},
		{"another tenant sees only its own", meter.Query{Tenant: "globex", From: ts("2026-12-03T00:00:00Z"), To: ts("2026-12-04T00:00:00Z"), Window: meter.Hour}, []row{
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "", "", "", 2},
			{"2026-12-03T10:00:00Z", "", "users", "", "", "", 1},
		}},
		{"all tenants grouped by tenant", meter.Query{AllTenants: true, Meters: []string{meter.NodeHours}, GroupBy: []string{meter.ByTenant}, From: ts("2026-12-03T00:00:00Z"), To: ts("2026-12-04T00:00:00Z"), Window: meter.Day}, []row{
			{"2026-12-03T00:00:00Z", "acme", meter.NodeHours, "", "", "", 0.5},
			{"2026-12-03T00:00:00Z", "globex", meter.NodeHours, "", "", "", 2},
		}},
		{"all tenants summed", meter.Query{AllTenants: true, Meters: []string{meter.NodeHours}, From: ts("2026-12-03T00:00:00Z"), To: ts("2026-12-04T00:00:00Z"), Window: meter.Day}, []row{
			{"2026-12-03T00:00:00Z", "", meter.NodeHours, "", "", "", 2.5},
		}},
		{"the range excludes its end", meter.Query{Tenant: "acme", Meters: []string{meter.NodeHours}, From: ts("2026-12-03T10:00:00Z"), To: ts("2026-12-03T11:00:00Z"), Window: meter.Hour}, []row{
			{"2026-12-03T10:00:00Z", "", meter.NodeHours, "", "", "", 1.5},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Usage(t.Context(), tc.q)
			require.NoError(t, err)
			require.Equal(t, tc.want, rowsOf(got))
			for _, r := range got {
				require.Equal(t, tc.q.Window.End(r.WindowStart), r.WindowEnd, "window end")
				require.NotEmpty(t, r.Unit)
			}
		})
	}
}

func TestUsageQueryErrors(t *testing.T) {
	s, _ := newStore(t)
	q := meter.Query{Tenant: "acme", From: ts("2026-12-03T00:00:00Z"), To: ts("2026-12-04T00:00:00Z"), Window: meter.Hour}

	q.Meters = []string{meter.NodeHours, "no_such_meter"}
	_, err := s.Usage(t.Context(), q)
	var qe *usage.QueryError
	require.ErrorAs(t, err, &qe)
	require.Equal(t, "meter", qe.Field)
	require.Contains(t, qe.Reason, "no_such_meter")

	q.Meters, q.Window, q.To = []string{"users"}, meter.Minute, ts("2026-12-03T01:00:00Z")
	_, err = s.Usage(t.Context(), q)
	require.ErrorAs(t, err, &qe)
	require.Equal(t, "window", qe.Field)

	q.Meters = nil // among all meters the unique ones are left out of minutes
	rows, err := s.Usage(t.Context(), q)
	require.NoError(t, err)
	require.Empty(t, rows)

	_, err = s.Usage(t.Context(), meter.Query{Window: meter.Hour, From: q.From, To: q.To})
	require.Error(t, err, "a query without a tenant must not read every tenant")
}

func TestMeters(t *testing.T) {
	s, db := newStore(t)
	ctx := t.Context()

	ms, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, ms, len(meter.Builtins())+2)
	for _, b := range meter.Builtins() {
		m, err := s.Get(ctx, b.Slug)
		require.NoError(t, err)
		require.True(t, m.Builtin)
		require.Equal(t, b.Aggregation, m.Aggregation)
		require.Equal(t, b.Scale, m.Scale)
		require.Equal(t, b.Unit, m.Unit)
	}
	require.True(t, ms[0].Builtin, "built-in meters are listed first")
	require.False(t, ms[len(ms)-1].Builtin)

	// A start after a release changed a built-in's text brings it back.
	exec(t, db, "UPDATE meters SET name = 'old', scale = 1 WHERE slug = ?", meter.NodeHours)
	require.NoError(t, s.EnsureBuiltins(ctx))
	m, err := s.Get(ctx, meter.NodeHours)
	require.NoError(t, err)
	require.Equal(t, "Node hours", m.Name)
	require.Equal(t, 3600.0, m.Scale)

	_, err = s.Get(ctx, "nope")
	require.ErrorIs(t, err, usage.ErrMeterNotFound)
	require.ErrorIs(t, s.Delete(ctx, "nope"), usage.ErrMeterNotFound)
	require.ErrorIs(t, s.Delete(ctx, meter.NodeHours), usage.ErrBuiltinMeter)
	require.NoError(t, s.Delete(ctx, "api_calls"))
	_, err = s.Get(ctx, "api_calls")
	require.ErrorIs(t, err, usage.ErrMeterNotFound)
}

func TestLateAndInstances(t *testing.T) {
	s, db := newStore(t)
	ctx := t.Context()
	for i, tenant := range []string{"acme", "globex", "acme", "acme"} {
		exec(t, db, `INSERT INTO late_events (tenant_id, source, event_id, type, subject, meter, value, event_time, received_at, reason)
			VALUES (?, 'gw', ?, 'com.example.api', 'i1', 'api_calls', 1, ?, ?, 'older than grace window')`,
			tenant, fmt.Sprint("e", i), ts("2026-12-01T00:00:00Z"), ts("2026-12-03T10:00:00Z").Add(time.Duration(i)*time.Minute))
	}
	late, err := s.Late(ctx, "acme", ts("2026-12-03T00:00:00Z"), ts("2026-12-04T00:00:00Z"), 2)
	require.NoError(t, err)
	require.Len(t, late, 2)
	require.Equal(t, []string{"e0", "e2"}, []string{late[0].EventID, late[1].EventID})
	require.Equal(t, "acme", late[0].Tenant)
	require.Equal(t, ts("2026-12-01T00:00:00Z"), late[0].EventTime)
	all, err := s.Late(ctx, "", ts("2026-12-03T00:00:00Z"), ts("2026-12-04T00:00:00Z"), 100)
	require.NoError(t, err)
	require.Len(t, all, 4)
	none, err := s.Late(ctx, "acme", ts("2026-12-03T10:04:00Z"), ts("2026-12-04T00:00:00Z"), 100)
	require.NoError(t, err)
	require.Empty(t, none)

	exec(t, db, `INSERT INTO instances (instance_id, tenant_id, created_at, updated_at) VALUES ('i1', 'acme', NOW(6), NOW(6)), ('i3', 'globex', NOW(6), NOW(6))`)
	tenant, found, err := s.InstanceTenant(ctx, "i3")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, "globex", tenant)
	_, found, err = s.InstanceTenant(ctx, "gw")
	require.NoError(t, err)
	require.False(t, found)

	ids := []string{"i1", "i3"}
	for i := range 1200 { // more than one IN list
		ids = append(ids, fmt.Sprint("x", i))
	}
	owners, err := s.InstanceTenants(ctx, ids)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"i1": "acme", "i3": "globex"}, owners)
}

// TestCreateMeter needs the domain's ValidateMeter.
func TestCreateMeter(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	m, err := s.Create(ctx, meter.Meter{Slug: "tokens", Name: "Tokens", Unit: "token", Aggregation: meter.Sum,
		EventType: "com.example.llm", ValueProperty: "tokens", Builtin: true})
	require.NoError(t, err)
	require.False(t, m.Builtin, "a created meter is never built in")
	require.Equal(t, 1.0, m.Scale)
	got, err := s.Get(ctx, "tokens")
	require.NoError(t, err)
	require.Equal(t, m, got)

	_, err = s.Create(ctx, meter.Meter{Slug: "tokens", Name: "Tokens", Unit: "token", Aggregation: meter.Sum, EventType: "x", ValueProperty: "n"})
	require.ErrorIs(t, err, usage.ErrMeterExists)
	_, err = s.Create(ctx, meter.Meter{Slug: meter.NodeHours, Name: "Mine", Unit: "h", Aggregation: meter.Count, EventType: "x"})
	require.True(t, errors.Is(err, usage.ErrMeterExists) || isFieldErrors(err), "a built-in slug is taken: %v", err)

	_, err = s.Create(ctx, meter.Meter{Slug: "Bad Slug", Aggregation: "MEDIAN"})
	require.True(t, isFieldErrors(err), "invalid meter: %v", err)
}

func isFieldErrors(err error) bool {
	var fe meter.FieldErrors
	return errors.As(err, &fe) && len(fe) > 0 && !strings.Contains(fe.Error(), "contract")
}
