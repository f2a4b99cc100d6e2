// Parallel coordinates of params against the search metric, drawn on a canvas (thousands of runs);
// dragging along an axis brushes a range, which filters the runs table.
import { useEffect, useMemo, useRef, useState } from "react";
import { colour } from "../lib/chart";
import { formatNumber } from "../lib/table";
import { fromUnit, inBrushes, toUnit, type Axis, type Brush } from "../lib/parcoords";

export interface PcRun { id: number; values: Record<string, unknown> }

const PAD_TOP = 28, PAD_BOTTOM = 22, PAD_X = 60;

export function ParCoords({ axes, runs, brushes, onBrush, colourField, height = 260 }: {
  axes: Axis[]; runs: PcRun[]; brushes: Brush[]; onBrush: (field: string, brush: Brush | null) => void; colourField?: string; height?: number;
}) {
  const wrap = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(800);
  const [drag, setDrag] = useState<{ field: string; y0: number; y1: number } | null>(null);

  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(Math.max(300, el.clientWidth)));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const xs = useMemo(() => axes.map((_, i) => (axes.length === 1 ? width / 2 : PAD_X + (i * (width - 2 * PAD_X)) / (axes.length - 1))), [axes, width]);
  const plotH = height - PAD_TOP - PAD_BOTTOM;
  const yOf = (t: number) => PAD_TOP + (1 - t) * plotH;
  // Within 4 px of an end counts as the end.
  const tOf = (y: number) => (y <= PAD_TOP + 4 ? 1 : y >= PAD_TOP + plotH - 4 ? 0 : 1 - (y - PAD_TOP) / plotH);

  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = width * dpr;
    c.height = height * dpr;
    const g = c.getContext("2d")!;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    const cAxis = axes.find((a) => a.field === colourField);
    const draw = (r: PcRun) => {
      g.beginPath();
      let pen = false;
      axes.forEach((a, i) => {
        const t = toUnit(a, r.values[a.field]);
        if (t === null) { pen = false; return; }
        if (pen) g.lineTo(xs[i], yOf(t)); else g.moveTo(xs[i], yOf(t));
        pen = true;
      });
      g.stroke();
    };
    g.lineWidth = 1;
    g.strokeStyle = "rgba(160,160,160,0.25)";
    // Runs outside the brushes first, in grey, so the selected ones are drawn over them.
    const inside: PcRun[] = [];
    for (const r of runs) {
      if (inBrushes(r.values, brushes)) inside.push(r);
      else draw(r);
    }
    g.globalAlpha = runs.length > 2000 ? 0.35 : 0.8;
    for (const r of inside) {
      const t = cAxis ? toUnit(cAxis, r.values[cAxis.field]) : null;
      g.strokeStyle = t === null ? "#888" : colour(Math.round(t * 10) * 2 + 1);
      draw(r);
    }
    g.globalAlpha = 1;
    // Axes, brushes, ticks.
    g.font = "11px sans-serif";
    axes.forEach((a, i) => {
      g.strokeStyle = "#333";
      g.beginPath(); g.moveTo(xs[i], PAD_TOP); g.lineTo(xs[i], PAD_TOP + plotH); g.stroke();
      g.fillStyle = "#222"; g.textAlign = "center";
      g.fillText(a.label, xs[i], 14);
      g.fillStyle = "#555"; g.textAlign = "left";
      const lo = a.kind === "category" ? a.categories[0] ?? "" : formatNumber(a.min);
      const hi = a.kind === "category" ? a.categories[a.categories.length - 1] ?? "" : formatNumber(a.max);
      g.fillText(hi, xs[i] + 4, PAD_TOP + 8);
      g.fillText(lo, xs[i] + 4, PAD_TOP + plotH);
      const b = brushes.find((x) => x.field === a.field);
      if (b) {
        const y1 = yOf(toUnit(a, b.hi) ?? 1), y0 = yOf(toUnit(a, b.lo) ?? 0);
        g.fillStyle = "rgba(30,110,220,0.25)";
        g.fillRect(xs[i] - 8, y1, 16, y0 - y1);
      }
    });
    if (drag) {
      const i = axes.findIndex((a) => a.field === drag.field);
      g.fillStyle = "rgba(30,110,220,0.35)";
      g.fillRect(xs[i] - 8, Math.min(drag.y0, drag.y1), 16, Math.abs(drag.y1 - drag.y0));
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [axes, runs, brushes, width, height, xs, drag, colourField]);

  const finish = () => {
    if (!drag) return;
    const a = axes.find((x) => x.field === drag.field)!;
    if (Math.abs(drag.y1 - drag.y0) < 3) onBrush(a.field, null);
    else {
      const t0 = tOf(Math.max(drag.y0, drag.y1)), t1 = tOf(Math.min(drag.y0, drag.y1));
      onBrush(a.field, { field: a.field, lo: fromUnit(a, t0), hi: fromUnit(a, t1) });
    }
    setDrag(null);
  };

  return (
    <div className="parcoords" ref={wrap} style={{ height, position: "relative" }} data-testid="parcoords" data-runs={runs.length}>
      <canvas ref={canvas} style={{ width, height }} />
      {axes.map((a, i) => a.kind !== "category" && (
        <div key={a.field} className="pc-axis" data-axis={a.field} title={`drag to brush ${a.label}; click to clear`}
          style={{ position: "absolute", left: xs[i] - 12, top: PAD_TOP, width: 24, height: plotH, cursor: "ns-resize" }}
          onMouseDown={(e) => { const y = e.clientY - wrap.current!.getBoundingClientRect().top; setDrag({ field: a.field, y0: y, y1: y }); e.preventDefault(); }}
          onMouseMove={(e) => { if (drag && drag.field === a.field) setDrag({ ...drag, y1: e.clientY - wrap.current!.getBoundingClientRect().top }); }}
          onMouseUp={finish} onMouseLeave={() => { if (drag && drag.field === a.field) finish(); }} />
      ))}
    </div>
  );
}
