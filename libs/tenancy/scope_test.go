package tenancy

import (
	"errors"
	"testing"
)

func TestScope(t *testing.T) {
	if _, _, err := Scope(t.Context()); !errors.Is(err, ErrNoTenant) {
		t.Fatalf("Scope without tenant = %v, want ErrNoTenant", err)
	}
	ctx := WithTenant(t.Context(), "acme")
	clause, arg, err := Scope(ctx)
	if err != nil || clause != "tenant_id = ?" || arg != "acme" {
		t.Fatalf("Scope = %q %v %v", clause, arg, err)
	}
	clause, _, _ = ScopeColumn(ctx, "i.tenant_id")
	if clause != "i.tenant_id = ?" {
		t.Fatalf("ScopeColumn = %q", clause)
	}
}
