// Package ratingapi is the HTTP face of rating: costs (JSON and CSV),
// invoices, the tenant's budget and prices. It maps requests to
// rating.Service calls and errors to problem+json; the rules live in
// rating. Callers are authenticated upstream: a tenancy.Principal rides in
// the request context.
package ratingapi

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/rating"
	"github.com/canopy-platform/canopy/services/metering/internal/scope"
)

// API serves the rating endpoints.
type API struct {
	svc *rating.Service
}

// New returns the API over svc.
func New(s *rating.Service) (*API, error) {
	if s == nil {
		return nil, errors.New("new rating api: nil service")
	}
	return &API{svc: s}, nil
}

// Routes mounts the endpoints on r (full paths under /api/v1).
func (a *API) Routes(r chi.Router) {
	r.Get("/api/v1/costs", a.costs)
	r.Get("/api/v1/invoices", a.invoices)
	r.Get("/api/v1/budget", a.getBudget)
	r.Put("/api/v1/budget", a.putBudget)
	r.Delete("/api/v1/budget", a.deleteBudget)
	r.Get("/api/v1/prices", a.listPrices)
	r.Post("/api/v1/prices", a.setPrice)
}

// writeError renders err: validation as 422 (400 for query parameters)
// naming the fields, not found as 404, a *httpx.Problem as itself.
func writeError(w http.ResponseWriter, r *http.Request, status int, err error) {
	var ve *rating.ValidationError
	switch {
	case errors.As(err, &ve):
		fields := make([]httpx.FieldError, len(ve.Fields))
		for i, f := range ve.Fields {
			fields[i] = httpx.FieldError{Field: f.Field, Reason: f.Reason}
		}
		p := httpx.Unprocessable(ve.Detail, fields...)
		if status == http.StatusBadRequest {
			p = httpx.BadRequest(ve.Detail, fields...)
		}
		httpx.WriteProblem(w, r, p)
	case errors.Is(err, rating.ErrNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, err.Error()))
	default:
		httpx.WriteError(w, r, err)
	}
}

// oneTenant is the tenant a per-tenant resource is for: the caller's, or
// for a platform-admin the one named with ?tenant= (required).
func oneTenant(w http.ResponseWriter, r *http.Request, action tenancy.Action, what string) (string, bool) {
	c, ok := scope.Tenant(w, r, action, what)
	if !ok {
		return "", false
	}
	if c.All {
		httpx.WriteProblem(w, r, httpx.BadRequest("a platform-admin names the tenant",
			httpx.FieldError{Field: "tenant", Reason: "is required for a platform-admin: ?tenant=<tenant id>"}))
		return "", false
	}
	return c.Tenant, true
}

// costsResponse is the JSON answer of GET /api/v1/costs.
type costsResponse struct {
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	Window   meter.Level     `json:"window"`
	GroupBy  []string        `json:"group_by"`
	Currency string          `json:"currency"`
	Data     []meter.CostRow `json:"data"`
	Total    string          `json:"total"`
}

// csvHeader is the costs CSV's columns, every dimension always present
// (empty when not grouped by it) so that spreadsheets see one layout.
var csvHeader = []string{"window_start", "window_end", "tenant_id", "meter", "unit", "instance_id", "plan_id", "region", "quantity", "amount", "currency"}

func (a *API) costs(w http.ResponseWriter, r *http.Request) {
	c, ok := scope.Tenant(w, r, tenancy.ActionRead, "costs")
	if !ok {
		return
	}
	q, err := scope.ParseQuery(r, c, a.svc.Now())
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if q.Window == meter.Minute {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid cost query",
			httpx.FieldError{Field: "window", Reason: "costs are rated per hour: use hour, day or month"}))
		return
	}
	rep, err := a.svc.CostReport(r.Context(), q)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err)
		return
	}
	if scope.WantsCSV(r) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="costs.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write(csvHeader)
		for _, row := range rep.Rows {
			qty := ""
			if row.Meter != "" {
				qty = strconv.FormatFloat(row.Quantity, 'f', -1, 64)
			}
			_ = cw.Write([]string{row.WindowStart.Format(time.RFC3339), row.WindowEnd.Format(time.RFC3339), row.Tenant,
				row.Meter, row.Unit, row.Instance, row.Plan, row.Region, qty, row.Amount, row.Currency})
		}
		cw.Flush()
		return
	}
	groupBy := q.GroupBy
	if groupBy == nil {
		groupBy = []string{}
	}
	httpx.WriteJSON(w, http.StatusOK, costsResponse{From: q.From, To: q.To, Window: q.Window, GroupBy: groupBy,
		Currency: rep.Currency, Data: rep.Rows, Total: rep.Total})
}

func (a *API) invoices(w http.ResponseWriter, r *http.Request) {
	tenant, ok := oneTenant(w, r, tenancy.ActionRead, "invoices")
	if !ok {
		return
	}
	month := r.URL.Query().Get("month")
	if month == "" {
		month = a.svc.Now().Format("2006-01")
	}
	inv, err := a.svc.Invoice(r.Context(), tenant, month)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, inv)
}

func (a *API) getBudget(w http.ResponseWriter, r *http.Request) {
	tenant, ok := oneTenant(w, r, tenancy.ActionRead, "budget")
	if !ok {
		return
	}
	b, err := a.svc.GetBudget(r.Context(), tenant)
	if err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, b)
}

// decimalText is a decimal sent as a JSON string ("0.125") or number
// (0.125), kept as written so that no float rounding touches money; rating
// validates it (a 422 naming the field, not a decoding error).
type decimalText string

// UnmarshalJSON keeps a string's content or a number's literal text.
func (d *decimalText) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*d = decimalText(strings.TrimSpace(s))
		return nil
	}
	*d = decimalText(b)
	return nil
}

// budgetRequest is the body of PUT /api/v1/budget. amount is a decimal as
// a JSON string or number.
type budgetRequest struct {
	Amount     decimalText `json:"amount"`
	Currency   string      `json:"currency"`
	Thresholds []int       `json:"thresholds"`
}

func (a *API) putBudget(w http.ResponseWriter, r *http.Request) {
	tenant, ok := oneTenant(w, r, tenancy.ActionWrite, "budget")
	if !ok {
		return
	}
	var req budgetRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	b, err := a.svc.SetBudget(r.Context(), tenant, rating.BudgetInput{
		Amount: string(req.Amount), Currency: strings.TrimSpace(req.Currency), Thresholds: req.Thresholds,
	})
	if err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, b)
}

func (a *API) deleteBudget(w http.ResponseWriter, r *http.Request) {
	tenant, ok := oneTenant(w, r, tenancy.ActionWrite, "budget")
	if !ok {
		return
	}
	if err := a.svc.DeleteBudget(r.Context(), tenant); err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pricesResponse is the answer of GET /api/v1/prices.
type pricesResponse struct {
	Data []rating.Price `json:"data"`
}

func (a *API) listPrices(w http.ResponseWriter, r *http.Request) {
	if _, ok := httpx.Authorize(w, r, tenancy.ActionRead, "prices"); !ok {
		return
	}
	v := r.URL.Query()
	list, err := a.svc.ListPrices(r.Context(), v.Get("plan_id"), v.Get("meter"))
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, pricesResponse{Data: list})
}

// priceRequest is the body of POST /api/v1/prices. unit_price is a decimal
// as a JSON string or number; effective_from RFC 3339 on an hour boundary.
type priceRequest struct {
	PlanID        string      `json:"plan_id"`
	Meter         string      `json:"meter"`
	EffectiveFrom string      `json:"effective_from"`
	Currency      string      `json:"currency"`
	UnitPrice     decimalText `json:"unit_price"`
}

func (a *API) setPrice(w http.ResponseWriter, r *http.Request) {
	if _, ok := httpx.Authorize(w, r, tenancy.ActionAdmin, "prices"); !ok {
		return
	}
	var req priceRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	p, err := a.svc.SetPrice(r.Context(), rating.PriceInput{
		PlanID: strings.TrimSpace(req.PlanID), Meter: strings.TrimSpace(req.Meter), EffectiveFrom: strings.TrimSpace(req.EffectiveFrom),
		Currency: strings.TrimSpace(req.Currency), UnitPrice: string(req.UnitPrice),
	})
	if err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, p)
}
