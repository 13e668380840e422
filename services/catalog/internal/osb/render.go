package osb

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

// The OSB 2.17 catalog shapes (spec.md "Catalog Management").

type catalogJSON struct {
	Services []serviceJSON `json:"services"`
}

type serviceJSON struct {
	Name                 string          `json:"name"`
	ID                   string          `json:"id"`
	Description          string          `json:"description"`
	Tags                 []string        `json:"tags,omitempty"`
	Bindable             bool            `json:"bindable"`
	InstancesRetrievable bool            `json:"instances_retrievable"`
	BindingsRetrievable  bool            `json:"bindings_retrievable"`
	AllowContextUpdates  bool            `json:"allow_context_updates"`
	PlanUpdateable       bool            `json:"plan_updateable"`
	Metadata             serviceMetadata `json:"metadata"`
	Plans                []planJSON      `json:"plans"`
}

type serviceMetadata struct {
	DisplayName         string `json:"displayName"`
	LongDescription     string `json:"longDescription"`
	ProviderDisplayName string `json:"providerDisplayName"`
}

type planJSON struct {
	ID                     string          `json:"id"`
	Name                   string          `json:"name"`
	Description            string          `json:"description"`
	Metadata               planMetadata    `json:"metadata"`
	Free                   bool            `json:"free"`
	Bindable               bool            `json:"bindable"`
	PlanUpdateable         bool            `json:"plan_updateable"`
	Schemas                schemasJSON     `json:"schemas"`
	MaximumPollingDuration int             `json:"maximum_polling_duration"`
	MaintenanceInfo        maintenanceJSON `json:"maintenance_info"`
}

type planMetadata struct {
	DisplayName string     `json:"displayName"`
	Bullets     []string   `json:"bullets"`
	Costs       []costJSON `json:"costs"`
	// Canopy is a vendor extension with the plan's topology and SLO; OSB
	// platforms ignore fields they do not know.
	Canopy canopyMetadata `json:"canopy"`
}

type costJSON struct {
	Amount map[string]float64 `json:"amount"`
	Unit   string             `json:"unit"`
}

type canopyMetadata struct {
	Engine         string   `json:"engine"`
	Versions       []string `json:"versions"`
	DefaultVersion string   `json:"default_version"`
	// VersionLabels names the engine build that runs each version
	// ("10.11" → "mariadb-10.11.19"); absent while the builds are unknown.
	VersionLabels   map[string]string `json:"version_labels,omitempty"`
	DeploymentMode  string            `json:"deployment_mode"`
	Nodes           int               `json:"nodes"`
	Size            string            `json:"size"`
	ReplicationMode string            `json:"replication_mode"`
	Availability    float64           `json:"availability"`
	RTOSeconds      int               `json:"rto_seconds"`
	RPOSeconds      int               `json:"rpo_seconds"`
}

type schemasJSON struct {
	ServiceInstance serviceInstanceSchemas `json:"service_instance"`
}

type serviceInstanceSchemas struct {
	Create inputParameters `json:"create"`
}

type inputParameters struct {
	Parameters json.RawMessage `json:"parameters"`
}

type maintenanceJSON struct {
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

// MaxPollingSeconds is the maximum_polling_duration of a plan: how long a
// platform polls last_operation before treating a provision as failed.
func MaxPollingSeconds(m plan.DeploymentMode) int {
	switch m {
	case plan.MultiRegion:
		return 7200
	case plan.MultiAZ:
		return 3600
	default:
		return 1800
	}
}

// renderService renders svc with those of plans some host runs a version
// of (builds; known false: all of them, versions as stored).
func renderService(svc plan.Service, plans []plan.Plan, builds []plan.Build, known bool) serviceJSON {
	out := serviceJSON{
		Name: string(svc.Engine), ID: svc.ID, Description: svc.Description, Tags: svc.Tags,
		Bindable: true,
		// Provisioning serves GET of instances and bindings with OSB's fetch
		// semantics (its TestOSBFetch). Context updates and plan changes are
		// not served yet.
		InstancesRetrievable: true, BindingsRetrievable: true, AllowContextUpdates: false, PlanUpdateable: false,
		Metadata: serviceMetadata{DisplayName: svc.DisplayName, LongDescription: svc.Description, ProviderDisplayName: "Canopy"},
		Plans:    make([]planJSON, 0, len(plans)),
	}
	for _, p := range plans {
		if o := p.Offer(builds, known); len(o.Versions) > 0 {
			out.Plans = append(out.Plans, renderPlan(p, o))
		}
	}
	return out
}

func renderPlan(p plan.Plan, o plan.Offer) planJSON {
	node, _ := strconv.ParseFloat(p.Prices.NodeHour, 64)
	storage, _ := strconv.ParseFloat(p.Prices.StorageGBHour, 64)
	cur := strings.ToLower(p.Prices.Currency)
	schema, err := plan.NormalizeSchema(p.ParametersSchema)
	if err != nil {
		// Stored schemas were validated on write; fall back to accepting
		// any object rather than failing the whole catalog.
		schema = json.RawMessage(`{"$schema":"` + plan.DefaultSchemaDialect + `","type":"object"}`)
	}
	return planJSON{
		ID: p.ID, Name: p.Name, Description: p.Description,
		Metadata: planMetadata{
			DisplayName: p.DisplayName,
			Bullets:     bullets(p),
			Costs: []costJSON{
				{Amount: map[string]float64{cur: node}, Unit: "NODE-HOUR"},
				{Amount: map[string]float64{cur: storage}, Unit: "GB-HOUR"},
			},
			Canopy: canopyMetadata{
				Engine: string(p.Engine), Versions: o.Versions, DefaultVersion: o.DefaultVersion, VersionLabels: o.Labels,
				DeploymentMode: string(p.DeploymentMode), Nodes: p.Nodes.Count, Size: p.Size(),
				ReplicationMode: string(p.ReplicationMode), Availability: p.SLO.Availability,
				RTOSeconds: p.SLO.RTOSeconds, RPOSeconds: p.SLO.RPOSeconds,
			},
		},
		Free:                   node == 0 && storage == 0,
		Bindable:               true,
		PlanUpdateable:         false,
		Schemas:                schemasJSON{ServiceInstance: serviceInstanceSchemas{Create: inputParameters{Parameters: schema}}},
		MaximumPollingDuration: MaxPollingSeconds(p.DeploymentMode),
		MaintenanceInfo:        maintenanceJSON{Version: p.MaintenanceInfo.Version, Description: p.MaintenanceInfo.Description},
	}
}

func bullets(p plan.Plan) []string {
	replicas := p.Nodes.Count - 1
	topo := fmt.Sprintf("%d node(s): 1 primary", p.Nodes.Count)
	if replicas > 0 {
		topo += fmt.Sprintf(" + %d replica(s), %s replication", replicas, p.ReplicationMode)
	}
	return []string{
		topo,
		fmt.Sprintf("%s across %d availability zone(s)", p.DeploymentMode, p.Nodes.Zones),
		fmt.Sprintf("%g vCPU, %d MB memory, %d GB storage per node", p.Resources.VCPU, p.Resources.MemoryMB, p.Resources.StorageGB),
		fmt.Sprintf("%g%% availability, RTO %ds, RPO %ds", p.SLO.Availability, p.SLO.RTOSeconds, p.SLO.RPOSeconds),
	}
}
