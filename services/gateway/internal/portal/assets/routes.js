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
  { path: '/instances/:id', title: 'Instance', roles: ROLES.all, load: () => import('./pages/instance.js') },
  { path: '/catalog', nav: 'Catalog', title: 'Catalog', roles: ROLES.all, load: () => import('./pages/catalog.js') },
];

/** Where a signed-in user lands. */
export function home(session) {
  return '/instances';
}
