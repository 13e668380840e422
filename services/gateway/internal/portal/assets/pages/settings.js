// The tenant's settings (#/settings): the quota and how much of it the
// tenant's instances use, and (for a tenant-admin) its API keys: list,
// create with a role (the key is shown once, with a copy button) and
// revoke. APIs: GET /api/v1/tenants/{t}/quota, /api-keys (docs/gateway.md).
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync } from '../hooks.js';
import { Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { canManageKeys, tenantOf } from '../session.js';
import { ConfirmButton, CopyButton, StateBadge, idempotencyKey, num } from '../extras.js';

const ROLES = [
  ['tenant-viewer', 'viewer: reads everything, changes nothing'],
  ['tenant-member', 'member: orders, changes and deletes instances'],
  ['tenant-admin', 'admin: a member who also manages API keys'],
];

/** Every page of a cursor-paged list (bounded: a tenant has a few hundred at most). */
async function all(path, query, signal) {
  const items = [];
  let cursor = '';
  for (let i = 0; i < 20; i++) {
    const page = await api.get(path, { query: { ...query, limit: 500, cursor }, signal });
    items.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return items;
}

/** What the tenant's instances hold, as provisioning counts it: every node of every instance not deleted. */
async function usage(signal) {
  const [instances, plans] = await Promise.all([all('/api/v1/instances', {}, signal), all('/api/v1/catalog/plans', {}, signal)]);
  const byId = new Map(plans.map((p) => [p.id, p]));
  const u = { instances: 0, vcpu: 0, memory_mb: 0, storage_gb: 0 };
  for (const i of instances) {
    if (i.state === 'deleted') continue;
    const p = byId.get(i.plan_id);
    const n = p ? p.nodes.count : (i.nodes || []).length;
    u.instances += 1;
    if (p) {
      u.vcpu += p.resources.vcpu * n;
      u.memory_mb += p.resources.memory_mb * n;
      u.storage_gb += p.resources.storage_gb * n;
    }
  }
  return u;
}

function Meter({ label, used, limit, unit = '' }) {
  const pct = limit > 0 ? Math.min(100, (used / limit) * 100) : 0;
  return html`<div class="quota-row">
    <div class="quota-label"><b>${label}</b> <span>${num(used, 2)}${unit} of ${limit > 0 ? `${num(limit, 2)}${unit}` : 'no limit'}</span></div>
    ${limit > 0 ? html`<progress max="100" value=${pct} aria-label=${`${label}: ${Math.round(pct)}% of the quota`}>${Math.round(pct)}%</progress>` : null}
  </div>`;
}

function Quota({ tenant }) {
  const q = useAsync((signal) => api.get(`/api/v1/tenants/${encodeURIComponent(tenant)}/quota`, { signal }), [tenant]);
  const u = useAsync((signal) => usage(signal), [tenant]);
  return html`<section aria-labelledby="quota-title" class="block" data-testid="quota">
    <h2 id="quota-title">Quota</h2>
    <${ProblemMessage} error=${q.error} title="The quota could not be read" />
    <${ProblemMessage} error=${u.error} title="The usage could not be counted" />
    ${!q.data || !u.data ? (q.error || u.error ? null : html`<${Loading} what="Loading the quota" />`) : html`<div class="card quota">
      <${Meter} label="Instances" used=${u.data.instances} limit=${q.data.max_instances} />
      <${Meter} label="vCPUs" used=${u.data.vcpu} limit=${q.data.max_vcpu} />
      <${Meter} label="Memory" used=${u.data.memory_mb / 1024} limit=${q.data.max_memory_mb / 1024} unit=" GiB" />
      <${Meter} label="Storage" used=${u.data.storage_gb} limit=${q.data.max_storage_gb} unit=" GB" />
      <p class="muted small">Summed over every node of your instances that are not deleted; an order beyond a limit is refused. A platform admin sets the quota.</p>
    </div>`}
  </section>`;
}

function NewKey({ created, onDone }) {
  return html`<div class="card new-key" role="status" data-testid="new-key">
    <h3>Key “${created.name}” (${created.role}) created</h3>
    <p><b>Copy it now: it is shown only this once.</b> Canopy keeps only a hash of it.</p>
    <p><code class="secret" data-testid="new-key-value">${created.key}</code></p>
    <${CopyButton} text=${created.key} label="Copy key" />
    <p><button type="button" onClick=${onDone}>I have stored it</button></p>
  </div>`;
}

function Keys({ session, tenant }) {
  const base = `/api/v1/tenants/${encodeURIComponent(tenant)}/api-keys`;
  const { data, error, loading, reload } = useAsync((signal) => all(base, {}, signal), [tenant]);
  const [name, setName] = useState('');
  const [role, setRole] = useState('tenant-member');
  const [created, setCreated] = useState(null);
  const [revokeError, setRevokeError] = useState(null);
  const items = data || [];

  const { run: createKey, busy, error: createError } = useAction(async () => {
    const k = await api.post(base, { name: name.trim(), role }, { headers: { 'Idempotency-Key': idempotencyKey() } });
    setCreated(k);
    setName('');
    reload();
  });
  const create = async (e) => {
    e.preventDefault();
    await createKey();
  };
  const revoke = async (k) => {
    setRevokeError(null);
    try { await api.del(`${base}/${encodeURIComponent(k.id)}`); reload(); } catch (err) { setRevokeError(err); }
  };
  const f = createError ? createError.fields : {};
  return html`<section aria-labelledby="keys-title" class="block">
    <h2 id="keys-title">API keys</h2>
    ${created ? html`<${NewKey} created=${created} onDone=${() => setCreated(null)} />` : null}
    <${ProblemMessage} error=${error} title="The keys could not be listed" />
    <${ProblemMessage} error=${revokeError} title="The key could not be revoked" />
    ${data === undefined && loading ? html`<${Loading} what="Loading keys" />` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="keys">
      <caption class="sr-only">API keys of ${tenant}</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Created</th><th scope="col">Last used</th>
        <th scope="col">State</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${items.map((k) => html`<tr key=${k.id} data-key-name=${k.name}>
        <th scope="row">${k.name}<div class="muted small"><code>${k.id}</code></div></th>
        <td>${k.role}</td>
        <td><${Time} value=${k.created_at} /></td>
        <td><${Time} value=${k.last_used_at} /></td>
        <td>${k.revoked_at ? html`<${StateBadge} value="revoked" /> <${Time} value=${k.revoked_at} />` : html`<${StateBadge} value="active" />`}</td>
        <td>${k.revoked_at ? null : k.id === session.principal.key_id
          ? html`<span class="muted small">this session's key</span>`
          : html`<${ConfirmButton} label="Revoke" confirmLabel="Revoke key" danger=${true} testid=${'revoke-' + k.name}
              question=${`Revoke ${k.name}? Programs and sessions using it stop working at once.`} onConfirm=${() => revoke(k)} />`}</td>
      </tr>`)}</tbody>
    </table></div>` : null}
    <form class="card" onSubmit=${create} aria-labelledby="key-form-title" novalidate data-testid="key-form">
      <h3 id="key-form-title">New API key</h3>
      <${Field} id="key-name" label="Name" error=${f.name} hint="Who or what uses it, e.g. ci-deploy.">
        <input id="key-name" value=${name} required onInput=${(e) => setName(e.currentTarget.value)} aria-invalid=${f.name ? 'true' : undefined} />
      </${Field}>
      <${Field} id="key-role" label="Role" error=${f.role}>
        <select id="key-role" value=${role} onChange=${(e) => setRole(e.currentTarget.value)}>
          ${ROLES.map(([r, what]) => html`<option value=${r}>${what}</option>`)}
        </select>
      </${Field}>
      <${ProblemMessage} error=${createError} title="The key was not created" />
      <button type="submit" disabled=${busy || !name.trim()}>${busy ? 'Creating…' : 'Create key'}</button>
    </form>
  </section>`;
}

export default function Settings({ session }) {
  const tenant = tenantOf(session);
  if (!tenant) {
    return html`<${Empty} title="No tenant"><p>These are a tenant's settings; a platform admin manages tenants' keys and quotas through the API.</p></${Empty}>`;
  }
  return html`<section aria-labelledby="settings-title">
    <h1 id="settings-title">Settings of ${tenant}</h1>
    <${Quota} tenant=${tenant} />
    ${canManageKeys(session)
      ? html`<${Keys} session=${session} tenant=${tenant} />`
      : html`<section class="block" aria-labelledby="keys-title"><h2 id="keys-title">API keys</h2>
          <p class="muted">Only a tenant admin manages the tenant's API keys; ask one for a key.</p></section>`}
  </section>`;
}
