// Package memrepo is provisioning's repository in memory: the same contract
// as mysqlrepo (instances, nodes, operations, bindings and the outbox,
// changed together by Update), for unit tests of the saga and the HTTP edge
// that need no database. It keeps what mysqlrepo would keep — the columns
// an update saves, JSON-decoded parameters, microsecond UTC times — and
// records the emitted events in order instead of relaying them. It is not
// for production: nothing survives the process.
package memrepo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// Repo is the in-memory repository. The zero value is not usable; call New.
type Repo struct {
	// mu serialises every change, as the row and tenant locks of mysqlrepo
	// do; an Update callback runs under it and must not call the Repo.
	mu        sync.Mutex
	instances map[string]*row
	ops       map[string]instance.Operation
	bindings  map[string]instance.Binding
	outbox    []port.Outgoing
}

// row is a stored instance with the request keys it was created with.
type row struct {
	in             *instance.Instance
	idempotencyKey string
	requestHash    string
}

// New returns an empty repository.
func New() *Repo {
	return &Repo{instances: map[string]*row{}, ops: map[string]instance.Operation{}, bindings: map[string]instance.Binding{}}
}

// Outbox returns the events committed so far, in the order they were written.
func (r *Repo) Outbox() []port.Outgoing {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.outbox)
}

func needTenant(tenant, what string) error {
	if tenant == "" {
		return fmt.Errorf("%s: %w", what, port.ErrNoTenant)
	}
	return nil
}

// ts is the stored precision of a time (mysqlrepo: DATETIME(6), UTC).
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// clone returns a deep copy of in as it reads back from storage.
func clone(in *instance.Instance) (*instance.Instance, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode instance %s: %w", in.ID, err)
	}
	var out instance.Instance
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode instance %s: %w", in.ID, err)
	}
	if out.Parameters == nil {
		out.Parameters = map[string]any{}
	}
	if out.Sysctls == nil {
		out.Sysctls = []instance.Setting{}
	}
	out.CreatedAt, out.UpdatedAt, out.StepAt = ts(out.CreatedAt), ts(out.UpdatedAt), ts(out.StepAt)
	if out.Restore != nil {
		out.Restore.PointInTime, out.Restore.ReadyAt = ts(out.Restore.PointInTime), ts(out.Restore.ReadyAt)
	}
	slices.SortStableFunc(out.Nodes, func(a, b instance.Node) int { return strings.Compare(a.Name, b.Name) })
	return &out, nil
}

func cloneOp(op instance.Operation) instance.Operation {
	op.StartedAt = ts(op.StartedAt)
	if op.FinishedAt != nil {
		t := ts(*op.FinishedAt)
		op.FinishedAt = &t
	}
	return op
}

// emit appends events to the outbox, all or none: an event without a topic
// or a type is refused, as the outbox table refuses it.
func (r *Repo) emit(tenant string, events []port.Outgoing) error {
	for i, o := range events {
		if strings.TrimSpace(o.Topic) == "" {
			return fmt.Errorf("emit: event %d has no topic", i)
		}
		if o.Event.Type == "" {
			return fmt.Errorf("emit to %s: event %d has no type", o.Topic, i)
		}
	}
	for _, o := range events {
		if o.Event.Tenant == "" {
			o.Event.Tenant = tenant
		}
		r.outbox = append(r.outbox, o)
	}
	return nil
}

// live reports whether an instance counts for names and quotas.
func live(in *instance.Instance) bool { return in.State != instance.StateDeleted }

func (r *Repo) usage(tenant string) port.Usage {
	var u port.Usage
	for _, rw := range r.instances {
		if rw.in.Tenant != tenant || !live(rw.in) {
			continue
		}
		vcpu, mem, storage := rw.in.Usage()
		u = u.Add(port.Usage{Instances: 1, VCPU: vcpu, MemoryMB: mem, StorageGB: storage})
	}
	return u
}

// Create inserts a new instance and its operation and emits its events,
// after checking idempotency key, OSB id, name and quota.
func (r *Repo) Create(ctx context.Context, req port.CreateRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	in := req.Instance
	if err := r.create(req); err != nil {
		return fmt.Errorf("create instance %s: %w", in.ID, err)
	}
	return nil
}

func (r *Repo) create(req port.CreateRequest) error {
	in := req.Instance
	if req.IdempotencyKey != "" || in.OSBID != "" {
		for _, rw := range r.instances {
			if rw.in.Tenant != in.Tenant {
				continue
			}
			if (req.IdempotencyKey != "" && rw.idempotencyKey == req.IdempotencyKey) ||
				(req.IdempotencyKey == "" && rw.in.OSBID == in.OSBID) {
				existing, err := clone(rw.in)
				if err != nil {
					return err
				}
				return &port.DuplicateError{Existing: existing, SameRequest: rw.requestHash == req.RequestHash}
			}
		}
	}
	if req.Admit != nil {
		if err := req.Admit(r.usage(in.Tenant)); err != nil {
			return err
		}
	}
	if _, ok := r.instances[in.ID]; ok {
		return fmt.Errorf("insert instance: id %s exists", in.ID)
	}
	for _, rw := range r.instances {
		if rw.in.Tenant == in.Tenant && rw.in.Name == in.Name && live(rw.in) {
			return fmt.Errorf("%w: %s", port.ErrNameTaken, in.Name)
		}
	}
	if !req.RouterPorts.Empty() {
		ports, err := instance.AllocateRouterPorts(req.RouterPorts, r.usedRouterPorts())
		if err != nil {
			return err
		}
		in.Router = ports
	}
	stored, err := clone(in)
	if err != nil {
		return err
	}
	if err := r.emit(in.Tenant, req.Events); err != nil {
		return err
	}
	r.instances[in.ID] = &row{in: stored, idempotencyKey: req.IdempotencyKey, requestHash: req.RequestHash}
	r.ops[req.Op.ID] = cloneOp(req.Op)
	return nil
}

// Update runs fn on instance id and, when fn returns nil, saves the
// instance, its nodes, the operation and fn's events together. When fn
// returns port.ErrNoChange nothing is written and Update returns nil.
func (r *Repo) Update(ctx context.Context, id string, fn func(c *port.Change) error) (*instance.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	out, err := r.update(id, fn)
	r.mu.Unlock()
	if errors.Is(err, port.ErrNoChange) {
		return r.GetAnyTenant(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("update instance %s: %w", id, err)
	}
	return out, nil
}

func (r *Repo) update(id string, fn func(c *port.Change) error) (*instance.Instance, error) {
	rw, ok := r.instances[id]
	if !ok {
		return nil, fmt.Errorf("instance %s: %w", id, port.ErrNotFound)
	}
	in, err := clone(rw.in)
	if err != nil {
		return nil, err
	}
	op := r.ops[in.OperationID]
	if op.Tenant != in.Tenant {
		op = instance.Operation{}
	}
	c := &port.Change{Instance: in, Op: &op}
	if err := fn(c); err != nil {
		return nil, err
	}
	saved, err := r.save(rw.in, c.Instance)
	if err != nil {
		return nil, err
	}
	if err := r.emit(saved.Tenant, c.Events()); err != nil {
		return nil, err
	}
	rw.in = saved
	for _, o := range c.Superseded {
		r.saveOp(o)
	}
	if c.Op != nil && c.Op.ID != "" {
		r.saveOp(*c.Op)
	}
	return c.Instance, nil
}

// save returns stored with what an update writes of changed: its state,
// step, plan, parameters, accounts, timestamps and applied failover, and its nodes (added or
// replaced by id; a node missing from changed is kept).
func (r *Repo) save(stored, changed *instance.Instance) (*instance.Instance, error) {
	next, err := clone(stored)
	if err != nil {
		return nil, err
	}
	ch, err := clone(changed)
	if err != nil {
		return nil, err
	}
	next.State, next.Step, next.Reason, next.Plan, next.Parameters, next.Sysctls = ch.State, ch.Step, ch.Reason, ch.Plan, ch.Parameters, ch.Sysctls
	next.Accounts, next.OperationID, next.UpdatedAt, next.StepAt = ch.Accounts, ch.OperationID, ch.UpdatedAt, ch.StepAt
	next.Failover = ch.Failover
	next.Restore = ch.Restore
	next.EngineVersion = ch.EngineVersion
	for _, n := range ch.Nodes {
		if i := slices.IndexFunc(next.Nodes, func(m instance.Node) bool { return m.ID == n.ID }); i >= 0 {
			name := next.Nodes[i].Name // the name is the node's key, never updated
			next.Nodes[i] = n
			next.Nodes[i].Name = name
			continue
		}
		next.Nodes = append(next.Nodes, n)
	}
	return clone(next)
}

// saveOp inserts an operation or updates its outcome (state, step, end,
// error), as mysqlrepo's upsert does.
func (r *Repo) saveOp(op instance.Operation) {
	op = cloneOp(op)
	if old, ok := r.ops[op.ID]; ok {
		old.State, old.Step, old.FinishedAt, old.Error, old.StepDetail = op.State, op.Step, op.FinishedAt, op.Error, op.StepDetail
		r.ops[op.ID] = old
		return
	}
	r.ops[op.ID] = op
}

// anyTenant is the scope of the explicitly cross-tenant reads.
const anyTenant = "\x00any"

func (r *Repo) get(tenant, id string) (*instance.Instance, error) {
	if err := needTenant(tenant, "instance "+id); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rw, ok := r.instances[id]
	if !ok || (tenant != anyTenant && rw.in.Tenant != tenant) {
		return nil, fmt.Errorf("instance %s: %w", id, port.ErrNotFound)
	}
	return clone(rw.in)
}

// Get returns the tenant's instance. Another tenant's instance is
// port.ErrNotFound; an empty tenant is port.ErrNoTenant.
func (r *Repo) Get(ctx context.Context, tenant, id string) (*instance.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.get(tenant, id)
}

// GetAnyTenant returns an instance whatever its tenant.
func (r *Repo) GetAnyTenant(ctx context.Context, id string) (*instance.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.get(anyTenant, id)
}

// GetByOSBID returns the tenant's instance ordered with an OSB instance id.
func (r *Repo) GetByOSBID(ctx context.Context, tenant, osbID string) (*instance.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := needTenant(tenant, "osb instance "+osbID); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rw := range r.instances {
		if rw.in.Tenant == tenant && rw.in.OSBID != "" && rw.in.OSBID == osbID {
			return clone(rw.in)
		}
	}
	return nil, fmt.Errorf("osb instance %s: %w", osbID, port.ErrNotFound)
}

// list returns up to limit instances matching keep with ids after the
// cursor, in id order.
func (r *Repo) list(after string, limit int, keep func(*instance.Instance) bool) ([]*instance.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*instance.Instance
	for _, id := range r.sortedIDs() {
		rw := r.instances[id]
		if id <= after || !keep(rw.in) {
			continue
		}
		if len(out) == limit {
			break
		}
		in, err := clone(rw.in)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func (r *Repo) sortedIDs() []string {
	ids := make([]string, 0, len(r.instances))
	for id := range r.instances {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// List returns up to limit of the tenant's instances (deleted ones only
// with includeDeleted) with ids after the cursor id, in id order.
func (r *Repo) List(ctx context.Context, tenant, after string, limit int, includeDeleted bool) ([]*instance.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := needTenant(tenant, "list instances"); err != nil {
		return nil, err
	}
	return r.list(after, limit, func(in *instance.Instance) bool { return in.Tenant == tenant && (includeDeleted || live(in)) })
}

// ListAllInstances is List across every tenant, for platform admins.
func (r *Repo) ListAllInstances(ctx context.Context, after string, limit int, includeDeleted bool) ([]*instance.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.list(after, limit, func(in *instance.Instance) bool { return includeDeleted || live(in) })
}

// ListMonitored returns, across all tenants, the instances whose nodes are
// meant to be up (ready or updating), after the id cursor.
func (r *Repo) ListMonitored(ctx context.Context, after string, limit int) ([]*instance.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.list(after, limit, func(in *instance.Instance) bool {
		return in.State == instance.StateReady || in.State == instance.StateUpdating
	})
}

func (r *Repo) ids(keep func(*instance.Instance) bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range r.sortedIDs() {
		if keep(r.instances[id].in) {
			out = append(out, id)
		}
	}
	return out
}

// Unfinished returns the ids of instances whose saga has work left
// (provisioning, updating, deleting), in id order.
func (r *Repo) Unfinished(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.ids(func(in *instance.Instance) bool {
		return in.State == instance.StateProvisioning || in.State == instance.StateUpdating || in.State == instance.StateDeleting
	}), nil
}

// WithNodes returns the ids of instances that may have nodes to adopt.
func (r *Repo) WithNodes(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.ids(func(in *instance.Instance) bool {
		if !live(in) {
			return false
		}
		return slices.ContainsFunc(in.Nodes, func(n instance.Node) bool {
			switch n.State {
			case instance.NodeCreating, instance.NodeCreated, instance.NodeRunning, instance.NodeStopped:
				return true
			}
			return false
		})
	}), nil
}

func (r *Repo) operation(tenant, id string) (instance.Operation, error) {
	if err := needTenant(tenant, "operation "+id); err != nil {
		return instance.Operation{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	op, ok := r.ops[id]
	if !ok || (tenant != anyTenant && op.Tenant != tenant) {
		return instance.Operation{}, fmt.Errorf("operation %s: %w", id, port.ErrNotFound)
	}
	return op, nil
}

// Operation returns the tenant's operation; an empty tenant is port.ErrNoTenant.
func (r *Repo) Operation(ctx context.Context, tenant, id string) (instance.Operation, error) {
	if err := ctx.Err(); err != nil {
		return instance.Operation{}, err
	}
	return r.operation(tenant, id)
}

// OperationAnyTenant returns an operation whatever its tenant.
func (r *Repo) OperationAnyTenant(ctx context.Context, id string) (instance.Operation, error) {
	if err := ctx.Err(); err != nil {
		return instance.Operation{}, err
	}
	return r.operation(anyTenant, id)
}

// usedRouterPorts returns the router ports live instances hold: a deleted
// instance's return to the pool.
func (r *Repo) usedRouterPorts() map[int]bool {
	used := map[int]bool{}
	for _, rw := range r.instances {
		if live(rw.in) && rw.in.Router.Allocated() {
			used[rw.in.Router.RW], used[rw.in.Router.RO] = true, true
		}
	}
	return used
}

// WithoutRouterPorts returns the ids of live instances that have no router
// ports (created before the router or with it disabled), in id order.
func (r *Repo) WithoutRouterPorts(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.ids(func(in *instance.Instance) bool { return live(in) && !in.Router.Allocated() }), nil
}

// AssignRouterPorts gives live instance id the lowest free router port pair
// of pr, returning the instance and true; an instance that has ports or is
// deleted is returned unchanged with false.
func (r *Repo) AssignRouterPorts(ctx context.Context, id string, pr instance.PortRange) (*instance.Instance, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rw, ok := r.instances[id]
	if !ok {
		return nil, false, fmt.Errorf("instance %s: %w", id, port.ErrNotFound)
	}
	if !live(rw.in) || rw.in.Router.Allocated() {
		in, err := clone(rw.in)
		return in, false, err
	}
	ports, err := instance.AllocateRouterPorts(pr, r.usedRouterPorts())
	if err != nil {
		return nil, false, fmt.Errorf("router ports of instance %s: %w", id, err)
	}
	rw.in.Router = ports
	in, err := clone(rw.in)
	return in, true, err
}

// ListRouted returns, across all tenants, up to limit live instances that
// have router ports, with ids after the cursor: the router's view.
func (r *Repo) ListRouted(ctx context.Context, after string, limit int) ([]*instance.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.list(after, limit, func(in *instance.Instance) bool { return live(in) && in.Router.Allocated() })
}
