// Small shared pieces of UI. Pages show errors where they happen with
// <ProblemMessage>, timestamps with <Time>, form fields with <Field>.
import { html } from './html.js';

/** The API's problem (an ApiError or any Error) as an alert: title, detail and field errors. */
export function ProblemMessage({ error, title }) {
  if (!error) return null;
  const heading = title || (error.status ? `${error.title || 'Error'} (${error.status})` : error.title || 'Error');
  const fields = error.errors || [];
  return html`<div class="problem" role="alert">
    <strong>${heading}</strong>
    ${error.detail || (!error.status && error.message) ? html`<p class="problem-detail">${error.detail || error.message}</p>` : null}
    ${fields.length ? html`<ul>${fields.map((f) => html`<li><code>${f.field}</code>: ${f.reason}</li>`)}</ul>` : null}
    ${error.requestId ? html`<p class="muted small">Request id ${error.requestId}</p>` : null}
  </div>`;
}

/**
 * <Field id label error hint>…input with the same id…</Field>: a label on
 * every input, the field's error right under it (aria-describedby).
 */
export function Field({ id, label, error, hint, children }) {
  return html`<div class=${'field' + (error ? ' field-invalid' : '')}>
    <label for=${id}>${label}</label>
    ${children}
    ${hint ? html`<p class="hint" id=${id + '-hint'}>${hint}</p>` : null}
    ${error ? html`<p class="field-error" id=${id + '-error'} role="alert">${error}</p>` : null}
  </div>`;
}

/** An RFC 3339 timestamp in the user's locale and time zone. */
export function Time({ value }) {
  if (!value) return html`<span class="muted">—</span>`;
  const d = new Date(value);
  return html`<time datetime=${value} title=${d.toISOString()}>${d.toLocaleString()}</time>`;
}

/** An empty state: what is not there and what to do about it. */
export function Empty({ title, children }) {
  return html`<div class="empty"><h2>${title}</h2>${children}</div>`;
}

export function Loading({ what = 'Loading' }) {
  return html`<p class="loading" role="status">${what}…</p>`;
}

const TONES = {
  ready: 'ok', up: 'ok', healthy: 'ok',
  provisioning: 'busy', updating: 'busy', deleting: 'busy',
  degraded: 'warn', unknown: 'muted',
  failed: 'bad', down: 'bad', deleted: 'muted',
};

/** A coloured label for a state or health word (text, never colour alone). */
export function Badge({ value, label }) {
  return html`<span class=${'badge badge-' + (TONES[value] || 'muted')}>${label || value}</span>`;
}
