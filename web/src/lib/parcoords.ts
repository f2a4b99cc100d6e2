// Parallel coordinates: axes, their scales, and brushes that become the API's run filters.
import { apiField, parseColumn } from "./table";

export interface Axis {
  /** Field as the API names it: "params.lr" or "metrics.acc.last". */
  field: string;
  label: string;
  kind: "linear" | "log" | "category";
  min: number;
  max: number;
  categories: string[];
}

export interface Brush { field: string; lo: number; hi: number }

/** Build an axis from the values runs have for it. Numbers spanning over two decades (all > 0) get a log scale. */
export function makeAxis(field: string, label: string, values: unknown[]): Axis {
  const nums = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const present = values.filter((v) => v !== undefined && v !== null);
  if (present.length > 0 && nums.length === present.length) {
    let min = Math.min(...nums), max = Math.max(...nums);
    const kind = min > 0 && max / min > 100 ? "log" : "linear";
    if (min === max) {
      min = kind === "log" ? min / 2 : min - 1;
      max = kind === "log" ? max * 2 : max + 1;
    }
    return { field, label, kind, min, max, categories: [] };
  }
  if (present.length === 0) return { field, label, kind: "linear", min: 0, max: 1, categories: [] };
  const categories = [...new Set(present.map((v) => (typeof v === "string" ? v : JSON.stringify(v))))].sort();
  return { field, label, kind: "category", min: 0, max: Math.max(1, categories.length - 1), categories };
}

/** Value → position in [0, 1] along the axis (0 = bottom); null when the run has no value. */
export function toUnit(axis: Axis, v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (axis.kind === "category") {
    const i = axis.categories.indexOf(typeof v === "string" ? v : JSON.stringify(v));
    if (i < 0) return null;
    return axis.categories.length === 1 ? 0.5 : i / (axis.categories.length - 1);
  }
  if (typeof v !== "number" || !Number.isFinite(v)) return null;
  if (axis.kind === "log") {
    if (v <= 0) return null;
    return (Math.log(v) - Math.log(axis.min)) / (Math.log(axis.max) - Math.log(axis.min));
  }
  return (v - axis.min) / (axis.max - axis.min);
}

/** Position in [0, 1] → value (numeric axes). */
export function fromUnit(axis: Axis, t: number): number {
  // The ends are exact, so a brush dragged to an end keeps the runs on it.
  if (t <= 0) return axis.min;
  if (t >= 1) return axis.max;
  if (axis.kind === "log") return Math.exp(Math.log(axis.min) + t * (Math.log(axis.max) - Math.log(axis.min)));
  return axis.min + t * (axis.max - axis.min);
}

/** Brushes → the API's filter terms ("params.lr >= 0.001", "params.lr <= 0.1"). Category axes are not brushed. */
export function brushFilters(brushes: Brush[]): string[] {
  const out: string[] = [];
  for (const b of brushes) {
    const f = filterField(b.field);
    out.push(`${f} >= ${num(b.lo)}`, `${f} <= ${num(b.hi)}`);
  }
  return out;
}

/** An axis field ("metrics.val loss.last") as the filter language writes it ('metrics."val loss".last'). */
function filterField(field: string): string {
  const col = parseColumn(field);
  if (col?.kind === "param") return apiField("params", col.key);
  if (col?.kind === "metric") return apiField("metrics", col.key, col.agg);
  return field;
}

function num(v: number): string {
  return String(Number(v.toPrecision(12)));
}

/** URL form: "params.lr:0.001:0.1;metrics.acc.last:0.9:1". */
export function serializeBrushes(brushes: Brush[]): string {
  return brushes.map((b) => `${b.field}:${num(b.lo)}:${num(b.hi)}`).join(";");
}

export function parseBrushes(text: string | null): Brush[] {
  if (!text) return [];
  const out: Brush[] = [];
  for (const part of text.split(";")) {
    const i = part.lastIndexOf(":");
    const j = part.lastIndexOf(":", i - 1);
    if (j <= 0) continue;
    const lo = Number(part.slice(j + 1, i)), hi = Number(part.slice(i + 1));
    if (Number.isFinite(lo) && Number.isFinite(hi)) out.push({ field: part.slice(0, j), lo: Math.min(lo, hi), hi: Math.max(lo, hi) });
  }
  return out;
}

/** Does a run (its values by field) fall inside every brush? */
export function inBrushes(values: Record<string, unknown>, brushes: Brush[]): boolean {
  return brushes.every((b) => {
    const v = values[b.field];
    return typeof v === "number" && v >= b.lo && v <= b.hi;
  });
}

/** Replace the brush on `field` (or remove it when `brush` is null). */
export function setBrush(brushes: Brush[], field: string, brush: Brush | null): Brush[] {
  const rest = brushes.filter((b) => b.field !== field);
  return brush ? [...rest, brush] : rest;
}
