// Alerts (#/alerts, docs/alerting.md): the alerts firing and pending now
// (resolved ones on request), the silences (create, expire) and the webhook
// receivers (list, add, delete). Writers see the forms and buttons; a
// viewer reads.
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync, useInterval } from '../hooks.js';
import { Empty, Field, Loading, ProblemMessage, Time } from '../components.js';
import { canWrite } from '../session.js';
import { ConfirmButton, StateBadge } from '../extras.js';

const MATCHER = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/;

/** 'severity=~"crit.*"' → {name, value, isRegex, isEqual}; null when it does not parse. */
export function parseMatcher(line) {
  const m = MATCHER.exec(line);
  if (!m) return null;
  let value = m[3];
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  return { name: m[1], value, isRegex: m[2].includes('~'), isEqual: !m[2].startsWith('!') };
}

const lines = (text) => text.split('\n').map((s) => s.trim()).filter(Boolean);
function matcherText(m) {
  const op = m.isRegex ? (m.isEqual === false ? '!~' : '=~') : (m.isEqual === false ? '!=' : '=');
  return `${m.name}${op}"${m.value}"`;
}

function Alerts({ writer, onSilence }) {
  const [resolved, setResolved] = useState(false);
  const state = resolved ? 'pending,firing,resolved' : 'pending,firing';
  const { data, error, loading, reload } = useAsync((signal) => api.get('/api/v1/alerts', { query: { state, limit: 200 }, signal }), [state]);
  useInterval(reload, 15000);
  const items = (data && data.items) || [];
  return html`<section aria-labelledby="alerts-list-title" class="block">
    <div class="page-head">
      <h2 id="alerts-list-title">Active alerts</h2>
      <div class="actions">
        <label class="inline"><input type="checkbox" checked=${resolved} onChange=${(e) => setResolved(e.currentTarget.checked)} /> Show resolved (last 24 h)</label>
        <button type="button" class="secondary" onClick=${reload} disabled=${loading}>Refresh</button>
      </div>
    </div>
    <${ProblemMessage} error=${error} title="The alerts could not be listed" />
    ${data === undefined && loading ? html`<${Loading} what="Loading alerts" />` : null}
    ${data && !items.length ? html`<${Empty} title="Nothing is firing">
      <p>Alerts of your instances appear here when a rule fires (a node down, replication lag, memory, disk…).
        Add a receiver below to be notified by webhook.</p>
    </${Empty}>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="alerts">
      <caption class="sr-only">Alerts</caption>
      <thead><tr><th scope="col">Alert</th><th scope="col">State</th><th scope="col">Instance</th><th scope="col">Since</th>
        <th scope="col">Muted</th>${writer ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
      <tbody>${items.map((a) => html`<tr key=${a.fingerprint}>
        <th scope="row">${a.labels.alertname || a.fingerprint}
          ${a.labels.severity ? html` <span class="muted small">${a.labels.severity}</span>` : null}
          ${a.annotations.summary ? html`<div class="small">${a.annotations.summary}</div>` : null}</th>
        <td><${StateBadge} value=${a.status.state} /></td>
        <td>${a.labels.instance || html`<span class="muted">—</span>`}${a.labels.node ? html`<div class="muted small">${a.labels.node}</div>` : null}</td>
        <td><${Time} value=${a.startsAt} /></td>
        <td>${a.status.silencedBy.length ? 'silenced' : a.status.inhibitedBy.length ? 'inhibited' : html`<span class="muted">no</span>`}</td>
        ${writer ? html`<td>${a.status.state !== 'resolved' && !a.status.silencedBy.length
          ? html`<button type="button" class="secondary" onClick=${() => onSilence(a)}>Silence…</button>` : null}</td>` : null}
      </tr>`)}</tbody>
    </table></div>` : null}
  </section>`;
}

function SilenceForm({ preset, onCreated }) {
  const [matchers, setMatchers] = useState(preset);
  const [hours, setHours] = useState('2');
  const [comment, setComment] = useState('');
  const { run: create, busy, error, setError } = useAction(async (parsed) => {
    const endsAt = new Date(Date.now() + Number(hours) * 3600e3).toISOString();
    await api.post('/api/v1/silences', { matchers: parsed.map(([, m]) => m), endsAt, comment: comment.trim() });
    setComment('');
    onCreated();
  });
  const [parseError, setParseError] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const parsed = lines(matchers).map((l) => [l, parseMatcher(l)]);
    const bad = parsed.find(([, m]) => !m);
    if (!parsed.length || bad) {
      setParseError(bad ? `“${bad[0]}” is not a matcher: write name="value", name!="value", name=~"regex" or name!~"regex".` : 'Give at least one matcher.');
      return;
    }
    setParseError('');
    await create(parsed);
  };
  const f = error ? error.fields : {};
  const matchersError = parseError || f.matchers || Object.entries(f).filter(([k]) => k.startsWith('matchers')).map(([, v]) => v).join('; ');
  return html`<form class="card" onSubmit=${submit} aria-labelledby="silence-form-title" novalidate data-testid="silence-form">
    <h3 id="silence-form-title">New silence</h3>
    <${Field} id="silence-matchers" label="Matchers, one per line" error=${matchersError}
        hint='Alerts matching all of them are muted: alertname="NodeDown", instance="…", severity=~"warning|info".'>
      <textarea id="silence-matchers" rows="3" value=${matchers} onInput=${(e) => setMatchers(e.currentTarget.value)}
        aria-invalid=${matchersError ? 'true' : undefined}></textarea>
    </${Field}>
    <${Field} id="silence-duration" label="For" error=${f.endsAt}>
      <select id="silence-duration" value=${hours} onChange=${(e) => setHours(e.currentTarget.value)}>
        <option value="1">1 hour</option><option value="2">2 hours</option><option value="8">8 hours</option>
        <option value="24">1 day</option><option value="168">7 days</option>
      </select>
    </${Field}>
    <${Field} id="silence-comment" label="Comment" error=${f.comment}>
      <input id="silence-comment" value=${comment} placeholder="Why, and who to ask" onInput=${(e) => setComment(e.currentTarget.value)} />
    </${Field}>
    <${ProblemMessage} error=${error} title="The silence was not created" />
    <button type="submit" disabled=${busy}>${busy ? 'Creating…' : 'Create silence'}</button>
  </form>`;
}

function Silences({ writer, preset, formKey }) {
  const [expired, setExpired] = useState(false);
  const state = expired ? 'pending,active,expired' : 'pending,active';
  const { data, error, loading, reload } = useAsync((signal) => api.get('/api/v1/silences', { query: { state }, signal }), [state]);
  const [expireError, setExpireError] = useState(null);
  const items = (data && data.items) || [];
  const expire = async (s) => {
    setExpireError(null);
    try { await api.del(`/api/v1/silences/${encodeURIComponent(s.id)}`); reload(); } catch (err) { setExpireError(err); }
  };
  return html`<section aria-labelledby="silences-title" class="block" data-testid="silences-section">
    <div class="page-head">
      <h2 id="silences-title">Silences</h2>
      <label class="inline"><input type="checkbox" checked=${expired} onChange=${(e) => setExpired(e.currentTarget.checked)} /> Show expired</label>
    </div>
    <${ProblemMessage} error=${error} title="The silences could not be listed" />
    <${ProblemMessage} error=${expireError} title="The silence could not be expired" />
    ${data === undefined && loading ? html`<${Loading} what="Loading silences" />` : null}
    ${data && !items.length ? html`<p class="muted">No silences${expired ? '' : ' in effect'}. ${writer ? 'Mute alerts during planned work with the form below.' : ''}</p>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="silences">
      <caption class="sr-only">Silences</caption>
      <thead><tr><th scope="col">Matchers</th><th scope="col">State</th><th scope="col">Until</th><th scope="col">Comment</th>
        ${writer ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
      <tbody>${items.map((s) => html`<tr key=${s.id}>
        <th scope="row">${s.matchers.map((m) => html`<code class="small matcher">${matcherText(m)}</code> `)}</th>
        <td><${StateBadge} value=${s.status.state} /></td>
        <td><${Time} value=${s.endsAt} /></td>
        <td>${s.comment || html`<span class="muted">—</span>`}<div class="muted small">${s.createdBy}</div></td>
        ${writer ? html`<td>${s.status.state !== 'expired' ? html`<${ConfirmButton} label="Expire" confirmLabel="Expire now"
          question="End this silence now? Its alerts notify again." onConfirm=${() => expire(s)} />` : null}</td>` : null}
      </tr>`)}</tbody>
    </table></div>` : null}
    ${writer ? html`<${SilenceForm} key=${formKey} preset=${preset} onCreated=${reload} />` : null}
  </section>`;
}

function ReceiverForm({ onCreated }) {
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [matchers, setMatchers] = useState('');
  const [secret, setSecret] = useState('');
  const [sendResolved, setSendResolved] = useState(true);
  const { run: add, busy, error } = useAction(async () => {
    const body = { name: name.trim(), url: url.trim(), matchers: lines(matchers), send_resolved: sendResolved };
    if (secret) body.secret = secret;
    await api.post('/api/v1/alert-receivers', body);
    setName(''); setUrl(''); setMatchers(''); setSecret('');
    onCreated();
  });
  const submit = async (e) => {
    e.preventDefault();
    await add();
  };
  const f = error ? error.fields : {};
  return html`<form class="card" onSubmit=${submit} aria-labelledby="receiver-form-title" novalidate>
    <h3 id="receiver-form-title">New webhook receiver</h3>
    <${Field} id="receiver-name" label="Name" error=${f.name}>
      <input id="receiver-name" value=${name} required onInput=${(e) => setName(e.currentTarget.value)} />
    </${Field}>
    <${Field} id="receiver-url" label="URL" error=${f.url} hint="Alertmanager's webhook payload (version 4) is POSTed here.">
      <input id="receiver-url" type="url" value=${url} required placeholder="https://hooks.example.com/alerts" onInput=${(e) => setUrl(e.currentTarget.value)} />
    </${Field}>
    <${Field} id="receiver-matchers" label="Only alerts matching, one per line (optional)" error=${f.matchers}>
      <textarea id="receiver-matchers" rows="2" value=${matchers} placeholder='severity=~"critical|warning"' onInput=${(e) => setMatchers(e.currentTarget.value)}></textarea>
    </${Field}>
    <${Field} id="receiver-secret" label="Signing secret (optional)" error=${f.secret} hint="Signs each post with HMAC-SHA256 in X-Canopy-Signature; never shown again.">
      <input id="receiver-secret" type="password" autocomplete="new-password" value=${secret} onInput=${(e) => setSecret(e.currentTarget.value)} />
    </${Field}>
    <label class="inline"><input type="checkbox" checked=${sendResolved} onChange=${(e) => setSendResolved(e.currentTarget.checked)} /> Also notify when an alert resolves</label>
    <${ProblemMessage} error=${error} title="The receiver was not added" />
    <div><button type="submit" disabled=${busy || !name.trim() || !url.trim()}>${busy ? 'Adding…' : 'Add receiver'}</button></div>
  </form>`;
}

function Receivers({ writer }) {
  const { data, error, loading, reload } = useAsync((signal) => api.get('/api/v1/alert-receivers', { signal }), []);
  const [delError, setDelError] = useState(null);
  const items = (data && data.items) || [];
  const remove = async (r) => {
    setDelError(null);
    try { await api.del(`/api/v1/alert-receivers/${encodeURIComponent(r.id)}`); reload(); } catch (err) { setDelError(err); }
  };
  return html`<section aria-labelledby="receivers-title" class="block" data-testid="receivers-section">
    <h2 id="receivers-title">Receivers</h2>
    <${ProblemMessage} error=${error} title="The receivers could not be listed" />
    <${ProblemMessage} error=${delError} title="The receiver could not be deleted" />
    ${data === undefined && loading ? html`<${Loading} what="Loading receivers" />` : null}
    ${data && !items.length ? html`<p class="muted">No receivers: alerts are listed here but nobody is notified. ${writer ? 'Add a webhook below.' : 'Ask a tenant member to add a webhook.'}</p>` : null}
    ${items.length ? html`<div class="table-wrap"><table class="list" data-testid="receivers">
      <caption class="sr-only">Webhook receivers, in route order</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">URL</th><th scope="col">Matchers</th><th scope="col">Grouping</th>
        ${writer ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
      <tbody>${items.map((r) => html`<tr key=${r.id}>
        <th scope="row">${r.name}${r.has_secret ? html`<div class="muted small">signed</div>` : null}</th>
        <td><code class="small">${r.url}</code></td>
        <td>${r.matchers.length ? r.matchers.map((m) => html`<code class="small matcher">${m}</code> `) : html`<span class="muted">every alert</span>`}</td>
        <td class="small">by ${r.group_by.join(', ') || 'nothing'}; wait ${r.group_wait}, repeat ${r.repeat_interval}</td>
        ${writer ? html`<td><${ConfirmButton} label="Delete" confirmLabel="Delete receiver" danger=${true}
          question=${`Delete ${r.name}? Its undelivered notifications become dead letters.`} onConfirm=${() => remove(r)} /></td>` : null}
      </tr>`)}</tbody>
    </table></div>` : null}
    ${writer ? html`<${ReceiverForm} onCreated=${reload} />` : null}
  </section>`;
}

export default function AlertsPage({ session }) {
  const writer = canWrite(session);
  const [preset, setPreset] = useState({ text: '', n: 0 });
  const silence = (a) => {
    const keep = ['alertname', 'instance', 'node'].filter((k) => a.labels[k]);
    setPreset((p) => ({ text: keep.map((k) => `${k}="${a.labels[k]}"`).join('\n'), n: p.n + 1 }));
    setTimeout(() => { const el = document.getElementById('silence-matchers'); if (el) el.focus(); }, 0);
  };
  return html`<section aria-labelledby="alerts-title">
    <h1 id="alerts-title">Alerts</h1>
    <${Alerts} writer=${writer} onSilence=${silence} />
    <${Silences} writer=${writer} preset=${preset.text} formKey=${preset.n} />
    <${Receivers} writer=${writer} />
  </section>`;
}
