// Package httpapi serves provisioning's HTTP API: instances, operations and
// bindings under /api/v1 and the Open Service Broker instance and binding
// routes under /v2. Identity comes from the gateway's (or, for /v2, the
// catalog's) signed headers via tenancy.Middleware; every lookup of a tenant
// caller is scoped to its tenant, so another tenant's resources are 404. A
// platform admin (an identity without a tenant) sees the whole fleet and acts
// on any instance; its actions are logged and its subject is recorded on the
// operations it starts. Handlers translate between JSON and the domain; the
// saga does the work.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/catalogclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/engineadmin"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
	"github.com/canopy-platform/canopy/services/provisioning/internal/tunables"
)

// Catalog fetches plans; *catalogclient.Client implements it.
type Catalog interface {
	Plan(ctx context.Context, p tenancy.Principal, id string) (catalogclient.Plan, error)
}

// Repo is the read side; *mysqlrepo.Repo implements it.
type Repo interface {
	Get(ctx context.Context, tenant, id string) (*instance.Instance, error)
	// GetAnyTenant, ListAllInstances and OperationAnyTenant read across
	// tenants: only for platform admins and the monitoring view.
	GetAnyTenant(ctx context.Context, id string) (*instance.Instance, error)
	ListAllInstances(ctx context.Context, after string, limit int, includeDeleted bool) ([]*instance.Instance, error)
	OperationAnyTenant(ctx context.Context, id string) (instance.Operation, error)
	GetByOSBID(ctx context.Context, tenant, osbID string) (*instance.Instance, error)
	List(ctx context.Context, tenant, after string, limit int, includeDeleted bool) ([]*instance.Instance, error)
	Operation(ctx context.Context, tenant, id string) (instance.Operation, error)
	Binding(ctx context.Context, tenant, instanceID, id string) (instance.Binding, error)
	BindingByOSBID(ctx context.Context, tenant, instanceID, osbID string) (instance.Binding, error)
	Bindings(ctx context.Context, tenant, instanceID string) ([]instance.Binding, error)
	ListMonitored(ctx context.Context, after string, limit int) ([]*instance.Instance, error)
	// ListRouted lists live instances with router ports, for the router's view.
	ListRouted(ctx context.Context, after string, limit int) ([]*instance.Instance, error)
}

// Saga runs the commands; *saga.Saga implements it.
type Saga interface {
	Order(ctx context.Context, r saga.OrderRequest) (*instance.Instance, instance.Operation, error)
	Delete(ctx context.Context, tenant, id string) (*instance.Instance, instance.Operation, error)
	UpdateParameters(ctx context.Context, tenant, id string, params map[string]any) (*instance.Instance, instance.Operation, error)
	Bind(ctx context.Context, tenant, instanceID, name, osbID string) (instance.Binding, *instance.Instance, error)
	BindOSB(ctx context.Context, tenant, instanceID, name, osbID, requestHash string) (instance.Binding, *instance.Instance, error)
	Unbind(ctx context.Context, tenant string, b instance.Binding) error
	// EnsureCDCAccount returns the instance with its cdc account, adding
	// it to a ready MySQL instance that predates it.
	EnsureCDCAccount(ctx context.Context, id string) (*instance.Instance, error)
}

// Quotas returns a tenant's quota. An error wrapping ErrUnknownTenant refuses
// the order with 403; any other error means the quota could not be read: the
// order is refused with 503 (fail closed), never admitted unchecked.
type Quotas func(ctx context.Context, tenant string) (tenancy.Quota, error)

// catalogUnavailable is the 503 of a request that needs the catalog's answer
// (a plan, its parameter schema) and did not get it.
func catalogUnavailable(detail string) *httpx.Problem {
	p := httpx.NewProblem(http.StatusServiceUnavailable, detail)
	p.Type = "https://canopy.dev/problems/catalog-unavailable"
	return p
}

// ErrUnknownTenant is what Quotas wraps for a tenant the platform does not
// know (the gateway has no such tenant): such a tenant may order nothing.
var ErrUnknownTenant = errors.New("tenant unknown")

// ProblemUnknownTenant is the problem type of the refusal of an order by an
// unknown tenant.
const ProblemUnknownTenant = "https://canopy.dev/problems/unknown-tenant"

// unknownTenant is the 403 refusing an order by a tenant the platform does
// not know.
func unknownTenant(tenant string) *httpx.Problem {
	p := httpx.NewProblem(http.StatusForbidden, "tenant unknown: the tenant "+tenant+" is not registered with the platform and may not order instances")
	p.Title = "Tenant unknown"
	p.Type = ProblemUnknownTenant
	return p
}

// errQuotaUnavailable refuses an order whose quota could not be read.
var errQuotaUnavailable = errors.New("quota service unavailable, retry")

// Handler serves the routes.
type Handler struct {
	repo    Repo
	saga    Saga
	catalog Catalog
	quotas  Quotas
	log     *slog.Logger
	// faults injects drills' faults on nodes; nil when the driver cannot.
	faults Faults
	// router is where instances' stable endpoints are; zero: none.
	router instance.Router
	// backups starts restore jobs for orders with restore_from; nil: such
	// orders are refused.
	backups Backups
	// engines is what the driver can run; nil: not checked (WithEngines).
	engines driver.Versions
}

// WithRouter makes credentials and instances name the router's endpoints
// at r.Host (for instances that have router ports) when r.Host is set.
func (h *Handler) WithRouter(r instance.Router) { h.router = r }

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
	r.Get(FailoverPath, h.listFailover)
	r.Get(FailoverPath+"/{id}", h.getFailover)
	r.Post(FailoverPath+"/{id}/nodes/{node}/fault", h.injectFault)
	r.Post(FailoverPath+"/{id}/nodes/{node}/rebuild", h.rebuildNode)
	r.Get(RouterPath, h.listRouted)
	r.Get(RouterPath+"/{id}", h.getRouted)
	r.Get(CDCPath, h.listCDC)
	r.Get(CDCPath+"/{id}", h.getCDC)
	r.Get(EnginesPath, h.listEngines)
	r.Get(BackupPath, h.listBackup)
	r.Get(BackupPath+"/{id}", h.getBackup)
	return r
}

// caller returns the principal and its tenant when it may do action. A
// platform admin (no tenant) is let through with tenant "": the /api/v1
// handlers then act fleet-wide through operatorTenant and the *AnyTenant
// reads (the OSB routes have their own osbCaller).
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
	if p.Tenant == "" && p.Role != tenancy.RolePlatformAdmin {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, "instances belong to a tenant; act with a tenant identity"))
		return p, "", false
	}
	return p, string(p.Tenant), true
}

// tenantCaller is caller for routes that only a tenant identity may use.
func tenantCaller(w http.ResponseWriter, r *http.Request, action tenancy.Action) (tenancy.Principal, string, bool) {
	p, tenant, ok := caller(w, r, action)
	if ok && tenant == "" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, "instances belong to a tenant; act with a tenant identity"))
		return p, "", false
	}
	return p, tenant, ok
}

// operatorTenant returns the tenant that owns instance id when a platform
// admin (tenant "") acts on it, logging the action with the admin's
// identity; for a tenant caller it returns the caller's own tenant, so the
// lookups that follow stay scoped to it.
func (h *Handler) operatorTenant(r *http.Request, p tenancy.Principal, tenant, id string) (string, error) {
	if tenant != "" {
		return tenant, nil
	}
	in, err := h.repo.GetAnyTenant(r.Context(), id)
	if err != nil {
		return "", err
	}
	if r.Method != http.MethodGet {
		h.log.InfoContext(r.Context(), "platform admin acts on a tenant's instance",
			"subject", p.Subject, "role", p.Role, "tenant", in.Tenant, "instance", in.ID, "method", r.Method, "path", r.URL.Path)
	}
	return in.Tenant, nil
}

// queryTenant reads and validates the ?tenant= parameter ("" when absent).
func queryTenant(r *http.Request) (string, *httpx.Problem) {
	s := r.URL.Query().Get("tenant")
	if s == "" {
		return "", nil
	}
	id, err := tenancy.Parse(s)
	if err != nil {
		return "", httpx.BadRequest("invalid tenant", httpx.FieldError{Field: "tenant", Reason: "is not a valid tenant id"})
	}
	return string(id), nil
}

// --- JSON shapes (api/openapi/provisioning.paths.yaml) ---

type createRequest struct {
	// Tenant is the tenant a platform admin orders for; tenant callers
	// leave it out (or give their own).
	Tenant     string         `json:"tenant,omitempty"`
	Name       *string        `json:"name"`
	PlanID     *string        `json:"plan_id"`
	Version    string         `json:"version,omitempty"`
	Region     string         `json:"region,omitempty"`
	Parameters map[string]any `json:"parameters,omitempty"`
	// RestoreFrom makes the instance from a backup of another of the
	// tenant's instances.
	RestoreFrom *restoreFromJSON `json:"restore_from,omitempty"`
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
	// The router's endpoints, when the instance has them.
	RW         string `json:"rw,omitempty"`
	RO         string `json:"ro,omitempty"`
	Sentinel   string `json:"sentinel,omitempty"`
	MasterName string `json:"master_name,omitempty"`
}

type instanceJSON struct {
	ID              string         `json:"id"`
	Tenant          string         `json:"tenant"`
	Name            string         `json:"name"`
	PlanID          string         `json:"plan_id"`
	Plan            string         `json:"plan"`
	Engine          string         `json:"engine"`
	Version         string         `json:"version"`
	EngineVersion   string         `json:"engine_version,omitempty"`
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

func toInstanceJSON(in *instance.Instance, router instance.Router) instanceJSON {
	out := instanceJSON{
		ID: in.ID, Tenant: in.Tenant, Name: in.Name, PlanID: in.Plan.ID, Plan: in.Plan.Name, Engine: in.Plan.Engine,
		Version: in.Version, EngineVersion: in.EngineVersion, DeploymentMode: in.Plan.DeploymentMode, ReplicationMode: in.Plan.ReplicationMode, Region: in.Region,
		State: string(in.State), Step: string(in.Step), Reason: in.Reason, Parameters: in.Parameters,
		Nodes: []nodeJSON{}, OperationID: in.OperationID, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
		Tuning: tuningJSON{Profile: in.Plan.DeploymentMode, Sysctls: []settingJSON{}},
	}
	if out.Parameters == nil {
		out.Parameters = map[string]any{}
	}
	ep := in.Endpoints()
	out.Endpoints = endpointsJSON{Primary: ep.Primary, Replicas: ep.Replicas}
	if re, ok := in.RouterEndpoints(router); ok {
		out.Endpoints.RW, out.Endpoints.RO, out.Endpoints.Sentinel, out.Endpoints.MasterName = re.RW, re.RO, re.Sentinel, re.MasterName
	}
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
	ID          string     `json:"id"`
	InstanceID  string     `json:"instance_id"`
	Type        string     `json:"type"`
	State       string     `json:"state"`
	Step        string     `json:"step"`
	StepDetail  string     `json:"step_detail,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Error       string     `json:"error,omitempty"`
	RequestedBy string     `json:"requested_by,omitempty"`
}

func toOperationJSON(op instance.Operation) operationJSON {
	return operationJSON{ID: op.ID, InstanceID: op.InstanceID, Type: string(op.Type), State: string(op.State), Step: string(op.Step), StepDetail: op.StepDetail,
		StartedAt: op.StartedAt, FinishedAt: op.FinishedAt, Error: op.Error, RequestedBy: op.RequestedBy}
}

type acceptedJSON struct {
	Instance    instanceJSON `json:"instance"`
	OperationID string       `json:"operation_id"`
}

// --- instances ---

// orderFromPlan turns the catalog plan and the request into an order,
// validating version and parameters; problems name the field.
func orderFromPlan(plan catalogclient.Plan, version string, params map[string]any, avail []driver.EngineVersion) (instance.Plan, string, *httpx.Problem) {
	if !plan.Orderable {
		return instance.Plan{}, "", httpx.Unprocessable("the plan cannot be ordered", httpx.FieldError{Field: "plan_id", Reason: fmt.Sprintf("plan is %s", plan.State)})
	}
	version, prob := chooseVersion(plan, version, avail)
	if prob != nil {
		return instance.Plan{}, "", prob
	}
	if p := checkParameters(plan, params); p != nil {
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

// checkParameters validates parameters against the plan's JSON schema and
// then the engine's allowlist of tunable settings (a plan's schema may name
// settings that must never reach an engine); problems name the field.
func checkParameters(plan catalogclient.Plan, params map[string]any) *httpx.Problem {
	if p := validateParameters(plan.ParametersSchema, params); p != nil {
		return p
	}
	if _, err := tunables.Render(plan.Engine, params); err != nil {
		var errs tunables.Errors
		if !errors.As(err, &errs) {
			return httpx.NewProblem(http.StatusBadGateway, "the plan names an engine provisioning does not know")
		}
		p := httpx.Unprocessable("parameters name settings that cannot be changed or have invalid values")
		for _, e := range errs {
			p.Errors = append(p.Errors, httpx.FieldError{Field: "parameters." + e.Name, Reason: e.Reason})
		}
		return p
	}
	return nil
}

// validateParameters validates parameters against a plan's JSON schema. A
// plan without a schema cannot be checked, so nothing is accepted against it
// (the catalog always gives plans one: an empty schema is a broken answer).
func validateParameters(schema json.RawMessage, params map[string]any) *httpx.Problem {
	if len(strings.TrimSpace(string(schema))) == 0 || string(schema) == "null" {
		return catalogUnavailable("the catalog gave no parameter schema for the plan; try again")
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

// requestHash fingerprints a decoded request: re-encoding it makes the
// fingerprint independent of the client's field order and spacing.
func requestHash(v any) string {
	b, _ := json.Marshal(v)
	return idempotency.HashJSONBody(b)
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
	switch {
	case tenant == "" && req.Tenant == "":
		missing = append(missing, httpx.FieldError{Field: "tenant", Reason: "is required when a platform admin orders an instance"})
	case tenant == "":
		id, err := tenancy.Parse(req.Tenant)
		if err != nil {
			httpx.WriteProblem(w, r, httpx.Unprocessable("invalid tenant", httpx.FieldError{Field: "tenant", Reason: "is not a valid tenant id"}))
			return
		}
		tenant = string(id)
		h.log.InfoContext(r.Context(), "platform admin orders an instance for a tenant", "subject", p.Subject, "role", p.Role, "tenant", tenant)
	case req.Tenant != "" && req.Tenant != tenant:
		httpx.WriteProblem(w, r, httpx.Unprocessable("instances are ordered for the caller's own tenant", httpx.FieldError{Field: "tenant", Reason: "must be the caller's tenant or absent"}))
		return
	}
	if len(missing) > 0 {
		httpx.WriteProblem(w, r, httpx.BadRequest("required fields are missing", missing...))
		return
	}
	if err := instance.ValidateName(*req.Name); err != nil {
		httpx.WriteProblem(w, r, httpx.Unprocessable("invalid name", httpx.FieldError{Field: "name", Reason: err.(*instance.ValidationError).Reason}))
		return
	}
	var restore *instance.Restore
	if req.RestoreFrom != nil {
		rf, prob := req.RestoreFrom.parse()
		if prob != nil {
			httpx.WriteProblem(w, r, prob)
			return
		}
		restore = &rf
	}
	key, err := idempotency.Key(r)
	if err != nil {
		idempotency.WriteProblem(w, r, err)
		return
	}
	in, op, err := h.order(r.Context(), p, tenant, *req.Name, *req.PlanID, "", req.Version, req.Region, req.Parameters, key, requestHash(req), "", restore)
	if err != nil {
		var dup *mysqlrepo.DuplicateError
		if errors.As(err, &dup) {
			if !dup.SameRequest {
				idempotency.WriteProblem(w, r, idempotency.ErrReused)
				return
			}
			w.Header().Set("Location", "/api/v1/instances/"+in.ID)
			httpx.WriteJSON(w, http.StatusAccepted, acceptedJSON{Instance: toInstanceJSON(in, h.router), OperationID: op.ID})
			return
		}
		h.writeOrderError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/instances/"+in.ID)
	httpx.WriteJSON(w, http.StatusAccepted, acceptedJSON{Instance: toInstanceJSON(in, h.router), OperationID: op.ID})
}

// order fetches the plan and places the order; with restore (the parsed
// restore_from) it first starts the backup service's restore job for the
// new instance, and releases it when the order is then refused.
func (h *Handler) order(ctx context.Context, p tenancy.Principal, tenant, name, planID, serviceID, version, region string, params map[string]any, key, hash, osbID string, restore *instance.Restore) (*instance.Instance, instance.Operation, error) {
	plan, err := h.catalog.Plan(ctx, p, planID)
	if errors.Is(err, catalogclient.ErrNotFound) {
		return nil, instance.Operation{}, httpx.Unprocessable("unknown plan", httpx.FieldError{Field: "plan_id", Reason: "no such plan in the catalog"})
	}
	if err != nil {
		h.log.ErrorContext(ctx, "fetch plan", "tenant", tenant, "plan", planID, "err", err)
		return nil, instance.Operation{}, catalogUnavailable("the catalog could not be reached; try again")
	}
	if serviceID != "" && plan.ServiceID != serviceID {
		return nil, instance.Operation{}, httpx.BadRequest("plan_id does not belong to service_id", httpx.FieldError{Field: "service_id", Reason: "is not the plan's service"})
	}
	dp, v, prob := orderFromPlan(plan, version, params, h.engineVersions(ctx))
	if prob != nil {
		return nil, instance.Operation{}, prob
	}
	quota, err := h.quotas(ctx, tenant)
	if errors.Is(err, ErrUnknownTenant) {
		// Not a quota outage: no retry helps until an operator creates the
		// tenant, so this is the client's 4xx, not a 503.
		h.log.WarnContext(ctx, "order by a tenant unknown to the gateway; refused", "tenant", tenant)
		return nil, instance.Operation{}, unknownTenant(tenant)
	}
	if err != nil {
		h.log.WarnContext(ctx, "read quota; refusing the order", "tenant", tenant, "err", err)
		return nil, instance.Operation{}, fmt.Errorf("%w: %w", errQuotaUnavailable, err)
	}
	id := ""
	if restore != nil {
		id = saga.NewID()
		if restore, err = h.startRestore(ctx, tenant, id, dp, *restore); err != nil {
			return nil, instance.Operation{}, err
		}
	}
	in, op, err := h.saga.Order(ctx, saga.OrderRequest{
		Tenant: tenant, Name: name, Plan: dp, Version: v, Region: region, Parameters: params,
		IdempotencyKey: key, RequestHash: hash, OSBID: osbID, Quota: quota, ID: id, Restore: restore,
	})
	if err != nil && restore != nil {
		h.releaseRestore(ctx, tenant, restore)
	}
	if errors.Is(err, instance.ErrRouterPortsExhausted) {
		h.log.ErrorContext(ctx, "order refused: no free router port pair", "tenant", tenant, "err", err)
		return nil, instance.Operation{}, routerPortsExhausted()
	}
	return in, op, err
}

// ProblemRouterPortsExhausted is the problem type of an order refused
// because every router port pair is held by a live instance.
const ProblemRouterPortsExhausted = "https://canopy.dev/problems/router-ports-exhausted"

// routerPortsExhausted is the 503 refusing an order that would get no
// stable endpoints: the platform is out of router ports until an instance
// is deleted or an operator widens the range.
func routerPortsExhausted() *httpx.Problem {
	p := httpx.NewProblem(http.StatusServiceUnavailable, "no router ports are free for a new instance; retry after an instance is deleted or the platform's router port range is widened")
	p.Title = "Router ports exhausted"
	p.Type = ProblemRouterPortsExhausted
	return p
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
		if p.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
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
	filter, prob := queryTenant(r)
	switch {
	case prob != nil:
		httpx.WriteProblem(w, r, prob)
		return
	case tenant == "":
		// A platform admin: one tenant's instances, or the whole fleet.
		tenant = filter
	case filter != "" && filter != tenant:
		// A tenant asking for another tenant's instances sees none of them.
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "tenant callers list only their own tenant's instances"))
		return
	}
	var c cursor
	limit, _, err := paging.Parse(r.URL.Query(), &c)
	if err != nil {
		httpx.WriteProblem(w, r, paging.Problem(err))
		return
	}
	var items []*instance.Instance
	if tenant == "" {
		items, err = h.repo.ListAllInstances(r.Context(), c.After, limit+1, false)
	} else {
		items, err = h.repo.List(r.Context(), tenant, c.After, limit+1, false)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	items, more := paging.Split(items, limit)
	out := listJSON{Items: make([]instanceJSON, 0, len(items))}
	for _, in := range items {
		out.Items = append(out.Items, toInstanceJSON(in, h.router))
	}
	if more {
		out.NextCursor = paging.Encode(cursor{After: items[len(items)-1].ID})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getInstance(w http.ResponseWriter, r *http.Request) {
	p, tenant, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	tenant, err := h.operatorTenant(r, p, tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	in, err := h.repo.Get(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toInstanceJSON(in, h.router))
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
	tenant, err := h.operatorTenant(r, p, tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
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
	if prob := h.checkChange(r.Context(), p, in, req.Parameters); prob != nil {
		if prob.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		httpx.WriteProblem(w, r, prob)
		return
	}
	in, op, err := h.saga.UpdateParameters(r.Context(), tenant, in.ID, req.Parameters)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, acceptedJSON{Instance: toInstanceJSON(in, h.router), OperationID: op.ID})
}

// checkChange checks new parameters of an instance against its plan's
// schema and its engine's allowlist. It fails closed: without the plan's
// schema the parameters cannot be checked, so nothing changes (a plan gone
// from the catalog included) and the answer is a 503.
func (h *Handler) checkChange(ctx context.Context, p tenancy.Principal, in *instance.Instance, params map[string]any) *httpx.Problem {
	plan, err := h.catalog.Plan(ctx, p, in.Plan.ID)
	if err != nil {
		h.log.WarnContext(ctx, "fetch plan to check parameters; refusing the change", "instance", in.ID, "plan", in.Plan.ID, "err", err)
		return catalogUnavailable("the plan's parameter schema could not be read from the catalog; try again")
	}
	plan.Engine = in.Plan.Engine
	return checkParameters(plan, params)
}

func (h *Handler) deleteInstance(w http.ResponseWriter, r *http.Request) {
	p, tenant, ok := caller(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	tenant, err := h.operatorTenant(r, p, tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	in, op, err := h.saga.Delete(r.Context(), tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, acceptedJSON{Instance: toInstanceJSON(in, h.router), OperationID: op.ID})
}

func (h *Handler) getOperation(w http.ResponseWriter, r *http.Request) {
	_, tenant, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	var op instance.Operation
	var err error
	if tenant == "" {
		op, err = h.repo.OperationAnyTenant(r.Context(), chi.URLParam(r, "id"))
	} else {
		op, err = h.repo.Operation(r.Context(), tenant, chi.URLParam(r, "id"))
	}
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
	// Endpoints are the router's stable endpoints; absent without a router.
	Endpoints *routerEndpointsJSON `json:"endpoints,omitempty"`
}

// routerEndpointsJSON are an instance's router endpoints in credentials.
type routerEndpointsJSON struct {
	RW         string `json:"rw"`
	RO         string `json:"ro"`
	Sentinel   string `json:"sentinel,omitempty"`
	MasterName string `json:"master_name,omitempty"`
}

type bindingJSON struct {
	ID          string           `json:"id"`
	InstanceID  string           `json:"instance_id"`
	Name        string           `json:"name"`
	Username    string           `json:"username"`
	CreatedAt   time.Time        `json:"created_at"`
	Credentials *credentialsJSON `json:"credentials,omitempty"`
}

// credentialsOf is what an application connects with: through the router's
// read-write endpoint when the router is enabled and the instance has
// ports (it follows the primary across failovers), else the primary node.
func credentialsOf(in *instance.Instance, b instance.Binding, router instance.Router) credentialsJSON {
	c := credentialsJSON{Username: b.Credentials.Username, Password: b.Credentials.Password}
	addr := ""
	if p, ok := in.Primary(); ok {
		addr = p.Address
	}
	if re, ok := in.RouterEndpoints(router); ok {
		addr = re.RW
		c.Endpoints = &routerEndpointsJSON{RW: re.RW, RO: re.RO, Sentinel: re.Sentinel, MasterName: re.MasterName}
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		c.Host = host
		c.Port, _ = strconv.Atoi(port)
	}
	hostPort := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	if in.Plan.Engine == instance.EngineMySQL {
		c.Database = engineadmin.Database(in)
		c.URI = fmt.Sprintf("mysql://%s:%s@%s/%s", c.Username, c.Password, hostPort, c.Database)
	} else {
		c.URI = fmt.Sprintf("redis://%s:%s@%s", c.Username, c.Password, hostPort)
	}
	return c
}

func toBindingJSON(b instance.Binding) bindingJSON {
	return bindingJSON{ID: b.ID, InstanceID: b.InstanceID, Name: b.Name, Username: b.Credentials.Username, CreatedAt: b.CreatedAt}
}

func (h *Handler) createBinding(w http.ResponseWriter, r *http.Request) {
	// Credentials are the tenant's secret: platform admins do not mint them.
	_, tenant, ok := tenantCaller(w, r, tenancy.ActionWrite)
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
	c := credentialsOf(in, b, h.router)
	out.Credentials = &c
	w.Header().Set("Location", "/api/v1/instances/"+in.ID+"/bindings/"+b.ID)
	httpx.WriteJSON(w, http.StatusCreated, out)
}

func (h *Handler) listBindings(w http.ResponseWriter, r *http.Request) {
	p, tenant, ok := caller(w, r, tenancy.ActionRead)
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	tenant, err := h.operatorTenant(r, p, tenant, id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
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

// liveBinding finds the URL's binding for a caller allowed action, or
// answers: an unbound binding is not found. It returns the binding's tenant.
func (h *Handler) liveBinding(w http.ResponseWriter, r *http.Request, action tenancy.Action) (instance.Binding, string, bool) {
	p, tenant, ok := caller(w, r, action)
	if !ok {
		return instance.Binding{}, "", false
	}
	tenant, err := h.operatorTenant(r, p, tenant, chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, err)
		return instance.Binding{}, "", false
	}
	b, err := h.repo.Binding(r.Context(), tenant, chi.URLParam(r, "id"), chi.URLParam(r, "bid"))
	if err == nil && b.Deleted {
		err = mysqlrepo.ErrNotFound
	}
	if err != nil {
		h.writeError(w, r, err)
		return instance.Binding{}, "", false
	}
	return b, tenant, true
}

func (h *Handler) getBinding(w http.ResponseWriter, r *http.Request) {
	if b, _, ok := h.liveBinding(w, r, tenancy.ActionRead); ok {
		httpx.WriteJSON(w, http.StatusOK, toBindingJSON(b))
	}
}

func (h *Handler) deleteBinding(w http.ResponseWriter, r *http.Request) {
	b, tenant, ok := h.liveBinding(w, r, tenancy.ActionWrite)
	if !ok {
		return
	}
	if err := h.saga.Unbind(r.Context(), tenant, b); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
