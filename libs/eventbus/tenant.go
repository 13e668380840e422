package eventbus

import (
	"errors"
	"fmt"
)

// ErrTenantMismatch: an event's tenant header is not the tenant of the
// aggregate it is about (as its payload or the consumer's stored copy says).
// Such an event is never acted upon.
var ErrTenantMismatch = errors.New("event tenant does not match its aggregate")

// CheckTenant returns a poison error wrapping ErrTenantMismatch when the
// event's tenant header differs from tenant; what names where tenant comes
// from ("payload", "stored instance") for the dead-letter reason. An empty
// header against a non-empty tenant is a mismatch too: tenant events always
// carry the header.
func CheckTenant(e Event, tenant, what string) error {
	if e.Tenant == tenant {
		return nil
	}
	return Poison(TenantMismatch(e, tenant, what))
}

// TenantMismatch is the unclassified ErrTenantMismatch error of event e
// against tenant, for callers that classify it themselves.
func TenantMismatch(e Event, tenant, what string) error {
	return fmt.Errorf("%w: event %s (%s, key %s) has tenant header %q, %s has tenant %q",
		ErrTenantMismatch, e.ID, e.Type, e.Key, e.Tenant, what, tenant)
}
