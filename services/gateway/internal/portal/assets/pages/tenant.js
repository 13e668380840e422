// Operator: one tenant — its API keys (create with a role, the key shown
// once; revoke), its quota and its API rate limit (read and set).
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync } from '../hooks.js';
import { Badge, Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { href } from '../router.js';
import { ShownOnce } from '../secret.js';

const KEY_ROLES = ['tenant-admin', 'tenant-member', 'tenant-viewer'];

function CreateKey({ tenant, onCreated }) {
  const [name, setName] = useState('');
  const [keyRole, setKeyRole] = useState('tenant-admin');
  const [created, setCreated] = useState(null);
  const { run: create, busy, error } = useAction(async () => {
    const k = await api.post(`/api/v1/tenants/${encodeURIComponent(tenant)}/api-keys`, { name: name.trim(), role: keyRole });
    setCreated(k);
    setName('');
    onCreated();
  });
  const submit = async (e) => {
    e.preventDefault();
    await create();
  };
  const f = (error && error.fields) || {};
  return html`<form class="card" onSubmit=${submit} aria-labelledby="new-key-title" novalidate>
    <h3 id="new-key-title">New API key</h3>
    ${created ? html`<${ShownOnce} id="new-key" label=${`Key ${created.name} (${created.role})`} value=${created.key}
        onDone=${() => setCreated(null)} />` : null}
    <div class="form-row">
      <${Field} id="key-name" label="Name" error=${f.name} hint="What the key is for, e.g. ci or terraform.">
        <input id="key-name" value=${name} required maxlength="100" autocomplete="off"
          aria-invalid=${f.name ? 'true' : undefined} onInput=${(e) => setName(e.currentTarget.value)} />
      </${Field}>
      <${Field} id="key-role" label="Role" error=${f.role}>
        <select id="key-role" value=${keyRole} onChange=${(e) => setKeyRole(e.currentTarget.value)}>
          ${KEY_ROLES.map((r) => html`<option value=${r}>${r}</option>`)}
        </select>
      </${Field}>
    </div>
    ${error && !f.name && !f.role ? html`<${ProblemMessage} error=${error} title="The key could not be created" />` : null}
    <button type="submit" disabled=${busy || !name.trim()}>${busy ? 'Creating…' : 'Create key'}</button>
  </form>`;
}

function RevokeButton({ tenant, apiKey, onRevoked }) {
  const [confirming, setConfirming] = useState(false);
  // Busy stays on after revoking: the reloaded list drops this button.
  const { run: revoke, busy, error } = useAction(async () => {
    await api.del(`/api/v1/tenants/${encodeURIComponent(tenant)}/api-keys/${encodeURIComponent(apiKey.id)}`);
    onRevoked();
  }, { keepBusy: true });
  if (error) return html`<${ProblemMessage} error=${error} title="Revoking failed" />`;
  if (!confirming) return html`<button type="button" class="secondary" onClick=${() => setConfirming(true)}>Revoke</button>`;
  return html`<span class="confirm">
    <button type="button" class="danger" onClick=${revoke} disabled=${busy} aria-label=${`Confirm revoking ${apiKey.name}`}>Revoke ${apiKey.name}</button>
    <button type="button" class="secondary" onClick=${() => setConfirming(false)}>Cancel</button>
  </span>`;
}

function Keys({ tenant, cursor }) {
  const { data, error, loading, reload } = useAsync(
    (signal) => api.get(`/api/v1/tenants/${encodeURIComponent(tenant)}/api-keys`, { query: { limit: 100, cursor }, signal }),
    [tenant, cursor]);
  const items = (data && data.items) || [];
  return html`<section aria-labelledby="keys-title" class="block">
    <h2 id="keys-title">API keys</h2>
    <${CreateKey} tenant=${tenant} onCreated=${reload} />
    <${ProblemMessage} error=${error} title="The keys could not be listed" />
    ${data === undefined && loading ? html`<${Loading} what="Loading keys" />` : null}
    ${data && !items.length ? html`<${Empty} title="No keys yet"><p>Create a key above and give it to the tenant; it signs in with it.</p></${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="keys">
      <caption class="sr-only">API keys of ${tenant}</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Created</th>
        <th scope="col">Last used</th><th scope="col">State</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${items.map((k) => html`<tr key=${k.id}>
        <th scope="row">${k.name}<div class="muted small"><code>${k.id}</code></div></th>
        <td>${k.role}</td>
        <td><${Time} value=${k.created_at} /></td>
        <td><${Time} value=${k.last_used_at} /></td>
        <td>${k.revoked_at ? html`<${Badge} value="deleted" label="revoked" /> <div class="small"><${Time} value=${k.revoked_at} /></div>` : html`<${Badge} value="ready" label="active" />`}</td>
        <td>${k.revoked_at ? null : html`<${RevokeButton} tenant=${tenant} apiKey=${k} onRevoked=${reload} />`}</td>
      </tr>`)}</tbody>
    </table></div>` : null}
    ${data && (cursor || data.next_cursor) ? html`<nav class="pager" aria-label="Pages of keys">
      ${cursor ? html`<a href=${href('/tenants/' + tenant)}>First keys</a>` : null}
      ${data.next_cursor ? html`<a href=${href('/tenants/' + tenant, { keys: data.next_cursor })}>More keys</a>` : null}
    </nav>` : null}
  </section>`;
}

/** A form of integer (or decimal) fields PUT as one object; 'saved' after success. */
function LimitsForm({ id, title, hint, path, fields, initial, onSaved }) {
  const [values, setValues] = useState(() => Object.fromEntries(fields.map((f) => [f.name, String(initial[f.name] ?? '')])));
  const [saved, setSaved] = useState(false);
  const { run: save, busy, error } = useAction(async () => {
    const body = Object.fromEntries(fields.map((f) => [f.name, Number(values[f.name])]));
    await api.put(path, body);
    setSaved(true);
    onSaved();
  });
  const submit = async (e) => {
    e.preventDefault();
    setSaved(false);
    await save();
  };
  const f = (error && error.fields) || {};
  const fieldErr = (n) => f[n];
  return html`<form class="card" onSubmit=${submit} aria-labelledby=${id + '-title'} novalidate>
    <h3 id=${id + '-title'}>${title}</h3>
    ${hint ? html`<p class="muted small">${hint}</p>` : null}
    <div class="form-row">
      ${fields.map((fd) => html`<${Field} id=${id + '-' + fd.name} label=${fd.label} error=${fieldErr(fd.name)}>
        <input id=${id + '-' + fd.name} type="number" inputmode="decimal" min=${fd.min} step=${fd.step || 1} value=${values[fd.name]}
          aria-invalid=${fieldErr(fd.name) ? 'true' : undefined}
          onInput=${(e) => { const v = e.currentTarget.value; setValues((s) => ({ ...s, [fd.name]: v })); setSaved(false); }} />
      </${Field}>`)}
    </div>
    ${error && !fields.some((fd) => f[fd.name]) ? html`<${ProblemMessage} error=${error} title=${title + ' could not be saved'} />` : null}
    <button type="submit" disabled=${busy}>${busy ? 'Saving…' : 'Save'}</button>
    ${saved ? html` <span class="small ok-text" role="status">Saved.</span>` : null}
  </form>`;
}

export default function Tenant({ params, query }) {
  const tenant = params.id;
  const base = `/api/v1/tenants/${encodeURIComponent(tenant)}`;
  const t = useAsync((signal) => api.get(base, { signal }), [tenant]);
  const quota = useAsync((signal) => api.get(base + '/quota', { signal }), [tenant]);
  const rate = useAsync((signal) => api.get(base + '/rate-limit', { signal }), [tenant]);
  return html`<section aria-labelledby="tenant-title">
    <p class="small"><a href="#/tenants">← Tenants</a></p>
    <h1 id="tenant-title">${t.data ? t.data.name : tenant} <span class="muted small"><code>${tenant}</code></span></h1>
    ${query.created ? html`<p class="notice" role="status">Tenant ${tenant} created. Give it an API key below.</p>` : null}
    <${ProblemMessage} error=${t.error} title="The tenant could not be read" />
    ${t.data ? html`<p class="muted">Created <${Time} value=${t.data.created_at} />.</p>` : null}
    ${t.error && t.error.status === 404 ? null : html`
      <${Keys} tenant=${tenant} cursor=${query.keys || ''} />
      <section aria-labelledby="limits-title" class="block">
        <h2 id="limits-title">Quota and rate limit</h2>
        <div class="two-col">
          <div>
            <${ProblemMessage} error=${quota.error} title="The quota could not be read" />
            ${quota.data ? html`<${LimitsForm} key="quota" id="quota" title="Quota"
              hint="Ceilings provisioning enforces on every order; 0 means no limit."
              path=${base + '/quota'} initial=${quota.data} onSaved=${quota.reload}
              fields=${[
                { name: 'max_instances', label: 'Instances', min: 0 },
                { name: 'max_vcpu', label: 'vCPU', min: 0, step: 'any' },
                { name: 'max_memory_mb', label: 'Memory (MiB)', min: 0 },
                { name: 'max_storage_gb', label: 'Storage (GiB)', min: 0 },
              ]} />` : quota.loading ? html`<${Loading} what="Loading the quota" />` : null}
          </div>
          <div>
            <${ProblemMessage} error=${rate.error} title="The rate limit could not be read" />
            ${rate.data ? html`<${LimitsForm} key="rate" id="rate" title="API rate limit"
              hint=${rate.data.default ? "The gateway's default applies; saving sets the tenant's own." : "The tenant's own limit."}
              path=${base + '/rate-limit'} initial=${rate.data} onSaved=${rate.reload}
              fields=${[
                { name: 'requests_per_second', label: 'Requests per second', min: 1 },
                { name: 'burst', label: 'Burst', min: 1 },
              ]} />` : rate.loading ? html`<${Loading} what="Loading the rate limit" />` : null}
          </div>
        </div>
      </section>`}
  </section>`;
}
