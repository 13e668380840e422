package httpapi

import (
	"encoding/json"
	"time"

	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

// The JSON shapes of the API (api/openapi/catalog.paths.yaml). They mirror
// the domain but are separate types, so either can change without the other.

type nodeGroupJSON struct {
	Role       string `json:"role"`
	RegionRole string `json:"region_role"`
	Count      int    `json:"count"`
}

type nodesJSON struct {
	Count  int             `json:"count"`
	Zones  int             `json:"zones"`
	Groups []nodeGroupJSON `json:"groups"`
}

type resourcesJSON struct {
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int     `json:"memory_mb"`
	StorageGB int     `json:"storage_gb"`
}

type sloJSON struct {
	Availability float64 `json:"availability"`
	RTOSeconds   int     `json:"rto_seconds"`
	RPOSeconds   int     `json:"rpo_seconds"`
}

type pricesJSON struct {
	Currency      string `json:"currency"`
	NodeHour      string `json:"node_hour"`
	StorageGBHour string `json:"storage_gb_hour"`
}

type maintenanceJSON struct {
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

// planJSON is a plan as the API returns it.
type planJSON struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	DisplayName      string            `json:"display_name"`
	Description      string            `json:"description"`
	Engine           string            `json:"engine"`
	ServiceID        string            `json:"service_id"`
	Versions         []string          `json:"versions"`
	DefaultVersion   string            `json:"default_version"`
	VersionLabels    map[string]string `json:"version_labels,omitempty"`
	Unavailable      []string          `json:"unavailable_versions,omitempty"`
	DeploymentMode   string            `json:"deployment_mode"`
	Nodes            nodesJSON         `json:"nodes"`
	Resources        resourcesJSON     `json:"resources"`
	Size             string            `json:"size"`
	ReplicationMode  string            `json:"replication_mode"`
	SLO              sloJSON           `json:"slo"`
	Prices           pricesJSON        `json:"prices"`
	ParametersSchema json.RawMessage   `json:"parameters_schema"`
	MaintenanceInfo  maintenanceJSON   `json:"maintenance_info"`
	State            string            `json:"state"`
	Orderable        bool              `json:"orderable"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
	DeprecatedAt     *time.Time        `json:"deprecated_at,omitempty"`
}

// toPlanJSON renders p with the versions o offers: versions and
// default_version are those some host runs, version_labels names their
// builds and unavailable_versions lists what p holds that no host runs.
func toPlanJSON(p plan.Plan, o plan.Offer) planJSON {
	svc, _ := plan.LookupService(p.Engine)
	groups := make([]nodeGroupJSON, 0, len(p.Nodes.Groups))
	for _, g := range p.Nodes.Groups {
		groups = append(groups, nodeGroupJSON{Role: string(g.Role), RegionRole: string(g.RegionRole), Count: g.Count})
	}
	return planJSON{
		ID: p.ID, Name: p.Name, DisplayName: p.DisplayName, Description: p.Description,
		Engine: string(p.Engine), ServiceID: svc.ID, Versions: o.Versions, DefaultVersion: o.DefaultVersion,
		VersionLabels: o.Labels, Unavailable: o.Unavailable,
		DeploymentMode:   string(p.DeploymentMode),
		Nodes:            nodesJSON{Count: p.Nodes.Count, Zones: p.Nodes.Zones, Groups: groups},
		Resources:        resourcesJSON(p.Resources),
		Size:             p.Size(),
		ReplicationMode:  string(p.ReplicationMode),
		SLO:              sloJSON(p.SLO),
		Prices:           pricesJSON(p.Prices),
		ParametersSchema: p.ParametersSchema,
		MaintenanceInfo:  maintenanceJSON(p.MaintenanceInfo),
		State:            string(p.State), Orderable: p.Orderable(),
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, DeprecatedAt: p.DeprecatedAt,
	}
}

// planRequest is the body of POST /plans. Pointers tell a missing member
// (reported as required) from a zero value.
type planRequest struct {
	Name             *string          `json:"name"`
	DisplayName      *string          `json:"display_name"`
	Description      *string          `json:"description"`
	Engine           *string          `json:"engine"`
	Versions         []string         `json:"versions"`
	DefaultVersion   *string          `json:"default_version"`
	DeploymentMode   *string          `json:"deployment_mode"`
	Nodes            *nodesJSON       `json:"nodes"`
	Resources        *resourcesJSON   `json:"resources"`
	ReplicationMode  *string          `json:"replication_mode"`
	SLO              *sloJSON         `json:"slo"`
	Prices           *pricesJSON      `json:"prices"`
	ParametersSchema json.RawMessage  `json:"parameters_schema"`
	MaintenanceInfo  *maintenanceJSON `json:"maintenance_info"`
}

// missing lists the required members absent from the request.
func (r planRequest) missing() []string {
	var out []string
	check := func(name string, absent bool) {
		if absent {
			out = append(out, name)
		}
	}
	check("name", r.Name == nil)
	check("description", r.Description == nil)
	check("engine", r.Engine == nil)
	check("versions", r.Versions == nil)
	check("deployment_mode", r.DeploymentMode == nil)
	check("nodes", r.Nodes == nil)
	check("resources", r.Resources == nil)
	check("replication_mode", r.ReplicationMode == nil)
	check("slo", r.SLO == nil)
	check("prices", r.Prices == nil)
	check("parameters_schema", r.ParametersSchema == nil)
	check("maintenance_info", r.MaintenanceInfo == nil)
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func fromNodesJSON(n nodesJSON) plan.Nodes {
	groups := make([]plan.NodeGroup, 0, len(n.Groups))
	for _, g := range n.Groups {
		groups = append(groups, plan.NodeGroup{Role: plan.NodeRole(g.Role), RegionRole: plan.RegionRole(g.RegionRole), Count: g.Count})
	}
	return plan.Nodes{Count: n.Count, Zones: n.Zones, Groups: groups}
}

func (r planRequest) spec() plan.Spec {
	return plan.Spec{
		Name: deref(r.Name), DisplayName: deref(r.DisplayName), Description: deref(r.Description),
		Engine: plan.Engine(deref(r.Engine)), Versions: r.Versions, DefaultVersion: deref(r.DefaultVersion),
		DeploymentMode:   plan.DeploymentMode(deref(r.DeploymentMode)),
		Nodes:            fromNodesJSON(deref(r.Nodes)),
		Resources:        plan.Resources(deref(r.Resources)),
		ReplicationMode:  plan.ReplicationMode(deref(r.ReplicationMode)),
		SLO:              plan.SLO(deref(r.SLO)),
		Prices:           plan.Prices(deref(r.Prices)),
		ParametersSchema: r.ParametersSchema,
		MaintenanceInfo:  plan.MaintenanceInfo(deref(r.MaintenanceInfo)),
	}
}

// planPatch is the body of PATCH /plans/{id}: a JSON merge patch limited to
// replacing whole members. Topology members are accepted only unchanged.
type planPatch struct {
	Name             *string          `json:"name"`
	DisplayName      *string          `json:"display_name"`
	Description      *string          `json:"description"`
	Versions         []string         `json:"versions"`
	DefaultVersion   *string          `json:"default_version"`
	SLO              *sloJSON         `json:"slo"`
	Prices           *pricesJSON      `json:"prices"`
	ParametersSchema json.RawMessage  `json:"parameters_schema"`
	MaintenanceInfo  *maintenanceJSON `json:"maintenance_info"`
	Engine           *string          `json:"engine"`
	DeploymentMode   *string          `json:"deployment_mode"`
	Nodes            *nodesJSON       `json:"nodes"`
	Resources        *resourcesJSON   `json:"resources"`
	ReplicationMode  *string          `json:"replication_mode"`
}

func (p planPatch) changes() plan.Changes {
	c := plan.Changes{
		Name: p.Name, DisplayName: p.DisplayName, Description: p.Description,
		Versions: p.Versions, DefaultVersion: p.DefaultVersion, ParametersSchema: p.ParametersSchema,
	}
	if p.SLO != nil {
		v := plan.SLO(*p.SLO)
		c.SLO = &v
	}
	if p.Prices != nil {
		v := plan.Prices(*p.Prices)
		c.Prices = &v
	}
	if p.MaintenanceInfo != nil {
		v := plan.MaintenanceInfo(*p.MaintenanceInfo)
		c.MaintenanceInfo = &v
	}
	if p.Engine != nil {
		v := plan.Engine(*p.Engine)
		c.Engine = &v
	}
	if p.DeploymentMode != nil {
		v := plan.DeploymentMode(*p.DeploymentMode)
		c.DeploymentMode = &v
	}
	if p.Nodes != nil {
		v := fromNodesJSON(*p.Nodes)
		c.Nodes = &v
	}
	if p.Resources != nil {
		v := plan.Resources(*p.Resources)
		c.Resources = &v
	}
	if p.ReplicationMode != nil {
		v := plan.ReplicationMode(*p.ReplicationMode)
		c.ReplicationMode = &v
	}
	return c
}

// serviceJSON is an engine with its orderable plans.
type serviceJSON struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	DisplayName   string            `json:"display_name"`
	Description   string            `json:"description"`
	Tags          []string          `json:"tags"`
	Versions      []string          `json:"versions"`
	VersionLabels map[string]string `json:"version_labels,omitempty"`
	Plans         []planJSON        `json:"plans"`
}

type listJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// credentialJSON is a broker credential; Password is set only in the
// response that created it.
type credentialJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Username  string     `json:"username"`
	Password  string     `json:"password,omitempty"`
	Tenant    string     `json:"tenant,omitempty"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Active    bool       `json:"active"`
}

func toCredentialJSON(c brokercred.Credential) credentialJSON {
	return credentialJSON{
		ID: c.ID, Name: c.Name, Username: c.Username, Tenant: string(c.Tenant), CreatedBy: c.CreatedBy,
		CreatedAt: c.CreatedAt, RevokedAt: c.RevokedAt, Active: c.Active(),
	}
}

type credentialRequest struct {
	Name   *string `json:"name"`
	Tenant *string `json:"tenant"`
}
