// Operator: the placement simulator (POST /api/v1/placements:simulate).
// A catalog plan or an inline shape, a region → where each node would go,
// or the refusal: its one-sentence explanation, the hosts each filter
// rejected and the zones it looked at. Nothing is reserved.
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync } from '../hooks.js';
import { Field, Loading, ProblemMessage } from '../components.js';

const MODES = ['single-az', 'multi-az', 'multi-region'];
const CUSTOM = 'custom';

async function loadChoices(signal) {
  const [plans, regions] = await Promise.all([
    api.get('/api/v1/catalog/plans', { query: { state: 'active', limit: 500 }, signal }).catch((err) => {
      if (err.name === 'AbortError') throw err;
      return { items: [], error: err };
    }),
    api.get('/api/v1/inventory/regions', { signal }),
  ]);
  return { plans: plans.items || [], plansError: plans.error || null, regions: regions.items };
}

/** The inline nodes of a custom shape: a primary, replicas, and for multi-region one dr-replica last. */
export function shapeNodes({ mode, count, vcpu, memory_mb, storage_gb }) {
  const n = Math.max(1, Number(count) || 1);
  return Array.from({ length: n }, (_, i) => ({
    name: `node-${i + 1}`,
    role: i === 0 ? 'primary' : mode === 'multi-region' && i === n - 1 ? 'dr-replica' : 'replica',
    vcpu: Number(vcpu), memory_mb: Number(memory_mb), storage_gb: Number(storage_gb),
  }));
}

function Placement({ result }) {
  return html`<section class="card sim-result sim-ok" aria-labelledby="sim-ok-title" data-testid="sim-placement">
    <h2 id="sim-ok-title">Placed: ${result.deployment_mode}, score ${result.score.toFixed(3)}</h2>
    <div class="table-wrap"><table class="list">
      <caption class="sr-only">Where each node would go</caption>
      <thead><tr><th scope="col">Node</th><th scope="col">Role</th><th scope="col">Region</th><th scope="col">Zone</th>
        <th scope="col">Host</th><th scope="col">Address</th><th scope="col">Resources</th><th scope="col">Score</th></tr></thead>
      <tbody>${result.nodes.map((n) => html`<tr key=${n.name}>
        <th scope="row">${n.name}</th><td>${n.role}</td><td>${n.region}</td><td>${n.az}</td><td>${n.host}</td>
        <td><code>${n.address}:${n.port}</code></td>
        <td>${n.resources.vcpu} vCPU · ${n.resources.memory_mb} MiB · ${n.resources.storage_gb} GiB</td>
        <td>${n.score.toFixed(3)}</td>
      </tr>`)}</tbody>
    </table></div>
    <p class="muted small">A simulation: nothing was reserved.</p>
  </section>`;
}

function Refusal({ problem }) {
  const filters = problem.filters || [];
  const zones = problem.zones || [];
  return html`<section class="card sim-result sim-refused" aria-labelledby="sim-refused-title" data-testid="sim-refusal">
    <h2 id="sim-refused-title">No placement</h2>
    <p class="sim-explanation" data-testid="sim-explanation">${problem.detail}</p>
    ${problem.node ? html`<p class="muted small">Host counts are for node <code>${problem.node}</code> (the largest one not placed).</p>` : null}
    ${filters.length ? html`<h3>Filters, in pipeline order</h3>
      <div class="table-wrap"><table class="list">
        <caption class="sr-only">Hosts each filter rejected</caption>
        <thead><tr><th scope="col">Filter</th><th scope="col">Hosts rejected</th><th scope="col">Why</th></tr></thead>
        <tbody>${filters.map((f) => html`<tr key=${f.name} class=${f.rejected ? '' : 'muted'}>
          <th scope="row"><code>${f.name}</code></th><td>${f.rejected}</td><td>${f.reason || '—'}</td></tr>`)}</tbody>
      </table></div>` : null}
    ${zones.length ? html`<h3>Zones considered</h3>
      <div class="table-wrap"><table class="list">
        <caption class="sr-only">Zones and their feasible hosts</caption>
        <thead><tr><th scope="col">Zone</th><th scope="col">Region</th><th scope="col">Hosts</th><th scope="col">Feasible</th><th scope="col">Why</th></tr></thead>
        <tbody>${zones.map((z) => html`<tr key=${z.az}>
          <th scope="row">${z.az}</th><td>${z.region}</td><td>${z.hosts}</td>
          <td class=${z.feasible ? '' : 'bad-text'}>${z.feasible}</td><td>${z.reason || '—'}</td></tr>`)}</tbody>
      </table></div>` : null}
  </section>`;
}

function SimForm({ choices }) {
  const [plan, setPlan] = useState(choices.plans.length ? choices.plans[0].id : CUSTOM);
  const [shape, setShape] = useState({ engine: 'mysql', mode: 'multi-az', count: '3', vcpu: '1', memory_mb: '2048', storage_gb: '20' });
  const [region, setRegion] = useState('');
  const [drRegion, setDrRegion] = useState('');
  const [tenant, setTenant] = useState('');
  const [outcome, setOutcome] = useState(null); // { placement } | { refusal } | { error }
  // A refusal (422 with filters) is an outcome, not an error: the catch stays here.
  const { run: simulate, busy } = useAction(async (body) => {
    try {
      setOutcome({ placement: await api.post('/api/v1/placements:simulate', body) });
    } catch (err) {
      setOutcome(err.status === 422 && err.problem.filters ? { refusal: err.problem } : { error: err });
    }
  });

  const chosen = choices.plans.find((p) => p.id === plan);
  const mode = chosen ? chosen.deployment_mode : shape.mode;
  const setS = (k) => (e) => { const v = e.currentTarget.value; setShape((s) => ({ ...s, [k]: v })); };

  const submit = async (e) => {
    e.preventDefault();
    setOutcome(null);
    const body = {};
    if (chosen) body.plan_id = chosen.id;
    else {
      body.engine = shape.engine;
      body.deployment_mode = shape.mode;
      body.nodes = shapeNodes(shape);
    }
    if (region) body.region = region;
    if (drRegion && mode === 'multi-region') body.dr_region = drRegion;
    if (tenant.trim()) body.tenant_id = tenant.trim();
    await simulate(body);
  };
  const f = (outcome && outcome.error && outcome.error.fields) || {};
  const nodeErr = Object.entries(f).filter(([k]) => k.startsWith('nodes') || k.startsWith('plan')).map(([k, v]) => `${k}: ${v}`).join('; ');

  return html`
    <form class="card" onSubmit=${submit} aria-labelledby="sim-form-title" novalidate>
      <h2 id="sim-form-title">What to place</h2>
      <div class="form-row">
        <${Field} id="sim-plan" label="Plan" error=${f.plan_id}
            hint=${choices.plansError ? `The catalog could not be read (${choices.plansError.detail || choices.plansError.message}); use a custom shape.` : 'A catalog plan, or a shape of your own.'}>
          <select id="sim-plan" value=${plan} onChange=${(e) => setPlan(e.currentTarget.value)}>
            ${choices.plans.map((p) => html`<option value=${p.id}>${p.name} — ${p.engine}, ${p.deployment_mode}, ${p.nodes.count} × ${p.resources.vcpu} vCPU / ${p.resources.memory_mb} MiB</option>`)}
            <option value=${CUSTOM}>Custom shape…</option>
          </select>
        </${Field}>
        <${Field} id="sim-region" label="Region" error=${f.region} hint="Where the primary group must go; empty picks the best allowed one.">
          <select id="sim-region" value=${region} onChange=${(e) => setRegion(e.currentTarget.value)}>
            <option value="">Best region</option>
            ${choices.regions.map((r) => html`<option value=${r.id}>${r.name || r.id} (${r.id})</option>`)}
          </select>
        </${Field}>
        ${mode === 'multi-region' ? html`<${Field} id="sim-dr-region" label="DR region" error=${f.dr_region} hint="Where dr-replicas go; empty picks the best other one.">
          <select id="sim-dr-region" value=${drRegion} onChange=${(e) => setDrRegion(e.currentTarget.value)}>
            <option value="">Best other region</option>
            ${choices.regions.map((r) => html`<option value=${r.id}>${r.name || r.id} (${r.id})</option>`)}
          </select>
        </${Field}>` : null}
        <${Field} id="sim-tenant" label="Tenant (optional)" error=${f.tenant_id} hint="Applies the tenant's allowed regions.">
          <input id="sim-tenant" value=${tenant} autocomplete="off" spellcheck="false" onInput=${(e) => setTenant(e.currentTarget.value)} />
        </${Field}>
      </div>
      ${chosen ? null : html`<fieldset class="form-row">
        <legend>Custom shape</legend>
        <${Field} id="sim-engine" label="Engine" error=${f.engine}>
          <select id="sim-engine" value=${shape.engine} onChange=${setS('engine')}>
            <option value="mysql">mysql</option><option value="redis">redis</option>
          </select>
        </${Field}>
        <${Field} id="sim-mode" label="Deployment mode" error=${f.deployment_mode}>
          <select id="sim-mode" value=${shape.mode} onChange=${setS('mode')}>${MODES.map((m) => html`<option value=${m}>${m}</option>`)}</select>
        </${Field}>
        <${Field} id="sim-count" label="Nodes" hint=${shape.mode === 'multi-region' ? 'The last is a dr-replica.' : 'The first is the primary.'}>
          <input id="sim-count" type="number" min="1" max="16" value=${shape.count} onInput=${setS('count')} />
        </${Field}>
        <${Field} id="sim-vcpu" label="vCPU per node"><input id="sim-vcpu" type="number" min="0" step="any" value=${shape.vcpu} onInput=${setS('vcpu')} /></${Field}>
        <${Field} id="sim-memory" label="Memory per node (MiB)"><input id="sim-memory" type="number" min="0" value=${shape.memory_mb} onInput=${setS('memory_mb')} /></${Field}>
        <${Field} id="sim-storage" label="Storage per node (GiB)"><input id="sim-storage" type="number" min="0" value=${shape.storage_gb} onInput=${setS('storage_gb')} /></${Field}>
      </fieldset>`}
      ${nodeErr ? html`<p class="field-error" role="alert">${nodeErr}</p>` : null}
      <button type="submit" disabled=${busy}>${busy ? 'Simulating…' : 'Simulate'}</button>
    </form>
    ${outcome && outcome.error ? html`<${ProblemMessage} error=${outcome.error} title="The simulation could not run" />` : null}
    ${outcome && outcome.placement ? html`<${Placement} result=${outcome.placement} />` : null}
    ${outcome && outcome.refusal ? html`<${Refusal} problem=${outcome.refusal} />` : null}`;
}

export default function Simulator() {
  const { data, error, loading } = useAsync(loadChoices, []);
  return html`<section aria-labelledby="sim-title">
    <h1 id="sim-title">Placement simulator</h1>
    <p class="muted">Where would an instance go now? The scheduler runs its filters and scorers against the live inventory and reserves nothing.</p>
    <${ProblemMessage} error=${error} title="The simulator could not load the regions" />
    ${data === undefined && loading ? html`<${Loading} />` : null}
    ${data ? html`<${SimForm} choices=${data} />` : null}
  </section>`;
}
