package tenancy

import "testing"

func TestCan(t *testing.T) {
	// want lists, per role, the actions it may perform; all others are denied.
	want := map[Role][]Action{
		RolePlatformAdmin: {ActionRead, ActionWrite, ActionManageKeys, ActionAdmin},
		RoleTenantAdmin:   {ActionRead, ActionWrite, ActionManageKeys},
		RoleTenantMember:  {ActionRead, ActionWrite},
		RoleTenantViewer:  {ActionRead},
		Role("intruder"):  nil,
		Role(""):          nil,
	}
	for role, allowed := range want {
		for _, action := range Actions() {
			exp := false
			for _, a := range allowed {
				exp = exp || a == action
			}
			t.Run(string(role)+"/"+string(action), func(t *testing.T) {
				if got := Can(role, action); got != exp {
					t.Fatalf("Can(%q, %q) = %v, want %v", role, action, got, exp)
				}
			})
		}
	}
}

func TestCanGrant(t *testing.T) {
	tests := []struct {
		granter, granted Role
		want             bool
	}{
		{RolePlatformAdmin, RoleTenantAdmin, true},
		{RolePlatformAdmin, RoleTenantViewer, true},
		{RolePlatformAdmin, RolePlatformAdmin, false},
		{RoleTenantAdmin, RoleTenantAdmin, true},
		{RoleTenantAdmin, RoleTenantMember, true},
		{RoleTenantAdmin, RoleTenantViewer, true},
		{RoleTenantAdmin, RolePlatformAdmin, false},
		{RoleTenantMember, RoleTenantViewer, false},
		{RoleTenantViewer, RoleTenantViewer, false},
		{RoleTenantAdmin, Role("bogus"), false},
	}
	for _, tt := range tests {
		t.Run(string(tt.granter)+"->"+string(tt.granted), func(t *testing.T) {
			if got := CanGrant(tt.granter, tt.granted); got != tt.want {
				t.Fatalf("CanGrant = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles() {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Fatalf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	if _, err := ParseRole("Platform-Admin"); err == nil {
		t.Fatal("roles are case-sensitive")
	}
}
