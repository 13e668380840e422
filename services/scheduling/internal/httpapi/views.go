package httpapi

import (
	"math"
	"time"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// The JSON shapes of the API (api/openapi/scheduling.paths.yaml).

type resourcesJSON struct {
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
}

func resources(r inventory.Resources) resourcesJSON {
	return resourcesJSON{VCPU: float64(r.MilliCPU) / 1000, MemoryMB: r.MemoryMB, StorageGB: r.StorageGB}
}

// toResources converts, recording non-positive or sub-milli values as field errors.
func (r resourcesJSON) toResources(ve *inventory.ValidationError, field string) inventory.Resources {
	milli := math.Round(r.VCPU * 1000)
	if r.VCPU <= 0 || milli < 1 || math.IsNaN(r.VCPU) || math.IsInf(r.VCPU, 0) || milli > 1e12 {
		ve.Add(field+".vcpu", "must be a positive number of vCPU (at least 0.001)")
	}
	if r.MemoryMB <= 0 {
		ve.Add(field+".memory_mb", "must be positive")
	}
	if r.StorageGB <= 0 {
		ve.Add(field+".storage_gb", "must be positive")
	}
	return inventory.Resources{MilliCPU: int64(milli), MemoryMB: r.MemoryMB, StorageGB: r.StorageGB}
}

type portsJSON struct {
	From int `json:"from"`
	To   int `json:"to"`
}

type priceJSON struct {
	PerVCPUHour float64 `json:"per_vcpu_hour"`
	PerGBHour   float64 `json:"per_gb_hour"`
	Spot        bool    `json:"spot"`
}

type hostJSON struct {
	ID        string            `json:"id"`
	Region    string            `json:"region"`
	Zone      string            `json:"zone"`
	Address   string            `json:"address"`
	Ports     portsJSON         `json:"ports"`
	Capacity  resourcesJSON     `json:"capacity"`
	Allocated resourcesJSON     `json:"allocated"`
	Free      resourcesJSON     `json:"free"`
	Labels    map[string]string `json:"labels"`
	Price     priceJSON         `json:"price"`
	State     string            `json:"state"`
	Version   int64             `json:"version"`
}

func host(h inventory.Host) hostJSON {
	labels := h.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return hostJSON{
		ID: h.ID, Region: h.Region, Zone: h.Zone, Address: h.Address,
		Ports:    portsJSON{From: h.Ports.From, To: h.Ports.To},
		Capacity: resources(h.Capacity), Allocated: resources(h.Allocated), Free: resources(h.Free()),
		Labels: labels, Price: priceJSON(h.Price), State: string(h.State), Version: h.Version,
	}
}

type hostCreateJSON struct {
	ID       string            `json:"id"`
	Zone     string            `json:"zone"`
	Region   string            `json:"region"`
	Address  string            `json:"address"`
	Ports    *portsJSON        `json:"ports"`
	Capacity *resourcesJSON    `json:"capacity"`
	Labels   map[string]string `json:"labels"`
	Price    *priceJSON        `json:"price"`
	State    string            `json:"state"`
}

type hostPatchJSON struct {
	Address  *string           `json:"address"`
	Ports    *portsJSON        `json:"ports"`
	Capacity *resourcesJSON    `json:"capacity"`
	Labels   map[string]string `json:"labels"`
	Price    *priceJSON        `json:"price"`
	State    *string           `json:"state"`
}

type latencyJSON struct {
	// To is the other zone (for zones) or region (for regions).
	To    string  `json:"to"`
	P95MS float64 `json:"p95_ms"`
}

func latencies(from string, in []latencyJSON) []inventory.Latency {
	out := make([]inventory.Latency, 0, len(in))
	for _, l := range in {
		out = append(out, inventory.Latency{A: from, B: l.To, P95MS: l.P95MS})
	}
	return out
}

// pairJSON is one entry of the latency matrix.
type pairJSON struct {
	A     string  `json:"a"`
	B     string  `json:"b"`
	P95MS float64 `json:"p95_ms"`
}

type regionJSON struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

func region(r inventory.Region) regionJSON {
	labels := r.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return regionJSON{ID: r.ID, Name: r.Name, Labels: labels}
}

type regionCreateJSON struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	Latencies []latencyJSON     `json:"latencies"`
}

type regionPatchJSON struct {
	Name      *string           `json:"name"`
	Labels    map[string]string `json:"labels"`
	Latencies []latencyJSON     `json:"latencies"`
}

type zoneJSON struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	Name   string `json:"name"`
}

type zoneCreateJSON struct {
	ID        string        `json:"id"`
	Region    string        `json:"region"`
	Name      string        `json:"name"`
	Latencies []latencyJSON `json:"latencies"`
}

type zonePatchJSON struct {
	Name      *string       `json:"name"`
	Latencies []latencyJSON `json:"latencies"`
}

type listJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

type nodeJSON struct {
	Name      string  `json:"name"`
	Role      string  `json:"role"`
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
}

type planJSON struct {
	Engine         string     `json:"engine"`
	DeploymentMode string     `json:"deployment_mode"`
	Nodes          []nodeJSON `json:"nodes"`
}

type simulateJSON struct {
	InstanceID     string            `json:"instance_id"`
	PlanID         string            `json:"plan_id"`
	Plan           *planJSON         `json:"plan"`
	Engine         string            `json:"engine"`
	DeploymentMode string            `json:"deployment_mode"`
	Nodes          []nodeJSON        `json:"nodes"`
	Region         string            `json:"region"`
	DRRegion       string            `json:"dr_region"`
	TenantID       string            `json:"tenant_id"`
	AllowedRegions []string          `json:"allowed_regions"`
	Labels         map[string]string `json:"labels"`
}

type placedJSON struct {
	Name      string        `json:"name"`
	Role      string        `json:"role"`
	Region    string        `json:"region"`
	AZ        string        `json:"az"`
	Host      string        `json:"host"`
	Address   string        `json:"address"`
	Port      int           `json:"port"`
	Resources resourcesJSON `json:"resources"`
	Score     float64       `json:"score"`
}

func placed(nodes []placement.Assignment) []placedJSON {
	out := make([]placedJSON, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, placedJSON{Name: n.Name, Role: n.Role, Region: n.Region, AZ: n.Zone, Host: n.HostID,
			Address: n.Address, Port: n.Port, Resources: resources(n.Resources), Score: n.Score})
	}
	return out
}

type simulationJSON struct {
	DeploymentMode string       `json:"deployment_mode"`
	Nodes          []placedJSON `json:"nodes"`
	Score          float64      `json:"score"`
}

type filterJSON struct {
	Name     string `json:"name"`
	Rejected int    `json:"rejected"`
	Reason   string `json:"reason"`
}

func filtersJSON(fs []placement.FilterCount) []filterJSON {
	out := make([]filterJSON, 0, len(fs))
	for _, f := range fs {
		out = append(out, filterJSON(f))
	}
	return out
}

type zoneSummaryJSON struct {
	Region   string `json:"region"`
	AZ       string `json:"az"`
	Hosts    int    `json:"hosts"`
	Feasible int    `json:"feasible"`
	Reason   string `json:"reason"`
}

func zonesJSON(zs []placement.ZoneSummary) []zoneSummaryJSON {
	out := make([]zoneSummaryJSON, 0, len(zs))
	for _, z := range zs {
		out = append(out, zoneSummaryJSON{Region: z.Region, AZ: z.Zone, Hosts: z.Hosts, Feasible: z.Feasible, Reason: z.Reason})
	}
	return out
}

type explanationJSON struct {
	Summary string            `json:"summary"`
	Filters []filterJSON      `json:"filters"`
	Zones   []zoneSummaryJSON `json:"zones"`
}

type placementJSON struct {
	InstanceID     string           `json:"instance_id"`
	TenantID       string           `json:"tenant_id,omitempty"`
	Status         string           `json:"status"`
	Kind           string           `json:"kind"`
	DeploymentMode string           `json:"deployment_mode"`
	Nodes          []placedJSON     `json:"nodes"`
	Reason         string           `json:"reason,omitempty"`
	Explanation    *explanationJSON `json:"explanation,omitempty"`
	ExpiresAt      *time.Time       `json:"expires_at,omitempty"`
	CreatedAt      time.Time        `json:"created_at"`
	UpdatedAt      time.Time        `json:"updated_at"`
}

func placementView(rec placement.Record) placementJSON {
	out := placementJSON{InstanceID: rec.InstanceID, TenantID: rec.Tenant, Status: string(rec.Status), Kind: string(rec.Kind),
		DeploymentMode: string(rec.Mode), Nodes: placed(rec.Nodes), Reason: rec.Reason, ExpiresAt: rec.ExpiresAt,
		CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt}
	if rec.Explanation != nil {
		out.Explanation = &explanationJSON{Summary: rec.Explanation.Summary, Filters: filtersJSON(rec.Explanation.Filters), Zones: zonesJSON(rec.Explanation.Zones)}
	}
	return out
}
