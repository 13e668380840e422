// Small pieces shared by the pages of the services built after
// provisioning (failover, backups, CDC/sync, metering, alerting, keys): a
// bar chart in plain SVG, a copy button, a two-step confirm button, tone
// words for their states and number formatting. Imported only by those
// pages, so it costs the first load nothing.
import { html, useEffect, useRef, useState } from './html.js';
import { Badge } from './components.js';

// Badge's tones are named by instance words; the other services' states
// map onto them (text stays the state itself, never colour alone).
const TONE = {
  completed: 'ready', succeeded: 'ready', passed: 'ready', streaming: 'ready', active: 'ready', resolved: 'ready',
  running: 'provisioning', started: 'provisioning', snapshotting: 'provisioning', loading: 'provisioning', pending: 'degraded',
  paused: 'degraded', firing: 'failed', failed: 'failed', expired: 'deleted', deleting: 'deleting', revoked: 'deleted',
};

/** <StateBadge value="completed" /> — a Badge for any service's state word. */
export function StateBadge({ value }) {
  return html`<${Badge} value=${TONE[value] || value} label=${value} />`;
}

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** 1234 → "1.2 s", 90000 → "1.5 min". */
export function millis(ms) {
  if (ms === undefined || ms === null) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

/**
 * A number for an axis or a cell: 12345.678 → "12,345.68"; below 1 three
 * significant digits, so small usage (0.00312 node-hours) does not read 0.
 */
export function num(v, digits = 2) {
  const n = Number(v || 0);
  if (n !== 0 && Math.abs(n) < 1 && digits > 0) return n.toLocaleString(undefined, { maximumSignificantDigits: 3 });
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** A random Idempotency-Key for one user action. */
export function idempotencyKey() {
  const a = new Uint8Array(16);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * <CopyButton text label /> copies text to the clipboard and says so
 * (role=status), or says it could not (the user can still select the text).
 */
export function CopyButton({ text, label = 'Copy' }) {
  const [said, setSaid] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setSaid('Copied');
    } catch (e) {
      setSaid('Copy failed: select the text and copy it');
    }
  };
  return html`<span class="copy"><button type="button" class="secondary small-button" onClick=${copy}>${label}</button>
    <span role="status" class="muted small">${said}</span></span>`;
}

/**
 * <ConfirmButton label confirmLabel question onConfirm danger busy /> asks
 * before it acts: the first click shows the question with a confirm and a
 * cancel button (focus moves to cancel, the safe choice).
 */
export function ConfirmButton({ label, confirmLabel, question, onConfirm, danger = false, disabled = false, testid }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const cancel = useRef(null);
  useEffect(() => { if (asking && cancel.current) cancel.current.focus(); }, [asking]);
  if (!asking) {
    return html`<button type="button" class=${danger ? 'danger' : ''} disabled=${disabled} data-testid=${testid}
      onClick=${() => setAsking(true)}>${label}</button>`;
  }
  const go = async () => {
    setBusy(true);
    try { await onConfirm(); } finally { setBusy(false); setAsking(false); }
  };
  return html`<div class="confirm" role="group" aria-label=${label}>
    <p>${question}</p>
    <button type="button" class=${danger ? 'danger' : ''} disabled=${busy} onClick=${go}
      data-testid=${testid ? testid + '-confirm' : undefined}>${busy ? 'Working…' : confirmLabel || label}</button>
    <button type="button" class="secondary" disabled=${busy} ref=${cancel}
      onClick=${() => setAsking(false)}>Cancel</button>
  </div>`;
}

/**
 * <BarChart bars=[{label, value, title}] unit caption /> draws one bar per
 * entry in plain SVG (no chart library), scaled to the largest value, with
 * the maximum on the axis. Every bar has a <title> (hover and screen
 * readers); the caption names the chart for assistive technology, and a
 * table of the same numbers sits next to it for those who want the figures.
 */
export function BarChart({ bars, unit = '', caption, height = 160, testid }) {
  const W = 720;
  const H = height;
  const pad = { l: 64, r: 36, t: 10, b: 22 };
  const max = Math.max(0, ...bars.map((b) => b.value));
  const innerW = W - pad.l - pad.r;
  const innerH = H - pad.t - pad.b;
  const step = bars.length ? innerW / bars.length : innerW;
  const bw = Math.max(1, step * 0.8);
  // Label at most ~8 ticks along the bottom, evenly.
  const every = Math.max(1, Math.ceil(bars.length / 8));
  return html`<figure class="chart" data-testid=${testid}>
    <svg class="bar-chart" viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${caption}>
      <line class="axis" x1=${pad.l} y1=${pad.t + innerH} x2=${W - pad.r} y2=${pad.t + innerH} />
      <line class="axis" x1=${pad.l} y1=${pad.t} x2=${pad.l} y2=${pad.t + innerH} />
      <text class="tick" x=${pad.l - 4} y=${pad.t + 8} text-anchor="end">${num(max)}</text>
      <text class="tick" x=${pad.l - 4} y=${pad.t + innerH} text-anchor="end">0</text>
      ${bars.map((b, i) => {
        const h = max > 0 ? (b.value / max) * innerH : 0;
        const x = pad.l + i * step + (step - bw) / 2;
        return html`<g key=${i}>
          <rect class="bar" x=${x} y=${pad.t + innerH - h} width=${bw} height=${Math.max(h, b.value > 0 ? 1 : 0)}>
            <title>${b.title || `${b.label}: ${num(b.value, 6)} ${unit}`}</title>
          </rect>
          ${i % every === 0 ? html`<text class="tick" x=${pad.l + i * step + step / 2} y=${H - 6} text-anchor="middle">${b.label}</text>` : null}
        </g>`;
      })}
    </svg>
    <figcaption class="muted small">${caption}${unit ? ` (${unit})` : ''}</figcaption>
  </figure>`;
}
