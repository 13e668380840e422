// The instance's change-data tab: its CDC streams to Kafka
// (GET /api/v1/instances/{id}/cdc-streams, docs/cdc.md) and the sync jobs
// it is the source or the target of (GET /api/v1/sync-jobs, docs/sync.md),
// with state, lag and counters, refreshed every few seconds. Writers may
// pause and resume them.
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAsync, useInterval } from '../hooks.js';
import { Empty, ProblemMessage, Time } from '../components.js';
import { canWrite } from '../session.js';
import { StateBadge, millis, num } from '../extras.js';

const REFRESH_MS = 5000;

/** Pause or resume buttons for a stream or job at path (…:pause / …:resume). */
function PauseResume({ path, state, canPause, onDone, setError }) {
  const act = async (verb) => {
    setError(null);
    try { await api.post(`${path}:${verb}`); onDone(); } catch (err) { setError(err); }
  };
  if (canPause.includes(state)) return html`<button type="button" class="secondary" onClick=${() => act('pause')}>Pause</button>`;
  if (state === 'paused' || state === 'failed') return html`<button type="button" class="secondary" onClick=${() => act('resume')}>Resume</button>`;
  return null;
}

function Streams({ instance, writer }) {
  const base = `/api/v1/instances/${encodeURIComponent(instance.id)}/cdc-streams`;
  const { data, error, reload } = useAsync((signal) => api.get(base, { query: { limit: 100 }, signal }), [instance.id]);
  const [actError, setActError] = useState(null);
  useInterval(reload, REFRESH_MS);
  const items = (data && data.items) || [];
  return html`<section aria-labelledby="cdc-title">
    <h3 id="cdc-title">CDC streams</h3>
    <${ProblemMessage} error=${error} title="The CDC streams could not be listed" />
    <${ProblemMessage} error=${actError} title="The stream did not change" />
    ${data && !items.length ? html`<${Empty} title="No CDC streams">
      <p>${instance.engine === 'mysql'
        ? html`A stream publishes this instance's row changes to Kafka topics: <code>POST ${base}</code> with the tables to capture (docs/cdc.md).`
        : 'CDC captures MySQL row changes; a Redis instance has none (it can be the target of a sync job below).'}</p>
    </${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="cdc-streams">
      <caption class="sr-only">CDC streams of ${instance.name}</caption>
      <thead><tr><th scope="col">Tables</th><th scope="col">State</th><th scope="col">Lag</th><th scope="col">Rate</th>
        <th scope="col">Position</th><th scope="col">Since</th>${writer ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
      <tbody>${items.map((s) => html`<tr key=${s.id}>
        <th scope="row">${s.tables.join(', ')}<div class="muted small"><code>${s.topic_prefix}</code></div></th>
        <td><${StateBadge} value=${s.state} />${s.last_error ? html`<div class="small bad-text">${s.last_error}</div>` : null}</td>
        <td>${millis(s.lag.ms)}<div class="muted small">${num(s.lag.events, 0)} transactions behind</div></td>
        <td>${num(s.rows_per_second, 1)} rows/s<div class="muted small">${num(s.events_total, 0)} in all</div></td>
        <td><code class="small">${s.position.gtid || '—'}</code>${s.source_node ? html`<div class="muted small">from ${s.source_node}</div>` : null}</td>
        <td><${Time} value=${s.created_at} /></td>
        ${writer ? html`<td><${PauseResume} path=${`${base}/${encodeURIComponent(s.id)}`} state=${s.state}
          canPause=${['snapshotting', 'streaming']} onDone=${reload} setError=${setActError} /></td>` : null}
      </tr>`)}</tbody>
    </table></div>` : null}
  </section>`;
}

function involves(job, id) {
  const t = job.target || {};
  return job.source_instance === id || t.instance === id || t.redis_instance === id;
}

function SyncJobs({ instance, writer }) {
  // The list is per tenant; the jobs of this instance are picked here.
  const { data, error, reload } = useAsync((signal) => api.get('/api/v1/sync-jobs', { query: { limit: 500 }, signal }), [instance.id]);
  const [actError, setActError] = useState(null);
  useInterval(reload, REFRESH_MS);
  const items = ((data && data.items) || []).filter((j) => involves(j, instance.id));
  const other = (id) => (id === instance.id ? 'this instance' : id);
  return html`<section aria-labelledby="sync-title">
    <h3 id="sync-title">Sync jobs</h3>
    <${ProblemMessage} error=${error} title="The sync jobs could not be listed" />
    <${ProblemMessage} error=${actError} title="The sync job did not change" />
    ${data && !items.length ? html`<${Empty} title="No sync jobs">
      <p>A sync job keeps tables of a MySQL instance in another MySQL instance (one- or two-way) or in a Redis cache:
        <code>POST /api/v1/sync-jobs</code> (docs/sync.md).</p>
    </${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="sync-jobs">
      <caption class="sr-only">Sync jobs of ${instance.name}</caption>
      <thead><tr><th scope="col">From → to</th><th scope="col">State</th><th scope="col">Lag</th><th scope="col">Applied</th>
        <th scope="col">Conflicts</th>${writer ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
      <tbody>${items.map((j) => {
        const dirs = (j.status && j.status.directions) || [];
        return html`<tr key=${j.id}>
          <th scope="row">${other(j.source_instance)} → ${other(j.target.instance || j.target.redis_instance)}
            <div class="muted small">${j.direction}, ${j.conflict}; ${j.tables.join(', ')}</div></th>
          <td><${StateBadge} value=${j.state} />${j.last_error ? html`<div class="small bad-text">${j.last_error}</div>` : null}</td>
          <td>${dirs.length ? dirs.map((d) => html`<div>${millis(d.lag_ms)}${dirs.length > 1 ? html` <span class="muted small">${other(d.from)} → ${other(d.to)}</span>` : null}</div>`) : '—'}</td>
          <td>${num(j.status.applied_rows, 0)} rows</td>
          <td>${num(j.status.conflicts, 0)}</td>
          ${writer ? html`<td><${PauseResume} path=${`/api/v1/sync-jobs/${encodeURIComponent(j.id)}`} state=${j.state}
            canPause=${['loading', 'running']} onDone=${reload} setError=${setActError} /></td>` : null}
        </tr>`;
      })}</tbody>
    </table></div>` : null}
  </section>`;
}

export default function InstanceStreams({ instance, session }) {
  const writer = canWrite(session);
  return html`<section aria-labelledby="streams-title" data-testid="tab-streams">
    <h2 id="streams-title">Change data</h2>
    <${Streams} instance=${instance} writer=${writer} />
    <${SyncJobs} instance=${instance} writer=${writer} />
  </section>`;
}
