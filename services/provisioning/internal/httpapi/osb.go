package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

// The Open Service Broker 2.17 instance and binding routes. The catalog is
// the OSB front door (docs/osb.md): it checks the broker's Basic
// credentials and the API version, resolves the tenant and forwards here with
// a signed identity, so these handlers see ordinary tenant requests. OSB
// instance and binding ids are the platform's; they are kept next to
// Canopy's own ids, unique per tenant.

const (
	osbVersionHeader  = "X-Broker-API-Version"
	osbRequestIDHeade = "X-Broker-API-Request-Identity"
)

func (h *Handler) osbRoutes(r chi.Router) {
	r.Use(osbHeaders)
	r.Put("/", h.osbProvision)
	r.Patch("/", h.osbUpdate)
	r.Get("/", h.osbGetInstance)
	r.Delete("/", h.osbDeprovision)
	r.Get("/last_operation", h.osbLastOperation)
	r.Put("/service_bindings/{bid}", h.osbBind)
	r.Get("/service_bindings/{bid}", h.osbGetBinding)
	r.Delete("/service_bindings/{bid}", h.osbUnbind)
	r.Get("/service_bindings/{bid}/last_operation", h.osbBindingLastOperation)
}

// osbHeaders echoes the request identity and, when the version header is
// present (the catalog has checked it already), refuses a non-2.x version.
func osbHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(osbRequestIDHeade); id != "" && len(id) <= 256 {
			w.Header().Set(osbRequestIDHeade, id)
		}
		if v := r.Header.Get(osbVersionHeader); v != "" && !strings.HasPrefix(v, "2.") {
			osbError(w, http.StatusPreconditionFailed, "UnsupportedBrokerAPIVersion", "this broker speaks OSB 2.x")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func osbError(w http.ResponseWriter, status int, code, description string) {
	httpx.WriteJSON(w, status, map[string]string{"error": code, "description": description})
}

func osbCaller(w http.ResponseWriter, r *http.Request, action tenancy.Action) (tenancy.Principal, string, bool) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok || p.Tenant == "" {
		osbError(w, http.StatusUnauthorized, "Unauthorized", "no tenant identity")
		return p, "", false
	}
	if !tenancy.Can(p.Role, action) {
		osbError(w, http.StatusForbidden, "Forbidden", "the broker credential may not do this")
		return p, "", false
	}
	return p, string(p.Tenant), true
}

type osbProvisionRequest struct {
	ServiceID  string          `json:"service_id"`
	PlanID     string          `json:"plan_id"`
	Context    json.RawMessage `json:"context,omitempty"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	OrgGUID    string          `json:"organization_guid,omitempty"`
	SpaceGUID  string          `json:"space_guid,omitempty"`
	// PreviousValues and MaintenanceInfo are accepted and ignored.
	PreviousValues  json.RawMessage `json:"previous_values,omitempty"`
	MaintenanceInfo json.RawMessage `json:"maintenance_info,omitempty"`
}

func decodeOSB(w http.ResponseWriter, r *http.Request, dst any) bool {
	// OSB: unknown fields MUST be ignored, so no strict decoding here.
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(dst); err != nil {
		osbError(w, http.StatusBadRequest, "BadRequest", "the body is not a JSON object: "+err.Error())
		return false
	}
	return true
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// osbName derives a Canopy name from an OSB id.
func osbName(id string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(id), "-"), "-")
	n = "osb-" + n
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}

var osbIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)

func (h *Handler) osbProvision(w http.ResponseWriter, r *http.Request) {
	p, tenant, ok := osbCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	if r.URL.Query().Get("accepts_incomplete") != "true" {
		osbError(w, http.StatusUnprocessableEntity, "AsyncRequired", "this broker provisions asynchronously; retry with accepts_incomplete=true")
		return
	}
	osbID := chi.URLParam(r, "id")
	if !osbIDPattern.MatchString(osbID) {
		osbError(w, http.StatusBadRequest, "BadRequest", "instance id must be 1-255 letters, digits, '.', '_' or '-'")
		return
	}
	var req osbProvisionRequest
	if !decodeOSB(w, r, &req) {
		return
	}
	if req.ServiceID == "" || req.PlanID == "" {
		osbError(w, http.StatusBadRequest, "BadRequest", "service_id and plan_id are required")
		return
	}
	hash := osbHash(req.ServiceID, req.PlanID, req.Parameters)
	if existing, err := h.repo.GetByOSBID(r.Context(), tenant, osbID); err == nil {
		h.osbRepeat(w, r, existing, req, hash)
		return
	} else if !errors.Is(err, mysqlrepo.ErrNotFound) {
		osbError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return
	}
	in, op, err := h.order(r.Context(), p, tenant, osbName(osbID), req.PlanID, req.ServiceID, "", "", req.Parameters, "", hash, osbID)
	var dup *mysqlrepo.DuplicateError
	switch {
	case errors.As(err, &dup):
		h.osbRepeat(w, r, dup.Existing, req, hash)
		return
	case err != nil:
		h.osbOrderError(w, err)
		return
	}
	h.log.Info("osb provision accepted", "tenant", tenant, "instance", in.ID, "osb_id", osbID)
	httpx.WriteJSON(w, http.StatusAccepted, map[string]string{"operation": op.ID})
}

// osbRepeat answers a PUT for an instance id that exists.
func (h *Handler) osbRepeat(w http.ResponseWriter, r *http.Request, in *instance.Instance, req osbProvisionRequest, hash string) {
	same := in.Plan.ID == req.PlanID && osbHash(req.ServiceID, in.Plan.ID, in.Parameters) == hash
	switch {
	case in.State == instance.StateDeleted || in.State == instance.StateDeleting:
		osbError(w, http.StatusConflict, "Conflict", "an instance with this id was deprovisioned")
	case !same:
		osbError(w, http.StatusConflict, "Conflict", "an instance with this id exists with different attributes")
	case in.State == instance.StateProvisioning:
		httpx.WriteJSON(w, http.StatusAccepted, map[string]string{"operation": in.OperationID})
	default:
		httpx.WriteJSON(w, http.StatusOK, map[string]any{})
	}
}

// osbHash identifies a provision request's attributes.
func osbHash(serviceID, planID string, params map[string]any) string {
	if params == nil {
		params = map[string]any{}
	}
	return requestHash(struct {
		S, P string
		Par  map[string]any
	}{serviceID, planID, params})
}

func (h *Handler) osbOrderError(w http.ResponseWriter, err error) {
	var qe *tenancy.QuotaExceededError
	var ve *instance.ValidationError
	if p, ok := httpx.ProblemFrom(err); ok {
		desc := p.Detail
		for _, fe := range p.Errors {
			desc += fmt.Sprintf("; %s: %s", fe.Field, fe.Reason)
		}
		status := p.Status
		if status == http.StatusUnprocessableEntity {
			status = http.StatusBadRequest
		}
		osbError(w, status, "BadRequest", desc)
		return
	}
	switch {
	case errors.Is(err, errQuotaUnavailable):
		w.Header().Set("Retry-After", "5")
		osbError(w, http.StatusServiceUnavailable, "ServiceUnavailable", errQuotaUnavailable.Error())
	case errors.As(err, &qe):
		osbError(w, http.StatusUnprocessableEntity, "QuotaExceeded", qe.Error())
	case errors.Is(err, mysqlrepo.ErrNameTaken):
		osbError(w, http.StatusConflict, "Conflict", "an instance with this id exists")
	case errors.As(err, &ve):
		osbError(w, http.StatusBadRequest, "BadRequest", ve.Error())
	default:
		h.log.Error("osb provision", "err", err)
		osbError(w, http.StatusInternalServerError, "InternalError", "provisioning failed to start")
	}
}

func (h *Handler) osbInstance(w http.ResponseWriter, r *http.Request, tenant string) (*instance.Instance, bool) {
	in, err := h.repo.GetByOSBID(r.Context(), tenant, chi.URLParam(r, "id"))
	if errors.Is(err, mysqlrepo.ErrNotFound) {
		osbError(w, http.StatusNotFound, "NotFound", "no such service instance")
		return nil, false
	}
	if err != nil {
		osbError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return nil, false
	}
	return in, true
}

func (h *Handler) osbUpdate(w http.ResponseWriter, r *http.Request) {
	p, tenant, ok := osbCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	if r.URL.Query().Get("accepts_incomplete") != "true" {
		osbError(w, http.StatusUnprocessableEntity, "AsyncRequired", "updates are asynchronous; retry with accepts_incomplete=true")
		return
	}
	var req osbProvisionRequest
	if !decodeOSB(w, r, &req) {
		return
	}
	in, ok := h.osbInstance(w, r, tenant)
	if !ok {
		return
	}
	if req.PlanID != "" && req.PlanID != in.Plan.ID {
		osbError(w, http.StatusUnprocessableEntity, "PlanChangeNotSupported", "changing the plan of an instance is not supported yet")
		return
	}
	if req.Parameters == nil {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{})
		return
	}
	if plan, err := h.catalog.Plan(r.Context(), p, in.Plan.ID); err == nil {
		if prob := validateParameters(plan.ParametersSchema, req.Parameters); prob != nil {
			h.osbOrderError(w, prob)
			return
		}
	}
	_, op, err := h.saga.UpdateParameters(r.Context(), tenant, in.ID, req.Parameters)
	switch {
	case errors.Is(err, instance.ErrBusy), errors.Is(err, instance.ErrInvalidTransition):
		osbError(w, http.StatusUnprocessableEntity, "ConcurrencyError", err.Error())
	case err != nil:
		osbError(w, http.StatusInternalServerError, "InternalError", "update failed to start")
	default:
		httpx.WriteJSON(w, http.StatusAccepted, map[string]string{"operation": op.ID})
	}
}

func (h *Handler) osbGetInstance(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	in, ok := h.osbInstance(w, r, tenant)
	if !ok {
		return
	}
	switch in.State {
	case instance.StateDeleted:
		osbError(w, http.StatusNotFound, "NotFound", "the service instance was deprovisioned")
		return
	case instance.StateProvisioning:
		osbError(w, http.StatusNotFound, "NotFound", "the service instance is being provisioned")
		return
	case instance.StateUpdating:
		osbError(w, http.StatusUnprocessableEntity, "ConcurrencyError", "the service instance is being updated")
		return
	}
	ep := in.Endpoints()
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"service_id": in.Plan.ServiceID, "plan_id": in.Plan.ID, "parameters": in.Parameters,
		"metadata": map[string]any{"labels": map[string]string{"canopy_instance_id": in.ID},
			"attributes": map[string]any{"state": in.State, "primary": ep.Primary, "replicas": ep.Replicas}},
	})
}

func (h *Handler) osbDeprovision(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	if r.URL.Query().Get("accepts_incomplete") != "true" {
		osbError(w, http.StatusUnprocessableEntity, "AsyncRequired", "deprovisioning is asynchronous; retry with accepts_incomplete=true")
		return
	}
	in, err := h.repo.GetByOSBID(r.Context(), tenant, chi.URLParam(r, "id"))
	if errors.Is(err, mysqlrepo.ErrNotFound) || err == nil && in.State == instance.StateDeleted {
		httpx.WriteJSON(w, http.StatusGone, map[string]any{})
		return
	}
	if err != nil {
		osbError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return
	}
	_, op, err := h.saga.Delete(r.Context(), tenant, in.ID)
	switch {
	case errors.Is(err, saga.ErrGone):
		httpx.WriteJSON(w, http.StatusGone, map[string]any{})
	case errors.Is(err, instance.ErrBusy):
		osbError(w, http.StatusUnprocessableEntity, "ConcurrencyError", err.Error())
	case err != nil:
		osbError(w, http.StatusInternalServerError, "InternalError", "deprovision failed to start")
	default:
		httpx.WriteJSON(w, http.StatusAccepted, map[string]string{"operation": op.ID})
	}
}

var osbStates = map[instance.OpState]string{
	instance.OpInProgress: "in progress",
	instance.OpSucceeded:  "succeeded",
	instance.OpFailed:     "failed",
}

func (h *Handler) osbLastOperation(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	in, ok := h.osbInstance(w, r, tenant)
	if !ok {
		return
	}
	opID := r.URL.Query().Get("operation")
	if opID == "" {
		opID = in.OperationID
	}
	op, err := h.repo.Operation(r.Context(), tenant, opID)
	if err != nil || op.InstanceID != in.ID {
		osbError(w, http.StatusBadRequest, "BadRequest", "unknown operation for this instance")
		return
	}
	if op.Type == instance.OpDelete && op.State == instance.OpSucceeded {
		httpx.WriteJSON(w, http.StatusGone, map[string]any{})
		return
	}
	desc := fmt.Sprintf("%s %s (step %s)", op.Type, osbStates[op.State], op.Step)
	if op.Error != "" {
		desc = op.Error
	}
	body := map[string]any{"state": osbStates[op.State], "description": desc}
	if op.Type == instance.OpUpdate && op.State == instance.OpFailed {
		body["instance_usable"] = true
		body["update_repeatable"] = true
	}
	if op.State == instance.OpInProgress {
		w.Header().Set("Retry-After", "2")
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

type osbBindRequest struct {
	ServiceID string `json:"service_id"`
	PlanID    string `json:"plan_id"`
}

func osbBindingBody(in *instance.Instance, c credentialsJSON) map[string]any {
	protocol := "mysql"
	if in.Plan.Engine == instance.EngineRedis {
		protocol = "redis"
	}
	creds := map[string]any{"host": c.Host, "port": c.Port, "username": c.Username, "password": c.Password, "uri": c.URI}
	if c.Database != "" {
		creds["database"] = c.Database
	}
	return map[string]any{
		"credentials": creds,
		"endpoints":   []map[string]any{{"host": c.Host, "ports": []string{fmt.Sprint(c.Port)}, "protocol": "tcp"}},
		"metadata":    map[string]any{"labels": map[string]string{"protocol": protocol}},
	}
}

func (h *Handler) osbBind(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	bid := chi.URLParam(r, "bid")
	if !osbIDPattern.MatchString(bid) {
		osbError(w, http.StatusBadRequest, "BadRequest", "binding id must be 1-255 letters, digits, '.', '_' or '-'")
		return
	}
	var req osbBindRequest
	if !decodeOSB(w, r, &req) {
		return
	}
	if req.ServiceID == "" || req.PlanID == "" {
		osbError(w, http.StatusBadRequest, "BadRequest", "service_id and plan_id are required")
		return
	}
	in, ok := h.osbInstance(w, r, tenant)
	if !ok {
		return
	}
	if req.PlanID != in.Plan.ID {
		osbError(w, http.StatusBadRequest, "BadRequest", "plan_id is not the instance's plan")
		return
	}
	b, bin, err := h.saga.Bind(r.Context(), tenant, in.ID, osbName(bid), bid)
	switch {
	case errors.Is(err, mysqlrepo.ErrDuplicate):
		if b.Deleted {
			osbError(w, http.StatusConflict, "Conflict", "a binding with this id was unbound")
			return
		}
		httpx.WriteJSON(w, http.StatusOK, osbBindingBody(bin, credentialsOf(bin, b)))
	case errors.Is(err, saga.ErrNotReady):
		osbError(w, http.StatusUnprocessableEntity, "ConcurrencyError", "the service instance is not ready")
	case errors.Is(err, saga.ErrGone), errors.Is(err, mysqlrepo.ErrNotFound):
		osbError(w, http.StatusNotFound, "NotFound", "no such service instance")
	case err != nil:
		h.log.Error("osb bind", "tenant", tenant, "instance", in.ID, "err", err)
		osbError(w, http.StatusInternalServerError, "InternalError", "binding failed")
	default:
		httpx.WriteJSON(w, http.StatusCreated, osbBindingBody(bin, credentialsOf(bin, b)))
	}
}

func (h *Handler) osbBinding(w http.ResponseWriter, r *http.Request, tenant string, gone int) (*instance.Instance, instance.Binding, bool) {
	in, err := h.repo.GetByOSBID(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteJSON(w, gone, map[string]any{})
		return nil, instance.Binding{}, false
	}
	b, err := h.repo.BindingByOSBID(r.Context(), tenant, in.ID, chi.URLParam(r, "bid"))
	if err != nil || b.Deleted {
		httpx.WriteJSON(w, gone, map[string]any{})
		return nil, instance.Binding{}, false
	}
	return in, b, true
}

func (h *Handler) osbGetBinding(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	in, b, ok := h.osbBinding(w, r, tenant, http.StatusNotFound)
	if !ok {
		return
	}
	httpx.WriteJSON(w, http.StatusOK, osbBindingBody(in, credentialsOf(in, b)))
}

func (h *Handler) osbUnbind(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	_, b, ok := h.osbBinding(w, r, tenant, http.StatusGone)
	if !ok {
		return
	}
	if err := h.saga.Unbind(r.Context(), tenant, b); err != nil {
		h.log.Error("osb unbind", "tenant", tenant, "binding", b.ID, "err", err)
		osbError(w, http.StatusInternalServerError, "InternalError", "unbinding failed")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{})
}

// osbBindingLastOperation: bindings are synchronous, so a known binding's
// last operation has succeeded.
func (h *Handler) osbBindingLastOperation(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	if _, _, ok := h.osbBinding(w, r, tenant, http.StatusGone); !ok {
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"state": "succeeded"})
}
