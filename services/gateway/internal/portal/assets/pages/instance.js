// One instance: its summary, nodes with live health, endpoints, the current
// operation step by step (polled while it runs, no reload), bindings
// (create → credentials shown once with copy buttons and a ready-to-paste
// client command; revoke) and delete behind a dialog where the user types
// the instance's name; links to its backups, failovers, change data and
// usage pages (instance-tab.js). Another tenant's instance is a 404: "Instance not
// found". Roles without write see no mutating control.
import { html, useEffect, useRef, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync, useInterval } from '../hooks.js';
import { Badge, Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { CopyButton } from '../clipboard.js';
import { canWrite, isOperator } from '../session.js';
import { href } from '../router.js';
import { TABS } from './instance-tab.js';

const CHANGING = new Set(['provisioning', 'updating', 'deleting']);
const POLL_CHANGING = 1000; // while an operation runs
const POLL_HEALTH = 5000;

const STEPS = {
  create: [
    ['placing', 'Place the nodes', 'Scheduling reserves hosts in separate zones.'],
    ['restoring', 'Restore the backup', 'The backup service prepares the data.'],
    ['creating', 'Create the nodes', 'Every node is created and started.'],
    ['replicating', 'Set up replication', 'Replicas follow the primary.'],
    ['verifying', 'Verify', 'A token written on the primary is read on every replica.'],
  ],
  update: [['applying', 'Apply the parameters', 'Each node takes the new settings.']],
  delete: [['destroying', 'Destroy the nodes', 'Nodes and their data are removed; capacity is released.']],
};
const FINAL = { create: 'Ready', update: 'Applied', delete: 'Deleted' };

const enc = encodeURIComponent;

/** The operation as a list of steps: done, current, failed or waiting. */
function Steps({ op }) {
  // The last step seen of this operation: a rollback names no step, so the
  // one before it is where the operation failed.
  const seen = useRef({ id: '', step: '', restoring: false });
  if (seen.current.id !== op.id) seen.current = { id: op.id, step: '', restoring: false };
  if (op.step === 'restoring') seen.current.restoring = true;
  const all = STEPS[op.type] || [];
  const steps = all.filter(([s]) => s !== 'restoring' || seen.current.restoring);
  const names = steps.map(([s]) => s);
  if (names.includes(op.step)) seen.current.step = op.step;
  const at = names.indexOf(seen.current.step);
  const rollingBack = op.step === 'rolling_back';
  const done = op.state === 'succeeded';
  const failed = op.state === 'failed' || rollingBack;

  const status = (i) => {
    if (done) return 'done';
    if (i < at) return 'done';
    if (i === at) return failed ? 'failed' : 'current';
    return 'waiting';
  };
  const WORDS = { done: 'done', current: 'in progress', failed: 'failed', waiting: 'waiting' };
  return html`<ol class="steps" data-testid="steps">
    ${steps.map(([s, label, about], i) => {
      const st = status(i);
      return html`<li key=${s} class=${'step step-' + st} data-step=${s} data-status=${st} aria-current=${st === 'current' ? 'step' : undefined}>
        <span class="step-mark" aria-hidden="true">${st === 'done' ? '✓' : st === 'failed' ? '✕' : st === 'current' ? '●' : '○'}</span>
        <span class="step-label">${label} <span class="sr-only">(${WORDS[st]})</span>
          ${st === 'current' && op.step_detail ? html`<span class="muted small"> — ${op.step_detail}</span>` : null}
          <span class="muted small step-about">${about}</span></span>
      </li>`;
    })}
    ${rollingBack ? html`<li class="step step-current" data-step="rolling_back" data-status="current" aria-current="step">
      <span class="step-mark" aria-hidden="true">●</span><span class="step-label">Roll back <span class="muted small step-about">What was created is removed.</span></span></li>` : null}
    <li class="step ${done ? 'step-done' : failed ? 'step-failed' : 'step-waiting'}" data-step="done" data-status=${done ? 'done' : failed ? 'failed' : 'waiting'}>
      <span class="step-mark" aria-hidden="true">${done ? '✓' : failed ? '✕' : '○'}</span>
      <span class="step-label">${failed ? 'Failed' : FINAL[op.type] || 'Done'}</span>
    </li>
  </ol>`;
}

function Operation({ op, error }) {
  if (!op) return error ? html`<${ProblemMessage} error=${error} title="The operation could not be read" />` : null;
  const running = op.state === 'in_progress';
  return html`<section class="card op" aria-labelledby="op-title" data-testid="operation" data-state=${op.state} data-type=${op.type}>
    <h2 id="op-title">${running ? 'In progress: ' : 'Last operation: '}${op.type}
      <span class="op-state"><${Badge} value=${op.state === 'succeeded' ? 'ready' : op.state === 'failed' ? 'failed' : 'provisioning'} label=${op.state.replace('_', ' ')} /></span></h2>
    <p class="muted small">Started <${Time} value=${op.started_at} />${op.finished_at ? html`, finished <${Time} value=${op.finished_at} />` : null}
      ${op.requested_by ? html` · requested by <code>${op.requested_by}</code>` : null}</p>
    <div aria-live="polite"><${Steps} op=${op} /></div>
    ${op.error ? html`<p class="bad-text" role="alert">${op.error}</p>` : null}
    <${ProblemMessage} error=${error} title="The operation could not be refreshed" />
  </section>`;
}

/** Health of a node from GET /instances/{id}/health. */
function NodeHealth({ h }) {
  if (!h) return html`<span class="muted">not probed</span>`;
  return html`<${Badge} value=${h.status} />
    ${h.reason ? html`<div class="small muted">${h.reason}</div>` : null}
    ${h.observed_role && h.role && h.observed_role !== h.role ? html`<div class="small bad-text">reports ${h.observed_role}</div>` : null}
    ${h.last_probe_at ? html`<div class="small muted">probed <${Time} value=${h.last_probe_at} /></div>` : null}`;
}

function Nodes({ instance, health, healthError }) {
  const byID = new Map(((health && health.nodes) || []).map((n) => [n.id, n]));
  const byAddr = new Map(((health && health.nodes) || []).map((n) => [n.address, n]));
  if (!instance.nodes.length) return html`<p class="muted">No nodes yet: they are placed first.</p>`;
  // A 404 from the health API means the checker has not probed the
  // instance yet: it picks up a new one within seconds.
  const healthNote = !healthError ? null : healthError.status === 404
    ? 'Not probed yet: the health checker starts probing a new instance within a few seconds.'
    : `Health could not be read: ${healthError.detail || healthError.message}`;
  return html`${healthNote ? html`<p class="small muted" data-testid="health-note">${healthNote}</p>` : null}
  <div class="table-wrap"><table class="list" data-testid="nodes">
    <caption class="sr-only">Nodes of ${instance.name}</caption>
    <thead><tr><th scope="col">Node</th><th scope="col">Role</th><th scope="col">Zone</th><th scope="col">Host</th>
      <th scope="col">Address</th><th scope="col">State</th><th scope="col">Health</th></tr></thead>
    <tbody>${instance.nodes.map((n) => html`<tr key=${n.id}>
      <th scope="row">${n.name}</th>
      <td>${n.role}</td>
      <td>${n.az || '—'}<div class="muted small">${n.region}</div></td>
      <td>${n.host || '—'}</td>
      <td>${n.address ? html`<code>${n.address}</code>` : html`<span class="muted">—</span>`}</td>
      <td>${n.state}</td>
      <td data-testid="node-health"><${NodeHealth} h=${byID.get(n.id) || byAddr.get(n.address)} /></td>
    </tr>`)}</tbody>
  </table></div>`;
}

function Endpoints({ instance }) {
  const e = instance.endpoints || {};
  const rows = [
    ['Read-write', e.rw, 'Follows the primary across failovers; connect here.'],
    ['Read-only', e.ro, 'Spreads over healthy replicas.'],
    ['Sentinel', e.sentinel, e.master_name ? `Master name ${e.master_name}.` : ''],
    ['Primary node', e.primary, 'Moves with a failover.'],
    ['Replica nodes', (e.replicas || []).join(', '), ''],
  ].filter((r) => r[1]);
  if (!rows.length) return html`<p class="muted">No endpoints yet: they appear when the nodes are created.</p>`;
  return html`<dl class="facts endpoints">${rows.map(([label, value, about]) => html`
    <dt>${label}</dt><dd><code>${value}</code> <${CopyButton} text=${value} label=${'Copy the ' + label.toLowerCase() + ' endpoint'} />
      ${about ? html`<div class="muted small">${about}</div>` : null}</dd>`)}</dl>`;
}

/** Single-quotes s for a POSIX shell. */
function shellQuote(s) {
  return "'" + String(s).replace(/'/g, "'\\''") + "'";
}

/** The ready-to-paste client command for a binding's credentials. */
export function clientCommand(engine, c) {
  if (engine === 'redis') return `redis-cli -h ${c.host} -p ${c.port} --user ${shellQuote(c.username)} --pass ${shellQuote(c.password)}`;
  return `mariadb -h ${c.host} -P ${c.port} -u ${shellQuote(c.username)} -p${shellQuote(c.password)}${c.database ? ' ' + c.database : ''}`;
}

function Credentials({ binding, engine, onDone }) {
  const c = binding.credentials;
  const command = clientCommand(engine, c);
  const rows = [
    ['Host', 'host', c.host], ['Port', 'port', String(c.port)], ['Username', 'username', c.username],
    ['Password', 'password', c.password], ['Database', 'database', c.database], ['URI', 'uri', c.uri],
  ].filter((r) => r[2]);
  const heading = useRef(null);
  useEffect(() => { if (heading.current) heading.current.focus(); }, [binding.id]);
  return html`<section class="card creds" aria-labelledby="creds-title" data-testid="credentials">
    <h3 id="creds-title" tabindex="-1" ref=${heading}>Credentials of ${binding.name}</h3>
    <p class="warn-text"><strong>Copy them now:</strong> the password is shown only this once. If it is lost, revoke the binding and create another.</p>
    <dl class="facts">${rows.map(([label, key, value]) => html`
      <dt>${label}</dt><dd><code class="secret" data-testid=${'cred-' + key}>${value}</code> <${CopyButton} text=${value} label=${'Copy the ' + label.toLowerCase()} /></dd>`)}
      <dt>Command</dt><dd><pre class="command"><code data-testid="cred-command">${command}</code></pre>
        <${CopyButton} text=${command} label=${'Copy the ' + (engine === 'redis' ? 'redis-cli' : 'mariadb') + ' command'} /></dd>
    </dl>
    <button type="button" class="secondary" onClick=${onDone}>I have saved them</button>
  </section>`;
}

function Bindings({ instance, session }) {
  const id = instance.id;
  const { data, error, reload } = useAsync((signal) => api.get(`/api/v1/instances/${enc(id)}/bindings`, { signal }), [id]);
  const [name, setName] = useState('');
  const [created, setCreated] = useState(null);
  const [confirming, setConfirming] = useState('');
  const [revokeError, setRevokeError] = useState(null);
  const write = canWrite(session);
  // A platform admin's credentials request is refused (400): only the tenant binds.
  const mayCreate = write && !isOperator(session) && instance.state === 'ready';
  const items = (data && data.items) || [];

  const { run: createBinding, busy, error: createError } = useAction(async () => {
    const b = await api.post(`/api/v1/instances/${enc(id)}/bindings`, { name: name.trim() });
    setCreated(b);
    setName('');
    reload();
  });
  const create = async (e) => {
    e.preventDefault();
    await createBinding();
  };
  const revoke = async (b) => {
    setRevokeError(null);
    try {
      await api.del(`/api/v1/instances/${enc(id)}/bindings/${enc(b.id)}`);
      setConfirming('');
      if (created && created.id === b.id) setCreated(null);
      reload();
    } catch (err) {
      setRevokeError({ id: b.id, err });
    }
  };

  const nameError = createError && createError.fields.name;
  return html`<section aria-labelledby="bindings-title" class="block">
    <h2 id="bindings-title">Bindings</h2>
    <p class="muted">Application credentials: ${instance.engine === 'redis'
      ? 'an ACL user with data commands on every node.' : 'a user with every privilege on the instance\'s application database.'}</p>
    <${ProblemMessage} error=${error} title="The bindings could not be listed" />
    ${created ? html`<${Credentials} binding=${created} engine=${instance.engine} onDone=${() => setCreated(null)} />` : null}
    ${data && !items.length ? html`<p class="muted" data-testid="no-bindings">No bindings yet.${mayCreate ? ' Create one below to get credentials for your application.' : write ? ' Bindings can be created once the instance is ready.' : ''}</p>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="bindings">
      <caption class="sr-only">Bindings of ${instance.name}</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Username</th><th scope="col">Created</th>${write ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
      <tbody>${items.map((b) => html`<tr key=${b.id} data-binding=${b.name}>
        <th scope="row">${b.name}</th><td><code>${b.username}</code></td><td><${Time} value=${b.created_at} /></td>
        ${write ? html`<td class="row-actions">${confirming === b.id
          ? html`<span>Revoke ${b.name}? Its user and open sessions end. </span>
              <button type="button" class="danger" onClick=${() => revoke(b)}>Revoke now</button>
              <button type="button" class="secondary" onClick=${() => setConfirming('')}>Cancel</button>`
          : html`<button type="button" class="secondary" onClick=${() => { setConfirming(b.id); setRevokeError(null); }}
              aria-label=${'Revoke ' + b.name}>Revoke</button>`}
          ${revokeError && revokeError.id === b.id ? html`<${ProblemMessage} error=${revokeError.err} title="Revoking failed" />` : null}</td>` : null}
      </tr>`)}</tbody>
    </table></div>` : null}
    ${mayCreate ? html`<form class="inline-form" onSubmit=${create} novalidate aria-label="Create a binding">
      <${Field} id="binding-name" label="New binding name" error=${nameError}
          hint="Lowercase letters, digits and hyphens, e.g. the application's name.">
        <input id="binding-name" name="name" type="text" autocomplete="off" spellcheck="false" maxlength="63" required
          value=${name} onInput=${(e) => setName(e.currentTarget.value)}
          aria-invalid=${nameError ? 'true' : undefined} aria-describedby=${nameError ? 'binding-name-error' : 'binding-name-hint'} />
      </${Field}>
      <button type="submit" disabled=${busy || !name.trim()}>${busy ? 'Creating…' : 'Create binding'}</button>
    </form>` : null}
    ${createError && !nameError ? html`<${ProblemMessage} error=${createError} title="The binding could not be created" />` : null}
  </section>`;
}

/** The delete dialog: the button stays disabled until the instance's name is typed. */
function DeleteDialog({ instance, open, onClose, onDeleted }) {
  const dialog = useRef(null);
  const [typed, setTyped] = useState('');
  const { run: del, busy, error, setError } = useAction(async () => {
    await api.del(`/api/v1/instances/${enc(instance.id)}`);
    onDeleted();
  });
  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (open && !d.open) { setTyped(''); setError(null); d.showModal(); }
    if (!open && d.open) d.close();
  }, [open]);
  const submit = async (e) => {
    e.preventDefault();
    if (typed !== instance.name) return;
    await del();
  };
  return html`<dialog ref=${dialog} class="card dialog" aria-labelledby="delete-title" onClose=${onClose} data-testid="delete-dialog">
    <form onSubmit=${submit} novalidate>
      <h2 id="delete-title">Delete ${instance.name}?</h2>
      <p>This destroys its ${instance.nodes.length || ''} ${instance.nodes.length === 1 ? 'node' : 'nodes'} and <strong>all their data</strong>; bindings stop working. It cannot be undone.</p>
      <${Field} id="delete-confirm" label=${html`Type <code>${instance.name}</code> to confirm`}>
        <input id="delete-confirm" name="confirm" type="text" autocomplete="off" spellcheck="false"
          value=${typed} onInput=${(e) => setTyped(e.currentTarget.value)} />
      </${Field}>
      <${ProblemMessage} error=${error} title="The instance could not be deleted" />
      <div class="actions">
        <button type="submit" class="danger" disabled=${busy || typed !== instance.name}>${busy ? 'Deleting…' : 'Delete instance'}</button>
        <button type="button" class="secondary" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  </dialog>`;
}

export default function Instance({ params, session }) {
  const id = params.id;
  const inst = useAsync((signal) => api.get(`/api/v1/instances/${enc(id)}`, { signal }), [id]);
  const i = inst.data;
  const opID = (i && i.operation_id) || '';
  const op = useAsync((signal) => (opID ? api.get(`/api/v1/operations/${enc(opID)}`, { signal }) : Promise.resolve(null)), [opID]);
  const gone = !i || i.state === 'deleted';
  const health = useAsync((signal) => (gone ? Promise.resolve(null) : api.get(`/api/v1/instances/${enc(id)}/health`, { signal })), [id, gone]);
  const [deleting, setDeleting] = useState(false);

  const running = !!i && (CHANGING.has(i.state) || (op.data && op.data.state === 'in_progress'));
  useInterval(() => { inst.reload(); op.reload(); }, running ? POLL_CHANGING : null);
  useInterval(health.reload, gone ? null : POLL_HEALTH);

  useEffect(() => { if (i) document.title = `${i.name} · Canopy`; }, [i && i.name]);

  if (!i) {
    if (inst.error && inst.error.status === 404) {
      return html`<${Empty} title="Instance not found">
        <p>There is no instance <code>${id}</code> in your tenant (it may belong to another tenant, or the link is wrong).
          <a href="#/instances">See your instances</a>.</p>
      </${Empty}>`;
    }
    return html`<${ProblemMessage} error=${inst.error} title="The instance could not be loaded" />
      ${inst.loading ? html`<${Loading} what="Loading the instance" />` : null}`;
  }
  const write = canWrite(session);
  const deletable = write && !['deleting', 'deleted'].includes(i.state);
  return html`<section aria-labelledby="instance-title" data-testid="instance" data-state=${i.state}>
    <p><a href="#/instances">← Instances</a></p>
    <div class="page-head">
      <h1 id="instance-title">${i.name} <span data-testid="instance-state"><${Badge} value=${i.state} /></span></h1>
      ${deletable ? html`<button type="button" class="danger" onClick=${() => setDeleting(true)}>Delete instance</button>` : null}
    </div>
    <${ProblemMessage} error=${i && inst.error} title="The instance could not be refreshed" />
    ${i.state === 'deleted' ? html`<div class="notice" role="status" data-testid="deleted">
      This instance was deleted <${Time} value=${i.updated_at} />; its nodes and data are gone. <a href="#/instances">Back to your instances</a>.</div>` : null}
    ${i.state === 'failed' && i.reason ? html`<div class="problem" role="alert"><strong>The instance failed</strong><p>${i.reason}</p></div>` : null}
    <dl class="facts summary" data-testid="summary">
      <dt>State</dt><dd>${i.state}${i.step && i.step !== 'done' ? html` <span class="muted">(${i.step})</span>` : null}</dd>
      <dt>Engine</dt><dd>${i.engine} ${i.version}${i.engine_version ? html` <span class="muted">· runs ${i.engine_version}</span>` : null}</dd>
      <dt>Mode</dt><dd>${i.deployment_mode} <span class="muted">· ${i.replication_mode} replication</span></dd>
      <dt>Region</dt><dd>${i.region || (i.nodes[0] && i.nodes[0].region) || html`<span class="muted">not placed yet</span>`}</dd>
      <dt>Plan</dt><dd>${i.plan}</dd>
      ${isOperator(session) ? html`<dt>Tenant</dt><dd>${i.tenant}</dd>` : null}
      <dt>Created</dt><dd><${Time} value=${i.created_at} /></dd>
      <dt>ID</dt><dd><code>${i.id}</code></dd>
    </dl>
    ${i.state !== 'deleted' ? html`<nav class="tabs" aria-label="More about this instance">${Object.entries(TABS).map(([k, t]) =>
      html`<a href=${href(`/instances/${i.id}/${k}`)}>${t.label}</a>`)}</nav>` : null}
    <${Operation} op=${op.data} error=${op.error} />
    ${i.state !== 'deleted' ? html`
      <section aria-labelledby="nodes-title" class="block"><h2 id="nodes-title">Nodes</h2>
        <${Nodes} instance=${i} health=${health.data} healthError=${health.error} /></section>
      <section aria-labelledby="endpoints-title" class="block"><h2 id="endpoints-title">Endpoints</h2>
        <${Endpoints} instance=${i} /></section>
      <${Bindings} instance=${i} session=${session} />` : null}
    ${deletable || deleting ? html`<${DeleteDialog} instance=${i} open=${deleting} onClose=${() => setDeleting(false)}
      onDeleted=${() => { setDeleting(false); inst.reload(); }} />` : null}
  </section>`;
}
