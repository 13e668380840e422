// Hash routing: the page is always index.html, the route is the part after
// '#' (e.g. #/instances/abc?cursor=x), so deep links and reloads work
// without the server knowing the routes.
import { useEffect, useState } from './html.js';

/** parse('#/instances/abc?cursor=x') → { path: '/instances/abc', query: { cursor: 'x' } } */
export function parse(hash) {
  const raw = (hash || '').replace(/^#/, '') || '/';
  const [path, qs = ''] = raw.split('?', 2);
  return { path: path || '/', query: Object.fromEntries(new URLSearchParams(qs)) };
}

/** match(routes, '/instances/abc') → { route, params: { id: 'abc' } } or null. */
export function match(routes, path) {
  const parts = path.split('/').filter(Boolean);
  for (const route of routes) {
    const pattern = route.path.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < pattern.length && ok; i++) {
      if (pattern[i].startsWith(':')) params[pattern[i].slice(1)] = decodeURIComponent(parts[i]);
      else ok = pattern[i] === parts[i];
    }
    if (ok) return { route, params };
  }
  return null;
}

/** href('/instances', { cursor: 'x' }) → '#/instances?cursor=x' (empty query members left out). */
export function href(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') q.append(k, String(v));
  }
  const s = q.toString();
  return '#' + path + (s ? '?' + s : '');
}

/** navigate('/instances/abc') goes there (a history entry); replace: true does not add one. */
export function navigate(path, query, { replace = false } = {}) {
  const target = href(path, query);
  if (replace) location.replace(target);
  else location.hash = target;
}

/** useHash() is location.hash, re-rendering the caller when it changes. */
export function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}
