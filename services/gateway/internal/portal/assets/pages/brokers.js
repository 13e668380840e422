// Operator: the Open Service Broker credentials OSB platforms use for /v2
// (GET/POST /api/v1/catalog/broker-credentials, DELETE …/{id}); a new
// credential's password is shown once.
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync } from '../hooks.js';
import { Badge, Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { href } from '../router.js';
import { ShownOnce } from '../secret.js';

function CreateCredential({ onCreated }) {
  const [name, setName] = useState('');
  const [tenant, setTenant] = useState('');
  const [created, setCreated] = useState(null);
  const { run: issue, busy, error } = useAction(async () => {
    const body = { name: name.trim() };
    if (tenant.trim()) body.tenant = tenant.trim();
    const c = await api.post('/api/v1/catalog/broker-credentials', body);
    setCreated(c);
    setName('');
    setTenant('');
    onCreated();
  });
  const submit = async (e) => {
    e.preventDefault();
    await issue();
  };
  const f = (error && error.fields) || {};
  return html`<form class="card" onSubmit=${submit} aria-labelledby="new-cred-title" novalidate>
    <h2 id="new-cred-title">New broker credential</h2>
    ${created ? html`<${ShownOnce} id="new-credential" label=${`Password of ${created.username}`} value=${created.password || ''}
        onDone=${() => setCreated(null)}>
        <p class="small">The OSB platform signs in to <code>${location.origin}/v2</code> with HTTP Basic user <code>${created.username}</code> and this password.</p>
      </${ShownOnce}>` : null}
    <div class="form-row">
      <${Field} id="cred-name" label="Name" error=${f.name} hint="Lower-case letters, digits and dashes, e.g. cf-prod.">
        <input id="cred-name" value=${name} required maxlength="63" autocomplete="off" spellcheck="false"
          aria-invalid=${f.name ? 'true' : undefined} onInput=${(e) => setName(e.currentTarget.value)} />
      </${Field}>
      <${Field} id="cred-tenant" label="Tenant (optional)" error=${f.tenant} hint="Binds the credential to one tenant (docs/osb.md).">
        <input id="cred-tenant" value=${tenant} maxlength="63" autocomplete="off" spellcheck="false"
          aria-invalid=${f.tenant ? 'true' : undefined} onInput=${(e) => setTenant(e.currentTarget.value)} />
      </${Field}>
    </div>
    ${error && !f.name && !f.tenant ? html`<${ProblemMessage} error=${error} title="The credential could not be issued" />` : null}
    <button type="submit" disabled=${busy || !name.trim()}>${busy ? 'Issuing…' : 'Issue credential'}</button>
  </form>`;
}

function Revoke({ cred, onRevoked }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  const revoke = async () => {
    try {
      await api.del(`/api/v1/catalog/broker-credentials/${encodeURIComponent(cred.id)}`);
      onRevoked();
    } catch (err) {
      setError(err);
    }
  };
  if (error) return html`<${ProblemMessage} error=${error} title="Revoking failed" />`;
  if (!confirming) return html`<button type="button" class="secondary" onClick=${() => setConfirming(true)}>Revoke</button>`;
  return html`<span class="confirm">
    <button type="button" class="danger" onClick=${revoke}>Revoke ${cred.name}</button>
    <button type="button" class="secondary" onClick=${() => setConfirming(false)}>Cancel</button>
  </span>`;
}

export default function Brokers({ query }) {
  const cursor = query.cursor || '';
  const { data, error, loading, reload } = useAsync(
    (signal) => api.get('/api/v1/catalog/broker-credentials', { query: { limit: 100, cursor }, signal }), [cursor]);
  const items = (data && data.items) || [];
  return html`<section aria-labelledby="brokers-title">
    <div class="page-head">
      <h1 id="brokers-title">Broker credentials</h1>
      <button type="button" class="secondary" onClick=${reload} disabled=${loading}>Refresh</button>
    </div>
    <p class="muted">Open Service Broker platforms (Cloud Foundry, the Kubernetes service catalog) call <code>/v2</code> with one of these.</p>
    <${CreateCredential} onCreated=${reload} />
    <${ProblemMessage} error=${error} title="The credentials could not be listed" />
    ${data === undefined && loading ? html`<${Loading} what="Loading credentials" />` : null}
    ${data && !items.length && !cursor ? html`<${Empty} title="No broker credentials">
      <p>Issue one above for each OSB platform that should order Canopy's plans.</p></${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="broker-credentials">
      <caption class="sr-only">Broker credentials</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">User name</th><th scope="col">Tenant</th>
        <th scope="col">Created</th><th scope="col">State</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${items.map((c) => html`<tr key=${c.id}>
        <th scope="row">${c.name}<div class="muted small">by ${c.created_by}</div></th>
        <td><code>${c.username}</code></td>
        <td>${c.tenant || html`<span class="muted">any</span>`}</td>
        <td><${Time} value=${c.created_at} /></td>
        <td>${c.active ? html`<${Badge} value="ready" label="active" />` : html`<${Badge} value="deleted" label="revoked" /><div class="small"><${Time} value=${c.revoked_at} /></div>`}</td>
        <td>${c.active ? html`<${Revoke} cred=${c} onRevoked=${reload} />` : null}</td>
      </tr>`)}</tbody>
    </table></div>` : null}
    ${data && (cursor || data.next_cursor) ? html`<nav class="pager" aria-label="Pages">
      ${cursor ? html`<a href=${href('/broker-credentials')}>First page</a>` : null}
      ${data.next_cursor ? html`<a href=${href('/broker-credentials', { cursor: data.next_cursor })}>Next page</a>` : null}
    </nav>` : null}
  </section>`;
}
