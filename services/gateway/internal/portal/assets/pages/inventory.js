// Operator: the inventory as a map — regions → availability zones → hosts,
// each host with what is allocated of its capacity (vCPU, memory, storage)
// and its state, with cordon / uncordon (scheduling's /api/v1/inventory).
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync } from '../hooks.js';
import { Badge, Empty, Loading, ProblemMessage } from '../components.js';

/** Every host, following next_cursor. */
async function allHosts(signal) {
  const out = [];
  let cursor = '';
  for (;;) {
    const page = await api.get('/api/v1/inventory/hosts', { query: { limit: 500, cursor }, signal });
    out.push(...page.items);
    if (!page.next_cursor) return out;
    cursor = page.next_cursor;
  }
}

async function load(signal) {
  const [regions, zones, hosts] = await Promise.all([
    api.get('/api/v1/inventory/regions', { signal }),
    api.get('/api/v1/inventory/zones', { signal }),
    allHosts(signal),
  ]);
  return { regions: regions.items, zones: zones.items, hosts };
}

const STATE_TONE = { ready: 'ready', cordoned: 'degraded', down: 'down' };

const fmt = {
  vcpu: (v) => `${+v.toFixed(3)} vCPU`,
  memory_mb: (v) => (v >= 1024 ? `${+(v / 1024).toFixed(1)} GiB` : `${v} MiB`),
  storage_gb: (v) => `${v} GiB`,
};
const LABELS = { vcpu: 'vCPU', memory_mb: 'Memory', storage_gb: 'Storage' };

/** One resource as a <meter> (native, no inline style) with the figures in words. */
function Use({ id, what, allocated, capacity }) {
  const pct = capacity > 0 ? Math.round((allocated / capacity) * 100) : 0;
  return html`<div class="use">
    <label for=${id}>${LABELS[what]}</label>
    <meter id=${id} min="0" max=${capacity || 1} value=${allocated} low=${capacity * 0.7} high=${capacity * 0.9} optimum="0"></meter>
    <span class="small">${fmt[what](allocated)} of ${fmt[what](capacity)} (${pct}%)</span>
  </div>`;
}

/** Sums the resources of hosts. */
function total(hosts, side) {
  return hosts.reduce((s, h) => ({
    vcpu: s.vcpu + h[side].vcpu, memory_mb: s.memory_mb + h[side].memory_mb, storage_gb: s.storage_gb + h[side].storage_gb,
  }), { vcpu: 0, memory_mb: 0, storage_gb: 0 });
}

function Host({ host, onChanged }) {
  const { run: act, busy, error } = useAction(async (action) => {
    const h = await api.post(`/api/v1/inventory/hosts/${encodeURIComponent(host.id)}:${action}`);
    onChanged(h);
  });
  const labels = Object.entries(host.labels || {});
  return html`<li class=${'host host-' + host.state} data-testid=${'host-' + host.id} data-state=${host.state}>
    <div class="host-head">
      <strong>${host.id}</strong>
      <${Badge} value=${STATE_TONE[host.state] || host.state} label=${host.state} />
    </div>
    <div class="muted small">${host.address} · ports ${host.ports.from}–${host.ports.to}</div>
    ${['vcpu', 'memory_mb', 'storage_gb'].map((r) => html`<${Use} id=${`use-${host.id}-${r}`} what=${r}
        allocated=${host.allocated[r]} capacity=${host.capacity[r]} />`)}
    ${labels.length ? html`<div class="small">${labels.map(([k, v]) => html`<code class="label">${k}=${v}</code> `)}</div>` : null}
    <${ProblemMessage} error=${error} title=${`Host ${host.id} could not be changed`} />
    ${host.state === 'ready' ? html`<button type="button" class="secondary" disabled=${busy} onClick=${() => act('cordon')}
        aria-label=${`Cordon ${host.id}`}>Cordon</button>` : null}
    ${host.state === 'cordoned' ? html`<button type="button" disabled=${busy} onClick=${() => act('uncordon')}
        aria-label=${`Uncordon ${host.id}`}>Uncordon</button>` : null}
    ${host.state === 'down' ? html`<p class="small muted">Down: set it to ready through PATCH /api/v1/inventory/hosts/${host.id} once it is back.</p>` : null}
  </li>`;
}

function Totals({ hosts }) {
  if (!hosts.length) return null;
  const a = total(hosts, 'allocated');
  const c = total(hosts, 'capacity');
  const pct = (r) => (c[r] > 0 ? Math.round((a[r] / c[r]) * 100) : 0);
  return html`<span class="muted small">${hosts.length} host${hosts.length === 1 ? '' : 's'} ·
    vCPU ${pct('vcpu')}% · memory ${pct('memory_mb')}% · storage ${pct('storage_gb')}% allocated</span>`;
}

export default function Inventory() {
  const { data, error, loading, reload } = useAsync(load, []);
  // A cordon answers the host: show it at once, then reload the whole map.
  const [changed, setChanged] = useState({});
  const onChanged = (h) => { setChanged((s) => ({ ...s, [h.id]: h })); reload(); };
  const hosts = data ? data.hosts.map((h) => (changed[h.id] && changed[h.id].version > h.version ? changed[h.id] : h)) : [];
  const byZone = (z) => hosts.filter((h) => h.zone === z);
  return html`<section aria-labelledby="inventory-title">
    <div class="page-head">
      <h1 id="inventory-title">Inventory</h1>
      <button type="button" class="secondary" onClick=${reload} disabled=${loading}>Refresh</button>
    </div>
    <p class="muted">Bars show what placements have reserved of each host's capacity. A cordoned host keeps its nodes and takes no new ones.</p>
    <${ProblemMessage} error=${error} title="The inventory could not be read" />
    ${data === undefined && loading ? html`<${Loading} what="Loading the inventory" />` : null}
    ${data && !data.regions.length ? html`<${Empty} title="No regions">
      <p>The inventory is empty. Load a file with <code>CANOPY_SCHEDULING_INVENTORY_FILE</code> or add regions, zones and hosts with <code>POST /api/v1/inventory/…</code> (docs/scheduling.md).</p></${Empty}>` : null}
    ${data ? data.regions.map((r) => {
      const zones = data.zones.filter((z) => z.region === r.id);
      return html`<section class="region" aria-labelledby=${'region-' + r.id} data-testid=${'region-' + r.id}>
        <div class="region-head">
          <h2 id=${'region-' + r.id}>${r.name || r.id} <span class="muted small"><code>${r.id}</code></span></h2>
          <${Totals} hosts=${hosts.filter((h) => h.region === r.id)} />
        </div>
        ${zones.length ? html`<div class="zones">${zones.map((z) => html`<section class="zone" aria-labelledby=${'zone-' + z.id}>
          <h3 id=${'zone-' + z.id}>${z.name || z.id} <span class="muted small"><code>${z.id}</code></span></h3>
          <${Totals} hosts=${byZone(z.id)} />
          ${byZone(z.id).length
            ? html`<ul class="hosts">${byZone(z.id).map((h) => html`<${Host} key=${h.id} host=${h} onChanged=${onChanged} />`)}</ul>`
            : html`<p class="muted small">No hosts in this zone: add one with POST /api/v1/inventory/hosts.</p>`}
        </section>`)}</div>` : html`<p class="muted">No availability zones in this region yet.</p>`}
      </section>`;
    }) : null}
  </section>`;
}
