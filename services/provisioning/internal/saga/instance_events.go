package saga

import (
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

func (s *Saga) emitInstance(c *port.Change, typ string) error {
	e, err := InstanceEvent(typ, c.Instance, s.router, s.now())
	if err != nil {
		return err
	}
	c.Emit(events.TopicInstances, e)
	return nil
}

// InstanceEvent builds a lifecycle event of type typ from the instance; its
// endpoints name the router's (router's host with the instance's ports)
// when the router is enabled and the instance has ports.
func InstanceEvent(typ string, in *instance.Instance, router instance.Router, now time.Time) (eventbus.Event, error) {
	vcpu, mem, storage := in.Usage()
	p := events.Instance{
		InstanceID: in.ID, TenantID: in.Tenant, Name: in.Name, PlanID: in.Plan.ID, Engine: in.Plan.Engine,
		Version: in.Version, DeploymentMode: in.Plan.DeploymentMode, State: string(in.State), OperationID: in.OperationID,
		Reason: in.Reason, VCPU: vcpu, MemoryMB: mem, StorageGB: storage, Nodes: []events.Node{}, OccurredAt: now,
		FailoverToken: in.Failover.Token,
	}
	for _, n := range in.Nodes {
		p.Nodes = append(p.Nodes, events.Node{ID: n.ID, Name: n.Name, Role: string(n.Role), Region: n.Region, AZ: n.AZ, Host: n.Host, Address: n.Address, State: string(n.State)})
	}
	ep := in.Endpoints()
	p.Endpoints = events.Endpoints{Primary: ep.Primary, Replicas: ep.Replicas}
	if re, ok := in.RouterEndpoints(router); ok {
		p.Endpoints.RW, p.Endpoints.RO, p.Endpoints.Sentinel, p.Endpoints.MasterName = re.RW, re.RO, re.Sentinel, re.MasterName
	}
	e, err := eventbus.NewEvent(typ, events.SourceProvisioning, in.ID, p)
	if err != nil {
		return e, err
	}
	e.Tenant = in.Tenant
	e.Time = now
	return e, nil
}
