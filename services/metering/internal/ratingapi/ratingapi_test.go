package ratingapi_test

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/rating"
	rt "github.com/canopy-platform/canopy/services/metering/internal/rating/ratingtest"
	"github.com/canopy-platform/canopy/services/metering/internal/ratingapi"
)

// Test headers naming the caller; the real service verifies signed ones.
const (
	hdrTenant = "X-Test-Tenant"
	hdrRole   = "X-Test-Role"
)

// server serves the API over a fixture: tenants t1 (instance i1) and t2
// (instance i9), each running one node of plan small (0.10 per node-hour)
// for the first two days of December 2026; now is 2026-12-20.
func server(t *testing.T) (*httptest.Server, *rt.Env) {
	t.Helper()
	e := rt.New(t, rating.Config{}, rt.Date(2026, 12, 20, 9))
	e.Instance("i1", "t1", "orders-db", "small")
	e.Instance("i9", "t2", "secret-db", "small")
	e.Price("small", meter.NodeHours, rt.Date(2026, 11, 1, 0), "0.10")
	e.AddHours(rt.Usage{Tenant: "t1", Meter: meter.NodeHours, Subject: "i1", Plan: "small", Region: "eu-1", Total: "3600"}, rt.Date(2026, 12, 1, 0), rt.Date(2026, 12, 3, 0))
	e.AddHours(rt.Usage{Tenant: "t2", Meter: meter.NodeHours, Subject: "i9", Plan: "small", Region: "eu-2", Total: "7200"}, rt.Date(2026, 12, 1, 0), rt.Date(2026, 12, 3, 0))
	api, err := ratingapi.New(e.Svc)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if role := req.Header.Get(hdrRole); role != "" {
				p := tenancy.Principal{Tenant: tenancy.ID(req.Header.Get(hdrTenant)), Role: tenancy.Role(role), Subject: "test"}
				req = req.WithContext(tenancy.WithPrincipal(req.Context(), p))
			}
			next.ServeHTTP(w, req)
		})
	})
	api.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, e
}

type caller struct{ tenant, role string }

var (
	t1Admin  = caller{"t1", string(tenancy.RoleTenantAdmin)}
	t1Viewer = caller{"t1", string(tenancy.RoleTenantViewer)}
	t2Member = caller{"t2", string(tenancy.RoleTenantMember)}
	platform = caller{"", string(tenancy.RolePlatformAdmin)}
	nobody   = caller{}
)

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, dst any) {
	t.Helper()
	if err := json.Unmarshal(r.body, dst); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problemFields returns the field names of a problem+json answer.
func (r response) problemFields(t *testing.T) []string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != httpx.ProblemContentType {
		t.Fatalf("error %d is %q, not problem+json: %s", r.status, ct, r.body)
	}
	var p httpx.Problem
	r.json(t, &p)
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

func do(t *testing.T, srv *httptest.Server, c caller, method, path, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.role != "" {
		req.Header.Set(hdrRole, c.role)
		req.Header.Set(hdrTenant, c.tenant)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

type costs struct {
	Window   string          `json:"window"`
	GroupBy  []string        `json:"group_by"`
	Currency string          `json:"currency"`
	Data     []meter.CostRow `json:"data"`
	Total    string          `json:"total"`
}

const december = "from=2026-12-01&to=2027-01-01"

func TestTenantsSeeOnlyTheirOwnCostsInvoicesAndBudget(t *testing.T) {
	srv, _ := server(t)

	r := do(t, srv, t1Viewer, "GET", "/api/v1/costs?"+december+"&window=day&group_by=instance", "")
	if r.status != http.StatusOK {
		t.Fatalf("costs: %d %s", r.status, r.body)
	}
	var c costs
	r.json(t, &c)
	if len(c.Data) != 2 || c.Total != "4.800000" || c.Currency != "USD" || c.Window != "day" || !slices.Equal(c.GroupBy, []string{"instance"}) {
		t.Fatalf("t1 costs = %+v", c)
	}
	for _, row := range c.Data {
		if row.Instance != "i1" || row.Tenant != "t1" || row.Amount != "2.400000" {
			t.Fatalf("t1 sees row %+v", row)
		}
	}
	for _, path := range []string{
		"/api/v1/costs?" + december + "&tenant=t2",
		"/api/v1/invoices?month=2026-12&tenant=t2",
		"/api/v1/budget?tenant=t2",
	} {
		if r := do(t, srv, t1Admin, "GET", path, ""); r.status != http.StatusForbidden || r.problemFields(t) != nil {
			t.Fatalf("t1 GET %s: %d %s", path, r.status, r.body)
		}
	}
	if r := do(t, srv, t1Admin, "PUT", "/api/v1/budget?tenant=t2", `{"amount": "5"}`); r.status != http.StatusForbidden {
		t.Fatalf("t1 sets t2's budget: %d", r.status)
	}
	if r := do(t, srv, nobody, "GET", "/api/v1/costs", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous costs: %d", r.status)
	}

	var inv rating.Invoice
	r = do(t, srv, t1Viewer, "GET", "/api/v1/invoices?month=2026-12", "")
	r.json(t, &inv)
	if r.status != http.StatusOK || inv.TenantID != "t1" || len(inv.Lines) != 1 || inv.Lines[0].InstanceID != "i1" || inv.Total != "4.80" {
		t.Fatalf("t1 invoice: %d %+v", r.status, inv)
	}
	// Default month: the current one.
	r = do(t, srv, t2Member, "GET", "/api/v1/invoices", "")
	r.json(t, &inv)
	if inv.TenantID != "t2" || inv.Month != "2026-12" || len(inv.Lines) != 1 || inv.Lines[0].InstanceName != "secret-db" || inv.Total != "9.60" {
		t.Fatalf("t2 invoice: %+v", inv)
	}
	// A platform-admin names the tenant of an invoice, and may see all costs.
	if r := do(t, srv, platform, "GET", "/api/v1/invoices?month=2026-12", ""); r.status != http.StatusBadRequest ||
		!slices.Equal(r.problemFields(t), []string{"tenant"}) {
		t.Fatalf("admin invoice without tenant: %d %s", r.status, r.body)
	}
	r = do(t, srv, platform, "GET", "/api/v1/costs?"+december+"&window=month&group_by=tenant", "")
	r.json(t, &c)
	if len(c.Data) != 2 || c.Data[0].Tenant != "t1" || c.Data[1].Tenant != "t2" || c.Total != "14.400000" {
		t.Fatalf("admin costs = %+v", c)
	}

	// Budgets are per tenant.
	if r := do(t, srv, t1Admin, "PUT", "/api/v1/budget", `{"amount": 250.5, "thresholds": [50, 100]}`); r.status != http.StatusOK {
		t.Fatalf("put budget: %d %s", r.status, r.body)
	}
	var b rating.Budget
	r = do(t, srv, t1Viewer, "GET", "/api/v1/budget", "")
	r.json(t, &b)
	if b.TenantID != "t1" || b.Amount != "250.50" || b.Actual != "4.80" || !slices.Equal(b.Thresholds, []int{50, 100}) {
		t.Fatalf("t1 budget = %+v", b)
	}
	if r := do(t, srv, t2Member, "GET", "/api/v1/budget", ""); r.status != http.StatusNotFound {
		t.Fatalf("t2 sees a budget: %d %s", r.status, r.body)
	}
	if r := do(t, srv, t2Member, "DELETE", "/api/v1/budget", ""); r.status != http.StatusNotFound {
		t.Fatalf("t2 deletes t1's budget: %d", r.status)
	}
	if r := do(t, srv, t1Viewer, "DELETE", "/api/v1/budget", ""); r.status != http.StatusForbidden {
		t.Fatalf("viewer deletes the budget: %d", r.status)
	}
	if r := do(t, srv, t1Admin, "DELETE", "/api/v1/budget", ""); r.status != http.StatusNoContent {
		t.Fatalf("delete budget: %d %s", r.status, r.body)
	}

	// Prices are readable by tenants and set by platform-admins only.
	if r := do(t, srv, t1Admin, "POST", "/api/v1/prices", `{"plan_id":"*","meter":"node_hours","effective_from":"2026-12-21T00:00:00Z","currency":"USD","unit_price":"1"}`); r.status != http.StatusForbidden {
		t.Fatalf("tenant sets a price: %d", r.status)
	}
	var prices struct{ Data []rating.Price }
	r = do(t, srv, t1Viewer, "GET", "/api/v1/prices?meter=node_hours", "")
	r.json(t, &prices)
	if len(prices.Data) != 1 || prices.Data[0].PlanID != "small" || prices.Data[0].UnitPrice != "0.10" {
		t.Fatalf("prices = %+v", prices)
	}
}

func TestCostsCSV(t *testing.T) {
	srv, _ := server(t)
	r := do(t, srv, t1Viewer, "GET", "/api/v1/costs?"+december+"&window=day&group_by=instance,meter", "", "Accept", "text/csv")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"window_start", "window_end", "tenant_id", "meter", "unit", "instance_id", "plan_id", "region", "quantity", "amount", "currency"},
		{"2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", "t1", "node_hours", "node-hour", "i1", "", "", "24", "2.400000", "USD"},
		{"2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z", "t1", "node_hours", "node-hour", "i1", "", "", "24", "2.400000", "USD"},
	}
	if !slices.EqualFunc(recs, want, slices.Equal) {
		t.Fatalf("csv:\n got %q\nwant %q", recs, want)
	}
	// ?format=csv works too.
	if r := do(t, srv, t1Viewer, "GET", "/api/v1/costs?"+december+"&format=csv", ""); !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("format=csv: %s", r.header.Get("Content-Type"))
	}
}

func TestInvalidInputNamesTheFields(t *testing.T) {
	srv, _ := server(t)
	for _, c := range []struct {
		name, method, path, body string
		who                      caller
		status                   int
		fields                   []string
	}{
		{"price: everything wrong", "POST", "/api/v1/prices", `{"plan_id":"","meter":"nope","effective_from":"yesterday","currency":"usd","unit_price":"-1"}`,
			platform, 422, []string{"meter", "plan_id", "currency", "unit_price", "effective_from"}},
		{"price: not an hour", "POST", "/api/v1/prices", `{"plan_id":"*","meter":"node_hours","effective_from":"2026-12-21T00:30:00Z","currency":"USD","unit_price":0.2}`,
			platform, 422, []string{"effective_from"}},
		{"price: closed month", "POST", "/api/v1/prices", `{"plan_id":"*","meter":"node_hours","effective_from":"2026-11-01T00:00:00Z","currency":"USD","unit_price":0.2}`,
			platform, 422, []string{"effective_from"}},
		{"price: unknown field", "POST", "/api/v1/prices", `{"plan":"*"}`, platform, 400, []string{"plan"}},
		{"budget: everything wrong", "PUT", "/api/v1/budget", `{"amount":"abc","currency":"E","thresholds":[0]}`,
			t1Admin, 422, []string{"amount", "currency", "thresholds"}},
		{"budget: missing amount", "PUT", "/api/v1/budget", `{}`, t1Admin, 422, []string{"amount"}},
		{"budget: thresholds not numbers", "PUT", "/api/v1/budget", `{"amount":"1","thresholds":"80"}`, t1Admin, 400, []string{"thresholds"}},
		{"costs: minute window", "GET", "/api/v1/costs?window=minute", "", t1Viewer, 400, []string{"window"}},
		{"costs: bad group_by and from", "GET", "/api/v1/costs?group_by=colour&from=monday", "", t1Viewer, 400, []string{"from", "group_by"}},
		{"costs: unknown meter", "GET", "/api/v1/costs?meter=nope", "", t1Viewer, 400, []string{"meter"}},
		{"invoice: bad month", "GET", "/api/v1/invoices?month=2026-13", "", t1Viewer, 400, []string{"month"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, srv, c.who, c.method, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if got := r.problemFields(t); !slices.Equal(got, c.fields) {
				t.Fatalf("fields %v, want %v: %s", got, c.fields, r.body)
			}
		})
	}
	// A valid price is created.
	r := do(t, srv, platform, "POST", "/api/v1/prices", `{"plan_id":"*","meter":"node_hours","effective_from":"2026-12-21T00:00:00Z","currency":"USD","unit_price":0.2}`)
	var p rating.Price
	r.json(t, &p)
	if r.status != http.StatusCreated || p.UnitPrice != "0.20" || p.Source != "admin" {
		t.Fatalf("create price: %d %s", r.status, r.body)
	}
}
