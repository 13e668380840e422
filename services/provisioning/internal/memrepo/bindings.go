package memrepo

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// CreateBinding stores a binding and emits events. A binding whose OSB id
// exists already is port.ErrDuplicate; the existing binding is returned.
func (r *Repo) CreateBinding(ctx context.Context, b instance.Binding, events []port.Outgoing) (instance.Binding, error) {
	if err := ctx.Err(); err != nil {
		return instance.Binding{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The OSB id first, as mysqlrepo does: a retried OSB bind is a
	// duplicate even though its name is taken too.
	for _, x := range r.bindings {
		if b.OSBID != "" && x.Tenant == b.Tenant && x.InstanceID == b.InstanceID && x.OSBID == b.OSBID {
			return x, port.ErrDuplicate
		}
	}
	for _, x := range r.bindings {
		if x.Tenant == b.Tenant && x.InstanceID == b.InstanceID && x.Name == b.Name && !x.Deleted {
			return instance.Binding{}, fmt.Errorf("create binding %s: %w: %s", b.ID, port.ErrBindingNameTaken, b.Name)
		}
	}
	if _, ok := r.bindings[b.ID]; ok {
		return instance.Binding{}, fmt.Errorf("create binding %s: id exists", b.ID)
	}
	if err := r.emit(b.Tenant, events); err != nil {
		return instance.Binding{}, fmt.Errorf("create binding %s: %w", b.ID, err)
	}
	b.CreatedAt = ts(b.CreatedAt)
	r.bindings[b.ID] = b
	return b, nil
}

func (r *Repo) binding(tenant, instanceID, what string, match func(instance.Binding) bool) (instance.Binding, error) {
	if err := needTenant(tenant, "binding "+what); err != nil {
		return instance.Binding{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bindings {
		if b.Tenant == tenant && b.InstanceID == instanceID && match(b) {
			return b, nil
		}
	}
	return instance.Binding{}, fmt.Errorf("binding %s: %w", what, port.ErrNotFound)
}

// Binding returns a binding of the tenant's instance by id.
func (r *Repo) Binding(ctx context.Context, tenant, instanceID, id string) (instance.Binding, error) {
	if err := ctx.Err(); err != nil {
		return instance.Binding{}, err
	}
	return r.binding(tenant, instanceID, id, func(b instance.Binding) bool { return b.ID == id })
}

// BindingByOSBID returns a binding of the tenant's instance by OSB binding id.
func (r *Repo) BindingByOSBID(ctx context.Context, tenant, instanceID, osbID string) (instance.Binding, error) {
	if err := ctx.Err(); err != nil {
		return instance.Binding{}, err
	}
	return r.binding(tenant, instanceID, osbID, func(b instance.Binding) bool { return b.OSBID != "" && b.OSBID == osbID })
}

// Bindings lists an instance's active bindings in id order.
func (r *Repo) Bindings(ctx context.Context, tenant, instanceID string) ([]instance.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := needTenant(tenant, "list bindings"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []instance.Binding{}
	for _, b := range r.bindings {
		if b.Tenant == tenant && b.InstanceID == instanceID && !b.Deleted {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b instance.Binding) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteBinding marks a binding deleted and emits events; deleting a
// deleted binding emits nothing.
func (r *Repo) DeleteBinding(ctx context.Context, b instance.Binding, events []port.Outgoing) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.bindings[b.ID]
	if !ok || cur.Deleted {
		return nil
	}
	if err := r.emit(b.Tenant, events); err != nil {
		return fmt.Errorf("delete binding %s: %w", b.ID, err)
	}
	cur.Deleted = true
	r.bindings[b.ID] = cur
	return nil
}

// DeleteBindings marks every binding of an instance deleted.
func (r *Repo) DeleteBindings(ctx context.Context, instanceID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, b := range r.bindings {
		if b.InstanceID == instanceID && !b.Deleted {
			b.Deleted = true
			r.bindings[id] = b
		}
	}
	return nil
}
