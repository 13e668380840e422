// Copying to the clipboard: <CopyButton text=… label=…> copies text and
// says so for a moment; where the clipboard is refused (an insecure origin,
// a denied permission) it says to copy by hand instead.
import { html, useEffect, useState } from './html.js';

async function copy(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Older or insecure contexts: a hidden textarea and the copy command.
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.className = 'sr-only';
  document.body.appendChild(ta);
  ta.select();
  const ok = document.execCommand('copy');
  ta.remove();
  if (!ok) throw new Error('copy refused');
}

/** A button copying text; label names what is copied for screen readers ("Copy password"). */
export function CopyButton({ text, label = 'Copy' }) {
  const [state, setState] = useState('');
  useEffect(() => {
    if (!state) return undefined;
    const id = setTimeout(() => setState(''), 2000);
    return () => clearTimeout(id);
  }, [state]);
  const onClick = () => copy(text).then(() => setState('copied'), () => setState('failed'));
  return html`<button type="button" class="secondary copy" aria-label=${label} title=${label} onClick=${onClick}>
    ${state === 'copied' ? 'Copied' : state === 'failed' ? 'Select and copy' : 'Copy'}
  </button><span class="sr-only" role="status">${state === 'copied' ? 'Copied to the clipboard' : state === 'failed' ? 'The clipboard refused; select the text and copy it' : ''}</span>`;
}
