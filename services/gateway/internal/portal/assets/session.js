// What the signed-in principal may do, for deciding which controls to show
// (the API decides what is allowed; a viewer simply sees no button that
// would answer 403). session is GET /api/v1/sessions/current's answer.

export const role = (session) => (session && session.principal.role) || '';
export const tenantOf = (session) => (session && session.principal.tenant_id) || '';
export const isOperator = (session) => role(session) === 'platform-admin';
/** May order, change and delete instances and their bindings. */
export const canWrite = (session) => ['platform-admin', 'tenant-admin', 'tenant-member'].includes(role(session));
/** May create and revoke API keys. */
export const canManageKeys = (session) => ['platform-admin', 'tenant-admin'].includes(role(session));
