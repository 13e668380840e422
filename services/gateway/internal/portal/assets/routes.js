// The route table: one line per page. A page is a module under pages/
// whose default export is a component receiving
//   { params, query, session }
// (params from ':name' segments, query from the hash's ?a=b, session as
// GET /api/v1/sessions/current answers it). `nav` puts the page in the
// navigation under that label; `roles` are who may open it (and see it in
// the navigation); pages are loaded when first opened.
export const ROLES = {
  all: ['platform-admin', 'tenant-admin', 'tenant-member', 'tenant-viewer'],
  tenant: ['tenant-admin', 'tenant-member', 'tenant-viewer'],
  operator: ['platform-admin'],
};

export const routes = [
  { path: '/instances', nav: 'Instances', title: 'Instances', roles: ROLES.all, load: () => import('./pages/instances.js') },
  { path: '/catalog', nav: 'Catalog', title: 'Catalog', roles: ROLES.all, load: () => import('./pages/catalog.js') },
  { path: '/alerts', nav: 'Alerts', title: 'Alerts', roles: ROLES.all, load: () => import('./pages/alerts.js') },
  { path: '/usage', nav: 'Usage', title: 'Usage and cost', roles: ROLES.all, load: () => import('./pages/usage.js') },
  { path: '/settings', nav: 'Settings', title: 'Settings', roles: ROLES.tenant, load: () => import('./pages/settings.js') },
  { path: '/fleet', nav: 'Fleet', title: 'Fleet', roles: ROLES.operator, load: () => import('./pages/fleet.js') },
  { path: '/tenants', nav: 'Tenants', title: 'Tenants', roles: ROLES.operator, load: () => import('./pages/tenants.js') },
  { path: '/tenants/:id', title: 'Tenant', roles: ROLES.operator, load: () => import('./pages/tenant.js') },
  { path: '/inventory', nav: 'Inventory', title: 'Inventory', roles: ROLES.operator, load: () => import('./pages/inventory.js') },
  { path: '/simulator', nav: 'Simulator', title: 'Placement simulator', roles: ROLES.operator, load: () => import('./pages/simulator.js') },
  { path: '/broker-credentials', nav: 'Brokers', title: 'Broker credentials', roles: ROLES.operator, load: () => import('./pages/brokers.js') },
  { path: '/audit', nav: 'Audit', title: 'Audit log', roles: ROLES.operator, load: () => import('./pages/audit.js') },
  { path: '/instances/:id', title: 'Instance', roles: ROLES.all, load: () => import('./pages/instance.js') },
  // Last, so a more specific /instances/:id/… route of another page wins.
  { path: '/instances/:id/:tab', title: 'Instance', roles: ROLES.all, load: () => import('./pages/instance-tab.js') },
];

/** Where a signed-in user lands. */
export function home(session) {
  return '/instances';
}
