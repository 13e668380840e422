// The tenant's instances (a platform admin's: every tenant's, or one
// tenant's with the tenant filter, the one the API offers): state, engine,
// mode, region and health at a glance, names linking to the instance page,
// cursor paging through the hash (#/instances?cursor=…&tenant=…), refreshed
// while any instance is changing.
import { html, useEffect, useState } from '../html.js';
import * as api from '../api.js';
import { useAsync, useInterval } from '../hooks.js';
import { Badge, Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { href, match, navigate } from '../router.js';
import { routes } from '../routes.js';
import { canWrite, isOperator } from '../session.js';

const PAGE_SIZE = 20;
const CHANGING = new Set(['provisioning', 'updating', 'deleting']);

/** A link to path when a page exists for it (later pages add routes), else the text. */
function MaybeLink({ path, children }) {
  return match(routes, path) ? html`<a href=${'#' + path}>${children}</a>` : children;
}

/** The worst status of an instance's nodes, as one word plus counts. */
export function rollup(health) {
  const nodes = (health && health.nodes) || [];
  if (!nodes.length) return { value: 'unknown', label: 'unknown' };
  const count = (s) => nodes.filter((n) => n.status === s).length;
  const up = count('up');
  if (up === nodes.length) return { value: 'healthy', label: `healthy (${up}/${nodes.length})` };
  if (count('down')) return { value: 'down', label: `${count('down')} of ${nodes.length} down` };
  if (count('degraded')) return { value: 'degraded', label: `degraded (${up}/${nodes.length} up)` };
  return { value: 'unknown', label: `unknown (${up}/${nodes.length} up)` };
}

function Health({ instance }) {
  const [state, setState] = useState(null);
  useEffect(() => {
    if (instance.state === 'deleting' || instance.state === 'failed') { setState(null); return undefined; }
    const ctl = new AbortController();
    api.get(`/api/v1/instances/${encodeURIComponent(instance.id)}/health`, { signal: ctl.signal })
      .then((h) => setState(rollup(h)), (err) => { if (err.name !== 'AbortError') setState({ error: err }); });
    return () => ctl.abort();
  }, [instance.id, instance.state, instance.updated_at]);
  if (!state) return html`<span class="muted">—</span>`;
  if (state.error) return html`<span class="muted" title=${state.error.detail || state.error.message}>not known</span>`;
  return html`<${Badge} value=${state.value} label=${state.label} />`;
}

/** The operator's tenant filter; applied on submit (a new first page). */
function TenantFilter({ tenant }) {
  const [value, setValue] = useState(tenant);
  useEffect(() => setValue(tenant), [tenant]);
  const submit = (e) => { e.preventDefault(); navigate('/instances', { tenant: value.trim() }); };
  return html`<form class="filters" onSubmit=${submit} role="search" aria-label="Filter instances">
    <${Field} id="filter-tenant" label="Tenant" hint="Only this tenant's instances; empty for every tenant.">
      <input id="filter-tenant" name="tenant" type="search" autocomplete="off" spellcheck="false"
        value=${value} onInput=${(e) => setValue(e.currentTarget.value)} aria-describedby="filter-tenant-hint" />
    </${Field}>
    <button type="submit" class="secondary">Filter</button>
    ${tenant ? html`<a href=${href('/instances')}>Show every tenant</a>` : null}
  </form>`;
}

export default function Instances({ query, session }) {
  const cursor = query.cursor || '';
  const operator = isOperator(session);
  const tenant = operator ? query.tenant || '' : '';
  const { data, error, loading, reload } = useAsync(
    (signal) => api.get('/api/v1/instances', { query: { limit: PAGE_SIZE, cursor, tenant }, signal }), [cursor, tenant]);
  const items = (data && data.items) || [];
  useInterval(reload, items.some((i) => CHANGING.has(i.state)) ? 5000 : null);

  return html`<section aria-labelledby="instances-title">
    <div class="page-head">
      <h1 id="instances-title">Instances</h1>
      <div class="actions">
        ${canWrite(session) && match(routes, '/catalog') ? html`<a class="button" href="#/catalog">Order an instance</a>` : null}
        <button type="button" class="secondary" onClick=${reload} disabled=${loading}>Refresh</button>
      </div>
    </div>
    ${operator ? html`<${TenantFilter} tenant=${tenant} />` : null}
    <${ProblemMessage} error=${error} title="The instances could not be listed" />
    ${data === undefined && loading ? html`<${Loading} what="Loading instances" />` : null}
    ${data && !items.length && !cursor && tenant ? html`<${Empty} title="No instances of this tenant">
      <p>The tenant <code>${tenant}</code> has no instances (or does not exist). <a href=${href('/instances')}>Show every tenant's</a>.</p>
    </${Empty}>` : null}
    ${data && !items.length && !cursor && !tenant ? html`<${Empty} title="No instances yet">
      ${canWrite(session)
        ? html`<p>Order a MySQL or Redis instance ${match(routes, '/catalog') ? html`from the <a href="#/catalog">catalog</a>` : 'with the API: POST /api/v1/instances with a plan from GET /api/v1/catalog/services'}.
            It appears here while it is provisioned.</p>`
        : html`<p>Your key may only read. Ask a tenant admin or member to order an instance; it will appear here.</p>`}
    </${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="instances">
      <caption class="sr-only">Instances${operator ? ' of every tenant' : ''}</caption>
      <thead><tr>
        <th scope="col">Name</th>${operator ? html`<th scope="col">Tenant</th>` : null}
        <th scope="col">Engine</th><th scope="col">Mode</th><th scope="col">Region</th>
        <th scope="col">State</th><th scope="col">Health</th><th scope="col">Created</th>
      </tr></thead>
      <tbody>${items.map((i) => html`<tr key=${i.id}>
        <th scope="row"><${MaybeLink} path=${'/instances/' + i.id}>${i.name}</${MaybeLink}><div class="muted small">${i.plan}</div></th>
        ${operator ? html`<td><a href=${href('/instances', { tenant: i.tenant })} title=${'Only ' + i.tenant + '\'s instances'}>${i.tenant}</a></td>` : null}
        <td>${i.engine} ${i.version}</td>
        <td>${i.deployment_mode}<div class="muted small">${i.replication_mode}</div></td>
        <td>${i.region || html`<span class="muted">—</span>`}</td>
        <td><${Badge} value=${i.state} />${i.step && i.step !== 'done' ? html`<div class="muted small">${i.step}</div>` : null}
          ${i.reason ? html`<div class="small bad-text">${i.reason}</div>` : null}</td>
        <td><${Health} instance=${i} /></td>
        <td><${Time} value=${i.created_at} /></td>
      </tr>`)}</tbody>
    </table></div>` : null}
    ${data && (cursor || data.next_cursor) ? html`<nav class="pager" aria-label="Pages">
      ${cursor ? html`<a href=${href('/instances', { tenant })}>First page</a>` : null}
      ${data.next_cursor ? html`<a href=${href('/instances', { cursor: data.next_cursor, tenant })}>Next page</a>` : null}
    </nav>` : null}
  </section>`;
}
