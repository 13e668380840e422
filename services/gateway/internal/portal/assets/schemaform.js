// Form fields generated from a plan's parameter JSON Schema (the catalog's
// parameters_schema: an object of string, enum, integer, number and boolean
// properties with defaults, descriptions, minimum/maximum, maxLength and
// pattern). The API validates the parameters; its field errors
// (`parameters.<name>`) are shown next to the input they name.
//
//   const fields = schemaFields(plan.parameters_schema);
//   const [values, setValues] = useState(initialValues(fields));
//   <${SchemaFields} fields=${fields} values=${values} onChange=${setValues} errors=${fieldErrors(err, 'parameters.')} />
//   body.parameters = parameterValues(fields, values);
import { html } from './html.js';
import { Field } from './components.js';

/** The schema's properties as field descriptions, in the schema's order. */
export function schemaFields(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  return Object.entries(props).map(([name, p]) => {
    const type = Array.isArray(p.type) ? p.type.find((t) => t !== 'null') : p.type;
    return {
      name,
      id: 'param-' + name.replace(/[^A-Za-z0-9_-]/g, '_'),
      type: Array.isArray(p.enum) ? 'enum' : type || 'string',
      valueType: type || 'string',
      title: p.title || name,
      description: p.description || '',
      enum: Array.isArray(p.enum) ? p.enum : null,
      default: p.default,
      minimum: p.minimum,
      maximum: p.maximum,
      maxLength: p.maxLength,
      pattern: p.pattern,
      required: required.has(name),
    };
  });
}

/** The form's starting values: each field's default, as the inputs hold it (strings, booleans). */
export function initialValues(fields) {
  const v = {};
  for (const f of fields) {
    if (f.type === 'boolean') v[f.name] = f.default === true;
    else v[f.name] = f.default === undefined || f.default === null ? '' : String(f.default);
  }
  return v;
}

/**
 * The parameters to send: every value the user changed from the field's
 * default, converted to the schema's type (a number that does not parse is
 * sent as typed, so the API names it). Untouched fields are left out and the
 * plan's defaults apply.
 */
export function parameterValues(fields, values) {
  const out = {};
  for (const f of fields) {
    const raw = values[f.name];
    if (f.type === 'boolean') {
      if (raw !== (f.default === true)) out[f.name] = raw;
      continue;
    }
    const def = f.default === undefined || f.default === null ? '' : String(f.default);
    if (raw === def || (raw === '' && !f.required)) continue;
    if (f.valueType === 'integer' || f.valueType === 'number') {
      const n = Number(raw);
      out[f.name] = raw.trim() !== '' && Number.isFinite(n) ? n : raw;
    } else {
      out[f.name] = raw;
    }
  }
  return out;
}

/**
 * fieldErrors(err, 'parameters.') → { name: reason } for the ApiError's
 * field errors under that prefix ('' for top-level fields such as name).
 */
export function fieldErrors(err, prefix) {
  const out = {};
  for (const e of (err && err.errors) || []) {
    if (!e.field || !e.field.startsWith(prefix)) continue;
    const name = e.field.slice(prefix.length);
    if (name && !(name in out)) out[name] = e.reason;
  }
  return out;
}

/** What the schema allows, in words, under the input. */
function hintOf(f) {
  const parts = [];
  if (f.description) parts.push(f.description);
  if (f.minimum !== undefined && f.maximum !== undefined) parts.push(`${f.minimum} to ${f.maximum}.`);
  else if (f.minimum !== undefined) parts.push(`At least ${f.minimum}.`);
  else if (f.maximum !== undefined) parts.push(`At most ${f.maximum}.`);
  if (f.maxLength !== undefined) parts.push(`Up to ${f.maxLength} characters.`);
  if (f.pattern) parts.push(`Pattern ${f.pattern}.`);
  if (f.default !== undefined && f.default !== '' && f.type !== 'boolean') parts.push(`Default ${f.default}.`);
  return parts.join(' ');
}

function Input({ f, value, set, invalid, describedBy }) {
  const common = {
    id: f.id, name: f.name, 'aria-invalid': invalid ? 'true' : undefined, 'aria-describedby': describedBy,
  };
  if (f.type === 'enum') {
    return html`<select ...${common} value=${value} onChange=${(e) => set(e.currentTarget.value)}>
      ${f.required || f.default !== undefined ? null : html`<option value="">(plan default)</option>`}
      ${f.enum.map((o) => html`<option value=${String(o)}>${String(o)}</option>`)}
    </select>`;
  }
  if (f.type === 'boolean') {
    return html`<input ...${common} type="checkbox" checked=${value} onChange=${(e) => set(e.currentTarget.checked)} />`;
  }
  if (f.type === 'integer' || f.type === 'number') {
    return html`<input ...${common} type="number" inputmode=${f.type === 'integer' ? 'numeric' : 'decimal'}
      step=${f.type === 'integer' ? '1' : 'any'} min=${f.minimum} max=${f.maximum}
      value=${value} onInput=${(e) => set(e.currentTarget.value)} />`;
  }
  return html`<input ...${common} type="text" spellcheck="false" autocomplete="off" maxlength=${f.maxLength}
    value=${value} onInput=${(e) => set(e.currentTarget.value)} />`;
}

/**
 * The fields of a schema, each with its label, hint and the API's error.
 * The enclosing form is novalidate: ranges and patterns are shown as hints
 * and checked by the API, whose wording then appears under the field.
 */
export function SchemaFields({ fields, values, onChange, errors }) {
  if (!fields.length) return html`<p class="muted">This plan has no parameters to set.</p>`;
  return fields.map((f) => {
    const error = errors && errors[f.name];
    const hint = hintOf(f);
    const set = (v) => onChange({ ...values, [f.name]: v });
    const describedBy = [hint ? f.id + '-hint' : '', error ? f.id + '-error' : ''].filter(Boolean).join(' ') || undefined;
    return html`<${Field} key=${f.name} id=${f.id} label=${f.title} hint=${hint} error=${error}>
      <${Input} f=${f} value=${values[f.name]} set=${set} invalid=${!!error} describedBy=${describedBy} />
    </${Field}>`;
  });
}
