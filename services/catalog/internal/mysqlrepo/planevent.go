package mysqlrepo

import (
	"fmt"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

// planEvent builds the catalog.plan.* event typ of p; changed lists the
// fields an update changed.
func planEvent(typ string, p plan.Plan, changed []string) (eventbus.Event, error) {
	data := events.PlanEvent{Plan: wirePlan(p), ChangedFields: changed}
	e, err := eventbus.NewEvent(typ, events.SourceCatalog, p.ID, data)
	if err != nil {
		return eventbus.Event{}, fmt.Errorf("build %s event: %w", typ, err)
	}
	return e, nil
}

// wirePlan maps the domain plan to the plan events carry, adding the
// derived fields consumers need (metering rates node-hours by size).
func wirePlan(p plan.Plan) events.Plan {
	svc, _ := plan.LookupService(p.Engine)
	groups := make([]events.NodeGroup, 0, len(p.Nodes.Groups))
	for _, g := range p.Nodes.Groups {
		groups = append(groups, events.NodeGroup{Role: string(g.Role), RegionRole: string(g.RegionRole), Count: g.Count})
	}
	if p.Nodes.Groups == nil {
		groups = nil // as the plan had it: null, not []
	}
	return events.Plan{
		ID:               p.ID,
		Name:             p.Name,
		DisplayName:      p.DisplayName,
		Description:      p.Description,
		Engine:           string(p.Engine),
		Versions:         p.Versions,
		DefaultVersion:   p.DefaultVersion,
		DeploymentMode:   string(p.DeploymentMode),
		Nodes:            events.PlanNodes{Count: p.Nodes.Count, Zones: p.Nodes.Zones, Groups: groups},
		Resources:        events.PlanResources{VCPU: p.Resources.VCPU, MemoryMB: p.Resources.MemoryMB, StorageGB: p.Resources.StorageGB},
		ReplicationMode:  string(p.ReplicationMode),
		SLO:              events.PlanSLO{Availability: p.SLO.Availability, RTOSeconds: p.SLO.RTOSeconds, RPOSeconds: p.SLO.RPOSeconds},
		Prices:           events.PlanPrices{Currency: p.Prices.Currency, NodeHour: p.Prices.NodeHour, StorageGBHour: p.Prices.StorageGBHour},
		ParametersSchema: p.ParametersSchema,
		MaintenanceInfo:  events.MaintenanceInfo{Version: p.MaintenanceInfo.Version, Description: p.MaintenanceInfo.Description},
		State:            string(p.State),
		CreatedAt:        p.CreatedAt,
		UpdatedAt:        p.UpdatedAt,
		DeprecatedAt:     p.DeprecatedAt,
		ServiceID:        svc.ID,
		Size:             p.Size(),
	}
}
