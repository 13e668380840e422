// Data hooks for pages.
import { useCallback, useEffect, useRef, useState } from './html.js';

/**
 * useAsync(load, deps) runs load(signal) when deps change and answers
 * { data, error, loading, reload }. A newer run aborts the older one; error
 * is what load threw (an api.ApiError for API calls).
 */
export function useAsync(load, deps) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  const current = useRef(null);
  useEffect(() => {
    const ctl = new AbortController();
    current.current = ctl;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(() => load(ctl.signal))
      .then(
        (data) => { if (!ctl.signal.aborted) setState({ data, error: null, loading: false }); },
        (error) => { if (!ctl.signal.aborted) setState((s) => ({ data: s.data, error, loading: false })); },
      );
    return () => ctl.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** useInterval(fn, ms) calls fn every ms while ms is a positive number (null pauses). */
export function useInterval(fn, ms) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!ms || ms <= 0) return undefined;
    const id = setInterval(() => saved.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}

/**
 * useAction(fn, { keepBusy }) wraps what a form or button does with the API
 * and answers { run, busy, error, setError }. run(...args) sets busy, clears
 * error and awaits fn(...args): it answers fn's result, or undefined with
 * error set to what fn threw. busy is cleared when fn settles, except after
 * a success with keepBusy: the action navigates away or removes the control,
 * which must not come back to life in the meantime. No state is set once the
 * component is unmounted.
 */
export function useAction(fn, { keepBusy = false } = {}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const saved = useRef(fn);
  saved.current = fn;
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => { mounted.current = false; };
  }, []);
  const run = useCallback(async (...args) => {
    setBusy(true);
    setError(null);
    try {
      const result = await saved.current(...args);
      if (mounted.current && !keepBusy) setBusy(false);
      return result;
    } catch (err) {
      if (mounted.current) { setError(err); setBusy(false); }
      return undefined;
    }
  }, [keepBusy]);
  return { run, busy, error, setError };
}
