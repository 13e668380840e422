// One tab of an instance on a page of its own (#/instances/:id/backups,
// …/failovers, …/streams, …/usage): the instance page includes the same
// components as tabs; this route serves deep links and the browser test.
import { html, useEffect, useState } from '../html.js';
import * as api from '../api.js';
import { useAsync } from '../hooks.js';
import { Badge, Empty, Loading, ProblemMessage } from '../components.js';
import { href, match } from '../router.js';
import { routes } from '../routes.js';

/** The tabs: path segment → label and module (loaded on first use). */
export const TABS = {
  backups: { label: 'Backups', load: () => import('./instance-backups.js') },
  failovers: { label: 'Failovers', load: () => import('./instance-failovers.js') },
  streams: { label: 'Change data', load: () => import('./instance-streams.js') },
  usage: { label: 'Usage', load: () => import('./instance-usage.js') },
};

export default function InstanceTab({ params, session }) {
  const tab = TABS[params.tab];
  const { data: instance, error } = useAsync(
    (signal) => api.get(`/api/v1/instances/${encodeURIComponent(params.id)}`, { signal }), [params.id]);
  const [mod, setMod] = useState(null);
  const [loadError, setLoadError] = useState(null);
  useEffect(() => {
    setMod(null);
    if (tab) tab.load().then(setMod, setLoadError);
  }, [params.tab]);

  if (!tab) {
    return html`<${Empty} title="Not found"><p>An instance has no <code>${params.tab}</code> page; it has ${Object.keys(TABS).join(', ')}.</p></${Empty}>`;
  }
  if (error) return html`<${ProblemMessage} error=${error} title=${error.status === 404 ? 'Instance not found' : 'The instance could not be read'} />`;
  if (!instance || !mod) return html`<${ProblemMessage} error=${loadError} /><${Loading} />`;
  const page = '/instances/' + instance.id;
  const C = mod.default;
  return html`<div class="instance-tab">
    <div class="crumbs"><a href="#/instances">Instances</a> <span aria-hidden="true">›</span>
      <h1>${match(routes, page) ? html`<a href=${href(page)}>${instance.name}</a>` : instance.name}</h1>
      <${Badge} value=${instance.state} /></div>
    <nav class="tabs" aria-label="Instance pages">${Object.entries(TABS).map(([k, t]) => html`<a href=${href(`${page}/${k}`)}
      aria-current=${k === params.tab ? 'page' : undefined}>${t.label}</a>`)}</nav>
    <${C} instance=${instance} session=${session} />
  </div>`;
}
