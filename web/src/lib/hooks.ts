// Data hooks: load once or poll (at most every 2 s) without reloading the page; URL state for deep links.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useSearchParams } from "react-router-dom";

export const POLL_MS = 2000;

/** Polls skip their fetch while the browser tab is hidden (no load on the server for a tab nobody sees). */
export const hidden = () => typeof document !== "undefined" && document.visibilityState === "hidden";

export interface Loaded<T> { data: T | undefined; error: Error | null; reload: () => void }

/**
 * Calls `fn` now, then every `intervalMs` while `live` (0 = once); `deps` restart it. Keeps the last data on errors.
 * When `live` turns false the data is read once more (what a run logged last), unless `finalRead` is false: for a
 * poll whose own answer turned it off (a run page that saw its run end has its final state already).
 */
export function usePoll<T>(fn: () => Promise<T>, deps: unknown[], intervalMs = POLL_MS, live = true, finalRead = true): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | null>(null);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const liveRef = useRef(live);
  liveRef.current = live;
  // Without a final read, only live turning on again restarts the poll; turning off just ends the loop.
  const resumes = useRef(0);
  const wasLive = useRef(live);
  if (live && !wasLive.current) resumes.current++;
  wasLive.current = live;
  const liveKey = finalRead ? live : resumes.current;
  const pending = useRef<(() => void) | null>(null);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    pending.current = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    };
    const run = async () => {
      if (hidden() && liveRef.current && intervalMs > 0) {
        timer = setTimeout(run, intervalMs);
        return;
      }
      try {
        const v = await fnRef.current();
        if (!stopped) {
          setData(v);
          setError(null);
        }
      } catch (e) {
        if (!stopped) setError(e as Error);
      }
      if (!stopped && liveRef.current && intervalMs > 0) timer = setTimeout(run, intervalMs);
    };
    run();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick, liveKey, intervalMs]);
  // Turned off without a restart: drop the next poll the loop may have planned before it knew.
  useEffect(() => {
    if (!live) pending.current?.();
  }, [live]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, reload };
}

/** One URL query parameter as state (so every selection is a shareable link). */
export function useQueryParam(name: string): [string | null, (v: string | null) => void] {
  const [sp, setSp] = useSearchParams();
  const value = sp.get(name);
  const set = useCallback(
    (v: string | null) => {
      setSp((prev) => {
        const next = new URLSearchParams(prev);
        if (v === null || v === "") next.delete(name);
        else next.set(name, v);
        return next;
      }, { replace: true });
    },
    [name, setSp],
  );
  return [value, set];
}

/** A repeated URL query parameter (?tag=a&tag=b) as a list, for filters that combine. */
export function useQueryList(name: string): [string[], (v: string[]) => void] {
  const [sp, setSp] = useSearchParams();
  const joined = sp.getAll(name).join("\n"); // a stable dependency; filters are one line each
  const values = useMemo(() => (joined ? joined.split("\n") : []), [joined]);
  const set = useCallback(
    (v: string[]) => {
      setSp((prev) => {
        const next = new URLSearchParams(prev);
        next.delete(name);
        v.forEach((x) => next.append(name, x));
        return next;
      }, { replace: true });
    },
    [name, setSp],
  );
  return [values, set];
}

/** A list kept in the URL, shown as a click leaves it: at once. The router updates the URL in a
 *  transition (a moment later); until then the clicked list is shown, then the URL's again. */
export function useClickedList<T>(fromUrl: T[]): [T[], (v: T[]) => void] {
  const [clicked, setClicked] = useState<T[] | null>(null);
  const key = fromUrl.join(",");
  useEffect(() => setClicked(null), [key]);
  return [clicked ?? fromUrl, setClicked];
}

/** Sets several URL query parameters in one navigation (two single setters in one handler would keep only the last). */
export function useSetQuery(): (changes: Record<string, string | null>) => void {
  const [, setSp] = useSearchParams();
  return useCallback(
    (changes: Record<string, string | null>) => {
      setSp((prev) => {
        const next = new URLSearchParams(prev);
        for (const [k, v] of Object.entries(changes)) {
          if (v === null || v === "") next.delete(k);
          else next.set(k, v);
        }
        return next;
      }, { replace: true });
    },
    [setSp],
  );
}
