// Operator: the audit log of mutating requests, newest first
// (GET /api/v1/audit: ?tenant= and cursor paging, through the hash).
import { html, useEffect, useState } from '../html.js';
import * as api from '../api.js';
import { useAsync } from '../hooks.js';
import { Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { href, navigate } from '../router.js';

const PAGE_SIZE = 50;

function statusTone(s) {
  if (s >= 500) return 'badge-bad';
  if (s >= 400) return 'badge-warn';
  return 'badge-ok';
}

export default function Audit({ query }) {
  const tenant = query.tenant || '';
  const cursor = query.cursor || '';
  const [draft, setDraft] = useState(tenant);
  useEffect(() => setDraft(tenant), [tenant]); // a tenant link changed the filter
  const { data, error, loading, reload } = useAsync(
    (signal) => api.get('/api/v1/audit', { query: { limit: PAGE_SIZE, cursor, tenant }, signal }), [tenant, cursor]);
  const items = (data && data.items) || [];
  const apply = (e) => { e.preventDefault(); navigate('/audit', { tenant: draft.trim() }); };
  return html`<section aria-labelledby="audit-title">
    <div class="page-head">
      <h1 id="audit-title">Audit log</h1>
      <button type="button" class="secondary" onClick=${reload} disabled=${loading}>Refresh</button>
    </div>
    <p class="muted">Every POST, PUT, PATCH and DELETE that passed authentication and the rate limit, newest first.</p>
    <form class="card form-row filters" onSubmit=${apply} aria-label="Filter">
      <${Field} id="audit-tenant" label="Tenant" hint="The caller's tenant, or the tenant a platform admin acted on.">
        <input id="audit-tenant" value=${draft} placeholder="every tenant" autocomplete="off" spellcheck="false"
          onInput=${(e) => setDraft(e.currentTarget.value)} />
      </${Field}>
      <div class="filter-actions">
        <button type="submit">Filter</button>
        ${tenant ? html`<a href=${href('/audit')}>Clear</a>` : null}
      </div>
    </form>
    <${ProblemMessage} error=${error} title="The audit log could not be read" />
    ${data === undefined && loading ? html`<${Loading} what="Loading the audit log" />` : null}
    ${data && !items.length ? html`<${Empty} title=${tenant ? `Nothing audited for ${tenant}` : 'Nothing audited yet'}>
      <p>Entries appear when a key creates, changes or deletes something${tenant ? '; check the tenant id or clear the filter' : ''}.</p></${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="audit">
      <caption class="sr-only">Audit entries${tenant ? ' of ' + tenant : ''}</caption>
      <thead><tr><th scope="col">When</th><th scope="col">Request</th><th scope="col">Status</th>
        <th scope="col">Tenant</th><th scope="col">Key</th><th scope="col">Request id</th></tr></thead>
      <tbody>${items.map((a) => html`<tr key=${a.id}>
        <td><${Time} value=${a.at} /></td>
        <th scope="row"><code>${a.method} ${a.path}</code></th>
        <td><span class=${'badge ' + statusTone(a.status)}>${a.status}</span></td>
        <td>${a.tenant_id ? html`<a href=${href('/audit', { tenant: a.tenant_id })}>${a.tenant_id}</a>` : html`<span class="muted">—</span>`}</td>
        <td><code>${a.key_id}</code><div class="muted small">${a.role}</div></td>
        <td><code class="small">${a.request_id}</code></td>
      </tr>`)}</tbody>
    </table></div>` : null}
    ${data && (cursor || data.next_cursor) ? html`<nav class="pager" aria-label="Pages">
      ${cursor ? html`<a href=${href('/audit', { tenant })}>Newest</a>` : null}
      ${data.next_cursor ? html`<a href=${href('/audit', { tenant, cursor: data.next_cursor })}>Older</a>` : null}
    </nav>` : null}
  </section>`;
}
