// The tenant's usage and cost (#/usage): every instance's, per hour or
// day, per meter, with CSV downloads; the instance page's usage tab shows
// the same for one instance (instance-usage.js).
import { html } from '../html.js';
import { isOperator } from '../session.js';
import { UsageView } from './instance-usage.js';

export default function Usage({ session }) {
  return html`<section aria-labelledby="usage-title">
    <h1 id="usage-title">Usage and cost</h1>
    <p class="muted">${isOperator(session) ? 'Every tenant\'s usage, as metered.' : 'What your instances used and what it cost, as metered; the month\'s invoice is built from the same figures.'}</p>
    <${UsageView} />
  </section>`;
}
