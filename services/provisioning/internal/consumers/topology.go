package consumers

import (
	"context"
	"errors"

	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/api/events"
)

// Topology is what the failover handler calls.
type Topology interface {
	OnFailoverCompleted(ctx context.Context, r events.Recovery) error
	OnNodeRejoined(ctx context.Context, r events.NodeRejoined) error
}

// Failover returns the handler of canopy.failover.v1 (group
// events.GroupProvisioningTopology): failover.completed moves the
// instance's roles and endpoints, failover.node.rejoined returns a fenced
// node to the replicas; started and failed change no topology. poison
// classifies the topology's errors that no retry can fix.
func Failover(t Topology, poison func(error) bool) eventbus.Handler {
	return func(ctx context.Context, e eventbus.Event) error {
		switch e.Type {
		case events.TypeFailoverCompleted:
			var r events.Recovery
			if err := e.Decode(&r); err != nil {
				return eventbus.Poison(err)
			}
			if r.InstanceID == "" || r.RecoveryID == "" || r.FencingToken <= 0 || len(r.Roles) == 0 {
				return eventbus.Poison(errors.New("failover completed without instance_id, recovery_id, fencing_token or roles"))
			}
			if err := checkTenant(e, &r.TenantID); err != nil {
				return err
			}
			return classify(t.OnFailoverCompleted(ctx, r), poison)
		case events.TypeNodeRejoined:
			var r events.NodeRejoined
			if err := e.Decode(&r); err != nil {
				return eventbus.Poison(err)
			}
			if r.InstanceID == "" || r.NodeID == "" {
				return eventbus.Poison(errors.New("node rejoined without instance_id or node_id"))
			}
			if err := checkTenant(e, &r.TenantID); err != nil {
				return err
			}
			return classify(t.OnNodeRejoined(ctx, r), poison)
		default:
			return nil
		}
	}
}

func classify(err error, poison func(error) bool) error {
	if err != nil && poison != nil && poison(err) {
		return eventbus.Poison(err)
	}
	return err
}
