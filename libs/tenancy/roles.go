package tenancy

// Action is something a caller wants to do; Can decides it from the Role.
type Action string

// The actions of the role matrix.
const (
	// ActionRead reads a tenant's resources (instances, catalog, usage, quota).
	ActionRead Action = "read"
	// ActionWrite creates, changes and deletes a tenant's resources
	// (instances, bindings, switchovers, silences).
	ActionWrite Action = "write"
	// ActionManageKeys creates, lists and revokes a tenant's API keys.
	ActionManageKeys Action = "manage-keys"
	// ActionAdmin is a platform operation: tenants, quotas, catalog plans,
	// inventory, audit log, broker credentials.
	ActionAdmin Action = "admin"
)

// Actions lists every action.
func Actions() []Action {
	return []Action{ActionRead, ActionWrite, ActionManageKeys, ActionAdmin}
}

// matrix is the one place that says which role may do what.
var matrix = map[Role]map[Action]bool{
	RolePlatformAdmin: {ActionRead: true, ActionWrite: true, ActionManageKeys: true, ActionAdmin: true},
	RoleTenantAdmin:   {ActionRead: true, ActionWrite: true, ActionManageKeys: true},
	RoleTenantMember:  {ActionRead: true, ActionWrite: true},
	RoleTenantViewer:  {ActionRead: true},
}

// Can reports whether role may perform action. Unknown roles may do nothing.
func Can(role Role, action Action) bool {
	return matrix[role][action]
}

// CanGrant reports whether a caller with role granter may issue a tenant API
// key with role granted. Tenant keys never carry platform-admin, and a caller
// cannot hand out more than it has.
func CanGrant(granter, granted Role) bool {
	if !Can(granter, ActionManageKeys) || granted == RolePlatformAdmin || !granted.Valid() {
		return false
	}
	for a := range matrix[granted] {
		if !Can(granter, a) {
			return false
		}
	}
	return true
}
