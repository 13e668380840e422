// Package consumers holds provisioning's Kafka handlers: they decode
// scheduling's placement decisions from canopy.placements.v1, classify what
// cannot be processed (poison → dead-letter) and hand the rest to the saga.
// An event whose tenant header disagrees with its payload is poison; the saga
// checks it against the stored instance. They hold no workflow logic.
package consumers

import (
	"context"
	"errors"

	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/api/events"
)

// Saga is what the handlers call.
type Saga interface {
	OnPlacementDecided(ctx context.Context, d events.PlacementDecided) error
	OnPlacementFailed(ctx context.Context, f events.PlacementFailed) error
}

// Placements returns the handler of canopy.placements.v1.
func Placements(s Saga) eventbus.Handler {
	return func(ctx context.Context, e eventbus.Event) error {
		switch e.Type {
		case events.TypePlacementDecided:
			var d events.PlacementDecided
			if err := e.Decode(&d); err != nil {
				return eventbus.Poison(err)
			}
			if d.InstanceID == "" {
				return eventbus.Poison(errors.New("placement decided without instance_id"))
			}
			if err := checkTenant(e, &d.TenantID); err != nil {
				return err
			}
			if d.Kind != "" && d.Kind != events.KindNew {
				return nil // re-placements of a failed node are failover's business (not built yet)
			}
			return s.OnPlacementDecided(ctx, d)
		case events.TypePlacementFailed:
			var f events.PlacementFailed
			if err := e.Decode(&f); err != nil {
				return eventbus.Poison(err)
			}
			if f.InstanceID == "" {
				return eventbus.Poison(errors.New("placement failed without instance_id"))
			}
			if err := checkTenant(e, &f.TenantID); err != nil {
				return err
			}
			if f.Kind != "" && f.Kind != events.KindNew {
				return nil
			}
			return s.OnPlacementFailed(ctx, f)
		default:
			// Our own requests and scheduling's other events share the topic.
			return nil
		}
	}
}

// checkTenant compares the tenant header with the payload's tenant and
// fills an empty payload tenant from the header, so that the saga compares
// one tenant with the stored instance's.
func checkTenant(e eventbus.Event, payload *string) error {
	if *payload == "" {
		*payload = e.Tenant
		return nil
	}
	return eventbus.CheckTenant(e, *payload, "payload")
}
