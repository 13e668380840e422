// The portal's only way to the API: same-origin fetch with the session
// cookie (HttpOnly: this code never sees it), the CSRF token on every
// mutating call, and RFC 9457 problem+json turned into an ApiError.
//
//   import * as api from '../api.js';
//   const page = await api.get('/api/v1/instances', { query: { limit: 20, cursor } });
//   await api.post('/api/v1/instances', body, { headers: { 'Idempotency-Key': k } });
//   await api.del(`/api/v1/instances/${id}`);
//   try { … } catch (e) { if (e instanceof api.ApiError) { e.status; e.detail; e.fields['plan_id'] } }
//
// A 401 from any call but the sessions API tells the listeners registered
// with onUnauthorized (the app shows the sign-in page).

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

let csrfToken = '';
const unauthorized = new Set();

/** Sets the CSRF token sent as X-CSRF-Token on mutating calls ('' forgets it). */
export function setCsrfToken(token) { csrfToken = token || ''; }

/** Calls fn(error) when a call answers 401; returns a function that unregisters it. */
export function onUnauthorized(fn) {
  unauthorized.add(fn);
  return () => unauthorized.delete(fn);
}

/** An answer that is not 2xx (or no answer: status 0), with the problem's members. */
export class ApiError extends Error {
  constructor(status, problem, method, path) {
    const p = problem || {};
    super(p.detail || p.title || `HTTP ${status}`);
    this.name = 'ApiError';
    /** HTTP status; 0 when the gateway could not be reached. */
    this.status = status;
    this.type = p.type || 'about:blank';
    this.title = p.title || '';
    /** What went wrong, in the API's words: show it where the call was made. */
    this.detail = p.detail || '';
    /** Field errors as sent: [{field, reason}]. */
    this.errors = Array.isArray(p.errors) ? p.errors : [];
    /** The same by field name: { 'parameters.maxmemory': 'must be …' }. */
    this.fields = Object.fromEntries(this.errors.map((e) => [e.field, e.reason]));
    this.requestId = p.request_id || '';
    /** The whole problem object, for extension members (quota, limit, …). */
    this.problem = p;
    this.method = method;
    this.path = path;
  }
}

/**
 * request(method, path, {body, query, headers, signal}) answers the parsed
 * JSON body (a string for other types, null for 204) or throws ApiError.
 * query's null, undefined and '' members are left out.
 */
export async function request(method, path, { body, query, headers, signal } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') q.append(k, String(v));
    }
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (MUTATING.has(method) && csrfToken) h['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(url, {
      method, headers: h, signal, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, { title: 'Network error', detail: `The gateway could not be reached (${e && e.message}).` }, method, path);
  }
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    const problem = data && typeof data === 'object'
      ? data
      : { title: res.statusText, detail: typeof data === 'string' ? data.slice(0, 300) : '' };
    const err = new ApiError(res.status, problem, method, path);
    if (res.status === 401 && !path.startsWith('/api/v1/sessions')) unauthorized.forEach((fn) => fn(err));
    throw err;
  }
  return data;
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, body, opts) => request('POST', path, { ...opts, body });
export const put = (path, body, opts) => request('PUT', path, { ...opts, body });
export const patch = (path, body, opts) => request('PATCH', path, { ...opts, body });
export const del = (path, opts) => request('DELETE', path, opts);
