package httpapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

// maxPlansPerService bounds the plans embedded in one service of the listing.
const maxPlansPerService = 500

type serviceCursor struct {
	After string `json:"a"`
}

type planCursor struct {
	After string `json:"a"`
}

// listServices answers GET /services: each engine with the versions some
// host runs and its orderable plans; a plan of which no host runs any
// version is left out while the builds are known.
func (h *Handler) listServices(w http.ResponseWriter, r *http.Request) {
	var cur serviceCursor
	limit, _, err := paging.Parse(r.URL.Query(), &cur)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	builds, known := h.builds(r)
	out := listJSON[serviceJSON]{Items: []serviceJSON{}}
	for _, svc := range plan.Services() {
		if cur.After != "" && string(svc.Engine) <= cur.After {
			continue
		}
		if len(out.Items) == limit {
			out.NextCursor = paging.Encode(serviceCursor{After: out.Items[len(out.Items)-1].Name})
			break
		}
		plans, err := h.repo.ListPlans(r.Context(), mysqlrepo.PlanQuery{Engine: svc.Engine, State: plan.Active, Limit: maxPlansPerService})
		if err != nil {
			h.writeInternal(w, r, err)
			return
		}
		views := make([]planJSON, 0, len(plans))
		for _, p := range plans {
			if o := p.Offer(builds, known); len(o.Versions) > 0 {
				views = append(views, toPlanJSON(p, o))
			}
		}
		so := svc.Offer(builds, known)
		out.Items = append(out.Items, serviceJSON{
			ID: svc.ID, Name: string(svc.Engine), DisplayName: svc.DisplayName, Description: svc.Description,
			Tags: svc.Tags, Versions: so.Versions, VersionLabels: so.Labels, Plans: views,
		})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// listPlans answers GET /plans?engine=&state=: every plan, deprecated ones
// included unless filtered, by name.
func (h *Handler) listPlans(w http.ResponseWriter, r *http.Request) {
	var cur planCursor
	limit, _, err := paging.Parse(r.URL.Query(), &cur)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	q := mysqlrepo.PlanQuery{AfterName: cur.After, Limit: limit + 1}
	if e := r.URL.Query().Get("engine"); e != "" {
		if _, ok := plan.LookupService(plan.Engine(e)); !ok {
			httpx.WriteProblem(w, r, httpx.BadRequest("invalid query parameter", httpx.FieldError{Field: "engine", Reason: "unknown engine"}))
			return
		}
		q.Engine = plan.Engine(e)
	}
	if s := r.URL.Query().Get("state"); s != "" {
		if s != string(plan.Active) && s != string(plan.Deprecated) {
			httpx.WriteProblem(w, r, httpx.BadRequest("invalid query parameter", httpx.FieldError{Field: "state", Reason: "must be active or deprecated"}))
			return
		}
		q.State = plan.State(s)
	}
	plans, err := h.repo.ListPlans(r.Context(), q)
	if err != nil {
		h.writeInternal(w, r, err)
		return
	}
	plans, more := paging.Split(plans, limit)
	builds, known := h.builds(r)
	out := listJSON[planJSON]{Items: make([]planJSON, 0, len(plans))}
	for _, p := range plans {
		out.Items = append(out.Items, toPlanJSON(p, p.Offer(builds, known)))
	}
	if more {
		out.NextCursor = paging.Encode(planCursor{After: plans[len(plans)-1].Name})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// getPlan answers GET /plans/{id}; deprecated plans stay readable.
func (h *Handler) getPlan(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !plan.ValidID(id) {
		httpx.WriteProblem(w, r, notFound("plan"))
		return
	}
	p, err := h.repo.GetPlan(r.Context(), id)
	if errors.Is(err, mysqlrepo.ErrNotFound) {
		httpx.WriteProblem(w, r, notFound("plan"))
		return
	}
	if err != nil {
		h.writeInternal(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, h.planView(r, p))
}

// createPlan answers POST /plans (platform-admin, Idempotency-Key).
func (h *Handler) createPlan(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	idem, done := h.startIdempotent(w, r, "create-plan", body)
	if done {
		return
	}
	var req planRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if missing := req.missing(); len(missing) > 0 {
		fields := make([]httpx.FieldError, 0, len(missing))
		for _, m := range missing {
			fields = append(fields, httpx.FieldError{Field: m, Reason: "is required"})
		}
		httpx.WriteProblem(w, r, httpx.Unprocessable("required fields are missing", fields...))
		return
	}
	p, err := plan.New(h.newID(), req.spec(), h.now())
	var ve *plan.ValidationError
	if errors.As(err, &ve) {
		httpx.WriteProblem(w, r, violationsProblem(ve.Violations))
		return
	}
	if err != nil {
		h.writeInternal(w, r, err)
		return
	}
	resp, err := marshal(h.planView(r, p))
	if err != nil {
		h.writeInternal(w, r, err)
		return
	}
	err = h.repo.CreatePlan(r.Context(), p, idem.response(http.StatusCreated, resp))
	switch {
	case err == nil:
		w.Header().Set("Location", Prefix+"/plans/"+p.ID)
		writeRaw(w, http.StatusCreated, resp)
	case errors.Is(err, mysqlrepo.ErrNameTaken):
		writeNameTaken(w, r, p.Name)
	case errors.Is(err, mysqlrepo.ErrIdempotencyKeyUsed):
		// A concurrent request with the same key won; answer as it did.
		if !h.replay(w, r, idem) {
			h.writeInternal(w, r, err)
		}
	default:
		h.writeInternal(w, r, err)
	}
}

func writeNameTaken(w http.ResponseWriter, r *http.Request, name string) {
	p := httpx.NewProblem(http.StatusConflict, "a plan named "+name+" already exists")
	p.Errors = []httpx.FieldError{{Field: "name", Reason: "is already taken"}}
	httpx.WriteProblem(w, r, p)
}

// patchPlan answers PATCH /plans/{id} (platform-admin).
func (h *Handler) patchPlan(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !plan.ValidID(id) {
		httpx.WriteProblem(w, r, notFound("plan"))
		return
	}
	var req planPatch
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	p, err := h.repo.UpdatePlan(r.Context(), id, func(cur plan.Plan) (plan.Plan, mysqlrepo.Change, error) {
		next, changed, err := cur.Apply(req.changes(), h.now())
		if err != nil || len(changed) == 0 {
			return cur, mysqlrepo.Change{}, err
		}
		return next, mysqlrepo.Change{Event: events.TypePlanUpdated, Fields: changed}, nil
	})
	h.writeUpdated(w, r, p, err, deref(req.Name))
}

// deprecatePlan answers POST /plans/{id}/deprecate (platform-admin). It takes
// no body and is idempotent: deprecating a deprecated plan returns it unchanged.
func (h *Handler) deprecatePlan(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !plan.ValidID(id) {
		httpx.WriteProblem(w, r, notFound("plan"))
		return
	}
	p, err := h.repo.UpdatePlan(r.Context(), id, func(cur plan.Plan) (plan.Plan, mysqlrepo.Change, error) {
		if !cur.Deprecate(h.now()) {
			return cur, mysqlrepo.Change{}, nil
		}
		return cur, mysqlrepo.Change{Event: events.TypePlanDeprecated, Fields: []string{"state"}}, nil
	})
	h.writeUpdated(w, r, p, err, "")
}

func (h *Handler) writeUpdated(w http.ResponseWriter, r *http.Request, p plan.Plan, err error, name string) {
	var ve *plan.ValidationError
	switch {
	case err == nil:
		httpx.WriteJSON(w, http.StatusOK, h.planView(r, p))
	case errors.Is(err, mysqlrepo.ErrNotFound):
		httpx.WriteProblem(w, r, notFound("plan"))
	case errors.As(err, &ve):
		httpx.WriteProblem(w, r, violationsProblem(ve.Violations))
	case errors.Is(err, mysqlrepo.ErrNameTaken):
		writeNameTaken(w, r, name)
	default:
		h.writeInternal(w, r, err)
	}
}
