// The instance's failover tab: every failover, switchover and drill,
// newest first (GET /api/v1/instances/{id}/failovers), refreshed while one
// runs; a planned switchover (POST …/switchover) with a confirmation for
// roles that may write, on instances that have a replica; acknowledging an
// automatic failover lifts its hold-off (POST …/failovers/{fid}/acknowledge).
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAsync, useInterval } from '../hooks.js';
import { Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { canWrite } from '../session.js';
import { ConfirmButton, StateBadge, millis } from '../extras.js';

function nodeName(instance, id) {
  const n = (instance.nodes || []).find((x) => x.id === id);
  return n ? n.name : id || '—';
}

function Switchover({ instance, onStarted }) {
  const replicas = (instance.nodes || []).filter((n) => n.role !== 'primary');
  const [target, setTarget] = useState('');
  const [error, setError] = useState(null);
  if (!replicas.length) {
    return html`<p class="muted">A switchover needs a replica; this ${instance.deployment_mode} instance has one node.</p>`;
  }
  const run = async () => {
    setError(null);
    try {
      const f = await api.post(`/api/v1/instances/${encodeURIComponent(instance.id)}/switchover`,
        target ? { target_node: target } : {});
      onStarted(f);
    } catch (err) { setError(err); }
  };
  return html`<div class="card tab-action">
    <h3>Planned switchover</h3>
    <p class="muted small">The primary turns read-only, the chosen replica catches up exactly, is promoted, and the old primary rejoins as a replica. No transaction is lost.</p>
    <${Field} id="switchover-target" label="Promote">
      <select id="switchover-target" value=${target} onChange=${(e) => setTarget(e.currentTarget.value)}>
        <option value="">The most advanced healthy replica</option>
        ${replicas.map((n) => html`<option value=${n.id}>${n.name} (${n.az || n.region || n.role})</option>`)}
      </select>
    </${Field}>
    <${ConfirmButton} label="Switch over…" confirmLabel="Switch over now" testid="switchover"
      question=${`Switch the primary of ${instance.name} over${target ? ' to ' + nodeName(instance, target) : ''}? Clients reconnect through the endpoints within seconds.`}
      onConfirm=${run} />
    <${ProblemMessage} error=${error} title="The switchover was refused" />
  </div>`;
}

export default function InstanceFailovers({ instance, session }) {
  const base = `/api/v1/instances/${encodeURIComponent(instance.id)}/failovers`;
  const { data, error, loading, reload } = useAsync((signal) => api.get(base, { query: { limit: 50 }, signal }), [instance.id]);
  const [ackError, setAckError] = useState(null);
  const items = (data && data.items) || [];
  useInterval(reload, items.some((f) => f.state === 'started') ? 2000 : null);
  const writer = canWrite(session);

  const ack = async (f) => {
    setAckError(null);
    try { await api.post(`${base}/${encodeURIComponent(f.id)}/acknowledge`); reload(); } catch (err) { setAckError(err); }
  };

  return html`<section aria-labelledby="failovers-title" data-testid="tab-failovers">
    <div class="page-head">
      <h2 id="failovers-title">Failovers</h2>
      <button type="button" class="secondary" onClick=${reload} disabled=${loading}>Refresh</button>
    </div>
    ${writer && instance.state === 'ready' ? html`<${Switchover} instance=${instance} onStarted=${reload} />` : null}
    <${ProblemMessage} error=${error} title="The failovers could not be listed" />
    <${ProblemMessage} error=${ackError} title="The failover could not be acknowledged" />
    ${data === undefined && loading ? html`<${Loading} what="Loading failovers" />` : null}
    ${data && !items.length ? html`<${Empty} title="No failovers yet">
      <p>Automatic failovers, planned switchovers and DR drills of this instance appear here with their timings${writer && (instance.nodes || []).some((n) => n.role === 'replica') ? '; start a switchover above to try one' : ''}.</p>
    </${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="failovers">
      <caption class="sr-only">Failovers of ${instance.name}, newest first</caption>
      <thead><tr><th scope="col">Detected</th><th scope="col">Kind</th><th scope="col">State</th>
        <th scope="col">Primary</th><th scope="col">RTO</th><th scope="col">Lost</th><th scope="col">Acknowledged</th></tr></thead>
      <tbody>${items.map((f) => html`<tr key=${f.id}>
        <td><${Time} value=${f.detected_at} /></td>
        <td>${f.kind}<div class="muted small">${f.problem}</div></td>
        <td><${StateBadge} value=${f.state} /><div class="muted small">${f.step}</div>
          ${f.reason ? html`<div class="small bad-text">${f.reason}</div>` : null}</td>
        <td>${nodeName(instance, f.old_primary)} → ${f.new_primary ? nodeName(instance, f.new_primary) : html`<span class="muted">…</span>`}</td>
        <td>${f.state === 'completed' ? millis(f.rto_ms) : '—'}
          ${f.state === 'completed' ? html`<div class="muted small">detect ${millis(f.detection_ms)}, promote ${millis(f.promotion_ms)}</div>` : null}</td>
        <td>${(f.lost_transactions || []).length ? html`<code class="small">${f.lost_transactions.join(', ')}</code>` : 'none'}</td>
        <td>${f.kind === 'automatic' && !f.acknowledged && writer
          ? html`<button type="button" class="secondary" onClick=${() => ack(f)}>Acknowledge</button>`
          : f.acknowledged ? html`<span class="muted small">acknowledged</span>` : null}</td>
      </tr>`)}</tbody>
    </table></div>` : null}
  </section>`;
}
