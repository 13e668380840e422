// The catalog: each engine's orderable plans grouped by deployment mode,
// with size, replication, SLO and price, and (for roles that may write) the
// order form of a plan at #/catalog?plan=<id>, generated from the plan's
// parameter JSON Schema. The API validates the order; its problem's detail
// is shown above the form and each field error under the field it names.
import { html, useState } from '../html.js';
import * as api from '../api.js';
import { useAction, useAsync } from '../hooks.js';
import { Empty, Field, Loading, ProblemMessage } from '../components.js';
import { href, navigate } from '../router.js';
import { canWrite, isOperator } from '../session.js';
import { SchemaFields, fieldErrors, initialValues, parameterValues, schemaFields } from '../schemaform.js';

const MODES = [
  ['single-az', 'Single availability zone', 'One node; for development and tests.'],
  ['multi-az', 'Multiple availability zones', 'A primary and replicas in separate zones of one region, with automatic failover.'],
  ['multi-region', 'Multiple regions', 'Replicas in a second region for disaster recovery.'],
];
const HOURS_PER_MONTH = 730;

/** Every page of GET /api/v1/catalog/services (a handful of engines). */
async function loadServices(signal) {
  const items = [];
  let cursor = '';
  for (let i = 0; i < 20; i++) {
    const page = await api.get('/api/v1/catalog/services', { query: { limit: 100, cursor }, signal });
    items.push(...(page.items || []));
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return items;
}

function money(amount, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency, maximumFractionDigits: amount < 1 ? 3 : 0 }).format(amount);
  } catch {
    return `${amount.toFixed(3)} ${currency}`;
  }
}

function memory(mb) {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GB` : `${mb} MB`;
}

function seconds(s) {
  if (s === 0) return '0 s';
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

/** The plan's price per month of running every node with its storage. */
function monthly(plan) {
  const p = plan.prices;
  const perNode = Number(p.node_hour) + Number(p.storage_gb_hour) * plan.resources.storage_gb;
  return perNode * plan.nodes.count * HOURS_PER_MONTH;
}

/** The plan's facts as a definition list (shared by the card and the order form). */
function PlanFacts({ plan }) {
  const r = plan.resources;
  const n = plan.nodes;
  return html`<dl class="facts">
    <dt>Nodes</dt><dd>${n.count} ${n.count === 1 ? 'node' : 'nodes'} in ${n.zones} ${n.zones === 1 ? 'zone' : 'zones'}</dd>
    <dt>Size</dt><dd>${r.vcpu} vCPU · ${memory(r.memory_mb)} memory · ${r.storage_gb} GB storage <span class="muted small">per node (${plan.size})</span></dd>
    <dt>Replication</dt><dd>${n.count > 1 ? plan.replication_mode : 'none'}</dd>
    <dt>SLO</dt><dd>${plan.slo.availability}% · RTO ${seconds(plan.slo.rto_seconds)} · RPO ${seconds(plan.slo.rpo_seconds)}</dd>
    <dt>Versions</dt><dd>${plan.versions.join(', ')} <span class="muted small">(default ${plan.default_version})</span></dd>
    <dt>Price</dt><dd><strong>${money(Number(plan.prices.node_hour), plan.prices.currency)}</strong> per node-hour
      <div class="muted small">about ${money(monthly(plan), plan.prices.currency)} a month with storage</div></dd>
  </dl>`;
}

function PlanCard({ plan, service, session }) {
  return html`<article class="card plan" data-plan=${plan.name} aria-labelledby=${'plan-' + plan.id}>
    <p class="plan-engine">${service.display_name}</p>
    <h3 id=${'plan-' + plan.id}>${plan.display_name}</h3>
    <p class="muted">${plan.description}</p>
    <${PlanFacts} plan=${plan} />
    ${canWrite(session) && plan.orderable
      ? html`<a class="button" href=${href('/catalog', { plan: plan.id })} aria-describedby=${'plan-' + plan.id}>Order</a>`
      : null}
  </article>`;
}

function CatalogList({ services, session }) {
  const plans = services.flatMap((s) => (s.plans || []).map((p) => ({ plan: p, service: s })));
  if (!plans.length) {
    return html`<${Empty} title="No plans to order">
      <p>${isOperator(session) ? 'Create a plan with POST /api/v1/catalog/plans; active plans appear here.' : 'The platform offers no active plans yet. Ask your platform team to publish one.'}</p>
    </${Empty}>`;
  }
  const known = new Set(MODES.map((m) => m[0]));
  const modes = [...MODES, ...[...new Set(plans.map((x) => x.plan.deployment_mode))].filter((m) => !known.has(m)).map((m) => [m, m, ''])];
  return html`
    <ul class="engines">${services.map((s) => html`<li key=${s.id}><strong>${s.display_name}</strong>
      <span class="muted"> — ${s.description}</span> <span class="muted small">versions ${s.versions.join(', ')}</span></li>`)}</ul>
    ${modes.map(([mode, title, about]) => {
      const here = plans.filter((x) => x.plan.deployment_mode === mode);
      if (!here.length) return null;
      return html`<section key=${mode} class="mode" aria-labelledby=${'mode-' + mode}>
        <h2 id=${'mode-' + mode}>${title} <span class="muted small">${mode}</span></h2>
        ${about ? html`<p class="muted">${about}</p>` : null}
        <div class="plans">${here.map(({ plan, service }) => html`<${PlanCard} key=${plan.id} plan=${plan} service=${service} session=${session} />`)}</div>
      </section>`;
    })}`;
}

const TOP_FIELDS = ['name', 'version', 'region', 'tenant'];

function OrderForm({ plan, service, session }) {
  const fields = schemaFields(plan.parameters_schema);
  const operator = isOperator(session);
  const [name, setName] = useState('');
  const [version, setVersion] = useState(plan.default_version);
  const [region, setRegion] = useState('');
  const [tenant, setTenant] = useState('');
  const [values, setValues] = useState(() => initialValues(fields));
  // Busy stays on after the order: the page navigates to the new instance.
  const { run: order, busy, error } = useAction(async (body) => {
    const res = await api.post('/api/v1/instances', body);
    navigate('/instances/' + encodeURIComponent(res.instance.id));
    return true;
  }, { keepBusy: true });

  const top = fieldErrors(error, '');
  const params = fieldErrors(error, 'parameters.');
  // Field errors with no input of their own (plan_id, the parameters
  // object as a whole, …) stay in the message at the top.
  const shown = (f) => TOP_FIELDS.includes(f) || (f.startsWith('parameters.') && fields.some((x) => 'parameters.' + x.name === f));
  const rest = error ? { ...error, errors: error.errors.filter((e) => !shown(e.field)) } : null;

  const submit = async (e) => {
    e.preventDefault();
    const body = { name: name.trim(), plan_id: plan.id, version, parameters: parameterValues(fields, values) };
    if (region.trim()) body.region = region.trim();
    if (operator) body.tenant = tenant.trim();
    if (!(await order(body))) {
      // Take the user to the first field the API named, else the message.
      requestAnimationFrame(() => {
        const el = document.querySelector('.order-form [aria-invalid="true"]') || document.querySelector('.order-form .problem-wrap');
        if (el) el.focus();
      });
    }
  };

  const described = (id, hint, err) => [hint ? id + '-hint' : '', err ? id + '-error' : ''].filter(Boolean).join(' ') || undefined;
  return html`<section aria-labelledby="order-title" class="order">
    <p><a href="#/catalog">← All plans</a></p>
    <h1 id="order-title">Order ${plan.display_name}</h1>
    <div class="order-grid">
      <form class="card order-form" onSubmit=${submit} novalidate aria-labelledby="order-title">
        ${rest ? html`<div class="problem-wrap" tabindex="-1"><${ProblemMessage} error=${rest} title="The order was refused" /></div>` : null}
        <${Field} id="order-name" label="Instance name" error=${top.name}
            hint="Lowercase letters, digits and hyphens; starts with a letter, 2 to 63 characters; unique among your instances.">
          <input id="order-name" name="name" type="text" required autocomplete="off" spellcheck="false" maxlength="63"
            value=${name} onInput=${(e) => setName(e.currentTarget.value)}
            aria-invalid=${top.name ? 'true' : undefined} aria-describedby=${described('order-name', true, top.name)} />
        </${Field}>
        ${operator ? html`<${Field} id="order-tenant" label="Tenant" error=${top.tenant} hint="The tenant the instance is ordered for.">
          <input id="order-tenant" name="tenant" type="text" required autocomplete="off" spellcheck="false"
            value=${tenant} onInput=${(e) => setTenant(e.currentTarget.value)}
            aria-invalid=${top.tenant ? 'true' : undefined} aria-describedby=${described('order-tenant', true, top.tenant)} />
        </${Field}>` : null}
        <${Field} id="order-version" label="Version" error=${top.version}>
          <select id="order-version" name="version" value=${version} onChange=${(e) => setVersion(e.currentTarget.value)}
            aria-invalid=${top.version ? 'true' : undefined} aria-describedby=${described('order-version', false, top.version)}>
            ${plan.versions.map((v) => html`<option value=${v}>${v}${v === plan.default_version ? ' (default)' : ''}</option>`)}
          </select>
        </${Field}>
        <${Field} id="order-region" label="Region (optional)" error=${top.region}
            hint="The region of the primary; leave empty for the platform's choice.">
          <input id="order-region" name="region" type="text" autocomplete="off" spellcheck="false"
            value=${region} onInput=${(e) => setRegion(e.currentTarget.value)}
            aria-invalid=${top.region ? 'true' : undefined} aria-describedby=${described('order-region', true, top.region)} />
        </${Field}>
        <fieldset class="params">
          <legend>Parameters</legend>
          <${SchemaFields} fields=${fields} values=${values} onChange=${setValues} errors=${params} />
        </fieldset>
        <div class="actions">
          <button type="submit" disabled=${busy}>${busy ? 'Ordering…' : 'Order'}</button>
          <a href="#/catalog">Cancel</a>
        </div>
      </form>
      <aside class="card" aria-label="The plan">
        <p class="plan-engine">${service.display_name}</p>
        <p class="muted">${plan.description}</p>
        <${PlanFacts} plan=${plan} />
      </aside>
    </div>
  </section>`;
}

export default function Catalog({ query, session }) {
  const { data, error, loading } = useAsync((signal) => loadServices(signal), []);
  const planID = query.plan || '';
  if (data === undefined) {
    return html`<section aria-labelledby="catalog-title"><h1 id="catalog-title">Catalog</h1>
      <${ProblemMessage} error=${error} title="The catalog could not be loaded" />
      ${loading ? html`<${Loading} what="Loading the catalog" />` : null}</section>`;
  }
  if (planID) {
    const found = data.flatMap((s) => (s.plans || []).map((p) => ({ plan: p, service: s }))).find((x) => x.plan.id === planID);
    if (!found || !canWrite(session)) {
      return html`<${Empty} title=${found ? 'Your key may only read' : 'Plan not found'}>
        <p>${found ? 'Ask a tenant admin or member to order this plan.' : 'The plan is not (or no longer) in the catalog.'} <a href="#/catalog">See every plan</a>.</p>
      </${Empty}>`;
    }
    return html`<${OrderForm} key=${planID} plan=${found.plan} service=${found.service} session=${session} />`;
  }
  return html`<section aria-labelledby="catalog-title">
    <h1 id="catalog-title">Catalog</h1>
    <p class="muted">${canWrite(session) ? 'Pick a plan and order an instance; it comes up in a few seconds to minutes.' : 'The plans your tenant can order. Your key may only read.'}</p>
    <${ProblemMessage} error=${error} title="The catalog could not be refreshed" />
    <${CatalogList} services=${data} session=${session} />
  </section>`;
}
