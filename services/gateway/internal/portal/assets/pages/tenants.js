// Operator: every tenant (GET /api/v1/tenants, cursor paging through the
// hash) and a form to create one (POST /api/v1/tenants); a tenant's keys,
// quota and rate limit are on its own page (tenant.js).
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync } from '../hooks.js';
import { Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { href, navigate } from '../router.js';

const PAGE_SIZE = 50;

/** "3 instances · 8 vCPU · …" for a quota, 0 meaning no limit. */
export function quotaSummary(q) {
  if (!q) return '—';
  const parts = [
    q.max_instances ? `${q.max_instances} instances` : '',
    q.max_vcpu ? `${q.max_vcpu} vCPU` : '',
    q.max_memory_mb ? `${q.max_memory_mb} MiB` : '',
    q.max_storage_gb ? `${q.max_storage_gb} GiB` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(' · ') : 'no limit';
}

function CreateTenant() {
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  // Busy stays on after creating: the page navigates to the new tenant.
  const { run: create, busy, error } = useAction(async () => {
    const t = await api.post('/api/v1/tenants', { id: id.trim(), name: name.trim() });
    navigate('/tenants/' + encodeURIComponent(t.id), { created: '1' });
  }, { keepBusy: true });
  const submit = async (e) => {
    e.preventDefault();
    await create();
  };
  const f = (error && error.fields) || {};
  const other = error && !f.id && !f.name;
  return html`<form class="card form-inline" onSubmit=${submit} aria-labelledby="new-tenant-title" novalidate>
    <h2 id="new-tenant-title">New tenant</h2>
    <div class="form-row">
      <${Field} id="tenant-id" label="Id" error=${f.id} hint="Lower-case letters, digits and dashes; cannot be changed.">
        <input id="tenant-id" value=${id} required pattern="[a-z0-9][a-z0-9-]{0,62}" spellcheck="false" autocomplete="off"
          aria-invalid=${f.id ? 'true' : undefined} onInput=${(e) => setId(e.currentTarget.value)} />
      </${Field}>
      <${Field} id="tenant-name" label="Name" error=${f.name}>
        <input id="tenant-name" value=${name} required maxlength="200" autocomplete="off"
          aria-invalid=${f.name ? 'true' : undefined} onInput=${(e) => setName(e.currentTarget.value)} />
      </${Field}>
    </div>
    ${other ? html`<${ProblemMessage} error=${error} title="The tenant could not be created" />` : null}
    <button type="submit" disabled=${busy || !id.trim() || !name.trim()}>${busy ? 'Creating…' : 'Create tenant'}</button>
  </form>`;
}

export default function Tenants({ query }) {
  const cursor = query.cursor || '';
  const { data, error, loading, reload } = useAsync(
    (signal) => api.get('/api/v1/tenants', { query: { limit: PAGE_SIZE, cursor }, signal }), [cursor]);
  const items = (data && data.items) || [];
  return html`<section aria-labelledby="tenants-title">
    <div class="page-head">
      <h1 id="tenants-title">Tenants</h1>
      <button type="button" class="secondary" onClick=${reload} disabled=${loading}>Refresh</button>
    </div>
    <${CreateTenant} />
    <${ProblemMessage} error=${error} title="The tenants could not be listed" />
    ${data === undefined && loading ? html`<${Loading} what="Loading tenants" />` : null}
    ${data && !items.length && !cursor ? html`<${Empty} title="No tenants yet">
      <p>Create one above, then give it an API key on its page.</p></${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="tenants">
      <caption class="sr-only">Tenants</caption>
      <thead><tr><th scope="col">Tenant</th><th scope="col">Quota</th><th scope="col">Rate limit</th><th scope="col">Created</th></tr></thead>
      <tbody>${items.map((t) => html`<tr key=${t.id}>
        <th scope="row"><a href=${'#/tenants/' + encodeURIComponent(t.id)}>${t.id}</a><div class="muted small">${t.name}</div></th>
        <td>${quotaSummary(t.quota)}</td>
        <td>${t.rate_limit.requests_per_second}/s, burst ${t.rate_limit.burst}${t.rate_limit.default ? html` <span class="muted small">(default)</span>` : null}</td>
        <td><${Time} value=${t.created_at} /></td>
      </tr>`)}</tbody>
    </table></div>` : null}
    ${data && (cursor || data.next_cursor) ? html`<nav class="pager" aria-label="Pages">
      ${cursor ? html`<a href=${href('/tenants')}>First page</a>` : null}
      ${data.next_cursor ? html`<a href=${href('/tenants', { cursor: data.next_cursor })}>Next page</a>` : null}
    </nav>` : null}
  </section>`;
}
