// Package httpapi serves provisioning's HTTP API: instances, operations and
// bindings under /api/v1 and the Open Service Broker instance and binding
// routes under /v2. Identity comes from the gateway's (or, for /v2, the
// catalog's) signed headers via tenancy.Middleware; every lookup is scoped
// to the caller's tenant, so another tenant's resources are 404. Handlers
// translate between JSON and the domain; the saga does the work.
package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/catalogclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/engineadmin"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

// Catalog fetches plans; *catalogclient.Client implements it.
type Catalog interface {
	Plan(ctx context.Context, p tenancy.Principal, id string) (catalogclient.Plan, error)
}

// Repo is the read side; *mysqlrepo.Repo implements it.
type Repo interface {
	Get(ctx context.Context, tenant, id string) (*instance.Instance, error)
	GetByOSBID(ctx context.Context, tenant, osbID string) (*instance.Instance, error)
	List(ctx context.Context, tenant, after string, limit int, includeDeleted bool) ([]*instance.Instance, error)
	Operation(ctx context.Context, tenant, id string) (instance.Operation, error)
	Binding(ctx context.Context, tenant, instanceID, id string) (instance.Binding, error)
	BindingByOSBID(ctx context.Context, tenant, instanceID, osbID string) (instance.Binding, error)
	Bindings(ctx context.Context, tenant, instanceID string) ([]instance.Binding, error)
	ListMonitored(ctx context.Context, after string, limit int) ([]*instance.Instance, error)
}

// Saga runs the commands; *saga.Saga implements it.
type Saga interface {
	Order(ctx context.Context, r saga.OrderRequest) (*instance.Instance, instance.Operation, error)
	Delete(ctx context.Context, tenant, id string) (*instance.Instance, instance.Operation, error)
	UpdateParameters(ctx context.Context, tenant, id string, params map[string]any) (*instance.Instance, instance.Operation, error)
	Bind(ctx context.Context, tenant, instanceID, name, osbID string) (instance.Binding, *instance.Instance, error)
	Unbind(ctx context.Context, tenant string, b instance.Binding) error
}

// Quotas returns a tenant's quota. An error wrapping ErrUnknownTenant refuses
// the order with 403; any other error means the quota could not be read: the
// order is refused with 503 (fail closed), never admitted unchecked.
type Quotas func(ctx context.Context, tenant string) (tenancy.Quota, error)

// ErrUnknownTenant is what Quotas wraps for a tenant the platform does not
// know (the gateway has no such tenant): such a tenant may order nothing.
var ErrUnknownTenant = errors.New("tenant unknown")

// ProblemUnknownTenant is the problem type of the refusal of an order by an
// unknown tenant.
const ProblemUnknownTenant = "https://canopy.dev/problems/unknown-tenant"

// errQuotaUnavailable refuses an order whose quota could not be read.
var errQuotaUnavailable = errors.New("quota service unavailable, retry")

// Handler serves the routes.
type Handler struct {
	repo    Repo
	saga    Saga
	catalog Catalog
	quotas  Quotas
	log     *slog.Logger
}

// New returns the handler.
func New(repo Repo, s Saga, catalog Catalog, quotas Quotas, logger *slog.Logger) (*Handler, error) {
	if repo == nil || s == nil || catalog == nil || quotas == nil || logger == nil {
		return nil, errors.New("httpapi: nil dependency")
	}
	return &Handler{repo: repo, saga: s, catalog: catalog, quotas: quotas, log: logger}, nil
}

// Routes returns /api/v1/instances*, /api/v1/operations* and /v2/service_instances*.
// The caller wraps it with tenancy.Middleware.
func (h *Handler) Routes() http.Handler {
	r := chi.NewRouter()
	r.Route("/api/v1", func(r chi.Router) {
		r.Post("/instances", h.createInstance)
		r.Get("/instances", h.listInstances)
		r.Get("/instances/{id}", h.getInstance)
		r.Patch("/instances/{id}", h.patchInstance)
		r.Delete("/instances/{id}", h.deleteInstance)
		r.Get("/instances/{id}/bindings", h.listBindings)
		r.Post("/instances/{id}/bindings", h.createBinding)
		r.Get("/instances/{id}/bindings/{bid}", h.getBinding)
		r.Delete("/instances/{id}/bindings/{bid}", h.deleteBinding)
		r.Get("/operations/{id}", h.getOperation)
	})
	r.Route("/v2/service_instances/{id}", h.osbRoutes)
	r.Get(MonitoringPath, h.listMonitored)
	r.Get(MonitoringPath+"/{id}", h.getMonitored)
	return r
}

// caller returns the principal and its tenant when it may do action.
func caller(w http.ResponseWriter, r *http.Request, action tenancy.Action) (tenancy.Principal, string, bool) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, "missing identity"))
		return p, "", false
	}
	if !tenancy.Can(p.Role, action) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, fmt.Sprintf("role %s may not %s instances", p.Role, action)))
		return p, "", false
	}
	if p.Tenant == "" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, "instances belong to a tenant; act with a tenant identity"))
		return p, "", false
	}
	return p, string(p.Tenant), true
}

// --- JSON shapes (api/openapi/provisioning.paths.yaml) ---

type createRequest struct {
	Name       *string        `json:"name"`
	PlanID     *string        `json:"plan_id"`
	Version    string         `json:"version,omitempty"`
	Region     string         `json:"region,omitempty"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

type nodeJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Region  string `json:"region"`
	AZ      string `json:"az"`
	Host    string `json:"host"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	State   string `json:"state"`
}

type settingJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Why   string `json:"why,omitempty"`
}

type endpointsJSON struct {
	Primary  string   `json:"primary"`
	Replicas []string `json:"replicas"`
}

type instanceJSON struct {
	ID              string         `json:"id"`
	Tenant          string         `json:"tenant"`
	Name            string         `json:"name"`
	PlanID          string         `json:"plan_id"`
	Plan            string         `json:"plan"`
	Engine          string         `json:"engine"`
	Version         string         `json:"version"`
	DeploymentMode  string         `json:"deployment_mode"`
	ReplicationMode string         `json:"replication_mode"`
	Region          string         `json:"region,omitempty"`
	State           string         `json:"state"`
	Step            string         `json:"step"`
	Reason          string         `json:"reason,omitempty"`
	Parameters      map[string]any `json:"parameters"`
	Endpoints       endpointsJSON  `json:"endpoints"`
	Nodes           []nodeJSON     `json:"nodes"`
	Tuning          tuningJSON     `json:"tuning"`
	OperationID     string         `json:"operation_id"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
}

type tuningJSON struct {
	Profile string        `json:"profile"`
	Sysctls []settingJSON `json:"sysctls"`
}

func toInstanceJSON(in *instance.Instance) instanceJSON {
	out := instanceJSON{
		ID: in.ID, Tenant: in.Tenant, Name: in.Name, PlanID: in.Plan.ID, Plan: in.Plan.Name, Engine: in.Plan.Engine,
		Version: in.Version, DeploymentMode: in.Plan.DeploymentMode, ReplicationMode: in.Plan.ReplicationMode, Region: in.Region,
		State: string(in.State), Step: string(in.Step), Reason: in.Reason, Parameters: in.Parameters,
		Nodes: []nodeJSON{}, OperationID: in.OperationID, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
		Tuning: tuningJSON{Profile: in.Plan.DeploymentMode, Sysctls: []settingJSON{}},
	}
	if out.Parameters == nil {
		out.Parameters = map[string]any{}
	}
	ep := in.Endpoints()
	out.Endpoints = endpointsJSON{Primary: ep.Primary, Replicas: ep.Replicas}
	for _, n := range in.Nodes {
		out.Nodes = append(out.Nodes, nodeJSON{ID: n.ID, Name: n.Name, Role: string(n.Role), Region: n.Region, AZ: n.AZ,
			Host: n.Host, Address: n.Address, Port: n.Port, State: string(n.State)})
	}
	for _, s := range in.Sysctls {
		out.Tuning.Sysctls = append(out.Tuning.Sysctls, settingJSON(s))
	}
	return out
}

type operationJSON struct {
	ID         string     `json:"id"`
	InstanceID string     `json:"instance_id"`
	Type       string     `json:"type"`
	State      string     `json:"state"`
	Step       string     `json:"step"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

func toOperationJSON(op instance.Operation) operationJSON {
	return operationJSON{ID: op.ID, InstanceID: op.InstanceID, Type: string(op.Type), State: string(op.State), Step: string(op.Step),
		StartedAt: op.StartedAt, FinishedAt: op.FinishedAt, Error: op.Error}
}

type acceptedJSON struct {
	Instance    instanceJSON `json:"instance"`
	OperationID string       `json:"operation_id"`
}

// --- instances ---

// orderFromPlan turns the catalog plan and the request into an order,
// validating version and parameters; problems name the field.
func orderFromPlan(plan catalogclient.Plan, version string, params map[string]any) (instance.Plan, string, *httpx.Problem) {
	if !plan.Orderable {
		return instance.Plan{}, "", httpx.Unprocessable("the plan cannot be ordered", httpx.FieldError{Field: "plan_id", Reason: fmt.Sprintf("plan is %s", plan.State)})
	}
	if version == "" {
		version = plan.DefaultVersion
	}
	known := false
	for _, v := range plan.Versions {
		known = known || v == version
	}
	if !known {
		return instance.Plan{}, "", httpx.Unprocessable("unknown version", httpx.FieldError{Field: "version", Reason: fmt.Sprintf("must be one of %s", strings.Join(plan.Versions, ", "))})
	}
	if p := validateParameters(plan.ParametersSchema, params); p != nil {
		return instance.Plan{}, "", p
	}
	dp := instance.Plan{
		ID: plan.ID, Name: plan.Name, ServiceID: plan.ServiceID, Engine: plan.Engine, DeploymentMode: plan.DeploymentMode,
		ReplicationMode: plan.ReplicationMode,
		Resources:       instance.Resources{VCPU: plan.Resources.VCPU, MemoryMB: plan.Resources.MemoryMB, StorageGB: plan.Resources.StorageGB},
	}
	// Primary first, then primary-region replicas, then DR replicas: node
	// n0 is always the primary.
	for _, pass := range []func(g catalogclient.NodeGroup) bool{
		func(g catalogclient.NodeGroup) bool { return g.Role == string(instance.RolePrimary) },
		func(g catalogclient.NodeGroup) bool {
			return g.Role != string(instance.RolePrimary) && g.RegionRole != string(instance.RegionDR)
		},
		func(g catalogclient.NodeGroup) bool {
			return g.Role != string(instance.RolePrimary) && g.RegionRole == string(instance.RegionDR)
		},
	} {
		for _, g := range plan.Nodes.Groups {
			if !pass(g) {
				continue
			}
			rr := instance.RegionPrimary
			if g.RegionRole == string(instance.RegionDR) {
				rr = instance.RegionDR
			}
			for range g.Count {
				dp.Nodes = append(dp.Nodes, instance.NodeTemplate{Role: instance.Role(g.Role), RegionRole: rr})
			}
		}
	}
	if err := dp.Validate(); err != nil {
		return instance.Plan{}, "", httpx.Unprocessable("the plan cannot be provisioned", httpx.FieldError{Field: "plan_id", Reason: err.Error()})
	}
	return dp, version, nil
}

func validateParameters(schema json.RawMessage, params map[string]any) *httpx.Problem {
	if len(schema) == 0 {
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(schema)))
	if err != nil {
		return httpx.NewProblem(http.StatusBadGateway, "the plan's parameter schema is not valid JSON")
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("plan.json", doc); err != nil {
		return httpx.NewProblem(http.StatusBadGateway, "the plan's parameter schema cannot be used")
	}
	sch, err := c.Compile("plan.json")
	if err != nil {
		return httpx.NewProblem(http.StatusBadGateway, "the plan's parameter schema cannot be compiled")
	}
	// Validate the JSON form (numbers as json.Number-compatible values).
	if params == nil {
		params = map[string]any{}
	}
	raw, _ := json.Marshal(params)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		return httpx.BadRequest("parameters are not valid JSON")
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		p := httpx.Unprocessable("parameters do not match the plan's schema")
		if errors.As(err, &ve) {
			for _, leaf := range leaves(ve) {
				field := "parameters"
				if len(leaf.InstanceLocation) > 0 {
					field += "." + strings.Join(leaf.InstanceLocation, ".")
				}
				p.Errors = append(p.Errors, httpx.FieldError{Field: field, Reason: leaf.ErrorKind.LocalizedString(english)})
			}
		}
		if len(p.Errors) == 0 {
			p.Errors = []httpx.FieldError{{Field: "parameters", Reason: err.Error()}}
		}
		return p
	}
	return nil
}

var english = message.NewPrinter(language.English)

func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func requestHash(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (h *Handler) createInstance(w http.ResponseWriter, r *http.Request) {
	p, tenant, ok := caller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req createRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var missing []httpx.FieldError
	if req.Name == nil {
		missing = append(missing, httpx.FieldError{Field: "name", Reason: "is required"})
	}
	if req.PlanID == nil || *req.PlanID == "" {
		missing = append(missing, httpx.FieldError{Field: "plan_id", Reason: "is required"})
	}
	if len(missing) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("required fields are missing", missing...))
		return
	}
	if err := instance.ValidateName(*req.Name); err != nil {
		httpx.WriteProblem(w, r, httpx.Unprocessable("invalid name", httpx.FieldError{Field: "name", Reason: err.(*instance.ValidationError).Reason}))
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid Idempotency-Key", httpx.FieldError{Field: "Idempotency-Key", Reason: "at most 255 characters"}))
		return
	}
	in, op, err := h.order(r.Context(), p, tenant, *req.Name, *req.PlanID, "", req.Version, req.Region, req.Parameters, key, requestHash(req), "")
	if err != nil {
		var dup *mysqlrepo.DuplicateError
		if errors.As(err, &dup) {
			if !dup.SameRequest {
				httpx.WriteProblem(w, r, httpx.Unprocessable("Idempotency-Key was used with a different request"))
				return
			}
			w.Header().Set("Location", "/api/v1/instances/"+in.ID)
			httpx.WriteJSON(w, http.StatusAccepted, acceptedJSON{Instance: toInstanceJSON(in), OperationID: op.ID})
			return
		}
		h.writeOrderError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/instances/"+in.ID)
	httpx.WriteJSON(w, http.StatusAccepted, acceptedJSON{Instance: toInstanceJSON(in), OperationID: op.ID})
}

// order fetches the plan and places the order.
func (h *Handler) order(ctx context.Context, p tenancy.Principal, tenant, name, planID, serviceID, version, region string, params map[string]any, key, hash, osbID string) (*instance.Instance, instance.Operation, error) {
	plan, err := h.catalog.Plan(ctx, p, planID)
	if errors.Is(err, catalogclient.ErrNotFound) {
		return nil, instance.Operation{}, httpx.Unprocessable("unknown plan", httpx.FieldError{Field: "plan_id", Reason: "no such plan in the catalog"})
	}
	if err != nil {
		h.log.ErrorContext(ctx, "fetch plan", "tenant", tenant, "plan", planID, "err", err)
		return nil, instance.Operation{}, httpx.NewProblem(http.StatusBadGateway, "the catalog could not be reached; try again")
	}
	if serviceID != "" && plan.ServiceID != serviceID {
		return nil, instance.Operation{}, httpx.BadRequest("plan_id does not belong to service_id", httpx.FieldError{Field: "service_id", Reason: "is not the plan's service"})
	}
	dp, v, prob := orderFromPlan(plan, version, params)
	if prob != nil {
		return nil, instance.Operation{}, prob
	}
	quota, err := h.quotas(ctx, tenant)
	if errors.Is(err, ErrUnknownTenant) {
		// Not a quota outage: no retry helps until an operator creates the
		// tenant, so this is the client's 4xx, not a 503.
		h.log.WarnContext(ctx, "order by a tenant unknown to the gateway; refused", "tenant", tenant)
		p := httpx.NewProblem(http.StatusForbidden, "tenant unknown: the tenant "+tenant+" is not registered with the platform and may not order instances")
		p.Title = "Tenant unknown"
		p.Type = ProblemUnknownTenant
		return nil, instance.Operation{}, p
	}
	if err != nil {
		h.log.WarnContext(ctx, "read quota; refusing the order", "tenant", tenant, "err", err)
		return nil, instance.Operation{}, fmt.Errorf("%w: %w", errQuotaUnavailable, err)
	}
	return h.saga.Order(ctx, saga.OrderRequest{
		Tenant: tenant, Name: name, Plan: dp, Version: v, Region: region, Parameters: params,
		IdempotencyKey: key, RequestHash: hash, OSBID: osbID, Quota: quota,
	})
}

func (h *Handler) writeOrderError(w http.ResponseWriter, r *http.Request, err error) {
	var qe *tenancy.QuotaExceededError
	var ve *instance.ValidationError
	switch {
	case errors.Is(err, errQuotaUnavailable):
		w.Header().Set("Retry-After", "5")
		p := httpx.NewProblem(http.StatusServiceUnavailable, errQuotaUnavailable.Error())
		p.Type = "https://canopy.dev/problems/quota-unavailable"
		httpx.WriteProblem(w, r, p)
	case errors.As(err, &qe):
		p := httpx.Unprocessable(fmt.Sprintf("the order exceeds the tenant's %s quota: limit %g, in use %g, requested %g", qe.Quota, qe.Limit, qe.Used, qe.Requested),
			httpx.FieldError{Field: "plan_id", Reason: "quota " + qe.Quota + " exceeded"})
		p.Title = "Quota exceeded"
		p.Type = "https://canopy.dev/problems/quota-exceeded"
		p.Extensions = map[string]any{"quota": qe.Quota, "limit": qe.Limit, "used": qe.Used, "requested": qe.Requested}
		httpx.WriteProblem(w, r, p)
	case errors.Is(err, mysqlrepo.ErrNameTaken):
		httpx.WriteProblem(w, r, &httpx.Problem{Title: "Conflict", Status: http.StatusConflict, Detail: "an instance with this name exists",
			Errors: []httpx.FieldError{{Field: "name", Reason: "already in use in this tenant"}}})
	case errors.As(err, &ve):
		httpx.WriteProblem(w, r, httpx.Unprocessable("invalid order", httpx.FieldError{Field: ve.Field, Reason: ve.Reason}))
	default:
		h.writeError(w, r, err)
	}
}

// writeError maps errors every route shares.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if p, ok := httpx.ProblemFrom(err); ok {
		httpx.WriteProblem(w, r, p)
		return
	}
	switch {
	case errors.Is(err, mysqlrepo.ErrNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such resource"))
	case errors.Is(err, saga.ErrGone):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusGone, "the instance was deleted"))
	case errors.Is(err, instance.ErrBusy), errors.Is(err, instance.ErrInvalidTransition), errors.Is(err, saga.ErrNotReady):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, err.Error()))
	case errors.Is(err, instance.ErrInvalid):
		httpx.WriteProblem(w, r, httpx.Unprocessable(err.Error()))
	default:
		h.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		httpx.WriteError(w, r, err)
	}
}

type listJSON struct {
	Items      []instanceJSON `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

type cursor struct {
	After string `json:"a"`
}

func (h *Handler) listInstances(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			httpx.WriteProblem(w, r, httpx.BadRequest("invalid limit", httpx.FieldError{Field: "limit", Reason: "must be an integer between 1 and 500"}))
			return
		}
		limit = n
	}
	var c cursor
	if s := r.URL.Query().Get("cursor"); s != "" {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(s) > 512 || json.Unmarshal(raw, &c) != nil {
			httpx.WriteProblem(w, r, httpx.BadRequest("invalid cursor", httpx.FieldError{Field: "cursor", Reason: "is not a cursor this endpoint issued"}))
			return
		}
	}
	items, err := h.repo.List(r.Context(), tenant, c.After, limit+1, false)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := listJSON{Items: []instanceJSON{}}
	for i, in := range items {
		if i == limit {
			b, _ := json.Marshal(cursor{After: items[limit-1].ID})
			out.NextCursor = base64.RawURLEncoding.EncodeToString(b)
			break
		}
		out.Items = append(out.Items, toInstanceJSON(in))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getInstance(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	in, err := h.repo.Get(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toInstanceJSON(in))
}

type patchRequest struct {
	Parameters map[string]any `json:"parameters"`
	PlanID     *string        `json:"plan_id,omitempty"`
	Version    *string        `json:"version,omitempty"`
}

func (h *Handler) patchInstance(w http.ResponseWriter, r *http.Request) {
	p, tenant, ok := caller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req patchRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	in, err := h.repo.Get(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if req.PlanID != nil && *req.PlanID != in.Plan.ID {
		httpx.WriteProblem(w, r, httpx.Unprocessable("changing the plan of an instance is not supported yet", httpx.FieldError{Field: "plan_id", Reason: "plan changes are not supported yet"}))
		return
	}
	if req.Version != nil && *req.Version != in.Version {
		httpx.WriteProblem(w, r, httpx.Unprocessable("changing the version of an instance is not supported yet", httpx.FieldError{Field: "version", Reason: "version changes are not supported yet"}))
		return
	}
	if req.Parameters == nil {
		httpx.WriteProblem(w, r, httpx.BadRequest("nothing to change", httpx.FieldError{Field: "parameters", Reason: "is required"}))
		return
	}
	plan, err := h.catalog.Plan(r.Context(), p, in.Plan.ID)
	if err == nil {
		if prob := validateParameters(plan.ParametersSchema, req.Parameters); prob != nil {
			httpx.WriteProblem(w, r, prob)
			return
		}
	} else if !errors.Is(err, catalogclient.ErrNotFound) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadGateway, "the catalog could not be reached; try again"))
		return
	}
	in, op, err := h.saga.UpdateParameters(r.Context(), tenant, in.ID, req.Parameters)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, acceptedJSON{Instance: toInstanceJSON(in), OperationID: op.ID})
}

func (h *Handler) deleteInstance(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	in, op, err := h.saga.Delete(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, acceptedJSON{Instance: toInstanceJSON(in), OperationID: op.ID})
}

func (h *Handler) getOperation(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	op, err := h.repo.Operation(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toOperationJSON(op))
}

// --- bindings ---

type bindingRequest struct {
	Name *string `json:"name"`
}

type credentialsJSON struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	Password string `json:"password"`
	Database string `json:"database,omitempty"`
	URI      string `json:"uri"`
}

type bindingJSON struct {
	ID          string           `json:"id"`
	InstanceID  string           `json:"instance_id"`
	Name        string           `json:"name"`
	Username    string           `json:"username"`
	CreatedAt   time.Time        `json:"created_at"`
	Credentials *credentialsJSON `json:"credentials,omitempty"`
}

func credentialsOf(in *instance.Instance, b instance.Binding) credentialsJSON {
	c := credentialsJSON{Username: b.Credentials.Username, Password: b.Credentials.Password}
	if p, ok := in.Primary(); ok {
		host, port, _ := strings.Cut(p.Address, ":")
		c.Host = host
		c.Port, _ = strconv.Atoi(port)
	}
	if in.Plan.Engine == instance.EngineMySQL {
		c.Database = engineadmin.Database(in)
		c.URI = fmt.Sprintf("mysql://%s:%s@%s:%d/%s", c.Username, c.Password, c.Host, c.Port, c.Database)
	} else {
		c.URI = fmt.Sprintf("redis://%s:%s@%s:%d", c.Username, c.Password, c.Host, c.Port)
	}
	return c
}

func toBindingJSON(b instance.Binding) bindingJSON {
	return bindingJSON{ID: b.ID, InstanceID: b.InstanceID, Name: b.Name, Username: b.Credentials.Username, CreatedAt: b.CreatedAt}
}

func (h *Handler) createBinding(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	var req bindingRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.Name == nil {
		httpx.WriteProblem(w, r, httpx.BadRequest("required fields are missing", httpx.FieldError{Field: "name", Reason: "is required"}))
		return
	}
	if err := instance.ValidateName(*req.Name); err != nil {
		httpx.WriteProblem(w, r, httpx.Unprocessable("invalid name", httpx.FieldError{Field: "name", Reason: err.(*instance.ValidationError).Reason}))
		return
	}
	b, in, err := h.saga.Bind(r.Context(), tenant, chi.URLParam(r, "id"), *req.Name, "")
	switch {
	case errors.Is(err, mysqlrepo.ErrBindingNameTaken):
		httpx.WriteProblem(w, r, &httpx.Problem{Title: "Conflict", Status: http.StatusConflict, Detail: "a binding with this name exists",
			Errors: []httpx.FieldError{{Field: "name", Reason: "already in use on this instance"}}})
		return
	case err != nil:
		h.writeError(w, r, err)
		return
	}
	out := toBindingJSON(b)
	c := credentialsOf(in, b)
	out.Credentials = &c
	w.Header().Set("Location", "/api/v1/instances/"+in.ID+"/bindings/"+b.ID)
	httpx.WriteJSON(w, http.StatusCreated, out)
}

func (h *Handler) listBindings(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	if _, err := h.repo.Get(r.Context(), tenant, id); err != nil {
		h.writeError(w, r, err)
		return
	}
	bs, err := h.repo.Bindings(r.Context(), tenant, id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := struct {
		Items []bindingJSON `json:"items"`
	}{Items: []bindingJSON{}}
	for _, b := range bs {
		out.Items = append(out.Items, toBindingJSON(b))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getBinding(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	b, err := h.repo.Binding(r.Context(), tenant, chi.URLParam(r, "id"), chi.URLParam(r, "bid"))
	if err == nil && b.Deleted {
		err = mysqlrepo.ErrNotFound
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toBindingJSON(b))
}

func (h *Handler) deleteBinding(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	b, err := h.repo.Binding(r.Context(), tenant, chi.URLParam(r, "id"), chi.URLParam(r, "bid"))
	if err == nil && b.Deleted {
		err = mysqlrepo.ErrNotFound
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.saga.Unbind(r.Context(), tenant, b); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
