package events

// HostChanged reports a host created, updated, cordoned, uncordoned or down.
type HostChanged struct {
	HostID        string            `json:"host_id"`
	Region        string            `json:"region"`
	AZ            string            `json:"az"`
	State         string            `json:"state"`
	PreviousState string            `json:"previous_state,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	// Instances running or reserved on the host, so failover and
	// re-placement can react to a host going down.
	Instances []string `json:"instances,omitempty"`
}

// RegionChanged reports a region created or updated.
type RegionChanged struct {
	RegionID string `json:"region_id"`
	Name     string `json:"name,omitempty"`
}

// ZoneChanged reports a zone created or updated.
type ZoneChanged struct {
	ZoneID   string `json:"zone_id"`
	RegionID string `json:"region_id"`
	Name     string `json:"name,omitempty"`
}

// InventoryLoaded reports the initial inventory loaded from a file.
type InventoryLoaded struct {
	Source  string `json:"source"`
	Regions int    `json:"regions"`
	Zones   int    `json:"zones"`
	Hosts   int    `json:"hosts"`
}
