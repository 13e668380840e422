// Package scope reads who a metering request is for and what it asks:
// the tenant it may see (a platform-admin names one with ?tenant= or sees
// all) and the usage and cost query parameters shared by /usage and /costs.
package scope

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// Caller is who a request acts for: one tenant, or every tenant (a
// platform-admin without ?tenant=).
type Caller struct {
	Principal tenancy.Principal
	Tenant    string
	All       bool
}

// Admin reports whether the caller is a platform-admin.
func (c Caller) Admin() bool { return c.Principal.Role == tenancy.RolePlatformAdmin }

// Tenant authorizes action on what and returns the caller's scope. A
// tenant's ?tenant= may only name itself (403 otherwise); a platform-admin's
// names the tenant it acts for, and without it the admin acts for all.
// On false the problem has been written.
func Tenant(w http.ResponseWriter, r *http.Request, action tenancy.Action, what string) (Caller, bool) {
	p, ok := httpx.Authorize(w, r, action, what)
	if !ok {
		return Caller{}, false
	}
	asked := r.URL.Query().Get("tenant")
	if p.Role == tenancy.RolePlatformAdmin {
		return Caller{Principal: p, Tenant: asked, All: asked == ""}, true
	}
	if asked != "" && asked != string(p.Tenant) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "a tenant may only see its own "+what))
		return Caller{}, false
	}
	return Caller{Principal: p, Tenant: string(p.Tenant)}, true
}

// Longest ranges per window, so that one answer stays a few thousand rows
// per group.
var maxRange = map[meter.Level]time.Duration{
	meter.Minute: 48 * time.Hour,
	meter.Hour:   93 * 24 * time.Hour,
	meter.Day:    3 * 366 * 24 * time.Hour,
	meter.Month:  10 * 366 * 24 * time.Hour,
}

// ParseQuery reads meter (comma-separated or repeated), from and to
// (RFC 3339, or a date 2026-12-01; default: the last 24 hours), window
// (minute|hour|day|month, default hour), group_by (comma-separated:
// instance, meter, plan, region, and tenant for an admin over all tenants)
// and instance. from is aligned down and to up to the window. Errors are
// a 400 *httpx.Problem naming each field.
func ParseQuery(r *http.Request, c Caller, now time.Time) (meter.Query, error) {
	v := r.URL.Query()
	var fields []httpx.FieldError
	bad := func(f, why string) { fields = append(fields, httpx.FieldError{Field: f, Reason: why}) }
	q := meter.Query{Tenant: c.Tenant, AllTenants: c.All, Instance: v.Get("instance"), Window: meter.Hour}
	for _, m := range v["meter"] {
		for _, s := range strings.Split(m, ",") {
			if s = strings.TrimSpace(s); s != "" {
				q.Meters = append(q.Meters, s)
			}
		}
	}
	if w := v.Get("window"); w != "" {
		q.Window = meter.Level(w)
		if _, ok := maxRange[q.Window]; !ok {
			bad("window", "must be one of minute, hour, day, month")
		}
	}
	q.To = now
	q.From = now.Add(-24 * time.Hour)
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := v.Get(p.name)
		if s == "" {
			continue
		}
		t, err := parseTime(s)
		if err != nil {
			bad(p.name, "must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)")
			continue
		}
		*p.dst = t
	}
	allowed := []string{meter.ByInstance, meter.ByMeter, meter.ByPlan, meter.ByRegion}
	if c.All {
		allowed = append(allowed, meter.ByTenant)
	}
	if g := v.Get("group_by"); g != "" {
		for _, s := range strings.Split(g, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allowed, s) {
				bad("group_by", "must be a comma-separated list of "+strings.Join(allowed, ", "))
				break
			}
			if !slices.Contains(q.GroupBy, s) {
				q.GroupBy = append(q.GroupBy, s)
			}
		}
	}
	if len(fields) == 0 {
		if _, ok := maxRange[q.Window]; ok {
			q.From = q.Window.Start(q.From)
			if end := q.Window.Start(q.To); end.Before(q.To) {
				q.To = q.Window.End(end)
			}
			switch {
			case !q.From.Before(q.To):
				bad("from", "must be before to")
			case q.To.Sub(q.From) > maxRange[q.Window]:
				bad("to", "the range is too long for window "+string(q.Window)+"; use a larger window")
			}
		}
	}
	if len(fields) > 0 {
		return meter.Query{}, httpx.BadRequest("invalid usage query", fields...)
	}
	return q, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	return t.UTC(), err
}

// WantsCSV reports whether the client asked for CSV: Accept text/csv or
// ?format=csv.
func WantsCSV(r *http.Request) bool {
	return r.URL.Query().Get("format") == "csv" || strings.Contains(r.Header.Get("Accept"), "text/csv")
}
