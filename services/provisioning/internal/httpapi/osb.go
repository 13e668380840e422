package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
// Canopy's own ids, unique per tenant, and compare exactly (byte for byte).
// docs/osb.md lists the OSB rules these handlers follow and their tests.

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
	// PreviousValues (update only) is checked against the instance.
	PreviousValues *osbPreviousValues `json:"previous_values,omitempty"`
	// MaintenanceInfo is accepted and ignored.
	MaintenanceInfo json.RawMessage `json:"maintenance_info,omitempty"`
}

// osbPreviousValues is what an update says the instance was; the fields
// Canopy cannot check (organization_id, space_id) are ignored.
type osbPreviousValues struct {
	ServiceID string `json:"service_id,omitempty"`
	PlanID    string `json:"plan_id,omitempty"`
}

// osbRequired answers 400 naming the REQUIRED fields that are empty. pairs
// is name, value, name, value, ...; where says where the fields belong.
func osbRequired(w http.ResponseWriter, where string, pairs ...string) bool {
	var missing []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			missing = append(missing, pairs[i])
		}
	}
	if len(missing) == 0 {
		return true
	}
	osbError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("missing required %s: %s (a non-empty string each)", where, strings.Join(missing, ", ")))
	return false
}

// osbSameIDs answers 400 when a given service_id or plan_id is not the
// instance's. OSB says they MUST be; a request that names another service
// or plan was meant for another instance and is never acted upon.
func osbSameIDs(w http.ResponseWriter, in *instance.Instance, serviceID, planID string) bool {
	// Instances ordered before plans carried their service id have none to compare.
	if serviceID != "" && in.Plan.ServiceID != "" && serviceID != in.Plan.ServiceID {
		osbError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("service_id %q is not the service of this service instance", serviceID))
		return false
	}
	if planID != "" && planID != in.Plan.ID {
		osbError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("plan_id %q is not the plan of this service instance", planID))
		return false
	}
	return true
}

// osbSameQueryIDs checks the optional service_id and plan_id query
// parameters of the GET and last_operation routes: if present, they MUST
// be the instance's.
func osbSameQueryIDs(w http.ResponseWriter, r *http.Request, in *instance.Instance) bool {
	q := r.URL.Query()
	return osbSameIDs(w, in, q.Get("service_id"), q.Get("plan_id"))
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

// osbName derives a Canopy name from an OSB id. Canopy names are lower
// case and at most 63 characters, OSB ids are neither, and ids compare
// exactly ("ABC" and "abc" are two instances): when the mapping loses
// anything, a hash of the exact id keeps the names apart.
func osbName(id string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(id), "-"), "-")
	if n == id && len("osb-"+n) <= 63 {
		return "osb-" + n
	}
	sum := sha256.Sum256([]byte(id))
	suffix := hex.EncodeToString(sum[:5])
	if len(n) > 63-len("osb--")-len(suffix) {
		n = strings.TrimRight(n[:63-len("osb--")-len(suffix)], "-")
	}
	if n == "" {
		return "osb-" + suffix
	}
	return "osb-" + n + "-" + suffix
}

var osbIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)

// osbURLID returns the OSB id in the URL parameter param, or answers 400
// when it is not one this broker keeps; what names it ("instance").
func osbURLID(w http.ResponseWriter, r *http.Request, param, what string) (string, bool) {
	id := chi.URLParam(r, param)
	if !osbIDPattern.MatchString(id) {
		osbError(w, http.StatusBadRequest, "BadRequest", what+" id must be 1-255 letters, digits, '.', '_' or '-'")
		return "", false
	}
	return id, true
}

// osbUsable answers when in can never be changed (verb: "updated",
// "bound"): 404 once deprovisioned, 422 InstanceFailed after a failed
// provisioning. Not ConcurrencyError, which says "retry once the running
// operation ends": no operation will ever make such an instance usable.
func osbUsable(w http.ResponseWriter, in *instance.Instance, verb string) bool {
	switch in.State {
	case instance.StateDeleted:
		osbError(w, http.StatusNotFound, "NotFound", "the service instance was deprovisioned")
		return false
	case instance.StateFailed:
		osbError(w, http.StatusUnprocessableEntity, "InstanceFailed", "the service instance failed to provision and cannot be "+verb+" (its last_operation is \"failed\"); deprovision it")
		return false
	}
	return true
}

func (h *Handler) osbProvision(w http.ResponseWriter, r *http.Request) {
	p, tenant, ok := osbCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	osbID, ok := osbURLID(w, r, "id", "instance")
	if !ok {
		return
	}
	var req osbProvisionRequest
	if !decodeOSB(w, r, &req) {
		return
	}
	// organization_guid and space_guid are deprecated in favour of context
	// but still REQUIRED in every version this broker accepts (2.13-2.17).
	if !osbRequired(w, "fields", "service_id", req.ServiceID, "plan_id", req.PlanID,
		"organization_guid", req.OrgGUID, "space_guid", req.SpaceGUID) {
		return
	}
	async := r.URL.Query().Get("accepts_incomplete") == "true"
	hash := osbHash(req.ServiceID, req.PlanID, req.Parameters)
	// An existing instance is answered before accepts_incomplete matters:
	// a finished one needs no asynchronous work (200 or 409).
	if existing, err := h.repo.GetByOSBID(r.Context(), tenant, osbID); err == nil {
		h.osbRepeat(w, existing, req, hash, async)
		return
	} else if !errors.Is(err, mysqlrepo.ErrNotFound) {
		osbError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return
	}
	if !async {
		osbError(w, http.StatusUnprocessableEntity, "AsyncRequired", "this broker provisions asynchronously; retry with accepts_incomplete=true")
		return
	}
	in, op, err := h.order(r.Context(), p, tenant, osbName(osbID), req.PlanID, req.ServiceID, "", "", req.Parameters, "", hash, osbID, nil)
	var dup *mysqlrepo.DuplicateError
	switch {
	case errors.As(err, &dup):
		h.osbRepeat(w, dup.Existing, req, hash, async)
		return
	case err != nil:
		h.osbOrderError(w, err)
		return
	}
	h.log.Info("osb provision accepted", "tenant", tenant, "instance", in.ID, "osb_id", osbID)
	httpx.WriteJSON(w, http.StatusAccepted, map[string]string{"operation": op.ID})
}

// osbRepeat answers a PUT for an instance id that exists: 409 when the
// service, plan or parameters differ or its provisioning failed, 202 (same
// operation) while it is being provisioned, 200 once it is.
func (h *Handler) osbRepeat(w http.ResponseWriter, in *instance.Instance, req osbProvisionRequest, hash string, async bool) {
	same := in.Plan.ID == req.PlanID && (in.Plan.ServiceID == "" || in.Plan.ServiceID == req.ServiceID) &&
		osbHash(req.ServiceID, in.Plan.ID, in.Parameters) == hash
	switch {
	case in.State == instance.StateDeleted || in.State == instance.StateDeleting:
		osbError(w, http.StatusConflict, "Conflict", "an instance with this id was deprovisioned")
	case !same:
		osbError(w, http.StatusConflict, "Conflict", "an instance with this id exists with a different service_id, plan_id or parameters")
	case in.State == instance.StateFailed:
		// 200 would say "fully provisioned" and 202 "in progress"; neither is
		// true. A 4xx changes nothing and starts no orphan mitigation, so the
		// failed instance and its reason stay for the platform to see.
		desc := "the service instance with this id failed to provision and cannot be used (its last_operation is \"failed\")"
		if in.Reason != "" {
			desc += ": " + in.Reason
		}
		osbError(w, http.StatusConflict, "InstanceFailed", desc+"; deprovision it and provision again with a new instance id")
	case in.State == instance.StateProvisioning && !async:
		osbError(w, http.StatusUnprocessableEntity, "AsyncRequired", "the instance is still being provisioned; retry with accepts_incomplete=true")
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
		status, code, desc := osbProblem(p)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		osbError(w, status, code, desc)
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

// osbProblem maps a problem of the order or parameter checks to an OSB
// status, error and description. OSB defines only the error codes
// AsyncRequired, ConcurrencyError, RequiresApp and MaintenanceInfoConflict
// (none of which these problems are); others may be descriptive, so each
// names what went wrong and never claims the request was malformed when it
// was not. The request's own mistakes (422 in /api/v1) are OSB's 400.
func osbProblem(p *httpx.Problem) (status int, code, desc string) {
	desc = p.Detail
	for _, fe := range p.Errors {
		desc += fmt.Sprintf("; %s: %s", fe.Field, fe.Reason)
	}
	switch status = p.Status; {
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		return http.StatusBadRequest, "BadRequest", desc
	case status == http.StatusForbidden && p.Type == ProblemUnknownTenant:
		return status, "UnknownTenant", desc + "; a platform admin must register the tenant before this broker credential can provision"
	case status == http.StatusServiceUnavailable:
		return status, "ServiceUnavailable", desc
	case status >= 500:
		return status, "InternalError", desc
	default:
		return status, strings.ReplaceAll(http.StatusText(status), " ", ""), desc
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
	var req osbProvisionRequest
	if !decodeOSB(w, r, &req) {
		return
	}
	if !osbRequired(w, "field", "service_id", req.ServiceID) {
		return
	}
	in, ok := h.osbInstance(w, r, tenant)
	if !ok {
		return
	}
	if !osbSameIDs(w, in, req.ServiceID, "") {
		return
	}
	if pv := req.PreviousValues; pv != nil && !osbSameIDs(w, in, pv.ServiceID, pv.PlanID) {
		return
	}
	if !osbUsable(w, in, "updated") {
		return
	}
	if req.PlanID != "" && req.PlanID != in.Plan.ID {
		osbError(w, http.StatusUnprocessableEntity, "PlanChangeNotSupported", "changing the plan of an instance is not supported yet")
		return
	}
	if req.Parameters == nil {
		// Nothing to change (a context-only update): done at once.
		httpx.WriteJSON(w, http.StatusOK, map[string]any{})
		return
	}
	if r.URL.Query().Get("accepts_incomplete") != "true" {
		osbError(w, http.StatusUnprocessableEntity, "AsyncRequired", "updates are asynchronous; retry with accepts_incomplete=true")
		return
	}
	// Fail closed, as the /api/v1 PATCH does: no schema, no change.
	if prob := h.checkChange(r.Context(), p, in, req.Parameters); prob != nil {
		h.osbOrderError(w, prob)
		return
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
	if !ok || !osbSameQueryIDs(w, r, in) {
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
	q := r.URL.Query()
	if !osbRequired(w, "query parameters", "service_id", q.Get("service_id"), "plan_id", q.Get("plan_id")) {
		return
	}
	// Gone is gone, whether or not the platform accepts incomplete operations.
	in, err := h.repo.GetByOSBID(r.Context(), tenant, chi.URLParam(r, "id"))
	if errors.Is(err, mysqlrepo.ErrNotFound) || err == nil && in.State == instance.StateDeleted {
		httpx.WriteJSON(w, http.StatusGone, map[string]any{})
		return
	}
	if err != nil {
		osbError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return
	}
	if !osbSameIDs(w, in, q.Get("service_id"), q.Get("plan_id")) {
		return
	}
	if q.Get("accepts_incomplete") != "true" {
		osbError(w, http.StatusUnprocessableEntity, "AsyncRequired", "deprovisioning is asynchronous; retry with accepts_incomplete=true")
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
	if !ok || !osbSameQueryIDs(w, r, in) {
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
	// AppGUID is deprecated in favour of bind_resource.app_guid.
	AppGUID      string          `json:"app_guid,omitempty"`
	BindResource osbBindResource `json:"bind_resource"`
	Parameters   map[string]any  `json:"parameters,omitempty"`
	Context      json.RawMessage `json:"context,omitempty"`
}

type osbBindResource struct {
	AppGUID string `json:"app_guid,omitempty"`
	Route   string `json:"route,omitempty"`
}

// hash identifies what the bind asks for: a repeat with another app or
// other parameters is a different binding (409), not a retry (200).
// Context is left out: it describes the platform, not the binding.
func (b osbBindRequest) hash() string {
	app := b.BindResource.AppGUID
	if app == "" {
		app = b.AppGUID
	}
	params := b.Parameters
	if params == nil {
		params = map[string]any{}
	}
	return requestHash(struct {
		S, P, App, Route string
		Par              map[string]any
	}{b.ServiceID, b.PlanID, app, b.BindResource.Route, params})
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
	endpoints := []map[string]any{{"host": c.Host, "ports": []string{fmt.Sprint(c.Port)}, "protocol": "tcp"}}
	if e := c.Endpoints; e != nil {
		creds["endpoints"] = e
		// The router's read-write and read-only endpoints, in that order.
		endpoints = nil
		for _, addr := range []string{e.RW, e.RO} {
			if host, port, err := net.SplitHostPort(addr); err == nil {
				endpoints = append(endpoints, map[string]any{"host": host, "ports": []string{port}, "protocol": "tcp"})
			}
		}
	}
	return map[string]any{
		"credentials": creds,
		"endpoints":   endpoints,
		"metadata":    map[string]any{"labels": map[string]string{"protocol": protocol}},
	}
}

func (h *Handler) osbBind(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	bid, ok := osbURLID(w, r, "bid", "binding")
	if !ok {
		return
	}
	var req osbBindRequest
	if !decodeOSB(w, r, &req) {
		return
	}
	if !osbRequired(w, "fields", "service_id", req.ServiceID, "plan_id", req.PlanID) {
		return
	}
	in, ok := h.osbInstance(w, r, tenant)
	if !ok {
		return
	}
	if !osbUsable(w, in, "bound") {
		return
	}
	if !osbSameIDs(w, in, req.ServiceID, req.PlanID) {
		return
	}
	hash := req.hash()
	if b, err := h.repo.BindingByOSBID(r.Context(), tenant, in.ID, bid); err == nil {
		h.osbRebind(w, in, b, hash)
		return
	} else if !errors.Is(err, mysqlrepo.ErrNotFound) {
		osbError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return
	}
	b, bin, err := h.saga.BindOSB(r.Context(), tenant, in.ID, osbName(bid), bid, hash)
	switch {
	case errors.Is(err, mysqlrepo.ErrDuplicate):
		h.osbRebind(w, bin, b, hash)
	case errors.Is(err, mysqlrepo.ErrBindingNameTaken):
		// The name derived from the OSB id is used by a binding made through /api/v1.
		osbError(w, http.StatusConflict, "Conflict", fmt.Sprintf("the instance already has a binding named %s", osbName(bid)))
	case errors.Is(err, saga.ErrNotReady):
		osbError(w, http.StatusUnprocessableEntity, "ConcurrencyError", "the service instance is not ready")
	case errors.Is(err, saga.ErrGone), errors.Is(err, mysqlrepo.ErrNotFound):
		osbError(w, http.StatusNotFound, "NotFound", "no such service instance")
	case err != nil:
		h.log.Error("osb bind", "tenant", tenant, "instance", in.ID, "err", err)
		osbError(w, http.StatusInternalServerError, "InternalError", "binding failed")
	default:
		httpx.WriteJSON(w, http.StatusCreated, osbBindingBody(bin, credentialsOf(bin, b, h.router)))
	}
}

// osbRebind answers a bind PUT for a binding id that exists: 200 with the
// binding for a retry, 409 for different attributes or an unbound id.
func (h *Handler) osbRebind(w http.ResponseWriter, in *instance.Instance, b instance.Binding, hash string) {
	switch {
	case b.Deleted:
		osbError(w, http.StatusConflict, "Conflict", "a binding with this id was unbound")
	// Bindings made before request hashes were kept have none to compare.
	case b.RequestHash != "" && b.RequestHash != hash:
		osbError(w, http.StatusConflict, "Conflict", "a binding with this id exists with a different app_guid, route or parameters")
	default:
		httpx.WriteJSON(w, http.StatusOK, osbBindingBody(in, credentialsOf(in, b, h.router)))
	}
}

// osbLookupBinding finds the URL's instance and binding; an error wrapping
// mysqlrepo.ErrNotFound means either does not exist. An unbound binding is
// returned with Deleted set.
func (h *Handler) osbLookupBinding(r *http.Request, tenant string) (*instance.Instance, instance.Binding, error) {
	in, err := h.repo.GetByOSBID(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		return nil, instance.Binding{}, err
	}
	b, err := h.repo.BindingByOSBID(r.Context(), tenant, in.ID, chi.URLParam(r, "bid"))
	return in, b, err
}

// osbBinding finds the URL's live binding or answers: missing is the status
// for a binding that does not exist, gone for one that was unbound.
func (h *Handler) osbBinding(w http.ResponseWriter, r *http.Request, tenant string, missing, gone int) (*instance.Instance, instance.Binding, bool) {
	in, b, err := h.osbLookupBinding(r, tenant)
	switch {
	case errors.Is(err, mysqlrepo.ErrNotFound):
		osbStatus(w, missing, "no such service binding")
		return nil, b, false
	case err != nil:
		h.log.Error("osb binding lookup", "tenant", tenant, "err", err)
		osbError(w, http.StatusInternalServerError, "InternalError", "lookup failed")
		return nil, b, false
	case b.Deleted:
		osbStatus(w, gone, "the service binding was unbound")
		return nil, b, false
	}
	return in, b, true
}

// osbStatus answers 410 with the empty body OSB expects, other statuses
// with an OSB error.
func osbStatus(w http.ResponseWriter, status int, description string) {
	if status == http.StatusGone {
		httpx.WriteJSON(w, status, map[string]any{})
		return
	}
	osbError(w, status, strings.ReplaceAll(http.StatusText(status), " ", ""), description)
}

func (h *Handler) osbGetBinding(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	in, b, ok := h.osbBinding(w, r, tenant, http.StatusNotFound, http.StatusNotFound)
	if !ok || !osbSameQueryIDs(w, r, in) {
		return
	}
	httpx.WriteJSON(w, http.StatusOK, osbBindingBody(in, credentialsOf(in, b, h.router)))
}

func (h *Handler) osbUnbind(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	q := r.URL.Query()
	if !osbRequired(w, "query parameters", "service_id", q.Get("service_id"), "plan_id", q.Get("plan_id")) {
		return
	}
	in, b, ok := h.osbBinding(w, r, tenant, http.StatusGone, http.StatusGone)
	if !ok || !osbSameIDs(w, in, q.Get("service_id"), q.Get("plan_id")) {
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
// last operation has succeeded. An unknown binding is 404; an unbound one
// 410, which tells a platform polling a delete that it is done.
func (h *Handler) osbBindingLastOperation(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := osbCaller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	in, _, ok := h.osbBinding(w, r, tenant, http.StatusNotFound, http.StatusGone)
	if !ok || !osbSameQueryIDs(w, r, in) {
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"state": "succeeded"})
}
