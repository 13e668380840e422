package saga

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// Errors of the commands, for the HTTP edge to map.
var (
	// ErrGone: the instance was deleted.
	ErrGone = errors.New("instance deleted")
	// ErrNotReady: the instance must be ready for this.
	ErrNotReady = errors.New("instance not ready")
)

// NewID returns a new lower-case ULID (instance, operation and binding ids).
func NewID() string { return strings.ToLower(ulid.Make().String()) }

// OrderRequest is a validated order.
type OrderRequest struct {
	Tenant         string
	Name           string
	Plan           instance.Plan
	Version        string
	Region         string
	Parameters     map[string]any
	IdempotencyKey string
	RequestHash    string
	OSBID          string
	// Quota is the tenant's quota; the order is refused with a
	// *tenancy.QuotaExceededError when it would exceed it.
	Quota tenancy.Quota
	// ID is the new instance's id when the caller chose it (NewID) before
	// ordering, as a restore does to name its target; "" picks one.
	ID string
	// Restore, when set, is the backup service's restore job the instance
	// is made from: it waits in restoring after placement.
	Restore *instance.Restore
}

// Order creates an instance and asks scheduling for a placement. A repeated
// idempotency key or OSB id returns a *port.DuplicateError with the
// first instance.
func (s *Saga) Order(ctx context.Context, r OrderRequest) (*instance.Instance, instance.Operation, error) {
	sysctls, err := SysctlsFor(r.Plan.DeploymentMode)
	if err != nil {
		return nil, instance.Operation{}, &instance.ValidationError{Field: "plan_id", Reason: err.Error()}
	}
	if _, err := parameterSettings(r.Plan.Engine, r.Parameters); err != nil {
		return nil, instance.Operation{}, err
	}
	now := s.now()
	accounts := instance.Accounts{
		Admin:       instance.Credentials{Username: "canopy_admin", Password: secrets.Password(32)},
		Monitor:     instance.Credentials{Username: "canopy_monitor", Password: secrets.Password(32)},
		Replication: instance.Credentials{Username: "canopy_repl", Password: secrets.Password(32)},
	}
	if r.Plan.Engine == instance.EngineMySQL {
		// The cdc service reads the binlog with it; Redis has no CDC.
		accounts.CDC = instance.Credentials{Username: CDCUsername, Password: secrets.Password(32)}
		accounts.CDCGrants = driver.CDCGrants
	}
	id := r.ID
	if id == "" {
		id = NewID()
	}
	in, op, err := instance.New(instance.Order{
		ID: id, OperationID: NewID(), Restore: r.Restore, Tenant: r.Tenant, Name: r.Name, Plan: r.Plan, Version: r.Version,
		Region: r.Region, Parameters: r.Parameters, Sysctls: sysctls, OSBID: r.OSBID,
		Accounts: accounts,
	}, now)
	if err != nil {
		return nil, instance.Operation{}, err
	}
	op.RequestedBy = requester(ctx)
	requested, err := InstanceEvent(events.TypeInstanceRequested, in, s.router, now)
	if err != nil {
		return nil, instance.Operation{}, err
	}
	placement, err := placementRequest(in, op.ID)
	if err != nil {
		return nil, instance.Operation{}, err
	}
	vcpu, mem, storage := in.Usage()
	err = s.repo.Create(ctx, port.CreateRequest{
		Instance: in, Op: op, IdempotencyKey: r.IdempotencyKey, RequestHash: r.RequestHash,
		Admit: func(u port.Usage) error {
			return r.Quota.Check(u, tenancy.Usage{Instances: 1, VCPU: vcpu, MemoryMB: mem, StorageGB: storage})
		},
		Events:      []port.Outgoing{{Topic: events.TopicInstances, Event: requested}, {Topic: events.TopicPlacements, Event: placement}},
		RouterPorts: s.routerPorts(),
	})
	var dup *port.DuplicateError
	if errors.As(err, &dup) {
		existingOp, oerr := s.repo.Operation(ctx, r.Tenant, dup.Existing.OperationID)
		if oerr != nil {
			return nil, instance.Operation{}, oerr
		}
		return dup.Existing, existingOp, err
	}
	if err != nil {
		return nil, instance.Operation{}, err
	}
	s.log.Info("instance ordered", "tenant", in.Tenant, "instance", in.ID, "plan", in.Plan.ID, "name", in.Name)
	s.Kick(in.ID)
	return in, op, nil
}

func placementRequest(in *instance.Instance, requestID string) (eventbus.Event, error) {
	p := events.PlacementRequested{
		InstanceID: in.ID, TenantID: in.Tenant, RequestID: requestID, Kind: events.KindNew,
		Engine: in.Plan.Engine, DeploymentMode: in.Plan.DeploymentMode, Region: in.Region,
	}
	for i, t := range in.Plan.Nodes {
		role := events.PlacementRolePrimary
		switch {
		case t.Role == instance.RoleReplica && t.RegionRole == instance.RegionDR:
			role = events.PlacementRoleDRReplica
		case t.Role == instance.RoleReplica:
			role = events.PlacementRoleReplica
		}
		r := in.Plan.Resources
		p.Nodes = append(p.Nodes, events.NodeRequest{Name: instance.NodeName(i), Role: role, VCPU: r.VCPU, MemoryMB: r.MemoryMB, StorageGB: r.StorageGB})
	}
	e, err := eventbus.NewEvent(events.TypePlacementRequested, events.SourceProvisioning, in.ID, p)
	if err != nil {
		return e, err
	}
	e.Tenant = in.Tenant
	return e, nil
}

// tenantMismatch refuses an event about an instance of another tenant than
// the event's: poison, so it is dead-lettered and never acted upon.
func tenantMismatch(in *instance.Instance, eventTenant, id string) error {
	return eventbus.Poison(fmt.Errorf("%w: placement event for instance %s names tenant %q, the stored instance belongs to %q",
		eventbus.ErrTenantMismatch, id, eventTenant, in.Tenant))
}

// OnPlacementDecided records scheduling's decision and starts creating the
// nodes. A decision for an instance past placing is ignored (redelivery).
func (s *Saga) OnPlacementDecided(ctx context.Context, d events.PlacementDecided) error {
	ps := make([]instance.Placement, 0, len(d.Nodes))
	for _, n := range d.Nodes {
		ps = append(ps, instance.Placement{Name: n.Name, Role: n.Role, Region: n.Region, AZ: n.AZ, Host: n.Host, Address: n.Address, Port: n.Port})
	}
	var reason string
	_, err := s.repo.Update(ctx, d.InstanceID, func(c *port.Change) error {
		if c.Instance.Tenant != d.TenantID {
			return tenantMismatch(c.Instance, d.TenantID, d.InstanceID)
		}
		// An instance that ended while scheduling was deciding: its deleted
		// or failed event travels on another topic than the request and may
		// have reached scheduling first, releasing nothing. Saying it again
		// releases the reservation now instead of leaving it to the reaper.
		switch c.Instance.State {
		case instance.StateDeleted:
			return s.emitInstance(c, events.TypeInstanceDeleted)
		case instance.StateFailed:
			return s.emitInstance(c, events.TypeInstanceFailed)
		}
		changed, err := c.Instance.Place(ps, s.now())
		if err != nil {
			// A decision that does not fit the plan cannot be used: fail
			// the create (the failed event releases the reservation).
			reason = "placement unusable: " + err.Error()
			if rerr := c.Instance.StartRollback(reason, s.now()); rerr != nil {
				return port.ErrNoChange
			}
			c.Instance.Sync(c.Op, s.now())
			return nil
		}
		if !changed {
			return port.ErrNoChange
		}
		c.Instance.Sync(c.Op, s.now())
		return nil
	})
	if errors.Is(err, port.ErrNotFound) {
		s.log.Warn("placement decided for an unknown instance; ignored", "instance", d.InstanceID)
		return nil
	}
	if err != nil {
		return err
	}
	s.Kick(d.InstanceID)
	return nil
}

// OnPlacementFailed fails a create that scheduling could not place.
func (s *Saga) OnPlacementFailed(ctx context.Context, f events.PlacementFailed) error {
	_, err := s.repo.Update(ctx, f.InstanceID, func(c *port.Change) error {
		if c.Instance.Tenant != f.TenantID {
			return tenantMismatch(c.Instance, f.TenantID, f.InstanceID)
		}
		if c.Instance.State != instance.StateProvisioning || c.Instance.Step != instance.StepPlacing {
			return port.ErrNoChange
		}
		reason := "no placement: " + f.Reason
		if err := c.Instance.StartRollback(reason, s.now()); err != nil {
			return err
		}
		c.Instance.Sync(c.Op, s.now())
		return nil
	})
	if errors.Is(err, port.ErrNotFound) {
		s.log.Warn("placement failed for an unknown instance; ignored", "instance", f.InstanceID)
		return nil
	}
	if err != nil {
		return err
	}
	s.Kick(f.InstanceID)
	return nil
}

// Delete starts deprovisioning the tenant's instance. Deleting an instance
// that is being deleted returns its delete operation; a deleted one ErrGone.
func (s *Saga) Delete(ctx context.Context, tenant, id string) (*instance.Instance, instance.Operation, error) {
	var op instance.Operation
	in, err := s.repo.Update(ctx, id, func(c *port.Change) error {
		in := c.Instance
		if in.Tenant != tenant {
			return fmt.Errorf("instance %s: %w", id, port.ErrNotFound)
		}
		switch in.State {
		case instance.StateDeleted:
			return ErrGone
		case instance.StateDeleting:
			op = *c.Op
			return port.ErrNoChange
		}
		newOp, err := in.Delete(NewID(), s.now())
		newOp.RequestedBy = requester(ctx)
		if err != nil {
			return err
		}
		if c.Op.ID != "" && c.Op.State == instance.OpInProgress {
			c.Op.Fail("superseded by delete", s.now())
			c.Superseded = append(c.Superseded, *c.Op)
		}
		*c.Op = newOp
		op = newOp
		return s.emitInstance(c, events.TypeInstanceDeleting)
	})
	if err != nil {
		return nil, instance.Operation{}, err
	}
	s.Kick(id)
	return in, op, nil
}

// requester is who asked for an operation: the subject of the identity the
// request carries, so that a platform admin's action on a tenant's instance
// is attributed to the admin.
func requester(ctx context.Context) string {
	p, ok := tenancy.PrincipalFrom(ctx)
	if !ok {
		return ""
	}
	return p.Subject
}

// UpdateParameters changes a ready instance's parameters.
func (s *Saga) UpdateParameters(ctx context.Context, tenant, id string, params map[string]any) (*instance.Instance, instance.Operation, error) {
	var op instance.Operation
	in, err := s.repo.Update(ctx, id, func(c *port.Change) error {
		if c.Instance.Tenant != tenant {
			return fmt.Errorf("instance %s: %w", id, port.ErrNotFound)
		}
		if c.Instance.State == instance.StateDeleted {
			return ErrGone
		}
		if _, err := parameterSettings(c.Instance.Plan.Engine, params); err != nil {
			return err
		}
		newOp, err := c.Instance.Update(params, NewID(), s.now())
		newOp.RequestedBy = requester(ctx)
		if err != nil {
			return err
		}
		*c.Op = newOp
		op = newOp
		return s.emitInstance(c, events.TypeInstanceUpdating)
	})
	if err != nil {
		return nil, instance.Operation{}, err
	}
	s.Kick(id)
	return in, op, nil
}

// Bind creates an application user on a ready instance. With an OSB id, a
// repeated bind returns the first binding and port.ErrDuplicate.
func (s *Saga) Bind(ctx context.Context, tenant, instanceID, name, osbID string) (instance.Binding, *instance.Instance, error) {
	return s.BindOSB(ctx, tenant, instanceID, name, osbID, "")
}

// BindOSB is Bind that also records requestHash, what the OSB bind asked
// for, so that a repeat with other attributes can be told from a retry.
func (s *Saga) BindOSB(ctx context.Context, tenant, instanceID, name, osbID, requestHash string) (instance.Binding, *instance.Instance, error) {
	in, err := s.repo.Get(ctx, tenant, instanceID)
	if err != nil {
		return instance.Binding{}, nil, err
	}
	if in.State == instance.StateDeleted {
		return instance.Binding{}, in, ErrGone
	}
	if osbID != "" {
		if b, err := s.repo.BindingByOSBID(ctx, tenant, instanceID, osbID); err == nil {
			return b, in, port.ErrDuplicate
		}
	}
	if in.State != instance.StateReady {
		return instance.Binding{}, in, fmt.Errorf("%w: %s", ErrNotReady, in.State)
	}
	id := NewID()
	b := instance.Binding{
		ID: id, InstanceID: in.ID, Tenant: tenant, Name: name, OSBID: osbID, RequestHash: requestHash, CreatedAt: s.now(),
		Credentials: instance.Credentials{Username: "b_" + id[len(id)-12:], Password: secrets.Password(32)},
	}
	if err := s.eng.CreateUser(ctx, in, b.Credentials); err != nil {
		return instance.Binding{}, in, fmt.Errorf("create user for binding: %w", err)
	}
	ev, err := bindingEvent(events.TypeBindingCreated, b, s.now())
	if err != nil {
		return instance.Binding{}, in, err
	}
	stored, err := s.repo.CreateBinding(ctx, b, []port.Outgoing{{Topic: events.TopicInstances, Event: ev}})
	if err != nil {
		// Nothing refers to the user: take it away again.
		if derr := s.eng.DropUser(context.WithoutCancel(ctx), in, b.Credentials.Username); derr != nil {
			s.log.Error("drop user of a binding that was not stored", "instance", in.ID, "user", b.Credentials.Username, "err", derr)
		}
		return stored, in, err
	}
	s.log.Info("binding created", "tenant", tenant, "instance", in.ID, "binding", b.ID)
	return stored, in, nil
}

// Unbind drops a binding's user and marks it deleted.
func (s *Saga) Unbind(ctx context.Context, tenant string, b instance.Binding) error {
	in, err := s.repo.Get(ctx, tenant, b.InstanceID)
	if err != nil {
		return err
	}
	if in.State != instance.StateDeleted && !b.Deleted {
		if err := s.eng.DropUser(ctx, in, b.Credentials.Username); err != nil {
			return fmt.Errorf("drop user of binding %s: %w", b.ID, err)
		}
	}
	ev, err := bindingEvent(events.TypeBindingDeleted, b, s.now())
	if err != nil {
		return err
	}
	if err := s.repo.DeleteBinding(ctx, b, []port.Outgoing{{Topic: events.TopicInstances, Event: ev}}); err != nil {
		return err
	}
	s.log.Info("binding deleted", "tenant", tenant, "instance", in.ID, "binding", b.ID)
	return nil
}

func bindingEvent(typ string, b instance.Binding, now time.Time) (eventbus.Event, error) {
	e, err := eventbus.NewEvent(typ, events.SourceProvisioning, b.InstanceID, events.Binding{
		BindingID: b.ID, InstanceID: b.InstanceID, TenantID: b.Tenant, Name: b.Name, Username: b.Credentials.Username, OccurredAt: now,
	})
	if err != nil {
		return e, err
	}
	e.Tenant = b.Tenant
	return e, nil
}
