// A secret the API shows once (a new API key, a broker password): in a
// read-only field with a copy button, and a warning that it cannot be shown
// again. The value lives only in the caller's component state.
import { html, useState } from './html.js';

/** Copies text to the clipboard; answers whether it worked. */
async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (not a secure context) or refused: select the text
    // so the user can copy it by hand.
    if (input) { input.focus(); input.select(); }
    return false;
  }
}

/**
 * <ShownOnce id label value onDone />: the secret with a Copy button;
 * onDone (optional) is a "Done" button that lets the page forget it.
 */
export function ShownOnce({ id, label, value, onDone, children }) {
  const [copied, setCopied] = useState(null);
  let input = null;
  return html`<div class="shown-once" role="status" data-testid=${id}>
    <p><strong>${label}</strong> — copy it now: it is stored only as a hash and cannot be shown again.</p>
    <div class="shown-once-row">
      <label class="sr-only" for=${id + '-value'}>${label}</label>
      <input id=${id + '-value'} class="secret" readonly value=${value} spellcheck="false" autocomplete="off"
        ref=${(el) => { input = el; }} onFocus=${(e) => e.currentTarget.select()} />
      <button type="button" onClick=${async () => setCopied(await copy(value, input))}>Copy</button>
      ${onDone ? html`<button type="button" class="secondary" onClick=${onDone}>Done</button>` : null}
    </div>
    ${copied === true ? html`<p class="small ok-text">Copied to the clipboard.</p>` : null}
    ${copied === false ? html`<p class="small">The clipboard is not available here: the text is selected, copy it with Ctrl+C.</p>` : null}
    ${children}
  </div>`;
}
