package tenancy

import "testing"

func TestPrincipalContext(t *testing.T) {
	ctx := t.Context()
	if _, ok := PrincipalFrom(ctx); ok {
		t.Fatal("empty context has a principal")
	}
	ctx = WithPrincipal(ctx, Principal{Role: RolePlatformAdmin, Subject: "root"})
	if _, ok := FromContext(ctx); ok {
		t.Fatal("platform admin without tenant must not set a tenant")
	}
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Role != RolePlatformAdmin {
		t.Fatalf("principal = %+v %v", p, ok)
	}
}
