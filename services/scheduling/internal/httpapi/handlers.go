package httpapi

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

func (a *API) listRegions(w http.ResponseWriter, r *http.Request) {
	regions, err := a.inv.ListRegions(r.Context())
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := listJSON[regionJSON]{Items: make([]regionJSON, 0, len(regions))}
	for _, reg := range regions {
		out.Items = append(out.Items, region(reg))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getRegion(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	regions, err := a.inv.ListRegions(r.Context())
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	for _, reg := range regions {
		if reg.ID == id {
			httpx.WriteJSON(w, http.StatusOK, region(reg))
			return
		}
	}
	a.writeErr(w, r, fmt.Errorf("region %s: %w", id, inventory.ErrNotFound))
}

func (a *API) createRegion(w http.ResponseWriter, r *http.Request) {
	var in regionCreateJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.writeErr(w, r, err)
		return
	}
	reg := inventory.Region{ID: in.ID, Name: in.Name, Labels: in.Labels}
	if err := a.inv.CreateRegion(r.Context(), reg, latencies(in.ID, in.Latencies)); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if err := a.pl.Load(r.Context()); err != nil {
		a.logger.WarnContext(r.Context(), "reload inventory after region change", "err", err)
	}
	w.Header().Set("Location", Prefix+"/inventory/regions/"+reg.ID)
	httpx.WriteJSON(w, http.StatusCreated, region(reg))
}

func (a *API) patchRegion(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var in regionPatchJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.writeErr(w, r, err)
		return
	}
	reg, err := a.inv.UpdateRegion(r.Context(), id, func(reg *inventory.Region) error {
		if in.Name != nil {
			reg.Name = *in.Name
		}
		if in.Labels != nil {
			reg.Labels = in.Labels
		}
		return nil
	}, latencies(id, in.Latencies))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if err := a.pl.Load(r.Context()); err != nil {
		a.logger.WarnContext(r.Context(), "reload inventory after region change", "err", err)
	}
	httpx.WriteJSON(w, http.StatusOK, region(reg))
}

func (a *API) listLatencies(w http.ResponseWriter, r *http.Request) {
	lat, err := a.inv.ListLatencies(r.Context())
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := listJSON[pairJSON]{Items: make([]pairJSON, 0, len(lat))}
	for _, l := range lat {
		out.Items = append(out.Items, pairJSON(l))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) listZones(w http.ResponseWriter, r *http.Request) {
	zones, err := a.inv.ListZones(r.Context(), r.URL.Query().Get("region"))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := listJSON[zoneJSON]{Items: make([]zoneJSON, 0, len(zones))}
	for _, z := range zones {
		out.Items = append(out.Items, zoneJSON(z))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getZone(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	zones, err := a.inv.ListZones(r.Context(), "")
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	for _, z := range zones {
		if z.ID == id {
			httpx.WriteJSON(w, http.StatusOK, zoneJSON(z))
			return
		}
	}
	a.writeErr(w, r, fmt.Errorf("zone %s: %w", id, inventory.ErrNotFound))
}

func (a *API) createZone(w http.ResponseWriter, r *http.Request) {
	var in zoneCreateJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.writeErr(w, r, err)
		return
	}
	z := inventory.Zone{ID: in.ID, Region: in.Region, Name: in.Name}
	if err := a.inv.CreateZone(r.Context(), z, latencies(in.ID, in.Latencies)); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if err := a.pl.Load(r.Context()); err != nil {
		a.logger.WarnContext(r.Context(), "reload inventory after zone change", "err", err)
	}
	w.Header().Set("Location", Prefix+"/inventory/zones/"+z.ID)
	httpx.WriteJSON(w, http.StatusCreated, zoneJSON(z))
}

func (a *API) patchZone(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var in zonePatchJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.writeErr(w, r, err)
		return
	}
	z, err := a.inv.UpdateZone(r.Context(), id, in.Name, latencies(id, in.Latencies))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if err := a.pl.Load(r.Context()); err != nil {
		a.logger.WarnContext(r.Context(), "reload inventory after zone change", "err", err)
	}
	httpx.WriteJSON(w, http.StatusOK, zoneJSON(z))
}

func (a *API) listHosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, after, err := paging.ParseRaw(q, paging.DefaultLimit)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	f := inventory.HostFilter{Region: q.Get("region"), Zone: q.Get("zone"), State: q.Get("state"), After: after, Limit: limit}
	if f.State != "" && !inventory.HostState(f.State).Valid() {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid state", httpx.FieldError{Field: "state", Reason: "must be one of ready, cordoned, down"}))
		return
	}
	hosts, err := a.inv.ListHosts(r.Context(), f)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := listJSON[hostJSON]{Items: make([]hostJSON, 0, len(hosts))}
	for _, h := range hosts {
		out.Items = append(out.Items, host(h))
	}
	if len(hosts) == f.Limit {
		out.NextCursor = hosts[len(hosts)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getHost(w http.ResponseWriter, r *http.Request) {
	h, err := a.inv.GetHost(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, host(h))
}

func (a *API) createHost(w http.ResponseWriter, r *http.Request) {
	var in hostCreateJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.writeErr(w, r, err)
		return
	}
	ve := &inventory.ValidationError{}
	h := inventory.Host{ID: in.ID, Zone: in.Zone, Region: in.Region, Address: in.Address, Labels: in.Labels, State: inventory.HostState(in.State)}
	if in.Ports == nil {
		ve.Add("ports", "required")
	} else {
		h.Ports = inventory.PortRange{From: in.Ports.From, To: in.Ports.To}
	}
	if in.Capacity == nil {
		ve.Add("capacity", "required")
	} else {
		h.Capacity = in.Capacity.toResources(ve, "capacity")
	}
	if in.Price != nil {
		h.Price = inventory.Price(*in.Price)
	}
	if err := ve.Err(); err != nil {
		a.writeErr(w, r, err)
		return
	}
	created, err := a.inv.CreateHost(r.Context(), h)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.hostChanged(r, created.ID)
	w.Header().Set("Location", Prefix+"/inventory/hosts/"+created.ID)
	httpx.WriteJSON(w, http.StatusCreated, host(created))
}

func (a *API) hostChanged(r *http.Request, id string) {
	if err := a.pl.HostChanged(r.Context(), id); err != nil {
		a.logger.WarnContext(r.Context(), "refresh host in scheduler", "host", id, "err", err)
	}
}

func (a *API) patchHost(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var in hostPatchJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.writeErr(w, r, err)
		return
	}
	h, err := a.inv.UpdateHost(r.Context(), id, func(h *inventory.Host) error {
		ve := &inventory.ValidationError{}
		if in.Address != nil {
			h.Address = *in.Address
		}
		if in.Ports != nil {
			h.Ports = inventory.PortRange{From: in.Ports.From, To: in.Ports.To}
		}
		if in.Capacity != nil {
			h.Capacity = in.Capacity.toResources(ve, "capacity")
		}
		if in.Labels != nil {
			h.Labels = in.Labels
		}
		if in.Price != nil {
			h.Price = inventory.Price(*in.Price)
		}
		if in.State != nil {
			h.State = inventory.HostState(*in.State)
		}
		return ve.Err()
	})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.hostChanged(r, id)
	httpx.WriteJSON(w, http.StatusOK, host(h))
}

func (a *API) setState(state inventory.HostState) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		h, err := a.inv.UpdateHost(r.Context(), id, func(h *inventory.Host) error {
			if state == inventory.StateReady && h.State == inventory.StateDown {
				return fmt.Errorf("host %s is down: %w; PATCH its state to ready once it is back", id, inventory.ErrConflict)
			}
			h.State = state
			return nil
		})
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		a.hostChanged(r, id)
		httpx.WriteJSON(w, http.StatusOK, host(h))
	}
}

func (a *API) simulate(w http.ResponseWriter, r *http.Request) {
	var in simulateJSON
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		a.writeErr(w, r, err)
		return
	}
	req, err := a.request(r, in)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	d, err := a.pl.Simulate(r.Context(), req)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, simulationJSON{DeploymentMode: string(d.Mode), Nodes: placed(d.Nodes), Score: d.Score})
}

// request maps a simulate body to a placement request: plan_id (resolved in
// the catalog), or an inline plan ("plan" object or top-level fields).
func (a *API) request(r *http.Request, in simulateJSON) (placement.Request, error) {
	ve := &inventory.ValidationError{}
	req := placement.Request{InstanceID: in.InstanceID, Tenant: in.TenantID, Kind: placement.KindNew,
		Region: in.Region, DRRegion: in.DRRegion, AllowedRegions: in.AllowedRegions, RequiredLabels: in.Labels}
	if req.InstanceID == "" {
		req.InstanceID = "simulation"
	}
	plan := planJSON{Engine: in.Engine, DeploymentMode: in.DeploymentMode, Nodes: in.Nodes}
	inline := in.Engine != "" || in.DeploymentMode != "" || len(in.Nodes) > 0
	switch {
	case in.PlanID != "" && (in.Plan != nil || inline):
		ve.Add("plan_id", "give either plan_id or an inline plan, not both")
	case in.Plan != nil && inline:
		ve.Add("plan", "give the plan either as \"plan\" or as top-level fields, not both")
	case in.Plan != nil:
		plan = *in.Plan
	case in.PlanID != "":
		if a.plans == nil {
			ve.Add("plan_id", "plan lookup is not configured (no catalog URL); send an inline plan")
			return req, ve
		}
		shape, err := a.plans.Resolve(r.Context(), in.PlanID)
		if err != nil {
			return req, err
		}
		req.Mode, req.Nodes = placement.Mode(shape.DeploymentMode), shape.Nodes
		return req, nil
	case !inline:
		ve.Add("plan_id", "required: a plan_id or an inline plan {engine, deployment_mode, nodes}")
	}
	req.Mode = placement.Mode(plan.DeploymentMode)
	for i, n := range plan.Nodes {
		res := resourcesJSON{VCPU: n.VCPU, MemoryMB: n.MemoryMB, StorageGB: n.StorageGB}.toResources(ve, fmt.Sprintf("nodes[%d]", i))
		req.Nodes = append(req.Nodes, placement.NodeSpec{Name: n.Name, Role: n.Role, Resources: res})
	}
	if err := ve.Err(); err != nil {
		return req, err
	}
	return req, nil
}

func (a *API) getPlacement(w http.ResponseWriter, r *http.Request) {
	rec, err := a.pl.Get(r.Context(), chi.URLParam(r, "instance_id"))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, placementView(rec))
}

func (a *API) confirm(w http.ResponseWriter, r *http.Request) {
	rec, err := a.pl.Confirm(r.Context(), chi.URLParam(r, "instance_id"))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, placementView(rec))
}

func (a *API) release(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "instance_id")
	if err := a.pl.Release(r.Context(), id, "released by operator"); err != nil {
		a.writeErr(w, r, err)
		return
	}
	rec, err := a.pl.Get(r.Context(), id)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, placementView(rec))
}
