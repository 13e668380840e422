// Sign-in: exchanges an API key for a session (POST /api/v1/sessions). The
// key lives only in this form's state until the answer comes; it is never
// written to localStorage or sessionStorage, and the session id is an
// HttpOnly cookie the page cannot read.
import { html, useEffect, useRef, useState } from '../html.js';
import * as api from '../api.js';
import { useAction } from '../hooks.js';
import { Field, ProblemMessage } from '../components.js';

export default function SignIn({ onSignedIn }) {
  const [key, setKey] = useState('');
  // Busy stays on after signing in: the app replaces this page.
  const { run: signIn, busy, error } = useAction(async () => {
    const s = await api.post('/api/v1/sessions', { key: key.trim() });
    setKey('');
    onSignedIn(s);
    return true;
  }, { keepBusy: true });
  const input = useRef(null);
  useEffect(() => {
    document.title = 'Sign in · Canopy';
    if (input.current) input.current.focus();
  }, []);

  const submit = async (e) => {
    e.preventDefault();
    if (!(await signIn()) && input.current) input.current.focus();
  };

  const fieldError = error && error.fields && error.fields.key;
  return html`<main class="signin" id="main">
    <form class="card" onSubmit=${submit} aria-labelledby="signin-title" novalidate>
      <h1 id="signin-title">Sign in to Canopy</h1>
      <p class="muted">Use an API key: the platform-admin key printed by <code>make dev</code>, or a key a tenant admin gave you.</p>
      <${Field} id="api-key" label="API key" error=${fieldError}
          hint="The key is exchanged for a session cookie and not kept by this page.">
        <input id="api-key" name="api-key" type="password" autocomplete="off" spellcheck="false" required ref=${input}
          value=${key} onInput=${(e) => setKey(e.currentTarget.value)}
          aria-invalid=${fieldError ? 'true' : undefined} aria-describedby=${fieldError ? 'api-key-error' : 'api-key-hint'} />
      </${Field}>
      ${error && !fieldError ? html`<${ProblemMessage} error=${error} title="Sign-in failed" />` : null}
      <button type="submit" disabled=${busy || !key.trim()}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form>
  </main>`;
}
