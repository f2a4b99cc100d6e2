// A uPlot line chart overlaying several series; resizes with its container.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { align, colour, positiveOnly, smooth, type Series } from "../lib/chart";

export interface ChartProps {
  title: string;
  series: Series[];
  xLabel: "step" | "time";
  smoothing?: number;
  logY?: boolean;
  height?: number;
  /** performance.now() when its data started loading: the chart records load + draw time in data-ms. */
  startedAt?: number;
}

export function Chart({ title, series, xLabel, smoothing = 0, logY = false, height = 220, startedAt }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const prepared = series.map((s) => {
      let y = smooth(s.y, smoothing);
      if (logY) y = positiveOnly(y);
      return { ...s, y };
    });
    const data = align(prepared) as uPlot.AlignedData;
    const dots = data[0].length <= 60; // few points: show them, a lone point draws no line
    const opts: uPlot.Options = {
      title,
      width: Math.max(200, el.clientWidth),
      height,
      scales: { x: { time: xLabel === "time" }, y: logY ? { distr: 3 } : {} },
      axes: [{ label: xLabel }, {}],
      legend: { show: series.length <= 12 },
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: colour(i), width: 1.5, spanGaps: true, points: { show: dots } }))],
    };
    plot.current?.destroy();
    plot.current = new uPlot(opts, data, el);
    el.dataset.points = String(series.reduce((n, s) => n + s.x.length, 0));
    // uPlot paints on its next frame: measure after it.
    if (startedAt) requestAnimationFrame(() => { el.dataset.ms = String(Math.round(performance.now() - startedAt)); });
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [title, series, xLabel, smoothing, logY, height]);

  return <div className="chart" ref={box} data-testid="chart" data-title={title} />;
}
