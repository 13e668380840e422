package eventbus

import (
	"errors"
	"testing"
)

func TestCheckTenant(t *testing.T) {
	tests := []struct {
		name   string
		header string
		tenant string
		ok     bool
	}{
		{"same", "acme", "acme", true},
		{"platform event", "", "", true},
		{"other tenant", "evil", "acme", false},
		{"missing header", "", "acme", false},
		{"header on a tenant-less aggregate", "acme", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTenant(Event{ID: "e1", Type: "x", Tenant: tt.header}, tt.tenant, "payload")
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrTenantMismatch) || ClassOf(err) != ClassPoison {
				t.Fatalf("err %v (class %v), want poison ErrTenantMismatch", err, ClassOf(err))
			}
		})
	}
}
