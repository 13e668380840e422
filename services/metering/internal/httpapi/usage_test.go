package httpapi_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/httpapi"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
)

// usageFixtures stores node-hours of acme's i1 and i2 and globex's i3.
func (f *fixture) usageFixtures() {
	f.t.Helper()
	_, err := f.db.SQL().ExecContext(context.Background(), `INSERT INTO usage_hour (tenant_id, meter, window_start, subject, plan_id, region, total, cnt) VALUES
		('acme', 'node_hours', '2026-12-03 10:00:00', 'i1', 'small', 'eu', 3600, 0),
		('acme', 'node_hours', '2026-12-03 10:00:00', 'i2', 'large', 'us', 1800, 0),
		('acme', 'node_hours', '2026-12-03 11:00:00', 'i1', 'small', 'eu', 90, 0),
		('acme', 'network_bytes_in', '2026-12-03 11:00:00', 'i1', 'small', 'eu', 123456, 4),
		('globex', 'node_hours', '2026-12-03 10:00:00', 'i3', 'small', 'eu', 7200, 0)`)
	require.NoError(f.t, err)
	_, err = f.db.SQL().ExecContext(context.Background(), `INSERT INTO usage_day (tenant_id, meter, window_start, subject, plan_id, region, total, cnt) VALUES
		('acme', 'node_hours', '2026-11-20 00:00:00', 'i1', 'small', 'eu', 36000, 0),
		('acme', 'node_hours', '2026-12-03 00:00:00', 'i1', 'small', 'eu', 3690, 0),
		('acme', 'node_hours', '2026-12-03 00:00:00', 'i2', 'large', 'us', 1800, 0),
		('globex', 'node_hours', '2026-12-03 00:00:00', 'i3', 'small', 'eu', 7200, 0)`)
	require.NoError(f.t, err)
	rollUp(f.t, f.db)
}

// rollUp fills the per-tenant rollups from the subject tables, as the
// ledger's writes would have (fixtures write the subject tables by SQL).
func rollUp(t testing.TB, db *store.DB) {
	t.Helper()
	for _, p := range [][2]string{{"usage_hour", "usage_tenant_hour"}, {"usage_day", "usage_tenant_day"}} {
		_, err := db.SQL().ExecContext(context.Background(), "INSERT INTO "+p[1]+
			" (tenant_id, meter, window_start, plan_id, region, total, cnt, maximum)"+
			" SELECT tenant_id, meter, window_start, plan_id, region, SUM(total), SUM(cnt), MAX(maximum) FROM "+p[0]+
			" GROUP BY tenant_id, meter, window_start, plan_id, region")
		require.NoError(t, err, "roll up %s", p[0])
	}
}

func (f *fixture) getUsage(p tenancy.Principal, query string) httpapi.UsageResponse {
	f.t.Helper()
	status, _, body := f.do(p, http.MethodGet, "/api/v1/usage?"+query, "", nil)
	require.Equal(f.t, http.StatusOK, status, "body: %s", body)
	var res httpapi.UsageResponse
	require.NoError(f.t, json.Unmarshal(body, &res))
	return res
}

func TestUsageJSON(t *testing.T) {
	f := newFixture(t)
	f.usageFixtures()

	res := f.getUsage(acmeViewer, "meter=node_hours&from=2026-12-03&to=2026-12-04&window=hour&group_by=instance")
	require.Equal(t, "2026-12-03T00:00:00Z", res.From.Format(time.RFC3339))
	require.Equal(t, "2026-12-04T00:00:00Z", res.To.Format(time.RFC3339))
	require.Equal(t, meter.Hour, res.Window)
	require.Equal(t, []string{"instance"}, res.GroupBy)
	require.Equal(t, []meter.UsageRow{
		{WindowStart: ts("2026-12-03T10:00:00Z"), WindowEnd: ts("2026-12-03T11:00:00Z"), Meter: "node_hours", Unit: "node-hour", Instance: "i1", Value: 1},
		{WindowStart: ts("2026-12-03T10:00:00Z"), WindowEnd: ts("2026-12-03T11:00:00Z"), Meter: "node_hours", Unit: "node-hour", Instance: "i2", Value: 0.5},
		{WindowStart: ts("2026-12-03T11:00:00Z"), WindowEnd: ts("2026-12-03T12:00:00Z"), Meter: "node_hours", Unit: "node-hour", Instance: "i1", Value: 0.025},
	}, res.Data)

	// The default is the last 24 hours by hour, every meter, no grouping.
	res = f.getUsage(acmeViewer, "")
	require.Equal(t, now.Add(-24*time.Hour).Truncate(time.Hour), res.From)
	require.Equal(t, []string{}, res.GroupBy)
	require.Equal(t, []meter.UsageRow{
		{WindowStart: ts("2026-12-03T10:00:00Z"), WindowEnd: ts("2026-12-03T11:00:00Z"), Meter: "node_hours", Unit: "node-hour", Value: 1.5},
		{WindowStart: ts("2026-12-03T11:00:00Z"), WindowEnd: ts("2026-12-03T12:00:00Z"), Meter: "network_bytes_in", Unit: "byte", Value: 123456},
		{WindowStart: ts("2026-12-03T11:00:00Z"), WindowEnd: ts("2026-12-03T12:00:00Z"), Meter: "node_hours", Unit: "node-hour", Value: 0.025},
	}, res.Data)

	// A month sums its days.
	res = f.getUsage(acmeViewer, "meter=node_hours&from=2026-11-01&to=2027-01-01&window=month&group_by=plan,region")
	require.Equal(t, []meter.UsageRow{
		{WindowStart: ts("2026-11-01T00:00:00Z"), WindowEnd: ts("2026-12-01T00:00:00Z"), Meter: "node_hours", Unit: "node-hour", Plan: "small", Region: "eu", Value: 10},
		{WindowStart: ts("2026-12-01T00:00:00Z"), WindowEnd: ts("2027-01-01T00:00:00Z"), Meter: "node_hours", Unit: "node-hour", Plan: "large", Region: "us", Value: 0.5},
		{WindowStart: ts("2026-12-01T00:00:00Z"), WindowEnd: ts("2027-01-01T00:00:00Z"), Meter: "node_hours", Unit: "node-hour", Plan: "small", Region: "eu", Value: 1.025},
	}, res.Data)

	// One instance.
	res = f.getUsage(acmeViewer, "meter=node_hours&from=2026-12-03&to=2026-12-04&window=day&instance=i2")
	require.Len(t, res.Data, 1)
	require.Equal(t, 0.5, res.Data[0].Value)

	// Bad parameters name the field.
	for query, field := range map[string]string{
		"meter=node_hours,nope": "meter",
		"window=week":           "window",
		"from=yesterday":        "from",
		"group_by=color":        "group_by",
		"group_by=tenant":       "group_by", // a tenant is one tenant
	} {
		status, h, body := f.do(acmeViewer, http.MethodGet, "/api/v1/usage?"+query, "", nil)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", query, body)
		require.Equal(t, []string{field}, fieldsOf(problem(t, h, body)), query)
	}
}

func TestUsageTenantIsolation(t *testing.T) {
	f := newFixture(t)
	f.usageFixtures()
	const q = "meter=node_hours&from=2026-12-03&to=2026-12-04&window=day"

	status, _, body := f.do(acmeViewer, http.MethodGet, "/api/v1/usage?"+q+"&tenant=globex", "", nil)
	require.Equal(t, http.StatusForbidden, status, "body: %s", body)
	status, _, _ = f.do(nobody, http.MethodGet, "/api/v1/usage?"+q, "", nil)
	require.Equal(t, http.StatusUnauthorized, status)

	// Each tenant sees its own, also when it names another's instance.
	require.Equal(t, 1.525, f.getUsage(acmeViewer, q).Data[0].Value)
	require.Equal(t, 1.525, f.getUsage(acmeViewer, q+"&tenant=acme").Data[0].Value)
	require.Equal(t, 2.0, f.getUsage(globexMember, q).Data[0].Value)
	require.Empty(t, f.getUsage(acmeViewer, q+"&instance=i3").Data)

	// A platform-admin names a tenant, or sees all of them.
	require.Equal(t, 2.0, f.getUsage(admin, q+"&tenant=globex").Data[0].Value)
	require.Equal(t, 3.525, f.getUsage(admin, q).Data[0].Value)
	res := f.getUsage(admin, q+"&group_by=tenant")
	require.Len(t, res.Data, 2)
	require.Equal(t, []string{"acme", "globex"}, []string{res.Data[0].Tenant, res.Data[1].Tenant})
	require.Equal(t, []float64{1.525, 2}, []float64{res.Data[0].Value, res.Data[1].Value})
}

func TestUsageCSV(t *testing.T) {
	f := newFixture(t)
	f.usageFixtures()

	status, h, body := f.do(acmeViewer, http.MethodGet, "/api/v1/usage?from=2026-12-03&to=2026-12-04&window=hour&group_by=instance,plan,region", "", nil, "Accept", "text/csv")
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	require.Equal(t, "text/csv; charset=utf-8", h.Get("Content-Type"))
	require.Equal(t, `attachment; filename="usage.csv"`, h.Get("Content-Disposition"))
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"window_start", "window_end", "meter", "unit", "instance_id", "plan_id", "region", "value"},
		{"2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z", "node_hours", "node-hour", "i1", "small", "eu", "1"},
		{"2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z", "node_hours", "node-hour", "i2", "large", "us", "0.5"},
		{"2026-12-03T11:00:00Z", "2026-12-03T12:00:00Z", "network_bytes_in", "byte", "i1", "small", "eu", "123456"},
		{"2026-12-03T11:00:00Z", "2026-12-03T12:00:00Z", "node_hours", "node-hour", "i1", "small", "eu", "0.025"},
	}, recs)

	// ?format=csv works too; a platform-admin over all tenants gets their ids.
	status, _, body = f.do(admin, http.MethodGet, "/api/v1/usage?meter=node_hours&from=2026-12-03&to=2026-12-04&window=day&group_by=tenant&format=csv", "", nil)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	recs, err = csv.NewReader(strings.NewReader(string(body))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"window_start", "window_end", "tenant_id", "meter", "unit", "instance_id", "plan_id", "region", "value"},
		{"2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z", "acme", "node_hours", "node-hour", "", "", "", "1.525"},
		{"2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z", "globex", "node_hours", "node-hour", "", "", "", "2"},
	}, recs)
}

func TestLateAPI(t *testing.T) {
	f := newFixture(t)
	for i, tenant := range []string{"acme", "globex", "acme"} {
		_, err := f.db.SQL().ExecContext(context.Background(), `INSERT INTO late_events (tenant_id, source, event_id, type, subject, meter, value, event_time, received_at, reason)
			VALUES (?, 'gw-1', ?, 'com.example.api.call', 'gw', 'api_calls', 1, '2026-12-01 00:00:00', ?, 'older than grace window')`,
			tenant, fmt.Sprint("e", i), now.Add(-time.Hour+time.Duration(i)*time.Minute))
		require.NoError(t, err)
	}
	var res httpapi.LateResponse
	status, _, body := f.do(acmeViewer, http.MethodGet, "/api/v1/usage/late", "", nil)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	require.NoError(t, json.Unmarshal(body, &res))
	require.Len(t, res.Items, 2)
	require.Equal(t, "e0", res.Items[0].EventID)
	require.Equal(t, "e2", res.Items[1].EventID)
	require.Equal(t, "older than grace window", res.Items[0].Reason)

	status, _, body = f.do(admin, http.MethodGet, "/api/v1/usage/late?limit=2", "", nil)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	require.NoError(t, json.Unmarshal(body, &res))
	require.Equal(t, []string{"e0", "e1"}, []string{res.Items[0].EventID, res.Items[1].EventID})

	status, _, _ = f.do(acmeViewer, http.MethodGet, "/api/v1/usage/late?tenant=globex", "", nil)
	require.Equal(t, http.StatusForbidden, status)
	status, h, body := f.do(acmeViewer, http.MethodGet, "/api/v1/usage/late?limit=0&from=x", "", nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.ElementsMatch(t, []string{"from", "limit"}, fieldsOf(problem(t, h, body)))
}

func TestMetersAPI(t *testing.T) {
	f := newFixture(t)
	var list httpapi.MeterList
	status, _, body := f.do(acmeViewer, http.MethodGet, "/api/v1/meters", "", nil)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Items, len(meter.Builtins()))

	status, _, body = f.do(acmeViewer, http.MethodGet, "/api/v1/meters/node_hours", "", nil)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	var m meter.Meter
	require.NoError(t, json.Unmarshal(body, &m))
	require.Equal(t, "node-hour", m.Unit)
	require.Equal(t, 3600.0, m.Scale)
	require.True(t, m.Builtin)
	status, _, _ = f.do(acmeViewer, http.MethodGet, "/api/v1/meters/nope", "", nil)
	require.Equal(t, http.StatusNotFound, status)

	const tokens = `{"slug":"tokens","name":"LLM tokens","unit":"token","aggregation":"SUM","event_type":"com.example.llm","value_property":"usage.tokens"}`
	status, _, _ = f.do(acmeMember, http.MethodPost, "/api/v1/meters", "application/json", []byte(tokens))
	require.Equal(t, http.StatusForbidden, status, "only a platform-admin defines meters")
	status, h, body := f.do(admin, http.MethodPost, "/api/v1/meters", "application/json", []byte(tokens))
	require.Equal(t, http.StatusCreated, status, "body: %s", body)
	require.Equal(t, "/api/v1/meters/tokens", h.Get("Location"))
	require.NoError(t, json.Unmarshal(body, &m))
	require.Equal(t, meter.Meter{Slug: "tokens", Name: "LLM tokens", Unit: "token", Aggregation: meter.Sum, Scale: 1,
		EventType: "com.example.llm", ValueProperty: "usage.tokens", CreatedAt: now}, m)
	status, _, body = f.do(admin, http.MethodPost, "/api/v1/meters", "application/json", []byte(tokens))
	require.Equal(t, http.StatusConflict, status, "body: %s", body)

	status, h, body = f.do(admin, http.MethodPost, "/api/v1/meters", "application/json",
		[]byte(`{"slug":"Bad!","name":"x","unit":"u","aggregation":"MEDIAN","event_type":"t"}`))
	require.Equal(t, http.StatusUnprocessableEntity, status, "body: %s", body)
	require.ElementsMatch(t, []string{"slug", "aggregation"}, fieldsOf(problem(t, h, body)))
	status, _, body = f.do(admin, http.MethodPost, "/api/v1/meters", "application/json", []byte(`{"slug":"x","builtin":true}`))
	require.Equal(t, http.StatusBadRequest, status, "unknown fields are refused: %s", body)

	status, _, body = f.do(admin, http.MethodDelete, "/api/v1/meters/node_hours", "", nil)
	require.Equal(t, http.StatusConflict, status, "body: %s", body)
	status, _, _ = f.do(acmeMember, http.MethodDelete, "/api/v1/meters/tokens", "", nil)
	require.Equal(t, http.StatusForbidden, status)
	status, _, _ = f.do(admin, http.MethodDelete, "/api/v1/meters/tokens", "", nil)
	require.Equal(t, http.StatusNoContent, status)
	status, _, _ = f.do(admin, http.MethodDelete, "/api/v1/meters/tokens", "", nil)
	require.Equal(t, http.StatusNotFound, status)
	_, err := f.usage.Get(context.Background(), "tokens")
	require.ErrorIs(t, err, usage.ErrMeterNotFound)
}
