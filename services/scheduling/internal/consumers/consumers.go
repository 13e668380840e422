// Package consumers turns the Kafka events the scheduler listens to into
// calls on the scheduler: placement requests (new and replace) from
// canopy.placements.v1, and provisioning lifecycle events from
// canopy.instances.v1 that confirm or free reservations. It classifies
// failures for the subscriber: undecodable events are poison (dead-lettered),
// requests the scheduler refuses or finds invalid are answered with a
// scheduling.placement.failed event and committed, database trouble is
// retried. An event whose tenant header differs from its payload's tenant or
// from the stored placement's is poison: dead-lettered, never acted upon.
package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// Placer is what the handlers call (scheduler.PlacementEngine).
type Placer interface {
	Place(ctx context.Context, req placement.Request) (placement.Decision, error)
	Replace(ctx context.Context, instanceID, failedNode, requestID string) (placement.Decision, error)
	Reject(ctx context.Context, req placement.Request, reason string) error
	Confirm(ctx context.Context, instanceID string) (placement.Record, error)
	Release(ctx context.Context, instanceID, reason string) error
	// Get returns the stored placement (its tenant), or placement.ErrNotPlaced.
	Get(ctx context.Context, instanceID string) (placement.Record, error)
}

// Topics are the topics Handler consumes.
var Topics = []string{events.TopicPlacements, events.TopicInstances}

// Handler returns the subscriber handler for Topics.
func Handler(p Placer, logger *slog.Logger) eventbus.Handler {
	h := &handler{p: p, logger: logger}
	return h.handle
}

type handler struct {
	p      Placer
	logger *slog.Logger
}

func (h *handler) handle(ctx context.Context, e eventbus.Event) error {
	switch e.Type {
	case events.TypePlacementRequested:
		return h.requested(ctx, e)
	case events.TypeInstanceReady:
		id, err := h.lifecycle(ctx, e)
		if err != nil {
			return err
		}
		if _, err := h.p.Confirm(ctx, id); err != nil && !errors.Is(err, placement.ErrNotPlaced) {
			return fmt.Errorf("confirm %s: %w", id, err)
		}
		return nil
	case events.TypeInstanceDeleted, events.TypeInstanceFailed:
		id, err := h.lifecycle(ctx, e)
		if err != nil {
			return err
		}
		if err := h.p.Release(ctx, id, "instance "+e.Type[len("provisioning.instance."):]); err != nil {
			return fmt.Errorf("release %s: %w", id, err)
		}
		return nil
	default:
		// Our own decisions and other lifecycle events share these topics.
		return nil
	}
}

// lifecycle reads a provisioning lifecycle event's instance id and checks
// its tenant against the payload and the stored placement.
func (h *handler) lifecycle(ctx context.Context, e eventbus.Event) (string, error) {
	id, tenant, err := instanceID(e)
	if err != nil {
		return "", eventbus.Poison(err)
	}
	if tenant != "" {
		if err := eventbus.CheckTenant(e, tenant, "payload"); err != nil {
			return "", err
		}
	}
	return id, h.checkOwner(ctx, e, id)
}

// checkOwner refuses (as poison) an event about an instance whose stored
// placement belongs to another tenant than the event's header names.
func (h *handler) checkOwner(ctx context.Context, e eventbus.Event, id string) error {
	rec, err := h.p.Get(ctx, id)
	switch {
	case errors.Is(err, placement.ErrNotPlaced):
		return nil
	case err != nil:
		return fmt.Errorf("read placement %s: %w", id, err)
	}
	return eventbus.CheckTenant(e, rec.Tenant, "stored placement")
}

// instanceID reads instance_id (falling back to the key) and tenant_id
// from the payload.
func instanceID(e eventbus.Event) (string, string, error) {
	var p struct {
		InstanceID string `json:"instance_id"`
		TenantID   string `json:"tenant_id"`
	}
	if err := e.Decode(&p); err != nil {
		return "", "", err
	}
	if p.InstanceID == "" {
		p.InstanceID = e.Key
	}
	if p.InstanceID == "" {
		return "", "", fmt.Errorf("%s event %s has no instance_id", e.Type, e.ID)
	}
	return p.InstanceID, p.TenantID, nil
}

func (h *handler) requested(ctx context.Context, e eventbus.Event) error {
	var in events.PlacementRequested
	if err := e.Decode(&in); err != nil {
		if e.Key != "" {
			// Tell the requester instead of leaving it waiting; the event itself
			// still goes to the dead-letter topic.
			if rerr := h.p.Reject(ctx, placement.Request{InstanceID: e.Key, Tenant: e.Tenant}, "malformed placement request: "+err.Error()); rerr != nil {
				return fmt.Errorf("reject malformed request %s: %w", e.Key, rerr)
			}
		}
		return eventbus.Poison(err)
	}
	if in.InstanceID == "" {
		in.InstanceID = e.Key
	}
	if in.InstanceID == "" || len(in.InstanceID) > 64 || len(in.TenantID) > 64 || len(in.RequestID) > 255 {
		return eventbus.Poison(fmt.Errorf("placement request %s: instance_id must be 1-64 characters, tenant_id at most 64, request_id at most 255", e.ID))
	}
	if in.TenantID == "" {
		in.TenantID = e.Tenant
	} else if err := eventbus.CheckTenant(e, in.TenantID, "payload"); err != nil {
		return err
	}
	if err := h.checkOwner(ctx, e, in.InstanceID); err != nil {
		return err
	}
	if in.RequestID == "" {
		in.RequestID = e.ID
	}
	var err error
	switch in.Kind {
	case "", string(placement.KindNew):
		_, err = h.p.Place(ctx, Request(in))
	case string(placement.KindReplace):
		if in.FailedNode == "" {
			return h.reject(ctx, in, "replace request without failed_node")
		}
		_, err = h.p.Replace(ctx, in.InstanceID, in.FailedNode, in.RequestID)
		if errors.Is(err, placement.ErrNotPlaced) {
			return h.reject(ctx, in, "instance has no active placement to replace a node of")
		}
		var ve *inventory.ValidationError
		if errors.As(err, &ve) {
			return h.reject(ctx, in, "invalid replace request: "+ve.Error())
		}
	default:
		return h.reject(ctx, in, fmt.Sprintf("unknown kind %q (want new or replace)", in.Kind))
	}
	var ve *inventory.ValidationError
	switch {
	case err == nil, errors.Is(err, placement.ErrNoPlacement), errors.As(err, &ve):
		// Decided, or refused/invalid and already answered with a failed event.
		return nil
	default:
		return fmt.Errorf("place %s: %w", in.InstanceID, err)
	}
}

func (h *handler) reject(ctx context.Context, in events.PlacementRequested, reason string) error {
	req := Request(in)
	req.Kind = placement.Kind(in.Kind)
	if err := h.p.Reject(ctx, req, reason); err != nil {
		return fmt.Errorf("reject %s: %w", in.InstanceID, err)
	}
	return nil
}

// Request maps a placement request event to the domain request.
func Request(in events.PlacementRequested) placement.Request {
	req := placement.Request{InstanceID: in.InstanceID, Tenant: in.TenantID, RequestID: in.RequestID, Kind: placement.KindNew,
		Mode: placement.Mode(in.DeploymentMode), Region: in.Region, DRRegion: in.DRRegion,
		AllowedRegions: in.AllowedRegions, RequiredLabels: in.Labels}
	for _, n := range in.Nodes {
		milli := int64(-1)
		if n.VCPU > 0 && !math.IsInf(n.VCPU, 0) && n.VCPU < 1e9 {
			milli = int64(math.Round(n.VCPU * 1000))
		}
		req.Nodes = append(req.Nodes, placement.NodeSpec{Name: n.Name, Role: n.Role,
			Resources: inventory.Resources{MilliCPU: milli, MemoryMB: n.MemoryMB, StorageGB: n.StorageGB}})
	}
	return req
}
