// The instance's backups tab: the restore window, the backups (newest
// first, refreshed while one runs) with "Back up now", the restore drills
// with "Run a drill now", the effective backup policy, and a restore form
// that orders a new instance with restore_from (a point in time, a backup,
// or for MySQL a GTID position). APIs: docs/backups.md.
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync, useInterval } from '../hooks.js';
import { Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { href, match } from '../router.js';
import { routes } from '../routes.js';
import { canWrite } from '../session.js';
import { StateBadge, bytes, idempotencyKey, num } from '../extras.js';

/** A datetime-local value (local time, to the second) for an RFC 3339 time. */
function toLocalInput(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The datetime-local value back as RFC 3339 UTC without a fraction (the API's form). */
function fromLocalInput(v) {
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function Window({ win }) {
  if (!win) return null;
  if (!win.available) {
    return html`<p data-testid="restore-window">No restore is possible yet: the instance has no completed backup.</p>`;
  }
  return html`<p data-testid="restore-window">A restore can reach any second from <b><${Time} value=${win.earliest} /></b> to <b><${Time} value=${win.latest} /></b>${
    win.latest_gtid ? html` (GTID <code>${win.latest_gtid}</code>)` : null}${
    win.archive_lag_seconds !== undefined ? html`<span class="muted small"> · archive ${num(win.archive_lag_seconds, 1)} s behind</span>` : null}.</p>`;
}

function Policy({ policy }) {
  if (!policy) return null;
  const e = policy.effective;
  if (!e.enabled) return html`<p class="muted small">Scheduled backups are off for this instance.</p>`;
  return html`<p class="muted small" data-testid="backup-policy">Daily backups in a ${e.window_length} window from ${e.window_start} after midnight UTC,
    kept ${e.daily_keep_days} days (monthly ones ${e.monthly_keep_months} months); ${e.pitr_days} days of point-in-time restore${
    e.snapshot_every && e.snapshot_every !== '0s' ? `; Redis snapshots every ${e.snapshot_every}` : ''}${
    e.drill_every && e.drill_every !== '0s' ? `; a restore drill every ${e.drill_every}` : ''}.</p>`;
}

function RestoreForm({ instance, win, backups }) {
  const completed = backups.filter((b) => b.status === 'completed');
  const [mode, setMode] = useState('point_in_time');
  const [name, setName] = useState(`${instance.name}-restored`.slice(0, 63));
  const [when, setWhen] = useState(toLocalInput(win && win.latest));
  const [backup, setBackup] = useState('');
  const [gtid, setGtid] = useState('');
  const [ordered, setOrdered] = useState(null);
  const { run: restore, busy, error } = useAction(async (from) => {
    const res = await api.post('/api/v1/instances', { name: name.trim(), plan_id: instance.plan_id, region: instance.region || undefined, restore_from: from },
      { headers: { 'Idempotency-Key': idempotencyKey() } });
    setOrdered(res.instance);
  });

  const submit = async (e) => {
    e.preventDefault();
    const from = { instance_id: instance.id };
    if (mode === 'point_in_time') from.point_in_time = fromLocalInput(when);
    else if (mode === 'backup_id') from.backup_id = backup || (completed[0] && completed[0].id) || '';
    else from.gtid = gtid.trim();
    await restore(from);
  };

  if (ordered) {
    const path = '/instances/' + ordered.id;
    return html`<div class="card" role="status" data-testid="restore-ordered">
      <p>Ordered <b>${ordered.name}</b>: it is restored from the backups of ${instance.name} and then created (state ${ordered.state}).</p>
      <p>${match(routes, path) ? html`<a href=${href(path)}>Watch it come up</a>` : html`Its id is <code>${ordered.id}</code>; it appears on the <a href="#/instances">instances page</a>.`}</p>
      <button type="button" class="secondary" onClick=${() => setOrdered(null)}>Order another restore</button>
    </div>`;
  }
  const f = error ? error.fields : {};
  const pick = (m) => html`<label class="inline"><input type="radio" name="restore-mode" value=${m} checked=${mode === m}
    onChange=${() => setMode(m)} /> ${{ point_in_time: 'A point in time', backup_id: 'A backup', gtid: 'A GTID position' }[m]}</label>`;
  return html`<form class="card" onSubmit=${submit} aria-labelledby="restore-title" novalidate data-testid="restore-form">
    <h3 id="restore-title">Restore into a new instance</h3>
    <p class="muted small">Orders a new instance of the same plan (${instance.plan}) made from this instance's backups; this instance is not changed.</p>
    <${Field} id="restore-name" label="New instance name" error=${f.name}>
      <input id="restore-name" value=${name} required onInput=${(e) => setName(e.currentTarget.value)} aria-invalid=${f.name ? 'true' : undefined} />
    </${Field}>
    <fieldset class="field"><legend>Restore to</legend>
      ${pick('point_in_time')} ${pick('backup_id')} ${instance.engine === 'mysql' ? pick('gtid') : null}
    </fieldset>
    ${mode === 'point_in_time' ? html`<${Field} id="restore-time" label="Point in time (your time zone, to the second)"
        error=${f['restore_from.point_in_time']} hint=${win && win.available ? 'Within the restore window above.' : ''}>
      <input id="restore-time" type="datetime-local" step="1" value=${when} required
        min=${win && toLocalInput(win.earliest)} max=${win && toLocalInput(win.latest)}
        onInput=${(e) => setWhen(e.currentTarget.value)} />
    </${Field}>` : null}
    ${mode === 'backup_id' ? html`<${Field} id="restore-backup" label="Backup" error=${f['restore_from.backup_id']}>
      <select id="restore-backup" value=${backup} onChange=${(e) => setBackup(e.currentTarget.value)}>
        ${completed.map((b) => html`<option value=${b.id}>${new Date(b.consistent_at || b.started_at).toLocaleString()} · ${b.kind} · ${bytes(b.data_bytes)}</option>`)}
      </select>
    </${Field}>` : null}
    ${mode === 'gtid' ? html`<${Field} id="restore-gtid" label="GTID position (every transaction up to and including it)" error=${f['restore_from.gtid']}>
      <input id="restore-gtid" value=${gtid} placeholder=${(win && win.latest_gtid) || '0-1-42'} onInput=${(e) => setGtid(e.currentTarget.value)} />
    </${Field}>` : null}
    <${ProblemMessage} error=${error} title="The restore was not ordered" />
    <button type="submit" disabled=${busy || !name.trim() || (mode === 'backup_id' && !completed.length)}>${busy ? 'Ordering…' : 'Order the restore'}</button>
  </form>`;
}

function Drills({ instance, writer }) {
  const base = `/api/v1/instances/${encodeURIComponent(instance.id)}/restore-drills`;
  const { data, error, reload } = useAsync((signal) => api.get(base, { query: { limit: 10 }, signal }), [instance.id]);
  const [runError, setRunError] = useState(null);
  const items = (data && data.items) || [];
  useInterval(reload, items.some((d) => d.status === 'running') ? 3000 : null);
  const run = async () => {
    setRunError(null);
    try { await api.post(base); reload(); } catch (err) { setRunError(err); }
  };
  return html`<section aria-labelledby="drills-title">
    <div class="page-head"><h3 id="drills-title">Restore drills</h3>
      ${writer ? html`<button type="button" class="secondary" onClick=${run} disabled=${items.some((d) => d.status === 'running')}>Run a drill now</button>` : null}</div>
    <${ProblemMessage} error=${error} title="The drills could not be listed" />
    <${ProblemMessage} error=${runError} title="The drill did not start" />
    ${data && !items.length ? html`<p class="muted">No drills yet. A drill restores the newest verified backup into a scratch instance, compares it with what was backed up, and deletes it.</p>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list">
      <caption class="sr-only">Restore drills of ${instance.name}</caption>
      <thead><tr><th scope="col">Started</th><th scope="col">Status</th><th scope="col">Restore took</th><th scope="col">Findings</th></tr></thead>
      <tbody>${items.map((d) => html`<tr key=${d.id}>
        <td><${Time} value=${d.started_at} /></td>
        <td><${StateBadge} value=${d.status} /></td>
        <td>${d.status === 'running' ? '—' : `${num(d.restore_seconds, 1)} s`}</td>
        <td>${d.error ? html`<span class="bad-text small">${d.error}</span>` : (d.mismatches || []).length
          ? html`<ul class="small">${d.mismatches.map((m) => html`<li>${m}</li>`)}</ul>`
          : d.status === 'succeeded' ? 'matches the backup' : '—'}</td>
      </tr>`)}</tbody>
    </table></div>` : null}
  </section>`;
}

export default function InstanceBackups({ instance, session }) {
  const id = encodeURIComponent(instance.id);
  const writer = canWrite(session);
  const list = useAsync((signal) => api.get(`/api/v1/instances/${id}/backups`, { query: { limit: 50 }, signal }), [instance.id]);
  const win = useAsync((signal) => api.get(`/api/v1/instances/${id}/restore-window`, { signal }), [instance.id]);
  const policy = useAsync((signal) => api.get(`/api/v1/instances/${id}/backup-policy`, { signal }), [instance.id]);
  const [startError, setStartError] = useState(null);
  const [starting, setStarting] = useState(false);
  const items = (list.data && list.data.items) || [];
  const running = items.some((b) => b.status === 'running');
  useInterval(() => { list.reload(); win.reload(); }, running ? 2000 : null);

  const backupNow = async () => {
    setStartError(null);
    setStarting(true);
    try { await api.post(`/api/v1/instances/${id}/backups`); list.reload(); } catch (err) { setStartError(err); }
    setStarting(false);
  };

  return html`<section aria-labelledby="backups-title" data-testid="tab-backups">
    <div class="page-head">
      <h2 id="backups-title">Backups</h2>
      <div class="actions">
        ${writer && instance.state !== 'deleting' ? html`<button type="button" onClick=${backupNow} disabled=${starting || running}
          data-testid="backup-now">${running ? 'A backup is running…' : 'Back up now'}</button>` : null}
        <button type="button" class="secondary" onClick=${() => { list.reload(); win.reload(); }} disabled=${list.loading}>Refresh</button>
      </div>
    </div>
    <${ProblemMessage} error=${startError} title="The backup did not start" />
    <${ProblemMessage} error=${win.error} title="The restore window could not be read" />
    <${Window} win=${win.data} />
    <${Policy} policy=${policy.data} />
    <${ProblemMessage} error=${list.error} title="The backups could not be listed" />
    ${list.data === undefined && list.loading ? html`<${Loading} what="Loading backups" />` : null}
    ${list.data && !items.length ? html`<${Empty} title="No backups yet">
      <p>Backups run daily in the backup window${writer ? '; take one now with “Back up now”' : ''}. A restore needs at least one completed backup.</p>
    </${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="backups">
      <caption class="sr-only">Backups of ${instance.name}, newest first</caption>
      <thead><tr><th scope="col">Started</th><th scope="col">Status</th><th scope="col">Kind</th>
        <th scope="col">Consistent at</th><th scope="col">Size</th><th scope="col">Checks</th></tr></thead>
      <tbody>${items.map((b) => html`<tr key=${b.id} data-status=${b.status}>
        <td><${Time} value=${b.started_at} /><div class="muted small">${b.trigger === 'on_demand' ? 'on demand' : 'scheduled'}</div></td>
        <td><${StateBadge} value=${b.status} />${b.error ? html`<div class="small bad-text">${b.error}</div>` : null}</td>
        <td>${b.kind}<div class="muted small">${b.from_replica ? 'from a replica' : 'from the primary'}</div></td>
        <td><${Time} value=${b.consistent_at} />${b.gtid ? html`<div class="muted small"><code>${b.gtid}</code></div>` : null}</td>
        <td>${bytes(b.data_bytes)}<div class="muted small">${bytes(b.stored_bytes)} stored${(b.copies || []).length > 1 ? ', 2 copies' : ''}</div></td>
        <td>${b.verified ? 'verified' : html`<span class="muted">not verified</span>`}${b.monthly ? html`<div class="muted small">monthly</div>` : null}</td>
      </tr>`)}</tbody>
    </table></div>` : null}
    <${Drills} instance=${instance} writer=${writer} />
    ${writer && win.data && win.data.available ? html`<${RestoreForm} key=${win.data.latest ? 'w' : 'n'} instance=${instance} win=${win.data} backups=${items} />` : null}
  </section>`;
}
