// The portal's entry: learns whether a session exists, shows the sign-in
// page or the layout with the page the hash names (routes.js).
import { html, render, useEffect, useState } from './html.js';
import * as api from './api.js';
import { routes, home } from './routes.js';
import { match, navigate, parse, useHash } from './router.js';
import { role } from './session.js';
import { Layout } from './layout.js';
import { Empty, Loading, ProblemMessage } from './components.js';
import SignIn from './pages/signin.js';

const loaded = new Map(); // route path → page module

function Page({ route, params, query, session }) {
  const [mod, setMod] = useState(loaded.get(route.path));
  const [error, setError] = useState(null);
  useEffect(() => {
    if (loaded.has(route.path)) { setMod(loaded.get(route.path)); return; }
    setMod(undefined);
    route.load().then((m) => { loaded.set(route.path, m); setMod(m); }, setError);
  }, [route]);
  if (error) return html`<${ProblemMessage} error=${error} title="This page could not be loaded" />`;
  if (!mod) return html`<${Loading} />`;
  const C = mod.default;
  return html`<${C} params=${params} query=${query} session=${session} />`;
}

function App() {
  // undefined: not known yet; null: signed out.
  const [session, setSession] = useState(undefined);
  const [bootError, setBootError] = useState(null);
  const [signOutError, setSignOutError] = useState(null);
  const hash = useHash();

  const signedIn = (s) => { api.setCsrfToken(s.csrf_token); setSession(s); };
  const signedOut = () => { api.setCsrfToken(''); setSession(null); };

  useEffect(() => {
    api.get('/api/v1/sessions/current').then(signedIn, (err) => {
      if (err.status === 401 || err.status === 404) signedOut();
      else setBootError(err);
    });
    return api.onUnauthorized(signedOut);
  }, []);

  const signOut = async () => {
    setSignOutError(null);
    try {
      await api.del('/api/v1/sessions/current');
    } catch (err) {
      if (err.status !== 401) { setSignOutError(html`<${ProblemMessage} error=${err} title="Signing out failed" />`); return; }
    }
    signedOut();
  };

  if (bootError) return html`<main class="container"><${ProblemMessage} error=${bootError} title="The portal could not start" /></main>`;
  if (session === undefined) return html`<main class="container"><${Loading} /></main>`;
  if (session === null) return html`<${SignIn} onSignedIn=${signedIn} />`;

  const { path, query } = parse(hash);
  if (path === '/') {
    navigate(home(session), undefined, { replace: true });
    return null;
  }
  const m = match(routes, path);
  const allowed = m && m.route.roles.includes(role(session));
  return html`<${Layout} session=${session} current=${path} title=${allowed ? m.route.title : 'Not found'}
      onSignOut=${signOut} signOutError=${signOutError}>
    ${allowed
      ? html`<${Page} key=${m.route.path} route=${m.route} params=${m.params} query=${query} session=${session} />`
      : html`<${Empty} title="Not found"><p>There is no page at <code>${path}</code> for your role. <a href=${'#' + home(session)}>Go to the start page</a>.</p></${Empty}>`}
  </${Layout}>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the "Loading" placeholder of index.html
render(html`<${App} />`, root);
