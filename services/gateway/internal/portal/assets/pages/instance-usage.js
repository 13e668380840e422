// Usage and cost charts (docs/metering.md): what a period cost per hour or
// day (GET /api/v1/costs), one meter's quantity per window
// (GET /api/v1/usage?meter=…), the period's cost by meter (and instance),
// and CSV downloads of both (the API's own CSV, ?format=csv). UsageView
// serves the tenant's usage page (every instance) and, as the default
// export, the instance page's usage tab (one instance).
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAsync } from '../hooks.js';
import { Empty, Field, Loading, ProblemMessage } from '../components.js';
import { BarChart, num } from '../extras.js';

const PERIODS = { '1d': 1, '7d': 7, '30d': 30 };
const STEP = { hour: 3600e3, day: 86400e3 };

/** One bar per window from report.from to report.to, zero where no row is. */
function series(report, window, valueOf) {
  const sums = new Map();
  for (const r of report.data) {
    const k = Date.parse(r.window_start);
    sums.set(k, (sums.get(k) || 0) + valueOf(r));
  }
  const out = [];
  const end = Date.parse(report.to);
  for (let t = Date.parse(report.from); t < end && out.length < 2000; t += STEP[window]) {
    const d = new Date(t);
    const label = window === 'hour'
      ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
    out.push({ label, value: sums.get(t) || 0, title: undefined, at: d });
  }
  return out;
}

function csvHref(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...query, format: 'csv' })) if (v) q.append(k, v);
  return `${path}?${q}`;
}

/** UsageView shows the tenant's usage and cost, or one instance's when instanceId is set. */
export function UsageView({ instanceId = '', idPrefix = 'usage' }) {
  const [window, setWindow] = useState('hour');
  const [period, setPeriod] = useState('1d');
  const [meter, setMeter] = useState('node_hours');
  // from is fixed per choice (not per render) so the three calls agree.
  const from = new Date(Math.floor((Date.now() - PERIODS[period] * 86400e3) / STEP[window]) * STEP[window]).toISOString();
  const base = { window, from, instance: instanceId };

  const meters = useAsync((signal) => api.get('/api/v1/meters', { signal }), []);
  const costs = useAsync((signal) => api.get('/api/v1/costs', { query: base, signal }), [window, period, instanceId]);
  const usage = useAsync((signal) => api.get('/api/v1/usage', { query: { ...base, meter }, signal }), [window, period, instanceId, meter]);
  const byMeter = useAsync((signal) => api.get('/api/v1/costs', { query: { ...base, group_by: instanceId ? 'meter' : 'instance,meter' }, signal }),
    [window, period, instanceId]);

  // Names for the table's instance ids (the tenant's page only).
  const names = useAsync((signal) => (instanceId ? Promise.resolve({ items: [] })
    : api.get('/api/v1/instances', { query: { limit: 500 }, signal })), [instanceId]);
  const nameOf = (iid) => ((names.data && names.data.items) || []).find((i) => i.id === iid)?.name || iid;
  const meterList = (meters.data && meters.data.items) || [];
  const unit = (meterList.find((m) => m.slug === meter) || {}).unit || '';
  const currency = (costs.data && costs.data.currency) || '';
  const costBars = costs.data ? series(costs.data, window, (r) => parseFloat(r.amount) || 0) : [];
  const usageBars = usage.data ? series(usage.data, window, (r) => r.value) : [];
  const rows = ((byMeter.data && byMeter.data.data) || []).filter((r) => parseFloat(r.amount) > 0 || r.quantity > 0);
  const nothing = costs.data && usage.data && !costs.data.data.length && !usage.data.data.length;
  const id = (s) => `${idPrefix}-${s}`;
  // Under the usage page's h1, or under the instance tab's h2.
  const H = instanceId ? 'h3' : 'h2';

  return html`<div class="usage" data-testid="usage-view">
    <form class="filters" onSubmit=${(e) => e.preventDefault()} aria-label="What to show">
      <${Field} id=${id('window')} label="Per">
        <select id=${id('window')} value=${window} onChange=${(e) => setWindow(e.currentTarget.value)}>
          <option value="hour">hour</option><option value="day">day</option>
        </select>
      </${Field}>
      <${Field} id=${id('period')} label="Over the last">
        <select id=${id('period')} value=${period} onChange=${(e) => setPeriod(e.currentTarget.value)}>
          <option value="1d">24 hours</option><option value="7d">7 days</option><option value="30d">30 days</option>
        </select>
      </${Field}>
      <${Field} id=${id('meter')} label="Meter">
        <select id=${id('meter')} value=${meter} onChange=${(e) => setMeter(e.currentTarget.value)}>
          ${(meterList.length ? meterList : [{ slug: 'node_hours', name: 'Node hours' }]).map((m) => html`<option value=${m.slug}>${m.name || m.slug}</option>`)}
        </select>
      </${Field}>
      <div class="downloads">
        <a class="button-link" href=${csvHref('/api/v1/usage', { ...base, group_by: 'instance,meter' })} download="usage.csv" data-testid="usage-csv">Usage CSV</a>
        <a class="button-link" href=${csvHref('/api/v1/costs', { ...base, group_by: 'instance,meter' })} download="costs.csv">Costs CSV</a>
      </div>
    </form>
    <${ProblemMessage} error=${meters.error} title="The meters could not be listed" />
    <${ProblemMessage} error=${costs.error} title="The costs could not be read" />
    <${ProblemMessage} error=${usage.error} title="The usage could not be read" />
    ${(costs.loading && !costs.data) || (usage.loading && !usage.data) ? html`<${Loading} what="Loading usage" />` : null}
    ${nothing ? html`<${Empty} title="No usage in this period">
      <p>Usage is measured while instances run: node hours and storage from their lifecycle, network bytes from their samples.${' '}
        ${instanceId ? 'This instance has' : 'Your instances have'} not recorded any yet; try a longer period, or come back once an instance has run for a while.</p>
    </${Empty}>` : null}
    ${costs.data && !nothing ? html`<section aria-labelledby=${id('cost-title')}>
      <${H} id=${id('cost-title')}>Cost: ${num(costs.data.total, 2)} ${currency}</${H}>
      <${BarChart} bars=${costBars} unit=${currency} caption=${`Cost per ${window}`} testid="cost-chart" />
    </section>` : null}
    ${usage.data && !nothing ? html`<section aria-labelledby=${id('meter-title')}>
      <${H} id=${id('meter-title')}>${(meterList.find((m) => m.slug === meter) || {}).name || meter}</${H}>
      <${BarChart} bars=${usageBars} unit=${unit} caption=${`${meter} per ${window}`} testid="usage-chart" />
    </section>` : null}
    ${rows.length ? html`<div class="table-wrap"><table class="list" data-testid="cost-by-meter">
      <caption>Cost by ${instanceId ? '' : 'instance and '}meter over the period</caption>
      <thead><tr>${instanceId ? null : html`<th scope="col">Instance</th>`}<th scope="col">Meter</th>
        <th scope="col">Quantity</th><th scope="col">Cost</th></tr></thead>
      <tbody>${rows.map((r, i) => html`<tr key=${i}>
        ${instanceId ? null : html`<td>${r.instance_id ? nameOf(r.instance_id) : html`<span class="muted">—</span>`}</td>`}
        <td>${r.meter}</td><td>${num(r.quantity, 3)} ${r.unit || ''}</td><td>${num(r.amount, 2)} ${r.currency}</td>
      </tr>`)}</tbody>
    </table></div>` : null}
  </div>`;
}

export default function InstanceUsage({ instance }) {
  return html`<section aria-labelledby="instance-usage-title" data-testid="tab-usage">
    <h2 id="instance-usage-title">Usage and cost</h2>
    <${UsageView} instanceId=${instance.id} idPrefix="instance-usage" />
  </section>`;
}
