// Metric charts overlaying runs: one chart per metric, x by step or time, smoothing and log scale.
// Series come downsampled from the API (about two points per pixel).
import { useEffect, useRef, useState } from "react";
import { api } from "../api";
import { pointsFor, type Series } from "../lib/chart";
import { hidden, POLL_MS } from "../lib/hooks";
import { Chart } from "./Chart";

export interface ChartRun { id: number; label: string }

export interface ChartControls { x: "step" | "time"; smoothing: number; logY: boolean }

export function ChartControlsBar({ value, onChange }: { value: ChartControls; onChange: (v: ChartControls) => void }) {
  return (
    <div className="controls">
      <label>x: <select value={value.x} onChange={(e) => onChange({ ...value, x: e.target.value as "step" | "time" })}>
        <option value="step">step</option><option value="time">time</option></select></label>
      <label>smoothing <input type="range" min={0} max={0.99} step={0.01} value={value.smoothing}
        onChange={(e) => onChange({ ...value, smoothing: Number(e.target.value) })} /> {value.smoothing.toFixed(2)}</label>
      <label><input type="checkbox" checked={value.logY} onChange={(e) => onChange({ ...value, logY: e.target.checked })} /> log y</label>
    </div>
  );
}

export function MetricCharts({ runs, keys, controls, live, height = 220 }: {
  runs: ChartRun[]; keys: string[]; controls: ChartControls; live: boolean; height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [data, setData] = useState<Record<string, Series[]>>({});
  const startedAt = useRef(0);
  const [error, setError] = useState<string | null>(null);
  const runKey = runs.map((r) => `${r.id}:${r.label}`).join(",");
  const keysKey = keys.join("\n");

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ctrl = new AbortController();
    const load = async () => {
      if (hidden() && live) {
        timer = setTimeout(load, POLL_MS);
        return;
      }
      const t0 = performance.now();
      const width = Math.max(300, box.current?.clientWidth ?? 800);
      const n = pointsFor(keys.length > 1 ? width / 2 : width, runs.length);
      const out: Record<string, Series[]> = {};
      try {
        await Promise.all(keys.map(async (key) => {
          const series = await Promise.all(runs.map(async (r) => {
            try {
              const h = await api.history(r.id, key, n, ctrl.signal);
              return { label: r.label, x: controls.x === "time" ? h.timestamps : h.steps, y: h.values };
            } catch (e) {
              if ((e as { status?: number }).status === 404) return { label: r.label, x: [], y: [] };
              throw e;
            }
          }));
          out[key] = series;
        }));
        if (!stopped) { startedAt.current = t0; setData(out); setError(null); }
      } catch (e) {
        if (!stopped && (e as Error).name !== "AbortError") setError((e as Error).message);
      }
      if (!stopped && live) timer = setTimeout(load, POLL_MS);
    };
    load();
    return () => { stopped = true; ctrl.abort(); if (timer) clearTimeout(timer); };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [runKey, keysKey, controls.x, live]);

  return (
    <div ref={box} className={`charts ${keys.length > 1 ? "grid" : ""}`}>
      {error && <div className="error">{error}</div>}
      {keys.map((k) => data[k] ? (
        <Chart key={k} title={k} series={data[k]} xLabel={controls.x} smoothing={controls.smoothing} logY={controls.logY} height={height} startedAt={startedAt.current} />
      ) : <div key={k} className="chart placeholder">loading {k}…</div>)}
    </div>
  );
}

export function controlsFromQuery(x: string | null, smooth: string | null, log: string | null): ChartControls {
  const s = Number(smooth);
  return { x: x === "time" ? "time" : "step", smoothing: Number.isFinite(s) && s >= 0 && s < 1 ? s : 0, logY: log === "1" };
}
