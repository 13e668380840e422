package httpapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
)

// MeterList is the answer of GET /api/v1/meters.
type MeterList struct {
	Items []meter.Meter `json:"items"`
}

// MeterRequest is the body of POST /api/v1/meters: a custom meter over
// ingested CloudEvents of EventType.
type MeterRequest struct {
	Slug          string            `json:"slug"`
	Name          string            `json:"name"`
	Description   string            `json:"description"`
	Unit          string            `json:"unit"`
	Aggregation   meter.Aggregation `json:"aggregation"`
	Scale         float64           `json:"scale"`
	EventType     string            `json:"event_type"`
	ValueProperty string            `json:"value_property"`
}

func (a *API) listMeters(w http.ResponseWriter, r *http.Request) {
	if _, ok := httpx.Authorize(w, r, tenancy.ActionRead, "meters"); !ok {
		return
	}
	ms, err := a.usage.List(r.Context())
	if err != nil {
		a.internalError(w, r, "list meters", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, MeterList{Items: ms})
}

func (a *API) getMeter(w http.ResponseWriter, r *http.Request) {
	if _, ok := httpx.Authorize(w, r, tenancy.ActionRead, "meters"); !ok {
		return
	}
	m, err := a.usage.Get(r.Context(), chi.URLParam(r, "slug"))
	if errors.Is(err, usage.ErrMeterNotFound) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such meter"))
		return
	}
	if err != nil {
		a.internalError(w, r, "read meter", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, m)
}

func (a *API) createMeter(w http.ResponseWriter, r *http.Request) {
	if _, ok := httpx.Authorize(w, r, tenancy.ActionAdmin, "meters"); !ok {
		return
	}
	var req MeterRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	m, err := a.usage.Create(r.Context(), meter.Meter{
		Slug: req.Slug, Name: req.Name, Description: req.Description, Unit: req.Unit, Aggregation: req.Aggregation,
		Scale: req.Scale, EventType: req.EventType, ValueProperty: req.ValueProperty, CreatedAt: a.now(),
	})
	var fe meter.FieldErrors
	switch {
	case errors.As(err, &fe):
		httpx.WriteProblem(w, r, httpx.Unprocessable("invalid meter", fieldErrors(fe)...))
		return
	case errors.Is(err, usage.ErrMeterExists):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "a meter "+req.Slug+" already exists"))
		return
	case err != nil:
		a.internalError(w, r, "create meter", err)
		return
	}
	w.Header().Set("Location", "/api/v1/meters/"+m.Slug)
	httpx.WriteJSON(w, http.StatusCreated, m)
}

func (a *API) deleteMeter(w http.ResponseWriter, r *http.Request) {
	if _, ok := httpx.Authorize(w, r, tenancy.ActionAdmin, "meters"); !ok {
		return
	}
	err := a.usage.Delete(r.Context(), chi.URLParam(r, "slug"))
	switch {
	case errors.Is(err, usage.ErrMeterNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such meter"))
	case errors.Is(err, usage.ErrBuiltinMeter):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "built-in meters cannot be deleted"))
	case err != nil:
		a.internalError(w, r, "delete meter", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
