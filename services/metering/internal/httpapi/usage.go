package httpapi

import (
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/scope"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
)

// UsageResponse is the JSON answer of GET /api/v1/usage.
type UsageResponse struct {
	From    time.Time        `json:"from"`
	To      time.Time        `json:"to"`
	Window  meter.Level      `json:"window"`
	GroupBy []string         `json:"group_by"`
	Data    []meter.UsageRow `json:"data"`
}

func (a *API) getUsage(w http.ResponseWriter, r *http.Request) {
	c, ok := scope.Tenant(w, r, tenancy.ActionRead, "usage")
	if !ok {
		return
	}
	q, err := scope.ParseQuery(r, c, a.now())
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	rows, err := a.usage.Usage(r.Context(), q)
	var qe *usage.QueryError
	if errors.As(err, &qe) {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid usage query", httpx.FieldError{Field: qe.Field, Reason: qe.Reason}))
		return
	}
	if err != nil {
		a.internalError(w, r, "read usage", err)
		return
	}
	if scope.WantsCSV(r) {
		writeUsageCSV(w, q, rows)
		return
	}
	groupBy := q.GroupBy
	if groupBy == nil {
		groupBy = []string{}
	}
	httpx.WriteJSON(w, http.StatusOK, UsageResponse{From: q.From.UTC(), To: q.To.UTC(), Window: q.Window, GroupBy: groupBy, Data: rows})
}

// writeUsageCSV writes rows as a CSV download; the tenant_id column is
// there when the query spans every tenant.
func writeUsageCSV(w http.ResponseWriter, q meter.Query, rows []meter.UsageRow) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	header := []string{"window_start", "window_end"}
	if q.AllTenants {
		header = append(header, "tenant_id")
	}
	header = append(header, "meter", "unit", "instance_id", "plan_id", "region", "value")
	_ = cw.Write(header)
	rec := make([]string, 0, len(header))
	for _, row := range rows {
		rec = append(rec[:0], row.WindowStart.UTC().Format(time.RFC3339), row.WindowEnd.UTC().Format(time.RFC3339))
		if q.AllTenants {
			rec = append(rec, row.Tenant)
		}
		rec = append(rec, row.Meter, row.Unit, row.Instance, row.Plan, row.Region, strconv.FormatFloat(row.Value, 'f', -1, 64))
		if err := cw.Write(rec); err != nil {
			return // the client went away
		}
	}
	cw.Flush()
}

// Late events listing bounds.
const (
	defaultLateLimit = 100
	maxLateLimit     = 1000
)

// LateResponse is the JSON answer of GET /api/v1/usage/late.
type LateResponse struct {
	From  time.Time         `json:"from"`
	To    time.Time         `json:"to"`
	Items []usage.LateEvent `json:"items"`
}

// getLate lists the events recorded as late, received in [from, to)
// (default: the last 24 hours), oldest first, at most limit (100, ≤ 1000).
func (a *API) getLate(w http.ResponseWriter, r *http.Request) {
	c, ok := scope.Tenant(w, r, tenancy.ActionRead, "late events")
	if !ok {
		return
	}
	v := r.URL.Query()
	to := a.now().UTC()
	from := to.Add(-24 * time.Hour)
	limit := defaultLateLimit
	var fields []httpx.FieldError
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := v.Get(p.name); s != "" {
			t, err := parseTime(s)
			if err != nil {
				fields = append(fields, httpx.FieldError{Field: p.name, Reason: "must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)"})
				continue
			}
			*p.dst = t
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLateLimit {
			fields = append(fields, httpx.FieldError{Field: "limit", Reason: "must be an integer from 1 to " + strconv.Itoa(maxLateLimit)})
		}
		limit = n
	}
	if len(fields) == 0 && !from.Before(to) {
		fields = append(fields, httpx.FieldError{Field: "from", Reason: "must be before to"})
	}
	if len(fields) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid late events query", fields...))
		return
	}
	items, err := a.usage.Late(r.Context(), c.Tenant, from, to, limit)
	if err != nil {
		a.internalError(w, r, "read late events", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, LateResponse{From: from, To: to, Items: items})
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	return t.UTC(), err
}
