// Operator: the fleet — every instance of every tenant with counts by state
// and by health, filtered by tenant (the API's ?tenant=), state and health
// (here: the list API has no such filters), each linking to its page.
// Health is GET /api/v1/instances/{id}/health per instance, a few at a time.
import { html, useEffect, useState } from '../html.js';
import * as api from '../api.js';
import { useAsync, useInterval } from '../hooks.js';
import { Badge, Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { href, match, navigate } from '../router.js';
import { routes } from '../routes.js';
import { rollup } from './instances.js';

const MAX_INSTANCES = 5000; // what one view loads; beyond it, filter by tenant
const SHOWN = 100;
const STATES = ['provisioning', 'ready', 'updating', 'deleting', 'failed'];
const HEALTHS = ['healthy', 'degraded', 'down', 'unknown'];
const CHANGING = new Set(['provisioning', 'updating', 'deleting']);

async function allInstances(tenant, signal) {
  const out = [];
  let cursor = '';
  do {
    const page = await api.get('/api/v1/instances', { query: { limit: 500, cursor, tenant }, signal });
    out.push(...page.items);
    cursor = page.next_cursor || '';
  } while (cursor && out.length < MAX_INSTANCES);
  return { items: out, truncated: !!cursor };
}

/** Health of each instance by id ({value,label} or {error}), fetched 6 at a time. */
function useHealth(items) {
  const [health, setHealth] = useState({});
  useEffect(() => {
    const ctl = new AbortController();
    const todo = items.filter((i) => i.state !== 'deleting' && i.state !== 'failed');
    let next = 0;
    const worker = async () => {
      while (next < todo.length && !ctl.signal.aborted) {
        const i = todo[next++];
        try {
          const h = await api.get(`/api/v1/instances/${encodeURIComponent(i.id)}/health`, { signal: ctl.signal });
          setHealth((s) => ({ ...s, [i.id]: rollup(h) }));
        } catch (err) {
          if (err.name === 'AbortError') return;
          setHealth((s) => ({ ...s, [i.id]: { value: 'unknown', label: 'not known', error: err } }));
        }
      }
    };
    for (let k = 0; k < 6; k++) worker();
    return () => ctl.abort();
  }, [items]);
  return health;
}

function Filters({ query, counts, healthCounts }) {
  const set = (k) => (e) => navigate('/fleet', { ...query, [k]: e.currentTarget.value, shown: '' }, { replace: true });
  const [tenant, setTenant] = useState(query.tenant || '');
  return html`<form class="card form-row filters" aria-label="Filters" onSubmit=${(e) => { e.preventDefault(); navigate('/fleet', { ...query, tenant: tenant.trim(), shown: '' }); }}>
    <${Field} id="fleet-tenant" label="Tenant">
      <input id="fleet-tenant" value=${tenant} placeholder="every tenant" autocomplete="off" spellcheck="false"
        onInput=${(e) => setTenant(e.currentTarget.value)} onChange=${(e) => navigate('/fleet', { ...query, tenant: e.currentTarget.value.trim(), shown: '' })} />
    </${Field}>
    <${Field} id="fleet-state" label="State">
      <select id="fleet-state" value=${query.state || ''} onChange=${set('state')}>
        <option value="">Any state</option>
        ${STATES.map((s) => html`<option value=${s}>${s} (${counts[s] || 0})</option>`)}
      </select>
    </${Field}>
    <${Field} id="fleet-health" label="Health">
      <select id="fleet-health" value=${query.health || ''} onChange=${set('health')}>
        <option value="">Any health</option>
        ${HEALTHS.map((h) => html`<option value=${h}>${h} (${healthCounts[h] || 0})</option>`)}
      </select>
    </${Field}>
  </form>`;
}

export default function Fleet({ query }) {
  const tenant = query.tenant || '';
  const { data, error, loading, reload } = useAsync((signal) => allInstances(tenant, signal), [tenant]);
  const items = (data && data.items) || [];
  const health = useHealth(items);
  useInterval(reload, items.some((i) => CHANGING.has(i.state)) ? 10000 : null);

  const healthOf = (i) => health[i.id];
  const counts = {};
  const healthCounts = {};
  for (const i of items) {
    counts[i.state] = (counts[i.state] || 0) + 1;
    const h = healthOf(i);
    if (h) healthCounts[h.value] = (healthCounts[h.value] || 0) + 1;
  }
  const filtered = items.filter((i) => (!query.state || i.state === query.state)
    && (!query.health || (healthOf(i) && healthOf(i).value === query.health)));
  const shown = Math.max(SHOWN, Number(query.shown) || SHOWN);
  const linkable = match(routes, '/instances/x');

  return html`<section aria-labelledby="fleet-title">
    <div class="page-head">
      <h1 id="fleet-title">Fleet</h1>
      <button type="button" class="secondary" onClick=${reload} disabled=${loading}>Refresh</button>
    </div>
    ${data ? html`<p class="fleet-summary" data-testid="fleet-summary">
      <strong>${items.length}</strong> instance${items.length === 1 ? '' : 's'}${tenant ? html` of <b>${tenant}</b>` : ' of every tenant'}${items.length ? ':' : '.'}
      ${STATES.filter((s) => counts[s]).map((s) => html` <${Badge} value=${s} label=${`${counts[s]} ${s}`} />`)}
      ${HEALTHS.filter((h) => healthCounts[h]).map((h) => html` <${Badge} value=${h} label=${`${healthCounts[h]} ${h}`} />`)}
    </p>` : null}
    <${Filters} key=${tenant} query=${query} counts=${counts} healthCounts=${healthCounts} />
    <${ProblemMessage} error=${error} title="The instances could not be listed" />
    ${data && data.truncated ? html`<p class="notice">Only the first ${MAX_INSTANCES} instances are loaded; filter by tenant to see the others.</p>` : null}
    ${data === undefined && loading ? html`<${Loading} what="Loading the fleet" />` : null}
    ${data && !items.length ? html`<${Empty} title=${tenant ? `No instances of ${tenant}` : 'No instances yet'}>
      <p>${tenant ? 'Check the tenant id, or clear the filter.' : 'Tenants order instances from the catalog; they appear here while they are provisioned.'}</p></${Empty}>` : null}
    ${items.length && !filtered.length ? html`<${Empty} title="No instance matches"><p>Change or clear the state and health filters.</p></${Empty}>` : null}
    ${filtered.length ? html`<div class="table-wrap"><table class="list" data-testid="fleet">
      <caption class="sr-only">Instances of every tenant</caption>
      <thead><tr><th scope="col">Instance</th><th scope="col">Tenant</th><th scope="col">Engine</th><th scope="col">Mode</th>
        <th scope="col">Region</th><th scope="col">State</th><th scope="col">Health</th><th scope="col">Created</th></tr></thead>
      <tbody>${filtered.slice(0, shown).map((i) => html`<tr key=${i.id}>
        <th scope="row">${linkable ? html`<a href=${'#/instances/' + encodeURIComponent(i.id)}>${i.name}</a>` : i.name}
          <div class="muted small"><code>${i.id}</code></div></th>
        <td><a href=${href('/fleet', { ...query, tenant: i.tenant, shown: '' })} title=${`Only ${i.tenant}'s instances`}>${i.tenant}</a></td>
        <td>${i.engine} ${i.version}<div class="muted small">${i.plan}</div></td>
        <td>${i.deployment_mode}</td>
        <td>${i.region || html`<span class="muted">—</span>`}</td>
        <td><${Badge} value=${i.state} />${i.reason ? html`<div class="small bad-text">${i.reason}</div>` : null}</td>
        <td>${healthOf(i) ? html`<${Badge} value=${healthOf(i).value} label=${healthOf(i).label} />` : html`<span class="muted">—</span>`}</td>
        <td><${Time} value=${i.created_at} /></td>
      </tr>`)}</tbody>
    </table></div>` : null}
    ${filtered.length > shown ? html`<nav class="pager" aria-label="More">
      <a href=${href('/fleet', { ...query, shown: shown + SHOWN })}>Show ${Math.min(SHOWN, filtered.length - shown)} more of ${filtered.length - shown}</a>
    </nav>` : null}
  </section>`;
}
